"""Exact rewrites stay exact: against the networks as nnunet-archs 0.1.0 built them (imported from git history by
``benchmarks/previous.py``), today's give the same outputs and the same gradients from the same weights, which
0.1.0's state dicts provide (their renamed keys are mapped on load). Every checkpointing mode gives the same
outputs and gradients as none.

Compared in float64: in float32, instance norm over the 2-voxel bottleneck of these tiny nets amplifies the
rounding differences between two convolution algorithms to about 1 %, which would hide real differences."""
from __future__ import annotations

import copy
from typing import Dict, List

import pytest
import torch

from benchmarks.previous import VERSION, PreviousVersionUnavailable, previous_classes
from tests.architectures.cases import ARCHITECTURES, ArchCase, as_list

TOLERANCE = 1e-5
SIZES = {2: [16, 16], 3: [8, 16, 16]}


def small_kwargs(dim: int) -> dict:
    kernels = [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
    return dict(input_channels=1, n_stages=4, features_per_stage=[4, 8, 16, 16],
                conv_op=torch.nn.Conv3d if dim == 3 else torch.nn.Conv2d,
                kernel_sizes=[k[3 - dim:] for k in kernels], strides=[s[3 - dim:] for s in strides],
                n_conv_per_stage=2, num_classes=3, n_conv_per_stage_decoder=2, conv_bias=True,
                norm_op=torch.nn.InstanceNorm3d if dim == 3 else torch.nn.InstanceNorm2d,
                norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU,
                nonlin_kwargs={"inplace": True}, deep_supervision=True)


def outputs_and_gradients(net: torch.nn.Module, x: torch.Tensor):
    """Outputs of one training step and the gradient of every state-dict entry that is a parameter."""
    net.zero_grad(set_to_none=True)
    outputs = as_list(net(x))
    sum((o ** 2).mean() for o in outputs).backward()
    parameters = dict(net.named_parameters(remove_duplicate=False))
    return outputs, {name: parameters[name].grad for name in net.state_dict() if name in parameters}


def assert_same(expected: List[torch.Tensor], actual: List[torch.Tensor]) -> None:
    scale = max(float(t.detach().abs().max()) for t in expected)
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, rtol=TOLERANCE, atol=TOLERANCE * scale)


# options 0.1.0 had, beyond the defaults, chosen to reach the rewritten code paths (IC-A off: concatenation;
# max-pool U-Net; feature fusion; uncapped Ki branch; CRFBs at stride-1 stages)
PREVIOUS_OPTIONS = {"kiunet": [{}, {"pool_type": "max", "fusion": "feature_add", "ki_max_scale": None,
                                    "crfb_kernel_size": 3}],
                    "uiunet": [{}, {"use_ica": False, "pool_type": "conv", "mid_ratio": 1.0}]}


@pytest.mark.parametrize("case, options", [(c, o) for c in ARCHITECTURES for o in PREVIOUS_OPTIONS[c.name]],
                         ids=lambda v: getattr(v, "name", None) or (str(v) if v else "defaults"))
@pytest.mark.parametrize("dim", [2, 3])
def test_same_function_as_previous_version(case: ArchCase, options: dict, dim: int):
    try:
        previous_cls = previous_classes()[case.class_path]
    except PreviousVersionUnavailable as error:
        pytest.skip(str(error))
    kwargs = {**small_kwargs(dim), **options}
    torch.manual_seed(0)
    previous = previous_cls(**kwargs).double()
    previous.apply(previous.initialize)
    current = case.cls(**kwargs).double()
    current.load_state_dict(previous.state_dict())  # strict: every 0.1.0 key maps onto today's layout
    x = torch.randn(2, 1, *SIZES[dim], dtype=torch.float64)

    previous_outputs, previous_gradients = outputs_and_gradients(previous, x)
    current_outputs, current_gradients = outputs_and_gradients(current, x)
    assert_same(previous_outputs, current_outputs)
    # 0.1.0's gradients, loaded like weights, land under today's names
    mapped = copy.deepcopy(current)
    mapped.load_state_dict({**previous.state_dict(), **previous_gradients})
    names = list(current_gradients)
    assert_same([mapped.state_dict()[n] for n in names], [current_gradients[n] for n in names])


def test_previous_version_is_the_release_it_claims():
    try:
        classes: Dict[str, type] = previous_classes()
    except PreviousVersionUnavailable as error:
        pytest.skip(str(error))
    kiunet = classes[ARCHITECTURES[0].class_path](**small_kwargs(3))
    assert VERSION == "0.1.0" and "decoder.ki_head.weight" in kiunet.state_dict()


@pytest.mark.parametrize("case, checkpoint", [(c, m) for c in ARCHITECTURES for m in c.checkpoint_modes],
                         ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize("dim", [2, 3])
def test_checkpointing_keeps_outputs_and_gradients(case: ArchCase, checkpoint: str, dim: int):
    torch.manual_seed(0)
    plain = case.cls(**small_kwargs(dim)).double()
    plain.apply(plain.initialize)
    checkpointed = case.cls(**small_kwargs(dim), checkpoint=checkpoint).double()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 1, *SIZES[dim], dtype=torch.float64)
    expected_outputs, expected_gradients = outputs_and_gradients(plain, x)
    outputs, gradients = outputs_and_gradients(checkpointed, x)
    assert_same(expected_outputs, outputs)
    assert all(g is not None for g in gradients.values())
    assert_same(list(expected_gradients.values()), list(gradients.values()))


# (first part, last part) of each network in forward order, under every checkpoint mode
END_PARTS = {"kiunet": lambda net: (net.ki_encoder[0], net.decoder.ki_stages[0]),
             "uiunet": lambda net: (net.encoder[0], net.decoder.stages[0])}


@pytest.mark.parametrize("case, checkpoint", [(c, m) for c in ARCHITECTURES for m in c.checkpoint_modes],
                         ids=lambda v: getattr(v, "name", v))
def test_checkpointing_recomputes_all_but_the_last_part(case: ArchCase, checkpoint: str):
    """Backward needs the last part first: recomputing it would cost time and lower no peak, so it runs once;
    the first part is recomputed."""
    net = case.cls(**small_kwargs(3), checkpoint=checkpoint)
    calls = []
    for part in END_PARTS[case.name](net):
        # a pre-hook: recomputation stops inside a forward once it has what backward needs
        part.register_forward_pre_hook(lambda module, args: calls.append(module))
    first, last = END_PARTS[case.name](net)
    outputs_and_gradients(net, torch.randn(2, 1, *SIZES[3]))
    assert (calls.count(first), calls.count(last)) == (2, 1)
