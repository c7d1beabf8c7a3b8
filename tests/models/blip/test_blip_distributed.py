"""BLIP retrieval training across two CPU processes (gloo): LAVIS's ``negative_all_rank`` draws the ITM hard
negatives from every process's batch, and ``all_gather_with_grad`` hands each process the summed gradient of its
own rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from tests.models.blip.reference_utils import tiny_blip_config
from vl_hub.models._momentum import all_gather_with_grad
from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval, _all_rank_negatives

WORLD, PER_RANK = 2, 3


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        # the gather's gradient: each process weighs the gathered rows by (rank + 1)
        local = torch.full((PER_RANK, 2), float(rank), requires_grad=True)
        gathered = all_gather_with_grad(local)
        (gathered * (rank + 1)).sum().backward()

        # every pair of this process shares one image id, so its only negatives live on the other process
        g = torch.Generator().manual_seed(rank)
        image_feat = F.normalize(torch.randn(PER_RANK, 8, generator=g), dim=-1)
        text_feat = F.normalize(torch.randn(PER_RANK, 8, generator=g), dim=-1)
        idx = torch.full((PER_RANK,), rank)
        negatives = _all_rank_negatives(image_feat, text_feat, torch.tensor(0.07), idx)

        # a whole training step of the head with negative_all_rank=True
        torch.manual_seed(0)  # identical weights on both processes
        model = BlipForImageTextRetrieval(tiny_blip_config(negative_all_rank=True, queue_size=12)).train()
        pixels = torch.randn(PER_RANK, 3, 32, 32, generator=g)
        ids = torch.randint(5, 230, (PER_RANK, 9), generator=g)
        ids[:, 0], ids[:, -1] = 2, 3
        out = model(pixel_values=pixels, input_ids=ids, idx=torch.arange(PER_RANK) + rank * PER_RANK,
                    return_loss=True)
        out.loss.backward()
        grad = model.visual_encoder.patch_embed.proj.weight.grad
        torch.save({"gather_grad": local.grad, "gathered": gathered.detach(), "negatives": negatives,
                    "loss": out.loss.detach(), "grad_norm": None if grad is None else grad.norm()},
                   f"{out_dir}/{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(300)
def test_negatives_come_from_every_process_and_training_runs(tmp_path: Path) -> None:
    # spawn, not fork: a child forked from a parent whose OpenMP pool is running can deadlock (libgomp)
    mp.start_processes(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, start_method="spawn")
    ranks = [torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in range(WORLD)]
    for rank, result in enumerate(ranks):
        # rank order, every process's rows; gradient = sum over processes of their weights (1 + 2)
        expected = torch.cat([torch.full((PER_RANK, 2), float(r)) for r in range(WORLD)])
        torch.testing.assert_close(result["gathered"], expected)
        torch.testing.assert_close(result["gather_grad"], torch.full((PER_RANK, 2), 3.0))
        other = range((1 - rank) * PER_RANK, (2 - rank) * PER_RANK)  # the other process's slots
        for picks in result["negatives"]:
            assert all(int(i) in other for i in picks), (rank, picks)
        assert torch.isfinite(result["loss"]) and result["grad_norm"] is not None and result["grad_norm"] > 0
