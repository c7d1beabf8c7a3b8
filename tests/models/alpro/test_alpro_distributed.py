"""ALPRO's video-text contrastive loss across processes (two CPU processes, gloo): features of every process are
gathered with their gradients, as LAVIS's ``all_gather_with_grad``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from vl_hub.models.alpro.modeling_alpro import _video_text_contrastive_loss

WORLD, PER_RANK, TEMP = 2, 3, 0.1


def _features() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    video = F.normalize(torch.randn(WORLD * PER_RANK, 8, generator=gen), dim=-1)
    text = F.normalize(torch.randn(WORLD * PER_RANK, 8, generator=gen), dim=-1)
    return video, text


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        video, text = _features()
        rows = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        video, text = video[rows].clone().requires_grad_(True), text[rows].clone().requires_grad_(True)
        loss, sim_v2t, _ = _video_text_contrastive_loss(video, text, torch.tensor(TEMP))
        loss.backward()
        torch.save({"loss": loss.detach(), "sim": sim_v2t.detach(), "video": video.grad, "text": text.grad},
                   f"{out_dir}/{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(300)
def test_two_processes_compute_the_global_in_batch_loss(tmp_path: Path) -> None:
    # spawn, not fork: a child forked from a parent whose OpenMP pool is running (any earlier test in the session)
    # can deadlock in its first parallel region (libgomp is not fork-safe)
    mp.start_processes(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, start_method="spawn")
    ranks = [torch.load(tmp_path / f"{r}.pt") for r in range(WORLD)]
    video, text = (t.clone().requires_grad_(True) for t in _features())
    loss, sim, _ = _video_text_contrastive_loss(video, text, torch.tensor(TEMP))
    loss.backward()
    # the mean of the per-process losses is the one-process loss over the whole batch
    torch.testing.assert_close(sum(r["loss"] for r in ranks) / WORLD, loss.detach(), atol=1e-6, rtol=0)
    # each process compares its rows with every text, its own block first (its positives on the diagonal)
    for rank, result in enumerate(ranks):
        rows = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        others = [c for c in range(WORLD * PER_RANK) if not rows.start <= c < rows.stop]
        torch.testing.assert_close(result["sim"], sim.detach()[rows][:, list(range(rows.start, rows.stop)) + others])
    # gradients reach every process's features: each holds the sum over processes (WORLD x the global mean's)
    torch.testing.assert_close(torch.cat([r["video"] for r in ranks]), WORLD * video.grad, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.cat([r["text"] for r in ranks]), WORLD * text.grad, atol=1e-6, rtol=0)
