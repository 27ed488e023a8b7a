"""Calibration: the measurement (saved tensors counted on FakeTensors equal those on real tensors), the fits
(ResidualEncoderUNet against itself gives 1; fp32 reproduces the built-in factors that benchmarks/planners.py
measured; a network without an estimate gets a topology model) and the file (round trip, and one clear message
for a file of another class, keyword set or version, or no calibration file at all)."""
from __future__ import annotations

import dataclasses
import json
import weakref

import pytest
import torch

from nnunet_archs.calibration import Calibration, CalibrationError, calibrate, fit
from nnunet_archs.planning.memory import ESTIMATE_PER_BYTE
from nnunet_archs.profiling import (fake_peak_step_bytes, fake_saved_activation_bytes, peak_step_bytes,
                                    saved_activation_bytes)
from nnunet_archs.real_plans import ANISOTROPIC_3D, find_record
from nnunet_archs.registry import PLAIN_UNET, get_variant
from nnunet_archs.custom_networks import resolve_network
from tests.contract.conftest import TINY_RECORDS

CUSTOM = "tests.integration.custom_net.BottleneckResUNet"


@pytest.mark.parametrize("network", ["PlainConvUNet", "KiUNet", "UIUNet", CUSTOM])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16-autocast"])
def test_fake_tensors_count_what_real_tensors_save(network, dtype):
    record, variant = TINY_RECORDS[1], resolve_network(network)
    patch = record.reduced_patch(2)
    torch.manual_seed(0)
    real = saved_activation_bytes(record.build_variant(variant, True), torch.randn(1, 1, *patch), dtype)
    fake = fake_saved_activation_bytes(lambda: record.build_variant(variant, True, initialize=False), [1, 1, *patch],
                                       dtype)
    # under autocast the only difference: instance norm's saved per-channel statistics, fp32 on real CPU tensors
    # and bf16 on FakeTensors (bytes per channel, not per voxel)
    assert fake == (real if dtype is None else pytest.approx(real, rel=0.01))


@pytest.mark.parametrize("network", ["UIUNet", "KiUNet-checkpoint"])
def test_fake_tensors_reach_the_peak_real_tensors_reach(network):
    """A training step's peak (what the checkpointing planners' honesty rows count) on FakeTensors as on real ones."""
    record, variant = TINY_RECORDS[1], get_variant(network)
    shape = [1, 1, *record.reduced_patch(2)]
    real = peak_step_bytes(record.build_variant(variant, True), torch.randn(*shape))
    fake = fake_peak_step_bytes(lambda: record.build_variant(variant, True, initialize=False), shape)
    # exact for KiU-Net; UIU-Net's fake peak is one 64 KB map (2 %) lower, a tensor real kernels allocate anew
    assert fake == pytest.approx(real, rel=0.03)


def test_counting_frees_the_activations():
    """The count keeps no activation alive: a packed tensor that kept its grad_fn made a reference cycle through
    the C++ graph that even gc.collect() could not free (benchmarks/architectures.py grew to 24 GB this way)."""
    net = TINY_RECORDS[1].build_variant(get_variant("KiUNet"), True)
    outputs = []
    net.encoder.stages[0].register_forward_hook(lambda m, i, o: outputs.append(weakref.ref(o)))
    saved_activation_bytes(net, torch.randn(1, 1, *TINY_RECORDS[1].reduced_patch(2)))
    assert outputs and outputs[0]() is None


def test_autocast_counts_activations_not_the_weight_copies():
    """Under bf16 autocast a PlainConvUNet's conv outputs halve; the cast copies of the weights are excluded."""
    record, variant = TINY_RECORDS[1], get_variant("PlainConvUNet")
    build = lambda: record.build_variant(variant, True, initialize=False)  # noqa: E731
    patch = [1, 1, *record.reduced_patch(4)]
    fp32, bf16 = fake_saved_activation_bytes(build, patch), fake_saved_activation_bytes(build, patch, torch.bfloat16)
    assert 0.45 < bf16 / fp32 < 0.6


def test_resenc_against_itself_gives_one():
    calibration = calibrate(get_variant("ResEncUNet"), TINY_RECORDS, (2, 3))
    assert calibration.estimate_per_byte == pytest.approx(1, rel=0.05)
    assert calibration.max_abs_residual < 0.05


def test_fp32_calibration_reproduces_the_built_in_factor():
    """ESTIMATE_PER_BYTE came from fp32 measurements at real plans (benchmarks/planners.py)."""
    calibration = calibrate(get_variant("PlainConvUNet"), [find_record(ANISOTROPIC_3D)], (2, 3), precision="fp32")
    assert calibration.estimate_per_byte == pytest.approx(ESTIMATE_PER_BYTE[PLAIN_UNET], rel=0.05)


def test_a_network_without_estimate_gets_a_topology_model():
    calibration = calibrate(resolve_network(CUSTOM), TINY_RECORDS, (2, 3))
    assert calibration.model is not None and calibration.estimate_per_byte == 1
    assert calibration.max_abs_residual < 0.25
    point = calibration.points[0]
    arch_kwargs = TINY_RECORDS[0].arch_kwargs
    assert calibration.model(point.patch, arch_kwargs) == pytest.approx(point.target, rel=0.25)
    # the same points with estimates fit a factor instead
    with_estimate = [dataclasses.replace(p, estimate=p.target * 2) for p in calibration.points]
    assert fit(with_estimate)[0] == pytest.approx(2)


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("calibration") / "calibration.json"
    calibrate(resolve_network(CUSTOM), TINY_RECORDS[:1], (2,)).save(path)
    return path


def test_calibration_file_round_trip(calibration_file):
    loaded = Calibration.load(calibration_file)
    loaded.check_matches(resolve_network(CUSTOM), calibration_file)
    assert loaded.to_json() == json.loads(calibration_file.read_text())


def _edited(calibration_file, tmp_path, change) -> str:
    data = json.loads(calibration_file.read_text())
    change(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("network, change, message", [
    ("PlainConvUNet", lambda d: None, f"class: '{CUSTOM}' in the file, '{PLAIN_UNET}' now"),
    (CUSTOM, lambda d: d.update(kwargs={"bottleneck_blocks": 3}), "--kwargs: {'bottleneck_blocks': 3} in the file"),
    (CUSTOM, lambda d: d["versions"].update(torch="1.0"), "torch: '1.0' in the file"),
    (CUSTOM, lambda d: d.update(source_sha256="0" * 64), "source (SHA-256 of the class's file)"),
])
def test_calibration_for_another_class_or_version_is_refused(calibration_file, tmp_path, network, change, message):
    path = _edited(calibration_file, tmp_path, change)
    with pytest.raises(CalibrationError, match="recalibrate: nnunet-archs calibrate") as error:
        Calibration.load(path).check_matches(resolve_network(network), path)
    assert message in str(error.value)


@pytest.mark.parametrize("text, message", [("{oops", "is not valid JSON"), ("[]", "not an nnunet-archs calibration"),
                                           (json.dumps({"format": "nnunet-archs calibration 1"}), "incomplete")])
def test_damaged_calibration_file(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=message):
        Calibration.load(path)
