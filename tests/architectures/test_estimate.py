"""Estimate honesty: nnU-Net's planner sizes patch and batch from ``compute_conv_feature_map_size`` with
reference values fitted to PlainConvUNet, so our estimate must track our real activation memory exactly as
PlainConvUNet's tracks its own: in float32, under the bfloat16 autocast that stands in on CPU for nnU-Net's fp16
autocast on GPUs (bytes of the tensors autograd saves in one training forward, counted on FakeTensors: the same
count as on real tensors to 1 %, tests/test_calibration.py, without computing), and with every checkpointing mode (peak
bytes alive during a real training step, which sees what checkpointing keeps and recomputes)."""
from __future__ import annotations

from functools import lru_cache

import pytest
import torch

from nnunet_archs.profiling import fake_saved_activation_bytes, peak_step_bytes
from nnunet_archs.real_plans import ANISOTROPIC_3D, find_record, showcase_records
from nnunet_archs.registry import PLAIN_UNET, ArchitectureVariant
from tests.architectures.cases import ARCHITECTURES, ArchCase

TOLERANCE = 0.10  # in float32 and under autocast
CHECKPOINT_TOLERANCE = 0.15
RECORDS = [(r.id, 1.0) for r in showcase_records()]
# (configuration, width factor) where the peak tracker's real steps stay cheap: the 2D configuration, and the
# anisotropic 3D one at a quarter of its width (features 8...80); the autocast test keeps to them, where its
# ±10 % bound was established
CHEAP_RECORDS = [RECORDS[0], (ANISOTROPIC_3D, 0.25)]


def short(record: tuple) -> str:
    return record[0].split("/")[0] + "-" + record[0].split("#")[-1] + ("" if record[1] == 1 else f"-x{record[1]}")


@lru_cache(maxsize=None)
def estimate_and_bytes(record: tuple, class_path: str, measure: str, checkpoint: str = "none") -> tuple:
    """Estimate and measured bytes of one sample at the record's smallest patch with a 2-voxel bottleneck."""
    record_id, width = record
    record = find_record(record_id)
    patch = record.reduced_patch(bottleneck=2)
    torch.manual_seed(0)
    options = {} if checkpoint == "none" else {"checkpoint": checkpoint}
    variant = ArchitectureVariant(class_path, class_path, "", options, feature_scale=width)
    shape = [1, record.num_input_channels, *patch]
    if measure == "peak":
        net = record.build_variant(variant, deep_supervision=True)
        return float(net.compute_conv_feature_map_size(patch)), peak_step_bytes(net, torch.randn(*shape))
    build = lambda: record.build_variant(variant, deep_supervision=True, initialize=False)  # noqa: E731
    with torch.device("meta"):  # the estimate reads the structure only
        estimate = float(build().compute_conv_feature_map_size(patch))
    return estimate, fake_saved_activation_bytes(build, shape, torch.bfloat16 if measure == "bfloat16" else None)


def estimate_per_byte(*args) -> float:
    estimate, measured = estimate_and_bytes(*args)
    return estimate / measured


@pytest.mark.parametrize("case", ARCHITECTURES, ids=lambda c: c.name)
@pytest.mark.parametrize("record", RECORDS, ids=short)
def test_estimate_tracks_measured_memory_like_plain_unet(case: ArchCase, record: tuple):
    ratio = estimate_per_byte(record, case.class_path, "float32") / estimate_per_byte(record, PLAIN_UNET, "float32")
    assert abs(ratio - 1) <= TOLERANCE, f"estimate/measured is {ratio:.2f}x PlainConvUNet's"


@pytest.mark.parametrize("case", ARCHITECTURES, ids=lambda c: c.name)
@pytest.mark.parametrize("record", CHEAP_RECORDS, ids=short)
def test_estimate_tracks_memory_under_autocast_like_plain_unet(case: ArchCase, record: tuple):
    ratio = estimate_per_byte(record, case.class_path, "bfloat16") / estimate_per_byte(record, PLAIN_UNET, "bfloat16")
    assert abs(ratio - 1) <= TOLERANCE, f"estimate/measured under bf16 autocast is {ratio:.2f}x PlainConvUNet's"


@pytest.mark.parametrize("case, checkpoint", [(c, m) for c in ARCHITECTURES for m in c.checkpoint_modes],
                         ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize("record", CHEAP_RECORDS, ids=short)
def test_estimate_counts_what_checkpointing_keeps(case: ArchCase, checkpoint: str, record: tuple):
    ratio = estimate_per_byte(record, case.class_path, "peak", checkpoint) / \
        estimate_per_byte(record, PLAIN_UNET, "peak")
    assert abs(ratio - 1) <= CHECKPOINT_TOLERANCE, \
        f"estimate/peak with checkpoint={checkpoint!r} is {ratio:.2f}x PlainConvUNet's"
    # the mode saves memory, and the estimate (hence the planner) knows it
    (estimate, peak), (estimate_off, peak_off) = (estimate_and_bytes(record, case.class_path, "peak", mode)
                                                  for mode in (checkpoint, "none"))
    assert peak < peak_off and estimate < estimate_off
