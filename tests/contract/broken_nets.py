"""Small networks that each break exactly one part of nnU-Net's contract, the way custom networks do in
practice: all are DNA's PlainConvUNet with one change, so everything else about them is known to hold."""
from __future__ import annotations

import numpy as np
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn


class ReversedOutputs(PlainConvUNet):
    """Deep-supervision outputs lowest resolution first (the order many ports get wrong)."""

    def forward(self, x):
        output = super().forward(x)
        return output[::-1] if isinstance(output, list) else output


class HeadOnlyWithDeepSupervision(PlainConvUNet):
    """A parameter that exists only when the network is built with deep supervision on."""

    def __init__(self, *args, deep_supervision: bool = False, **kwargs):
        super().__init__(*args, deep_supervision=deep_supervision, **kwargs)
        if deep_supervision:
            self.output_scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        output = super().forward(x)
        if isinstance(output, list) and hasattr(self, "output_scale"):
            return [output[0] * self.output_scale] + output[1:]
        return output


class UnusedParameters(PlainConvUNet):
    """A module that never takes part in forward: DDP without find_unused_parameters stops."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unused = nn.Linear(4, 4)


class GraphBreak(PlainConvUNet):
    """A Python decision on tensor values in forward: a graph break under torch.compile."""

    def forward(self, x):
        if not torch.isfinite(x).all():
            raise ValueError("input contains NaN or inf")
        return super().forward(x)


class HeadOutsideSegLayers(PlainConvUNet):
    """A class-dependent layer outside ``seg_layers``: nnU-Net's fine-tuning loader fails on it."""

    def __init__(self, *args, num_classes: int, **kwargs):
        super().__init__(*args, num_classes=num_classes, **kwargs)
        self.refine = self.encoder.conv_op(num_classes, num_classes, 1)

    def forward(self, x):
        output = super().forward(x)
        if isinstance(output, list):
            return [self.refine(output[0])] + output[1:]
        return self.refine(output)


class WrongInputProjection(PlainConvUNet):
    """``keys_to_in_proj`` naming a layer that does not read the input."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.keys_to_in_proj = ("decoder.seg_layers.0",)


class CropsIndivisibleInput(PlainConvUNet):
    """Crops an input the strides cannot divide, so the output is silently smaller than the input."""

    def __init__(self, *args, strides, **kwargs):
        super().__init__(*args, strides=strides, **kwargs)
        self.divisor = [int(d) for d in np.prod(np.array(strides), axis=0)]

    def forward(self, x):
        crop = tuple(slice(0, size - size % d) for size, d in zip(x.shape[2:], self.divisor))
        return super().forward(x[(slice(None), slice(None)) + crop])


class EstimateIgnoresPatch(PlainConvUNet):
    """An estimate computed for a fixed size instead of the patch it is asked about."""

    def compute_conv_feature_map_size(self, input_size):
        return super().compute_conv_feature_map_size([16] * len(input_size))


class NotPlansKeywords(nn.Module):
    """Takes its own keywords instead of nnU-Net's: it cannot be built from a plans file."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
