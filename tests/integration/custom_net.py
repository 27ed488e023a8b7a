"""A network a researcher might bring (README, "Benchmark your own network"): built the nnU-Net way (it takes
PlainConvUNet's keywords plus an option of its own), with DNA's encoder and decoder around residual blocks at
the bottleneck, and no ``compute_conv_feature_map_size``. The end-to-end test runs check -> calibrate -> plan
-> stock nnUNetv2_train -> nnUNetv2_predict on it; those programs import it through PYTHONPATH."""
from __future__ import annotations

import numpy as np
import torch
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.residual import BasicBlockD
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn


class BottleneckResUNet(nn.Module):
    def __init__(self, input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                 n_conv_per_stage, num_classes, n_conv_per_stage_decoder, conv_bias=False, norm_op=None,
                 norm_op_kwargs=None, dropout_op=None, dropout_op_kwargs=None, nonlin=None, nonlin_kwargs=None,
                 deep_supervision=False, bottleneck_blocks: int = 2):
        super().__init__()
        block = dict(conv_bias=conv_bias, norm_op=norm_op, norm_op_kwargs=norm_op_kwargs, dropout_op=dropout_op,
                     dropout_op_kwargs=dropout_op_kwargs, nonlin=nonlin, nonlin_kwargs=nonlin_kwargs)
        self.encoder = PlainConvEncoder(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                                        n_conv_per_stage, return_skips=True, **block)
        self.bottleneck = nn.Sequential(*[
            BasicBlockD(conv_op, features_per_stage[-1], features_per_stage[-1], kernel_sizes[-1], 1, **block)
            for _ in range(bottleneck_blocks)])
        self.decoder = UNetDecoder(self.encoder, num_classes, n_conv_per_stage_decoder, deep_supervision)
        self.divisor = tuple(int(d) for d in np.prod(np.array(strides), axis=0))
        self.keys_to_in_proj = ("encoder.stages.0.0.convs.0.conv", "encoder.stages.0.0.convs.0.all_modules.0")

    def forward(self, x: torch.Tensor):
        if any(size % d for size, d in zip(x.shape[2:], self.divisor)):
            raise ValueError(f"input size {tuple(x.shape[2:])} must be divisible by {self.divisor}")
        skips = self.encoder(x)
        return self.decoder(skips[:-1] + [self.bottleneck(skips[-1])])

    @staticmethod
    def initialize(module):
        InitWeights_He(1e-2)(module)
