"""Every invalid DynamicKiUNet argument fails in the constructor with a ValueError naming the parameter; a
wrongly sized input fails at the start of forward, not as a shape error deep inside."""
from __future__ import annotations

import pytest
import torch

from nnunet_archs.architectures.kiunet import DynamicKiUNet


def valid_kwargs(**overrides) -> dict:
    kwargs = dict(input_channels=1, n_stages=3, features_per_stage=[4, 8, 16], conv_op=torch.nn.Conv3d,
                  kernel_sizes=[[1, 3, 3], [3, 3, 3], [3, 3, 3]], strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]],
                  n_conv_per_stage=[2, 2, 2], num_classes=2, n_conv_per_stage_decoder=[2, 2],
                  norm_op="torch.nn.modules.instancenorm.InstanceNorm3d", nonlin="torch.nn.LeakyReLU")
    kwargs.update(overrides)
    return kwargs


BAD_ARGUMENTS = [
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
    ({"fusion": "relu"}, "fusion"),
    ({"skip_placement": "middle"}, "skip_placement"),
    ({"ki_max_scale": 3}, "ki_max_scale"),
    ({"ki_max_scale": [2, 2]}, "ki_max_scale"),
    ({"ki_num_stages": 0}, "ki_num_stages"),
    ({"ki_num_stages": 2.5}, "ki_num_stages"),
    ({"ki_features_per_stage": [8, 8]}, "ki_features_per_stage"),
    ({"ki_features_per_stage": 0}, "ki_features_per_stage"),
    ({"crfb_kernel_size": 2}, "crfb_kernel_size"),
    ({"n_conv_per_stage": None, "n_blocks_per_stage": [1, 3, 4]}, "n_blocks_per_stage"),
]


@pytest.mark.parametrize("overrides, parameter", BAD_ARGUMENTS, ids=[p for _, p in BAD_ARGUMENTS])
def test_invalid_argument_names_the_parameter(overrides, parameter):
    with pytest.raises(ValueError) as error:
        DynamicKiUNet(**valid_kwargs(**overrides))
    assert parameter in str(error.value)


def test_allowed_values_are_listed():
    with pytest.raises(ValueError, match=r"\['conv', 'max', 'avg'\]"):
        DynamicKiUNet(**valid_kwargs(pool_type="stride"))


@pytest.mark.parametrize("shape", [(1, 1, 3, 16, 16), (1, 1, 2, 15, 16)])
def test_input_not_divisible_by_strides_fails_before_any_layer(shape):
    net = DynamicKiUNet(**valid_kwargs())
    with pytest.raises(ValueError, match=r"divisible by the product of the strides \(2, 4, 4\)"):
        net(torch.randn(*shape))


def test_wrong_channel_count_is_reported():
    net = DynamicKiUNet(**valid_kwargs())
    with pytest.raises(ValueError, match="input must have shape"):
        net(torch.randn(1, 2, 4, 16, 16))
