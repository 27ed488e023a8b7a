"""torch.compile with the inductor backend on CPU, the CPU half of nnU-Net's GPU path (nnUNetTrainer compiles the
network by default on CUDA): the compiled network's outputs and parameter gradients match eager, 2D and 3D, deep
supervision on and off (one compiled module per net; toggling ``decoder.deep_supervision`` recompiles it, as
nnU-Net's trainer does before validation).

Compiling is the most expensive thing in the suite: with an empty inductor cache each net and dimension costs 3 to
9 minutes on this 2-core machine (dynamo, AOT autograd and inductor's lowering, in Python; the C++ build is a small
part), even at the smallest configuration that keeps every block (three stages, one conv each, a two-level RSU).
So each net is compiled in one dimensionality here, KiU-Net in 3D and UIU-Net in 2D, which together cover both;
the other two combinations ran on a GPU (benchmarks/gpu_validation.py compiles both nets in 3D under fp16
autocast, BENCHMARKS.md section 7) and pass here too when run by hand (``ALL_COMPILE_CASES=1``)."""
from __future__ import annotations

import copy
import os

import pytest
import torch

from tests.architectures.cases import ARCHITECTURES, ArchCase, as_list

pytestmark = pytest.mark.slow(90)

# relative to the largest value of the outputs, or of all gradients (inductor reorders float sums; gradients that
# are zero in exact arithmetic, a conv bias before instance norm, differ by rounding noise alone)
OUTPUT_TOLERANCE, GRADIENT_TOLERANCE = 1e-4, 1e-3


def tiny_kwargs(dim: int) -> dict:
    conv, norm = (torch.nn.Conv2d, torch.nn.InstanceNorm2d) if dim == 2 else (torch.nn.Conv3d, torch.nn.InstanceNorm3d)
    return dict(input_channels=1, n_stages=3, features_per_stage=[4, 8, 8], conv_op=conv, kernel_sizes=[[3] * dim] * 3,
                strides=[[1] * dim, [2] * dim, [2] * dim], n_conv_per_stage=1, num_classes=2,
                n_conv_per_stage_decoder=1, conv_bias=True, norm_op=norm, norm_op_kwargs={"eps": 1e-5, "affine": True},
                nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True)


OPTIONS = {"kiunet": {}, "uiunet": {"rsu_max_height": 3, "rsu_min_height": 2}}


def step(net: torch.nn.Module, x: torch.Tensor, weights: list) -> tuple:
    """Outputs and parameter gradients of one forward/backward, with a loss that weighs every output voxel."""
    net.zero_grad(set_to_none=True)
    outputs = as_list(net(x))
    sum((o * w).sum() for o, w in zip(outputs, weights)).backward()
    module = getattr(net, "_orig_mod", net)  # the compiled wrapper's own names carry a prefix
    return [o.detach() for o in outputs], {n: p.grad for n, p in module.named_parameters() if p.grad is not None}


CASES = [(case, dim) for case in ARCHITECTURES for dim in (2, 3)
         if os.environ.get("ALL_COMPILE_CASES") == "1" or (case.name, dim) in {("kiunet", 3), ("uiunet", 2)}]


@pytest.mark.parametrize("case, dim", CASES, ids=lambda c: getattr(c, "name", str(c)))
def test_inductor_compiled_network_matches_eager(case: ArchCase, dim: int):
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = case.cls(**tiny_kwargs(dim), **OPTIONS[case.name])
    twin = copy.deepcopy(eager)
    compiled = torch.compile(twin, backend="inductor")
    x = torch.randn(2, 1, *[8] * dim)
    for deep_supervision in (True, False):
        eager.decoder.deep_supervision = twin.decoder.deep_supervision = deep_supervision
        shapes = [o.shape for o in as_list(eager(x))]
        weights = [torch.randn(s) for s in shapes]
        expected_outputs, expected_grads = step(eager, x, weights)
        outputs, grads = step(compiled, x, weights)
        assert len(outputs) == len(expected_outputs) == (2 if deep_supervision else 1)
        for output, expected in zip(outputs, expected_outputs):
            torch.testing.assert_close(output, expected, rtol=0, atol=OUTPUT_TOLERANCE * expected.abs().max().item())
        assert grads.keys() == expected_grads.keys()
        scale = max(g.abs().max().item() for g in expected_grads.values())
        errors = {name: (grad - expected_grads[name]).abs().max().item() / scale for name, grad in grads.items()}
        assert max(errors.values()) < GRADIENT_TOLERANCE, sorted(errors.items(), key=lambda e: -e[1])[:3]
