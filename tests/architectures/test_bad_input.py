"""Every invalid argument fails in the constructor with a ValueError naming the parameter; a wrongly sized
input fails at the start of forward, not as a shape error deep inside. Shared keywords are checked for every
architecture in the suite, each architecture's own options below."""
from __future__ import annotations

import pytest
import torch

from nnunet_archs.architectures.kiunet import DynamicKiUNet
from nnunet_archs.architectures.uiunet import DynamicUIUNet3D
from tests.architectures.cases import ARCHITECTURES


def valid_kwargs(**overrides) -> dict:
    kwargs = dict(input_channels=1, n_stages=3, features_per_stage=[4, 8, 16], conv_op=torch.nn.Conv3d,
                  kernel_sizes=[[1, 3, 3], [3, 3, 3], [3, 3, 3]], strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]],
                  n_conv_per_stage=[2, 2, 2], num_classes=2, n_conv_per_stage_decoder=[2, 2],
                  norm_op="torch.nn.modules.instancenorm.InstanceNorm3d", nonlin="torch.nn.LeakyReLU")
    kwargs.update(overrides)
    return kwargs


SHARED_BAD_ARGUMENTS = [
    ({"features_per_stage": [4, 8]}, "features_per_stage"),
    ({"kernel_sizes": [[3, 3, 3]] * 2}, "kernel_sizes"),
    ({"kernel_sizes": [[3, 3, 3], [3, 2, 3], [3, 3, 3]]}, "kernel_sizes[1]"),
    ({"strides": [[1, 1], [2, 2], [2, 2]]}, "strides[0]"),
    ({"strides": [[1, 1, 1], [1, 2, 2]]}, "strides"),
    ({"strides": [[1, 1, 1], [0, 2, 2], [2, 2, 2]]}, "strides[1][0]"),
    ({"n_conv_per_stage": [2, 2]}, "n_conv_per_stage"),
    ({"n_conv_per_stage_decoder": [2, 2, 2]}, "n_conv_per_stage_decoder"),
    ({"n_stages": 1, "features_per_stage": [4], "kernel_sizes": [[3, 3, 3]], "strides": [[1, 1, 1]],
      "n_conv_per_stage": [2], "n_conv_per_stage_decoder": []}, "n_stages"),
    ({"conv_op": torch.nn.Conv1d}, "conv_op"),
    ({"conv_op": "torch.nn.NoSuchConv"}, "conv_op"),
    ({"num_classes": None}, "num_classes"),
    ({"num_classes": 0}, "num_classes"),
    ({"pool_type": "stride"}, "pool_type"),
    ({"n_conv_per_stage": None, "n_blocks_per_stage": [1, 3, 4]}, "n_blocks_per_stage"),
]

KIUNET_BAD_ARGUMENTS = [
    ({"fusion": "relu"}, "fusion"),
    ({"skip_placement": "middle"}, "skip_placement"),
    ({"ki_max_scale": 3}, "ki_max_scale"),
    ({"ki_max_scale": [2, 2]}, "ki_max_scale"),
    ({"ki_num_stages": 0}, "ki_num_stages"),
    ({"ki_num_stages": 2.5}, "ki_num_stages"),
    ({"ki_features_per_stage": [8, 8]}, "ki_features_per_stage"),
    ({"ki_features_per_stage": 0}, "ki_features_per_stage"),
    ({"crfb_kernel_size": 2}, "crfb_kernel_size"),
]

UIUNET_BAD_ARGUMENTS = [
    ({"rsu_heights": [4, 3]}, "rsu_heights"),
    ({"rsu_heights": [5, 3, 3], "num_dilated_stages": 1}, "rsu_heights[0]"),
    ({"rsu_heights": [1, 3, 3]}, "rsu_heights[0]"),
    ({"rsu_min_height": 5, "rsu_max_height": 4}, "rsu_min_height"),
    ({"rsu_max_height": 1}, "rsu_max_height"),
    ({"num_dilated_stages": 4}, "num_dilated_stages"),
    ({"num_dilated_stages": -1}, "num_dilated_stages"),
    ({"mid_ratio": 0}, "mid_ratio"),
    ({"mid_ratio": "half"}, "mid_ratio"),
    ({"ica_reduction": 0}, "ica_reduction"),
    ({"use_ica": "yes"}, "use_ica"),
    ({"side_kernel": 2}, "side_kernel"),
    ({"side_kernel": "big"}, "side_kernel"),
]

CASES = ([(cls, o, p) for cls in (c.cls for c in ARCHITECTURES) for o, p in SHARED_BAD_ARGUMENTS]
         + [(DynamicKiUNet, o, p) for o, p in KIUNET_BAD_ARGUMENTS]
         + [(DynamicUIUNet3D, o, p) for o, p in UIUNET_BAD_ARGUMENTS])


@pytest.mark.parametrize("cls, overrides, parameter", CASES, ids=[f"{c.__name__}-{p}" for c, _, p in CASES])
def test_invalid_argument_names_the_parameter(cls, overrides, parameter):
    with pytest.raises(ValueError) as error:
        cls(**valid_kwargs(**overrides))
    assert parameter in str(error.value)


@pytest.mark.parametrize("cls, allowed", [(DynamicKiUNet, r"\['conv', 'max', 'avg'\]"),
                                          (DynamicUIUNet3D, r"\['max', 'conv', 'avg'\]")])
def test_allowed_values_are_listed(cls, allowed):
    with pytest.raises(ValueError, match=allowed):
        cls(**valid_kwargs(pool_type="stride"))


@pytest.mark.parametrize("case", ARCHITECTURES, ids=lambda c: c.name)
@pytest.mark.parametrize("shape", [(1, 1, 3, 16, 16), (1, 1, 2, 15, 16)])
def test_input_not_divisible_by_strides_fails_before_any_layer(case, shape):
    net = case.cls(**valid_kwargs())
    with pytest.raises(ValueError, match=r"divisible by the product of the strides \(2, 4, 4\)"):
        net(torch.randn(*shape))


@pytest.mark.parametrize("case", ARCHITECTURES, ids=lambda c: c.name)
def test_wrong_channel_count_is_reported(case):
    net = case.cls(**valid_kwargs())
    with pytest.raises(ValueError, match="input must have shape"):
        net(torch.randn(1, 2, 4, 16, 16))
