"""The calibrations shipped for the MONAI networks (nnunet_archs/data/calibrations), which their planners size with:
made under the precision nnU-Net trains in, one factor fits every point (2D, isotropic and anisotropic 3D
configurations at two patches each) within ±15 %, and a point measured again with the code and packages installed
now gives the bytes and estimate the file holds (a change that moves the memory fails here until recalibrated:
``nnunet-archs calibrate NAME --bottlenecks 4 6 -o nnunet_archs/data/calibrations/NAME.json --overwrite``). In
float32 the estimate (half the elements autograd keeps, counted) tracks memory as PlainConvUNet's does."""
from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch

from nnunet_archs.calibration import Calibration, measure
from nnunet_archs.planning.memory import ESTIMATE_PER_BYTE, SHIPPED_CALIBRATIONS
from nnunet_archs.profiling import fake_saved_activation_bytes
from nnunet_archs.real_plans import find_record
from nnunet_archs.registry import PLAIN_UNET, VARIANTS, ArchitectureVariant

TOLERANCE = 0.15


def shipped(name: str) -> Calibration:
    return Calibration.load(resources.files("nnunet_archs").joinpath(f"data/calibrations/{name}.json"))


@pytest.mark.parametrize("class_path, name", SHIPPED_CALIBRATIONS.items(), ids=SHIPPED_CALIBRATIONS.values())
def test_shipped_calibration_fits_every_configuration_and_the_code_as_it_is(class_path, name):
    calibration = shipped(name)
    assert (calibration.class_path, calibration.kwargs, calibration.precision) == \
        (class_path, VARIANTS[name].kwargs, "autocast")
    assert {p.configuration.split("#")[-1] for p in calibration.points} == {"2d", "3d_fullres"}
    assert len({p.configuration for p in calibration.points}) == 3
    assert calibration.max_abs_residual <= TOLERANCE, calibration.residuals
    assert ESTIMATE_PER_BYTE[class_path] == calibration.estimate_per_byte
    point = min(calibration.points, key=lambda p: np.prod(p.patch))  # the 2D one: a second to measure again
    again = measure(VARIANTS[name], find_record(point.configuration), point.patch, "autocast")
    assert (again.bytes, again.estimate, again.reference_bytes) == (point.bytes, point.estimate,
                                                                    point.reference_bytes)


@pytest.mark.parametrize("name", SHIPPED_CALIBRATIONS.values())
def test_float32_estimate_per_byte_is_plain_unets(name):
    point = min(shipped(name).points, key=lambda p: np.prod(p.patch))
    record = find_record(point.configuration)

    def per_byte(variant: ArchitectureVariant) -> float:
        def build():
            return record.build_variant(variant, True, initialize=False)
        with torch.device("meta"):
            estimate = float(build().compute_conv_feature_map_size(point.patch))
        return estimate / fake_saved_activation_bytes(build, [1, record.num_input_channels, *point.patch])
    ratio = per_byte(VARIANTS[name]) / per_byte(ArchitectureVariant("plain", PLAIN_UNET, ""))
    assert abs(ratio - 1) <= TOLERANCE, ratio
