"""Hugging Face Space entry point: the vl_hub demo (the quickstart model if present, else an untrained tiny BLIP)."""
from vl_hub.demo import build_app, launch

launch(build_app(), host="0.0.0.0", port=7860)
