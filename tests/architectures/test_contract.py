"""The nnU-Net network contract, checked for every architecture in ``cases.ARCHITECTURES``.

What nnU-Net relies on (``shared design`` section 3): outputs and their scales, deep supervision read from
``decoder.deep_supervision``, a parameter set that does not depend on it, a gradient for every parameter
(DDP runs without ``find_unused_parameters``), checkpoints that load into the inference-time network.
"""
from __future__ import annotations

import io
import pydoc
from typing import List

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_archs.registry import PLAIN_UNET, VARIANTS
from tests.architectures.cases import ARCHITECTURES, ArchCase, as_list, expected_output_sizes, unet_kwargs

EXAMPLES_PER_ARCHITECTURE = 60


@st.composite
def network_case(draw, case: ArchCase):
    kwargs, input_size = draw(unet_kwargs())
    kwargs.update(case.options(draw, kwargs, input_size))
    batch = draw(st.integers(1, 2))
    return kwargs, input_size, batch


def assert_contract(cls: type, kwargs: dict, input_size: List[int], batch: int) -> None:
    """Output count and scales, finite logits, a gradient for every parameter under deep supervision, and a
    state dict that does not depend on deep supervision."""
    torch.manual_seed(0)
    net = cls(**kwargs)
    net.apply(net.initialize)
    x = torch.randn(batch, kwargs["input_channels"], *input_size)
    outputs = as_list(net(x))

    expected = expected_output_sizes(kwargs, input_size)
    if not kwargs["deep_supervision"]:
        expected = expected[:1]
    assert [list(o.shape) for o in outputs] == [[batch, kwargs["num_classes"], *e] for e in expected]
    assert all(torch.isfinite(o).all() for o in outputs)

    if kwargs["deep_supervision"]:
        sum(o.mean() for o in outputs).backward()
        missing = [n for n, p in net.named_parameters() if p.grad is None]
        assert not missing, f"parameters without gradient under deep supervision: {missing[:5]}"

    other = cls(**{**kwargs, "deep_supervision": not kwargs["deep_supervision"]})
    assert list(other.state_dict().keys()) == list(net.state_dict().keys())


@pytest.mark.parametrize("case", ARCHITECTURES, ids=lambda c: c.name)
def test_random_configurations_honour_the_contract(case: ArchCase):
    seen = []

    @settings(max_examples=EXAMPLES_PER_ARCHITECTURE, derandomize=True)  # the same configurations every run
    @given(network_case(case))
    def check(example):
        kwargs, input_size, batch = example
        seen.append((kwargs["conv_op"], kwargs["n_stages"], kwargs["deep_supervision"]))
        assert_contract(case.cls, kwargs, input_size, batch)

    check()
    assert len(seen) >= EXAMPLES_PER_ARCHITECTURE, f"only {len(seen)} configurations were tried"
    assert {s[0] for s in seen} == {torch.nn.Conv2d, torch.nn.Conv3d}
    assert {s[1] for s in seen} == set(range(2, 8)) and {s[2] for s in seen} == {True, False}


def _small_3d_kwargs(deep_supervision: bool) -> dict:
    return dict(input_channels=1, n_stages=4, features_per_stage=[4, 8, 16, 16], conv_op=torch.nn.Conv3d,
                kernel_sizes=[[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
                strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]], n_conv_per_stage=[2, 2, 2, 2], num_classes=3,
                n_conv_per_stage_decoder=[2, 2, 2], conv_bias=True, norm_op=torch.nn.InstanceNorm3d,
                norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU,
                nonlin_kwargs={"inplace": True}, deep_supervision=deep_supervision)


PRESETS = [v for v in VARIANTS.values() if v.class_path in {c.class_path for c in ARCHITECTURES}]


@pytest.mark.parametrize("variant", PRESETS, ids=lambda v: v.name)
@pytest.mark.parametrize("dim", [2, 3])
def test_every_preset_honours_the_contract(variant, dim: int):
    """Each registry preset of our networks, derived from a small plans entry as nnU-Net derives it."""
    kwargs = _small_3d_kwargs(deep_supervision=True)
    size = [8, 16, 16]
    if dim == 2:
        kwargs = _as_2d(kwargs)
        size = [16, 16]
    kwargs = variant.arch_kwargs(PLAIN_UNET, kwargs)
    assert_contract(pydoc.locate(variant.class_path), kwargs, size, batch=2)


