"""Dataset pipeline benchmark: prepare a 100k-caption COCO (Karpathy layout) and read images back.

Builds, in a scratch folder, the layout the ``coco_caption`` builder reads: ``dataset_coco.json`` with
``--captions`` captions (``--captions-per-image`` per image) and ``val2014/COCO_val2014_<id>.jpg``
files that are hard links to a few real 640x480 JPEGs (distinct paths, shared bytes, so the folder
costs no disk). Then measures

1. prepare: ``vl_hub.load_dataset("coco_caption", data_dir=...)`` wall time, rows/s and captions/s
   (``verify_media=False``: annotation bound; add ``--verify-media`` to also decode every image once),
   and the reload time from the cache;
2. image decode + eval transform (BLIP ``ImageEvalTransform``, bicubic resize to 384, normalise) from
   the prepared Arrow data: row by row, in batches, and through a torch DataLoader with workers.

Not a test: it prints numbers. Run ``python benchmarks/bench_datasets.py`` (about a minute on 2 cores),
``--help`` for the options. Falls back to a minimal in-script COCO reader when the ``coco_caption``
builder is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def make_coco_layout(root: Path, captions: int, per_image: int, distinct_files: int = 8, seed: int = 0) -> dict[str, int]:
    """Writes ``root/dataset_coco.json`` + ``root/val2014/*.jpg`` (hard links); returns image counts per split."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    sources = root / "_sources"
    sources.mkdir(parents=True, exist_ok=True)
    originals = []
    for k in range(distinct_files):
        # photo-like content (smooth gradients + noise + shapes) so JPEG decoding costs what it does on COCO
        y, x = np.mgrid[0:480, 0:640]
        base = np.stack([(x * (k + 1)) % 256, (y * 2 + 40 * k) % 256, (x + y) % 256], -1).astype(np.float32)
        base += rng.normal(0, 12, base.shape)
        image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
        pen = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, 560)), int(rng.integers(0, 400))
            pen.ellipse((x0, y0, x0 + 80, y0 + 80), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        path = sources / f"source_{k}.jpg"
        image.save(path, quality=90)
        originals.append(path)

    n_images = captions // per_image
    n_eval = max(1, n_images // 20)  # Karpathy-like: 5% val, 5% test, the rest train/restval
    folder = root / "val2014"
    folder.mkdir(exist_ok=True)
    words = "a man woman dog cat riding sitting on with the red blue small large street beach table".split()
    images, counts = [], {"train": 0, "val": 0, "test": 0}
    for i in range(n_images):
        cocoid = 100000 + i
        name = f"COCO_val2014_{cocoid:012d}.jpg"
        target = folder / name
        if not target.exists():
            try:
                os.link(originals[i % distinct_files], target)
            except OSError:  # file systems without hard links
                os.symlink(originals[i % distinct_files], target)
        split = "val" if i < n_eval else "test" if i < 2 * n_eval else ("restval" if i % 4 == 0 else "train")
        counts["train" if split == "restval" else split] += 1
        sentences = []
        for _ in range(per_image):
            tokens = [words[j] for j in rng.integers(0, len(words), int(rng.integers(8, 14)))]
            sentences.append({"raw": " ".join(tokens).capitalize() + ".", "tokens": tokens})
        images.append({"filepath": "val2014", "filename": name, "imgid": i, "split": split, "cocoid": cocoid,
                       "sentids": list(range(i * per_image, (i + 1) * per_image)), "sentences": sentences})
    with open(root / "dataset_coco.json", "w") as f:
        json.dump({"images": images, "dataset": "coco"}, f)
    return counts


def prepare_with_vl_hub(data_dir: Path, cache_dir: Path, verify_media: bool) -> Any:
    """The real path: the coco_caption builder through vl_hub.load_dataset."""
    import vl_hub

    return vl_hub.load_dataset("coco_caption", data_dir=data_dir, cache_dir=cache_dir, verify_media=verify_media)


def prepare_minimal(data_dir: Path, cache_dir: Path, verify_media: bool) -> Any:
    """Fallback when dataset_scripts/coco_caption is absent: the same rows via Dataset.from_generator."""
    import datasets

    from vl_hub.data.schemas import image_text_features

    data = json.loads((data_dir / "dataset_coco.json").read_text())
    wanted = {"train": ("train", "restval"), "validation": ("val",), "test": ("test",)}

    def rows(split: str):
        for image in data["images"]:
            if image["split"] in wanted[split]:
                path = data_dir / image["filepath"] / image["filename"]
                if verify_media:
                    from PIL import Image

                    Image.open(path).load()
                yield {"image_id": str(image["cocoid"]), "image": str(path), "captions": [s["raw"] for s in image["sentences"]]}

    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_generator(
                rows, features=image_text_features(), gen_kwargs={"split": split}, cache_dir=str(cache_dir)
            )
            for split in wanted
        }
    )


def eval_transform(image_size: int) -> tuple[str, Callable[[Any], Any]]:
    """vl_hub's BLIP eval transform, or an equivalent PIL+torch one when it is not available."""
    try:
        from vl_hub.processing.transforms import ImageEvalTransform

        return "vl_hub.processing.transforms.ImageEvalTransform", ImageEvalTransform(image_size)
    except ImportError:
        import torch
        from PIL import Image

        mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
        std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)

        def transform(image: Any) -> Any:
            array = np.asarray(image.convert("RGB").resize((image_size, image_size), Image.Resampling.BICUBIC))
            return (torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255 - mean) / std

        return "PIL resize + torch normalise (fallback)", transform


class _Decoded:
    """Map-style torch dataset: row i -> transformed image tensor ``(3, S, S)``."""

    def __init__(self, ds: Any, transform: Callable[[Any], Any]) -> None:
        self.ds, self.transform = ds, transform

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:
        return self.transform(self.ds[i]["image"])


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s" if seconds > 0 else "inf"


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and prints one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=100_000)
    parser.add_argument("--captions-per-image", type=int, default=5)
    parser.add_argument("--decode-images", type=int, default=1000, help="images decoded+transformed per measurement")
    parser.add_argument("--image-size", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the last measurement")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads for the in-process measurements (DataLoader workers always use 1)",
    )
    parser.add_argument("--verify-media", action="store_true", help="also prepare with verify_media=True")
    parser.add_argument("--work-dir", help="scratch folder (default: a temporary one, removed at the end)")
    args = parser.parse_args(argv)

    import datasets
    import torch

    datasets.disable_progress_bars()
    torch.set_num_threads(args.torch_threads)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="vl_hub_bench_"))
    try:
        data_dir, cache_dir = work / "coco", work / "cache"
        print(f"python {sys.version.split()[0]}, datasets {datasets.__version__}, torch {torch.__version__}, "
              f"{os.cpu_count()} CPU(s), torch threads {torch.get_num_threads()}")
        t = time.perf_counter()
        counts = make_coco_layout(data_dir, args.captions, args.captions_per_image)
        n_images = sum(counts.values())
        print(f"layout: {args.captions:,} captions, {n_images:,} images {counts}, in {time.perf_counter() - t:.1f}s")

        from vl_hub.data.load import list_datasets

        prepare = prepare_with_vl_hub if "coco_caption" in list_datasets() else prepare_minimal
        print(f"prepare via: {'vl_hub.load_dataset(coco_caption)' if prepare is prepare_with_vl_hub else 'minimal in-script reader'}")
        runs = [False, True] if args.verify_media else [False]
        ds = None
        for verify in runs:
            shutil.rmtree(cache_dir, ignore_errors=True)
            t, cpu = time.perf_counter(), time.process_time()
            ds = prepare(data_dir, cache_dir, verify)
            seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
            rows = sum(part.num_rows for part in ds.values())
            print(f"prepare (verify_media={verify}): {seconds:.2f}s wall ({cpu:.2f}s CPU), {rows:,} rows -> "
                  f"{_rate(rows, seconds)} rows, {_rate(args.captions, seconds)} captions")
        t = time.perf_counter()
        ds = prepare(data_dir, cache_dir, runs[-1])
        print(f"reload from cache: {time.perf_counter() - t:.2f}s")

        name, transform = eval_transform(args.image_size)
        train = ds["train"]
        n = min(args.decode_images, train.num_rows)
        print(f"decode + eval transform ({name}, {args.image_size}px) on {n} train images:")
        transform(train[0]["image"])  # warm-up
        t, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            transform(train[i]["image"])
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
        print(f"  row by row, 1 process:              {_rate(n, seconds)} images "
              f"({1000 * seconds / n:.2f} ms wall, {1000 * cpu / n:.2f} ms CPU per image)")
        t = time.perf_counter()
        done = 0
        for start in range(0, n, args.batch_size):
            images = train[start : min(n, start + args.batch_size)]["image"]
            transform.batch(images) if hasattr(transform, "batch") else [transform(im) for im in images]
            done += len(images)
        seconds = time.perf_counter() - t
        print(f"  batches of {args.batch_size}, 1 process:           {_rate(done, seconds)} images")
        t = time.perf_counter()
        subset = train.select(range(n))
        loader = torch.utils.data.DataLoader(
            _Decoded(subset, transform), batch_size=args.batch_size, num_workers=args.workers
        )
        done = sum(batch.shape[0] for batch in loader)
        seconds = time.perf_counter() - t
        print(f"  DataLoader, {args.workers} workers (incl. start-up):  {_rate(done, seconds)} images")
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
