"""Two CPU processes (gloo) train a small 3D network wrapped exactly as nnU-Net wraps it: SyncBatchNorm
conversion, then DistributedDataParallel without ``find_unused_parameters``, deep supervision on with nnU-Net's
DDP loss weights, with every checkpointing mode. DDP raises if any parameter went without a gradient; afterwards
every rank must hold the same parameters although each saw different data, and checkpointing must have trained
exactly the same parameters as no checkpointing."""
from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from tests.architectures.cases import ARCHITECTURES

WORLD_SIZE = 2
STEPS = 3


def _kwargs() -> dict:
    return dict(input_channels=1, n_stages=4, features_per_stage=[4, 8, 16, 16], conv_op=torch.nn.Conv3d,
                kernel_sizes=[[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
                strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]], n_conv_per_stage=[2, 2, 2, 2], num_classes=3,
                n_conv_per_stage_decoder=[2, 2, 2], conv_bias=True, norm_op=torch.nn.InstanceNorm3d,
                norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU,
                nonlin_kwargs={"inplace": True}, deep_supervision=True)


def _modes(case) -> tuple:
    return ("none",) + case.checkpoint_modes


def _train(rank: int, case_index: int, store_path: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=WORLD_SIZE)
    try:
        case = ARCHITECTURES[case_index]
        for checkpoint in _modes(case):
            _train_mode(rank, case, checkpoint, out_dir)
    finally:
        dist.destroy_process_group()


def _train_mode(rank: int, case, checkpoint: str, out_dir: str) -> None:
    torch.manual_seed(0)  # identical initial weights, as nnU-Net's ranks load the same init
    net = case.cls(**_kwargs(), checkpoint=checkpoint)
    net.apply(net.initialize)
    net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    net = DistributedDataParallel(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True)
    weights = [1 / 2 ** i for i in range(3)]
    weights[-1] = 1e-6  # nnU-Net under DDP: the lowest resolution output keeps a tiny weight
    generator = torch.Generator().manual_seed(100 + rank)  # different data on each rank
    for _ in range(STEPS):
        x = torch.randn(2, 1, 8, 16, 16, generator=generator)
        target = torch.randint(0, 3, (2, 8, 16, 16), generator=generator)
        outputs = net(x)
        loss = sum(w * F.cross_entropy(o, F.interpolate(target[:, None].float(), size=o.shape[2:],
                                                        mode="nearest-exact")[:, 0].long())
                   for w, o in zip(weights, outputs))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    flat = torch.cat([p.detach().flatten() for p in net.module.parameters()])
    torch.save(flat, os.path.join(out_dir, f"{checkpoint}_rank{rank}.pt"))


@pytest.mark.parametrize("case_index", range(len(ARCHITECTURES)), ids=[c.name for c in ARCHITECTURES])
def test_ddp_keeps_ranks_in_sync(case_index, tmp_path):
    case = ARCHITECTURES[case_index]
    mp.spawn(_train, args=(case_index, str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    torch.manual_seed(0)
    initial = case.cls(**_kwargs())
    initial.apply(initial.initialize)
    initial_flat = torch.cat([p.detach().flatten() for p in initial.parameters()])
    trained = {}
    for checkpoint in _modes(case):
        rank0, rank1 = (torch.load(tmp_path / f"{checkpoint}_rank{r}.pt") for r in range(WORLD_SIZE))
        assert not torch.allclose(rank0, initial_flat), "training did not change the parameters"
        torch.testing.assert_close(rank0, rank1, rtol=0, atol=1e-6)
        trained[checkpoint] = rank0
    for checkpoint in case.checkpoint_modes:
        torch.testing.assert_close(trained[checkpoint], trained["none"], rtol=1e-5, atol=1e-6)
