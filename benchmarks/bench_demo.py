"""Demo benchmark: start-up time to the first served page, and captioning latency per request on the CPU.

1. start-up: ``python -m vl_hub.cli demo --model <folder> --port P`` in a fresh process, timed from the process start
   to the first ``200`` answer of ``GET /`` and of ``GET /config`` (the page's component tree: what the browser needs
   before it can draw anything). The same for ``build_app`` + ``launch`` inside an already-importing process.
2. captioning latency (median of ``--repeats`` after one warm-up): the tab handler called directly, and the whole
   request through the server's HTTP API (``gradio_client``: upload, queue, handler, response), for beam search
   (3 beams, 1 and 3 captions) and nucleus sampling.

Models: ``--size tiny`` (the untrained tiny BLIP the demo serves by default: ViT 64 px / width 64 / 2 layers) or
``--size base`` (BLIP-base's architecture: ViT-B/16 at 384 px, 12-layer BERT decoder; random weights, the synthetic
vocabulary), built into a scratch folder. Nothing is downloaded.

Not a test: it prints numbers. ``python benchmarks/bench_demo.py [--size base] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, start: float, timeout: float = 300.0, process: subprocess.Popen | None = None) -> float:
    """Seconds from ``start`` until ``url`` answers 200."""
    while time.perf_counter() - start < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the demo process exited with status {process.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    response.read()
                    return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def build_base_blip(folder: Path) -> Path:
    """BLIP-base's captioning architecture with random weights and the synthetic vocabulary, saved in ``folder``."""
    import torch

    from vl_hub.demo.default_model import _SPECIAL_TOKENS, synthetic_vocabulary
    from vl_hub.models.blip.configuration_blip import BlipConfig
    from vl_hub.models.blip.image_processing_blip import VlHubBlipImageProcessor
    from vl_hub.models.blip.modeling_blip_generation import BlipForConditionalGeneration, caption_prompt_ids
    from vl_hub.models.blip.processing_blip import VlHubBlipProcessor, build_blip_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join([*_SPECIAL_TOKENS, *synthetic_vocabulary()]) + "\n")
    tokenizer = build_blip_tokenizer(vocab)
    vocab.unlink()
    prompt = "a picture of "
    config = BlipConfig(
        vision_config={"image_size": 384},
        text_config={
            "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.sep_token_id, "sep_token_id": tokenizer.sep_token_id,
            "cls_token_id": tokenizer.cls_token_id, "enc_token_id": tokenizer.enc_token_id,
        },
        prompt=prompt,
        prompt_input_ids=caption_prompt_ids(tokenizer, prompt),
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).eval().save_pretrained(folder / "caption")
    processor = VlHubBlipProcessor(VlHubBlipImageProcessor(image_size=384), tokenizer, prompt=prompt)
    processor.save_pretrained(folder / "caption")
    return folder


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def startup_subprocess(model: Path, scratch: Path) -> tuple[float, float]:
    port = free_port()
    command = [
        sys.executable, "-m", "vl_hub.cli", "demo", "--model", str(model), "--port", str(port), "--no-catalogue",
        "--cache-dir", str(scratch / "demo_cache"), "--datasets-cache-dir", str(scratch / "datasets"),
    ]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = wait_for(f"http://127.0.0.1:{port}/", start, process=process)
        config = wait_for(f"http://127.0.0.1:{port}/config", start, process=process)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return page, config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "base"), default="tiny")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: on a busy machine more threads contend)"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="bench_demo_"))
    try:
        run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(args: argparse.Namespace, scratch: Path) -> None:
    """The measurements, with every file under ``scratch``."""
    import torch

    from vl_hub.demo.default_model import build_untrained_blip

    model = build_untrained_blip(scratch / "tiny") if args.size == "tiny" else build_base_blip(scratch / "base")
    print(f"model: {args.size} ({model}); torch threads: {torch.get_num_threads()}; CPU cores: {os.cpu_count()}")

    page, config = startup_subprocess(model, scratch)
    print(f"start-up, new process (imports included): first page {page:.2f} s, component tree (/config) {config:.2f} s")

    start = time.perf_counter()
    from vl_hub.demo import build_app, launch, tab_caption

    imported = time.perf_counter() - start
    start = time.perf_counter()
    app = build_app(str(model), cache_dir=scratch / "demo_cache", datasets_cache_dir=scratch / "datasets",
                    catalogue=False)
    built = time.perf_counter() - start
    port = free_port()
    launch(app, port=port, block=False, quiet=True)
    served = wait_for(f"http://127.0.0.1:{port}/config", start)
    print(f"start-up, in process: import vl_hub.demo {imported:.2f} s, build_app {built:.2f} s, "
          f"build + launch to /config {served:.2f} s")

    ctx = app.vl_hub_context
    image = ctx.examples[1]
    name = ctx.models.default
    cases = {
        "beam search, 1 caption": ("Beam search", 1),
        "beam search, 3 captions": ("Beam search", 3),
        "nucleus sampling, 3 captions": ("Nucleus sampling", 3),
    }
    from gradio_client import Client, handle_file

    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    print(f"captioning latency, median of {args.repeats} (max length 20 tokens):")
    for label, (decoding, count) in cases.items():
        direct = median_seconds(
            lambda d=decoding, n=count: tab_caption.caption(ctx, name, image, d, n, 20), args.repeats
        )
        http = median_seconds(
            lambda d=decoding, n=count: client.predict(name, handle_file(image), d, n, 20, api_name="/caption"),
            args.repeats,
        )
        print(f"  {label:30s} handler {direct * 1000:8.1f} ms   HTTP request {http * 1000:8.1f} ms")
    app.close()


if __name__ == "__main__":
    main()
