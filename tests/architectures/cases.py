"""The architectures under the shared contract suite, each with a strategy for its own options.

Adding an architecture to the suite means adding one row here; every contract test runs over this table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Tuple

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from nnunet_archs.architectures import kiunet, uiunet
from nnunet_archs.architectures.kiunet import DynamicKiUNet
from nnunet_archs.architectures.uiunet import DynamicUIUNet3D
# the random-configuration generator lives in the package, where `nnunet-archs check` uses it too
from nnunet_archs.contract.cases import MAX_WORK_VOXELS, as_list, expected_output_sizes, unet_kwargs  # noqa: F401


@dataclass
class ArchCase:
    name: str
    cls: type
    class_path: str
    options: Callable[[st.DrawFn, dict, List[int]], dict]  # (draw, base kwargs, input size) -> extra kwargs
    checkpoint_modes: Tuple[str, ...]  # the ``checkpoint`` values other than 'none'


def _kiunet_options(draw: st.DrawFn, base: dict, input_size: List[int]) -> dict:
    n_stages = base["n_stages"]
    options = dict(
        pool_type=draw(st.sampled_from(["conv", "max", "avg"])),
        ki_num_stages=draw(st.integers(1, n_stages)),
        ki_max_scale=draw(st.sampled_from([1, 2, 4, None])),
        ki_features_per_stage=draw(st.sampled_from([2, 4, None, "unet"])),
        crfb_kernel_size=draw(st.sampled_from([1, 3])),
        crfb_resolution=draw(st.sampled_from(["lower", "source"])),
        skip_placement=draw(st.sampled_from(["after", "before"])),
        fusion=draw(st.sampled_from(["mean_logits", "feature_add"])),
        checkpoint=draw(st.sampled_from(kiunet.CHECKPOINT_MODES)),
    )
    cumulative = np.cumprod(np.array(base["strides"]), axis=0)[options["ki_num_stages"] - 1]
    cap = np.inf if options["ki_max_scale"] is None else options["ki_max_scale"]
    work = np.prod(input_size) * np.prod(np.minimum(cumulative, cap))
    if options["ki_features_per_stage"] == "unet":  # as wide as the U-Net (up to 32 channels, not 2 to 8)
        work *= max(base["features_per_stage"][:options["ki_num_stages"]]) / 8
    assume(work <= MAX_WORK_VOXELS)
    return options


def _uiunet_options(draw: st.DrawFn, base: dict, input_size: List[int]) -> dict:
    n_stages = base["n_stages"]
    num_dilated = draw(st.integers(0, n_stages))
    options = dict(num_dilated_stages=num_dilated, use_ica=draw(st.booleans()),
                   ica_reduction=draw(st.sampled_from([1, 2, 4])),
                   mid_ratio=draw(st.sampled_from([0.25, 0.5, 1.0, "original"])),
                   side_kernel=draw(st.sampled_from(["stage", 1, 3])),
                   pool_type=draw(st.sampled_from(["max", "conv", "avg"])),
                   checkpoint=draw(st.sampled_from(uiunet.CHECKPOINT_MODES)))
    if draw(st.booleans()):  # an explicit heights list, each as tall as the remaining strides allow
        options["rsu_heights"] = [draw(st.integers(2, 5 if s >= n_stages - num_dilated else n_stages - s + 1))
                                  for s in range(n_stages)]
    else:
        options["rsu_max_height"], options["rsu_min_height"] = draw(st.sampled_from([(7, 4), (5, 3), (4, 2)]))
    return options


ARCHITECTURES = [
    ArchCase("kiunet", DynamicKiUNet, "nnunet_archs.architectures.kiunet.DynamicKiUNet", _kiunet_options,
             kiunet.CHECKPOINT_MODES[1:]),
    ArchCase("uiunet", DynamicUIUNet3D, "nnunet_archs.architectures.uiunet.DynamicUIUNet3D", _uiunet_options,
             uiunet.CHECKPOINT_MODES[1:]),
]
