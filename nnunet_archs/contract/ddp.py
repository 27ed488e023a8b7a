"""The real DDP run behind the gradient check (``--ddp``): two CPU processes (gloo) train a small configuration
wrapped exactly as nnU-Net wraps it, SyncBatchNorm conversion then DistributedDataParallel without
``find_unused_parameters``, deep supervision on with nnU-Net's DDP loss weights (the lowest output at 1e-6).
DDP raises if a parameter went without a gradient; afterwards both ranks must hold the same parameters."""
from __future__ import annotations

import re
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from nnunet_archs.contract.base import CheckResult, Status, Subject, describe
from nnunet_archs.contract.cases import NetworkCase, as_list
from nnunet_archs.registry import ArchitectureVariant

NAME = "DDP, 2 processes (gloo)"
WORLD_SIZE = 2
STEPS = 2  # DDP raises for an unused parameter at the second step


def _train(rank: int, variant: ArchitectureVariant, case: NetworkCase, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=WORLD_SIZE)
    try:
        torch.manual_seed(0)  # the same initial weights on every rank, as nnU-Net's ranks
        net = DistributedDataParallel(torch.nn.SyncBatchNorm.convert_sync_batchnorm(case.build(variant, True)))
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True)
        generator = torch.Generator().manual_seed(100 + rank)  # different data on each rank
        for _ in range(STEPS):
            outputs = as_list(net(case.input(generator=generator)))
            weights = [1 / 2 ** i for i in range(len(outputs))]
            weights[-1] = 1e-6
            loss = sum(w * F.cross_entropy(o, torch.randint(0, case.record.num_classes, (o.shape[0], *o.shape[2:]),
                                                            generator=generator))
                       for w, o in zip(weights, outputs))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        torch.save(torch.cat([p.detach().flatten() for p in net.module.parameters()]), f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _explain(traceback: str, subject: Subject, case: NetworkCase) -> str:
    """DDP names unused parameters by index; name them by state-dict key."""
    unused = re.search(r"did not receive grad for rank \d+: ([\d ]+)", traceback)
    if unused:
        names = [name for name, _ in subject.network(case).named_parameters()]
        return f"DDP stopped: parameters without a gradient: {[names[int(i)] for i in unused.group(1).split()]}"
    errors = [line.strip() for line in traceback.splitlines() if "Error" in line.split(":")[0]]
    return (errors or traceback.strip().splitlines() or ["no message"])[-1][:300]


def check_ddp(subject: Subject) -> CheckResult:
    case = min(subject.cases, key=lambda c: sum(c.record.arch_kwargs["features_per_stage"]) * sum(c.patch))
    fix = "use every module in the deep-supervision forward, or remove the unused ones"
    with tempfile.TemporaryDirectory() as folder:
        try:
            mp.spawn(_train, args=(subject.variant, case, folder), nprocs=WORLD_SIZE, join=True)
        except Exception as error:  # the ranks' errors arrive as one exception carrying their traceback
            return CheckResult(NAME, Status.FAIL, f"{describe(case)}: {_explain(str(error), subject, case)}", fix)
        rank0, rank1 = (torch.load(f"{folder}/rank{r}.pt") for r in range(WORLD_SIZE))
    if not torch.allclose(rank0, rank1, rtol=0, atol=1e-6):
        return CheckResult(NAME, Status.FAIL, f"{describe(case)}: after {STEPS} steps the ranks hold different "
                           f"parameters", "keep every parameter's update inside the autograd graph DDP reduces")
    return CheckResult(NAME, Status.PASS, f"{describe(case)}: {STEPS} steps without find_unused_parameters, ranks "
                       f"in sync")
