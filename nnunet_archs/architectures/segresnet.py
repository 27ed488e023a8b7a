"""DynamicSegResNetDS: MONAI's SegResNetDS for nnU-Net v2, in 2D and 3D, built from MONAI's SegResNet blocks.

SegResNet (Myronenko, "3D MRI brain tumor segmentation using autoencoder regularization", BrainLes 2018,
arXiv:1810.11654) is an encoder of pre-activation residual blocks (norm, ReLU, conv, twice) with strided-conv
down-sampling, and a light decoder (a transposed convolution, the skip added, one residual block per level).
SegResNetDS, the version MONAI's Auto3DSeg trains, adds deep-supervision heads and anisotropic kernels and
strides for anisotropic images.

From nnU-Net's plans this adapter takes the dimensionality (``conv_op``), the depth (``n_stages``), the widths
(``features_per_stage``) and, per axis, the strides and kernel sizes (nnU-Net's spacing-aware choice plays the
part of SegResNetDS's ``resolution``): stage s's blocks use ``kernel_sizes[s]``, the strided conv into it and the
transposed conv out of it ``kernel_sizes[s]`` with ``strides[s]``. SegResNet's own, as Auto3DSeg sets it:
instance norm, ReLU, blocks per stage 1, 2, 2, 4, 4, one block per decoder level. The plans' norm, nonlinearity,
dropout, conv bias and convs per stage are nnU-Net's U-Net settings and are not used.

Departures from Auto3DSeg's configuration: at most 5 stages (its depth), fewer where the patch is small; the
widths double from the plans' first as its 32, 64, ..., 512 (our planners write them uncapped). Deep
supervision as Auto3DSeg trains it, a head at every decoder level: ``n_stages - 1`` outputs, full resolution
first, each head built always (MONAI builds only ``dsdepth`` of them).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
from torch import nn

from nnunet_archs.architectures.config import IntOrSeq, build_unet_config, per_stage
from nnunet_archs.architectures.zoo import (AddedSkipDecoder, ZooNetwork, check_input, conv_dimension, divisor,
                                            doubling, with_stages, require_monai)

MAX_STAGES = 5  # Auto3DSeg's SegResNetDS depth, blocks_down=(1, 2, 2, 4, 4)
BLOCKS_DOWN = (1, 2, 2, 4, 4)


def _padding(kernel: Sequence[int]) -> List[int]:
    return [k // 2 for k in kernel]


class SegResEncoder(nn.Module):
    """An input conv, then per stage its residual blocks, and between stages a strided conv that widens."""

    def __init__(self, block, conv, norm, act, input_channels: int, features: List[int],
                 kernels: List[List[int]], strides: List[List[int]], n_blocks: List[int]):
        super().__init__()
        self.conv_init = conv(input_channels, features[0], kernels[0], padding=_padding(kernels[0]), bias=False)
        self.stages = nn.ModuleList([
            nn.Sequential(*[block(spatial_dims=conv_dims(conv), in_channels=f, norm=norm, kernel_size=k, act=act)
                            for _ in range(b)]) for f, k, b in zip(features, kernels, n_blocks)])
        self.downs = nn.ModuleList([conv(features[s - 1], features[s], kernels[s], stride=strides[s],
                                         padding=_padding(kernels[s]), bias=False) for s in range(1, len(features))])

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        skips = []
        x = self.conv_init(x)
        for s, stage in enumerate(self.stages):
            if s:
                x = self.downs[s - 1](x)
            x = stage(x)
            skips.append(x)
        return skips


class SegResNetDecoder(AddedSkipDecoder):
    """Per level (deepest first): a transposed conv, the skip added, residual blocks and a 1x1 head."""

    def __init__(self, block, upsample, conv, norm, act, num_classes: int, features: List[int],
                 kernels: List[List[int]], strides: List[List[int]], n_blocks: List[int], upsample_mode: str,
                 deep_supervision: bool):
        super().__init__(deep_supervision)
        dims = conv_dims(conv)
        levels = list(reversed(range(len(features) - 1)))  # decoder level s, deepest first
        self.ups = nn.ModuleList([upsample(mode=upsample_mode, spatial_dims=dims, in_channels=features[s + 1],
                                           out_channels=features[s], kernel_size=kernels[s + 1],
                                           scale_factor=strides[s + 1], bias=False, align_corners=False)
                                  for s in levels])
        self.stages = nn.ModuleList([
            nn.Sequential(*[block(spatial_dims=dims, in_channels=features[s], norm=norm, kernel_size=kernels[s],
                                  act=act) for _ in range(n_blocks[s])]) for s in levels])
        self.seg_layers = nn.ModuleList([conv(features[s], num_classes, 1, bias=True) for s in levels])


def conv_dims(conv: type) -> int:
    return 2 if conv is nn.Conv2d else 3


class DynamicSegResNetDS(ZooNetwork):
    """SegResNetDS with nnU-Net's self-configured topology (3D, or 2D with ``conv_op=Conv2d``).

    Takes every keyword of DNA's ``PlainConvUNet`` (see the module docstring for what is used). SegResNet options:

    Args:
        norm: MONAI norm name or (name, arguments); Auto3DSeg's ``'instance'`` (affine, as SegResNetDS sets it).
        act: MONAI activation name or (name, arguments); ``'relu'`` (in place, as SegResNetDS sets it).
        blocks_down: residual blocks per encoder stage (int or one per stage); default 1, 2, 2, 4, 4, then 4.
        blocks_up: residual blocks per decoder level (int or one per level below the bottleneck); default 1.
        upsample_mode: MONAI's ``UpSample`` mode, ``'deconv'`` (SegResNetDS's default) or ``'nontrainable'``.
        n_blocks_per_stage: accepted only to reject Residual-Encoder plans with a clear message.
    """

    def __init__(self,
                 input_channels: int,
                 n_stages: int,
                 features_per_stage: IntOrSeq,
                 conv_op: type,
                 kernel_sizes: Union[int, Sequence],
                 strides: Union[int, Sequence],
                 n_conv_per_stage: Optional[IntOrSeq] = None,
                 num_classes: Optional[int] = None,
                 n_conv_per_stage_decoder: Optional[IntOrSeq] = None,
                 conv_bias: bool = False,
                 norm_op: Optional[type] = None,
                 norm_op_kwargs: Optional[dict] = None,
                 dropout_op: Optional[type] = None,
                 dropout_op_kwargs: Optional[dict] = None,
                 nonlin: Optional[type] = None,
                 nonlin_kwargs: Optional[dict] = None,
                 deep_supervision: bool = False,
                 nonlin_first: bool = False,
                 norm: Union[str, tuple] = "instance",
                 act: Union[str, tuple] = "relu",
                 blocks_down: Optional[IntOrSeq] = None,
                 blocks_up: Optional[IntOrSeq] = None,
                 upsample_mode: str = "deconv",
                 n_blocks_per_stage: Optional[IntOrSeq] = None):
        super().__init__({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        cfg = build_unet_config(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                                n_conv_per_stage, num_classes, n_conv_per_stage_decoder, conv_bias, norm_op,
                                norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs,
                                deep_supervision, nonlin_first, n_blocks_per_stage)
        n = cfg.n_stages
        n_down = per_stage("blocks_down", [BLOCKS_DOWN[min(s, len(BLOCKS_DOWN) - 1)] for s in range(n)]
                           if blocks_down is None else blocks_down, n)
        n_up = per_stage("blocks_up", 1 if blocks_up is None else blocks_up, n - 1)
        n_up = n_up + [0]  # indexed by stage; the bottleneck has no decoder level
        require_monai("SegResNet")
        from monai.networks.blocks.upsample import UpSample
        from monai.networks.layers.factories import Act, Norm, split_args
        from monai.networks.nets.segresnet_ds import SegResBlock
        from monai.utils import UpsampleMode, has_option, look_up_option
        look_up_option(upsample_mode, UpsampleMode)  # MONAI's own error lists the modes
        norm, act = split_args(norm), split_args(act)
        if has_option(Norm[norm[0], cfg.dim], "affine"):  # as SegResNetDS: affine norms, in-place activations
            norm[1].setdefault("affine", True)
        if has_option(Act[act[0]], "inplace"):
            act[1].setdefault("inplace", True)
        self.input_channels, self.dim, self.step = cfg.input_channels, cfg.dim, divisor({"strides": cfg.strides})
        self.encoder = SegResEncoder(SegResBlock, cfg.conv_op, norm, act, cfg.input_channels, cfg.features_per_stage,
                                     cfg.kernel_sizes, cfg.strides, n_down)
        self.decoder = SegResNetDecoder(SegResBlock, UpSample, cfg.conv_op, norm, act, cfg.num_classes,
                                        cfg.features_per_stage, cfg.kernel_sizes, cfg.strides, n_up, upsample_mode,
                                        cfg.deep_supervision)
        self.key_to_encoder = "encoder"
        self.key_to_stem = "encoder.conv_init"
        self.keys_to_in_proj = ("encoder.conv_init",)

    @classmethod
    def plans_topology(cls, arch_kwargs: dict) -> dict:
        """nnU-Net's keywords for SegResNetDS: its first (at most 5) stages with their per-axis strides and
        kernels, widths doubling from the plans' first."""
        conv_dimension(arch_kwargs["conv_op"])
        n = min(int(arch_kwargs["n_stages"]), MAX_STAGES)
        kwargs = with_stages(arch_kwargs, n)
        first = per_stage("features_per_stage", kwargs["features_per_stage"], n)[0]
        return {**kwargs, "features_per_stage": doubling(first, n)}

    def forward(self, x: torch.Tensor):
        check_input(x, self.dim, self.input_channels, self.step, "SegResNet")
        return self.decoder(self.encoder(x))
