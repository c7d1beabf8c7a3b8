"""``vl-hub demo``: serve the Gradio demo (captioning, VQA, ITM + Grad-CAM, text localisation, search, zero-shot
classification, dataset browser)."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``demo`` to the ``vl-hub`` sub-parsers ``sub``."""
    p = sub.add_parser(
        "demo",
        help="serve the Gradio demo in a browser",
        description=(
            "Serve the vl_hub demo. Without --model it serves the `vl-hub quickstart` model if one exists "
            "($VLHUB_HOME/quickstart or ./vlhub_quickstart), else an untrained tiny BLIP (labelled as such)."
        ),
    )
    p.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="MODEL",
        help="checkpoint folder (or folder of checkpoints), catalogue entry name:model_type, or Hub id; repeat to "
        "serve several (the first is selected)",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default: 7860 or the next free one)")
    p.add_argument("--gallery", help="folder of images for multimodal search (default: synthetic vl_hub_shapes)")
    p.add_argument("--cache-dir", help="demo cache: gallery features, example images (default $VLHUB_HOME/demo)")
    p.add_argument("--datasets-cache-dir", help="where the dataset browser prepares datasets (datasets' default)")
    p.add_argument("--device", default="cpu", help="torch device for the models (default cpu)")
    p.add_argument("--no-catalogue", action="store_true", help="do not list the model catalogue in the model picker")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Builds the app and serves it until interrupted; returns the exit status."""
    try:
        from vl_hub.demo import build_app, launch
    except ImportError as err:
        print(f"vl-hub demo needs gradio ({err}); install it with: pip install 'vl-hub[demo]'", file=sys.stderr)
        return 1
    from vl_hub.demo.inputs import DemoInputError

    try:
        app = build_app(
            args.models,
            gallery=args.gallery,
            cache_dir=args.cache_dir,
            datasets_cache_dir=args.datasets_cache_dir,
            device=args.device,
            catalogue=not args.no_catalogue,
        )
    except (DemoInputError, OSError) as err:
        print(f"vl-hub demo: {err}", file=sys.stderr)
        return 2
    launch(app, host=args.host, port=args.port)
    return 0