def _as_2d(kwargs: dict) -> dict:
    return {**kwargs, "conv_op": torch.nn.Conv2d, "norm_op": torch.nn.InstanceNorm2d,
            "kernel_sizes": [k[1:] for k in kwargs["kernel_sizes"]], "strides": [s[1:] for s in kwargs["strides"]]}


@pytest.mark.parametrize("case", ARCHITECTURES, ids=lambda c: c.name)
def test_decoder_flag_toggles_deep_supervision(case: ArchCase):
    """nnU-Net's trainer switches ``network.decoder.deep_supervision`` at run time (final validation)."""
    net = case.cls(**_small_3d_kwargs(deep_supervision=True)).eval()
    x = torch.randn(1, 1, 8, 16, 16)
    with torch.no_grad():
        assert len(as_list(net(x))) == 3
        net.decoder.deep_supervision = False
        single = net(x)
    assert isinstance(single, torch.Tensor) and single.shape == (1, 3, 8, 16, 16)


@pytest.mark.parametrize("case", ARCHITECTURES, ids=lambda c: c.name)
def test_checkpoint_round_trip_into_inference_network(case: ArchCase):
    """Train-time weights (deep supervision on) load strictly into the predictor's network (off), same logits."""
    torch.manual_seed(0)
    trained = case.cls(**_small_3d_kwargs(deep_supervision=True))
    trained.apply(trained.initialize)
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    predictor = case.cls(**_small_3d_kwargs(deep_supervision=False))
    predictor.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    x = torch.randn(1, 1, 8, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(predictor.eval()(x), trained.eval()(x)[0])


@pytest.mark.parametrize("case", ARCHITECTURES, ids=lambda c: c.name)
@pytest.mark.parametrize("dim, deep_supervision", [(2, True), (3, False)])  # each dimension and each output path once
def test_no_graph_breaks_under_dynamo(case: ArchCase, dim: int, deep_supervision: bool):
    """nnU-Net compiles the network on GPU by default; a graph break costs speed on every step."""
    kwargs = _small_3d_kwargs(deep_supervision)
    size = [8, 16, 16]
    if dim == 2:
        kwargs = _as_2d(kwargs)
        size = [16, 16]
    _assert_one_graph(case.cls(**kwargs), size)


@pytest.mark.parametrize("case, checkpoint", [(c, m) for c in ARCHITECTURES for m in c.checkpoint_modes],
                         ids=lambda v: getattr(v, "name", v))
def test_no_graph_breaks_under_dynamo_with_checkpointing(case: ArchCase, checkpoint: str):
    """Non-reentrant checkpointing (and the recomputed max-pool indices) compile into the same single graph."""
    _assert_one_graph(case.cls(**_small_3d_kwargs(True), checkpoint=checkpoint), [8, 16, 16])


def _assert_one_graph(net: torch.nn.Module, size: List[int]) -> None:
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(net)(torch.randn(2, 1, *size))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("case", ARCHITECTURES, ids=lambda c: c.name)
def test_thin_anisotropic_patch_trains(case: ArchCase):
    """A 16x128x128 patch with in-plane-only early strides: no axis may be pooled below its planned size."""
    kwargs = dict(input_channels=1, n_stages=6, features_per_stage=[4, 8, 16, 16, 16, 16], conv_op=torch.nn.Conv3d,
                  kernel_sizes=[[1, 3, 3]] * 2 + [[3, 3, 3]] * 4,
                  strides=[[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]],
                  n_conv_per_stage=2, num_classes=2, n_conv_per_stage_decoder=2, norm_op=torch.nn.InstanceNorm3d,
                  norm_op_kwargs={"affine": True}, nonlin=torch.nn.LeakyReLU, deep_supervision=True)
    net = case.cls(**kwargs)
    outputs = net(torch.randn(1, 1, 16, 128, 128))
    assert [tuple(o.shape[2:]) for o in outputs] == [(16, 128, 128), (16, 64, 64), (16, 32, 32), (8, 16, 16),
                                                      (4, 8, 8)]
    sum(o.mean() for o in outputs).backward()
    assert all(p.grad is not None for p in net.parameters())
