"""DynamicUIUNet3D: UIU-Net for nnU-Net v2, in 3D and (with ``conv_op=Conv2d``) 2D, for any plans configuration.

UIU-Net (Wu, Hong, Chanussot, "UIU-Net: U-Net in U-Net for Infrared Small Object Detection", IEEE TIP 32,
364-376, 2023, arXiv:2212.00968) nests a small residual U-Net, the RSU block, inside every stage of an outer
U-Net ("resolution-maintenance deep supervision", RM-DS), fuses decoder features with the encoder skip through
interactive-cross attention (IC-A), and fuses side outputs from every decoder level and the bottleneck into the
final prediction.

What this port changes, and why:
- RSU pooling reuses the planned outer strides of the following stages, so anisotropic ``[1, 2, 2]`` plans are
  honoured inside every block and each RSU bottoms out at a planned, valid resolution (the original pools all
  axes by 2, which breaks thin 3D patches); the deepest ``num_dilated_stages`` stages use the dilated RSU-F;
- IC-A's channel-attention branch has no norm layer: it sees a 1x1(x1) map, where batch and instance norm fail
  at batch size 1;
- outputs are logits (no sigmoid); deep supervision returns ``[fused, side_1, ..., side_{n-2}]`` at native
  resolution, the ``n_stages - 1`` tensors nnU-Net expects; full-resolution ``side_0`` and the bottleneck side
  reach the loss through ``fused``, so every parameter still gets a gradient.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from dynamic_network_architectures.architectures.abstract_arch import AbstractDynamicNetworkArchitectures
from dynamic_network_architectures.building_blocks.helper import get_matching_pool_op
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_archs.architectures.blocks import (DilatedConvDropoutNormReLU, is_identity, n_elements, shrunk,
                                               single_map, upsample_to)
from nnunet_archs.architectures.config import (IntOrSeq, UNetConfig, _as_int, build_unet_config, check_choice,
                                               per_stage)

POOL_TYPES = ("max", "conv", "avg")


class ResidualUBlock(nn.Module):
    """RSU-L: an input conv, an inner U-Net of ``height`` levels and a residual add (the original's RSU7..RSU4).

    Inner level j of the block at outer ``stage`` pools by the outer stride of stage ``stage + j`` and uses that
    stage's kernel. The dilated variant (RSU-F) keeps every level at the block's resolution with dilations
    1, 2, 4, ... and the bottom at twice the deepest.
    """

    def __init__(self, cfg: UNetConfig, stage: int, height: int, in_channels: int, mid_channels: int,
                 out_channels: int, dilated: bool):
        super().__init__()
        levels = height - 1
        kernels = [cfg.kernel_sizes[stage if dilated else stage + j] for j in range(levels)]
        dilations = [2 ** j if dilated else 1 for j in range(levels)]

        def block(cin: int, cout: int, level: int, dilation: int) -> DilatedConvDropoutNormReLU:
            return DilatedConvDropoutNormReLU(cfg.conv_op, cin, cout, kernels[level], dilation, **cfg.block_kwargs)

        self.input_conv = block(in_channels, out_channels, 0, 1)
        self.encoder = nn.ModuleList([block(out_channels if j == 0 else mid_channels, mid_channels, j, dilations[j])
                                      for j in range(levels)])
        self.bottom = block(mid_channels, mid_channels, levels - 1, 2 * dilations[-1] if dilated else 2)
        self.decoder = nn.ModuleList([block(2 * mid_channels, out_channels if j == 0 else mid_channels, j,
                                            dilations[j]) for j in range(levels)])
        self.pool_factors = [] if dilated else [cfg.strides[stage + j] for j in range(1, levels)]
        self.pools = nn.ModuleList([get_matching_pool_op(cfg.conv_op, pool_type="max")(f, f)
                                    for f in self.pool_factors])
        self.mid_channels, self.out_channels = mid_channels, out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.input_conv(x)
        h, skips = residual, []
        for j, conv in enumerate(self.encoder):
            if 0 < j <= len(self.pools):
                h = self.pools[j - 1](h)
            h = conv(h)
            skips.append(h)
        d = self.bottom(h)
        for j in reversed(range(len(self.decoder))):
            if j < len(self.pools):
                d = upsample_to(d, skips[j].shape[2:])
            d = self.decoder[j](torch.cat((d, skips[j]), 1))
        return d + residual

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        sizes = [list(input_size)]
        for factor in self.pool_factors:
            sizes.append(shrunk(sizes[-1], factor))
        sizes += [sizes[-1]] * (len(self.encoder) - len(sizes))
        total = self.input_conv.compute_conv_feature_map_size(input_size)
        total += 2 * single_map(self.out_channels, input_size)  # residual sum, the decoder's output map
        for j, size in enumerate(sizes):
            total += self.encoder[j].compute_conv_feature_map_size(size)
            total += single_map(2 * self.mid_channels, size) + self.decoder[j].compute_conv_feature_map_size(size)
            if 0 < j <= len(self.pool_factors):
                total += 3 * single_map(self.mid_channels, size)  # pooled map and its int64 indices
        return total + self.bottom.compute_conv_feature_map_size(sizes[-1])


class InteractiveCrossAttention(nn.Module):
    """IC-A (``AsymBiChaFuseReduce`` in the original code): channel attention from the deeper feature gates the
    skip, spatial attention from the gated skip gates the deeper feature; both pass one shared conv block and are
    concatenated (2 x ``channels``)."""

    def __init__(self, cfg: UNetConfig, stage: int, high_channels: int, channels: int, reduction: int):
        super().__init__()
        reduced = max(1, channels // reduction)
        kernel = cfg.kernel_sizes[stage]
        self.feature_high = ConvDropoutNormReLU(cfg.conv_op, high_channels, channels, 1, 1, **cfg.block_kwargs)
        nonlin = cfg.nonlin or nn.ReLU
        # no norm here: this branch sees a single voxel per channel, where batch/instance norm cannot train
        self.channel_attention = nn.Sequential(
            get_matching_pool_op(cfg.conv_op, pool_type="avg", adaptive=True)(1),
            cfg.conv_op(channels, reduced, 1, bias=True), nonlin(**(cfg.nonlin_kwargs or {})),
            cfg.conv_op(reduced, channels, 1, bias=True), nn.Sigmoid())
        self.spatial_reduce = ConvDropoutNormReLU(cfg.conv_op, channels, reduced, 1, 1, **cfg.block_kwargs)
        self.spatial_attention = cfg.conv_op(2, 1, kernel, padding=[(k - 1) // 2 for k in kernel], bias=False)
        self.post = ConvDropoutNormReLU(cfg.conv_op, channels, channels, kernel, 1, **cfg.block_kwargs)
        self.channels, self.reduced = channels, reduced

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        high = self.feature_high(high)
        channel_weights = self.channel_attention(high)
        reduced = self.spatial_reduce(low * channel_weights)
        pooled = torch.cat((reduced.mean(1, keepdim=True), reduced.amax(1, keepdim=True)), 1)
        spatial_weights = torch.sigmoid(self.spatial_attention(pooled))
        return torch.cat((self.post(2 * low * channel_weights), self.post(2 * high * spatial_weights)), 1)

    def compute_conv_feature_map_size(self, size: Sequence[int]) -> np.int64:
        return (self.feature_high.compute_conv_feature_map_size(size)
                + 2 * self.post.compute_conv_feature_map_size(size)
                + self.spatial_reduce.compute_conv_feature_map_size(size)
                + 6 * single_map(self.channels, size)  # gated maps and their doubled copies, concatenation
                + 8 * single_map(1, size))  # mean/max/attention maps


class UIUNetDecoder(nn.Module):
    """Outer decoder: upsample by size, IC-A (levels >= 1) or concatenation, an RSU per level; side heads on
    every level and the bottleneck, fused at full resolution. Holds nnU-Net's ``deep_supervision`` switch."""

    def __init__(self, cfg: UNetConfig, heights: List[int], mid_channels: List[int], dilated: List[bool],
                 use_ica: bool, ica_reduction: int, side_kernels: List[List[int]]):
        super().__init__()
        self.deep_supervision = cfg.deep_supervision
        features, n = cfg.features_per_stage, cfg.n_stages
        self.fusions = nn.ModuleDict({str(s): InteractiveCrossAttention(cfg, s, features[s + 1], features[s],
                                                                        ica_reduction)
                                      for s in range(1, n - 1) if use_ica})
        self.stages = nn.ModuleList([
            ResidualUBlock(cfg, s, heights[s], 2 * features[s] if str(s) in self.fusions else
                           features[s + 1] + features[s], mid_channels[s], features[s], dilated[s])
            for s in range(n - 1)])
        self.side_heads = nn.ModuleList([
            cfg.conv_op(features[s], cfg.num_classes, side_kernels[s], 1, [(k - 1) // 2 for k in side_kernels[s]],
                        bias=True) for s in range(n)])
        self.fuse = cfg.conv_op(n * cfg.num_classes, cfg.num_classes, 1, bias=True)
        self.cfg = cfg

    def forward(self, skips: List[torch.Tensor]):
        d = skips[-1]
        decoded = []
        for s in reversed(range(len(self.stages))):
            up = upsample_to(d, skips[s].shape[2:])
            x = self.fusions[str(s)](up, skips[s]) if str(s) in self.fusions else torch.cat((up, skips[s]), 1)
            d = self.stages[s](x)
            decoded.insert(0, d)
        sides = [head(f) for head, f in zip(self.side_heads, decoded + [skips[-1]])]
        full_size = sides[0].shape[2:]
        fused = self.fuse(torch.cat([sides[0]] + [upsample_to(side, full_size) for side in sides[1:]], 1))
        if not self.deep_supervision:
            return fused
        return [fused] + sides[1:-1]

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        cfg, features = self.cfg, self.cfg.features_per_stage
        sizes = [shrunk(input_size, p) for p in cfg.cumulative_strides]
        total = np.int64(0)
        for s, stage in enumerate(self.stages):
            in_channels = 2 * features[s] if str(s) in self.fusions else features[s + 1] + features[s]
            total += single_map(in_channels, sizes[s]) + stage.compute_conv_feature_map_size(sizes[s])
            if str(s) in self.fusions:
                total += single_map(features[s + 1], sizes[s]) + \
                    self.fusions[str(s)].compute_conv_feature_map_size(sizes[s])
        n_sides = len(self.side_heads)
        return total + single_map(n_sides * cfg.num_classes, sizes[0]) + single_map(cfg.num_classes, sizes[0])


class DynamicUIUNet3D(AbstractDynamicNetworkArchitectures):
    """UIU-Net with nnU-Net's self-configured topology (3D, or 2D with ``conv_op=Conv2d``).

    Takes every keyword of DNA's ``PlainConvUNet`` (a plans ``arch_kwargs`` dict works with only
    ``network_class_name`` changed). ``n_conv_per_stage``/``n_conv_per_stage_decoder`` are accepted and checked
    but not used: every RSU level has one conv block, as in the original. UIU-Net options:

    Args:
        rsu_heights: RSU height per stage (decoder level s mirrors stage s); ``None`` = the height rule
            ``min(max(rsu_min_height, rsu_max_height - s), n_stages - s + 1)``, and ``rsu_min_height`` for the
            dilated stages: 7, 6, 5, 4, 4F, 4F for six stages, as the original.
        rsu_max_height, rsu_min_height: the height rule's bounds (the seed's minimal variant uses 5 and 3).
        num_dilated_stages: how many of the deepest stages use the dilated RSU-F (original: 2).
        mid_ratio: RSU inner width relative to the stage width (at least 4 channels).
        use_ica: fuse decoder levels >= 1 with IC-A (UIU-Net's distinguishing module); off = U^2-Net-style concat.
        ica_reduction: IC-A bottleneck reduction ``r``.
        side_kernel: side-head kernel, ``'stage'`` (the stage's kernel; 3x3 in the original) or an odd int.
        pool_type: outer downsampling, ``'max'`` (original), ``'conv'`` (strided conv) or ``'avg'``.
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
                 rsu_heights: Optional[IntOrSeq] = None,
                 rsu_max_height: int = 7,
                 rsu_min_height: int = 4,
                 num_dilated_stages: int = 2,
                 mid_ratio: float = 0.5,
                 use_ica: bool = True,
                 ica_reduction: int = 4,
                 side_kernel: Union[str, int] = "stage",
                 pool_type: str = "max",
                 n_blocks_per_stage: Optional[IntOrSeq] = None):
        super().__init__()
        cfg = build_unet_config(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                                n_conv_per_stage, num_classes, n_conv_per_stage_decoder, conv_bias, norm_op,
                                norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs,
                                deep_supervision, nonlin_first, n_blocks_per_stage)
        n = cfg.n_stages
        self.pool_type = check_choice("pool_type", pool_type, POOL_TYPES)
        num_dilated = _as_int("num_dilated_stages", num_dilated_stages, 0)
        if num_dilated > n:
            raise ValueError(f"num_dilated_stages must be between 0 and n_stages={n}, got {num_dilated}")
        dilated = [s >= n - num_dilated for s in range(n)]
        heights = self._heights(cfg, rsu_heights, rsu_max_height, rsu_min_height, dilated)
        if isinstance(mid_ratio, bool) or not isinstance(mid_ratio, (int, float)) or mid_ratio <= 0:
            raise ValueError(f"mid_ratio must be a number > 0, got {mid_ratio!r}")
        mid_channels = [max(4, int(f * mid_ratio)) for f in cfg.features_per_stage]
        check_choice("use_ica", use_ica, (True, False))
        ica_reduction = _as_int("ica_reduction", ica_reduction, 1)
        if side_kernel == "stage":
            side_kernels = cfg.kernel_sizes
        elif isinstance(side_kernel, int) and not isinstance(side_kernel, bool) and side_kernel > 0 \
                and side_kernel % 2 == 1:
            side_kernels = [[side_kernel] * cfg.dim] * n
        else:
            raise ValueError(f"side_kernel must be 'stage' or an odd int >= 1, got {side_kernel!r}")
        self.cfg, self.heights = cfg, heights

        channels = [cfg.input_channels] + cfg.features_per_stage
        self.downsamples = nn.ModuleList([self._downsample(cfg, s, channels[s]) for s in range(n)])
        self.encoder = nn.ModuleList([
            ResidualUBlock(cfg, s, heights[s], channels[s], mid_channels[s], cfg.features_per_stage[s], dilated[s])
            for s in range(n)])
        self.decoder = UIUNetDecoder(cfg, heights, mid_channels, dilated, use_ica, ica_reduction, side_kernels)

        self.key_to_encoder = "encoder"
        self.key_to_stem = "encoder.0"
        self.keys_to_in_proj = ("encoder.0.input_conv.conv",)

    @staticmethod
    def _heights(cfg: UNetConfig, rsu_heights: Optional[IntOrSeq], max_height: int, min_height: int,
                 dilated: List[bool]) -> List[int]:
        n = cfg.n_stages
        if rsu_heights is None:
            max_height = _as_int("rsu_max_height", max_height, 2)
            min_height = _as_int("rsu_min_height", min_height, 2)
            if min_height > max_height:
                raise ValueError(f"rsu_min_height ({min_height}) must not exceed rsu_max_height ({max_height})")
            return [min_height if dilated[s] else min(max(min_height, max_height - s), n - s + 1)
                    for s in range(n)]
        heights = per_stage("rsu_heights", rsu_heights, n, minimum=2)
        for s, height in enumerate(heights):
            if not dilated[s] and height - 2 > n - 1 - s:
                raise ValueError(f"rsu_heights[{s}]={height} needs {height - 2} inner poolings, but only {n - 1 - s} "
                                 f"planned strides follow stage {s}; use a height <= {n - s + 1} there (or make the "
                                 f"stage dilated via num_dilated_stages)")
        return heights

    def _downsample(self, cfg: UNetConfig, stage: int, channels: int) -> nn.Module:
        stride = cfg.strides[stage]
        if is_identity(stride):
            return nn.Identity()
        if self.pool_type == "conv":
            return ConvDropoutNormReLU(cfg.conv_op, channels, channels, cfg.kernel_sizes[stage], stride,
                                       **cfg.block_kwargs)
        return get_matching_pool_op(cfg.conv_op, pool_type=self.pool_type)(stride, stride)

    def forward(self, x: torch.Tensor):
        self.cfg.check_input(x)
        skips = []
        for downsample, stage in zip(self.downsamples, self.encoder):
            x = stage(downsample(x))
            skips.append(x)
        return self.decoder(skips)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Activation elements of one sample on the scale of PlainConvUNet's estimate: every nested RSU level,
        IC-A maps, side outputs and the fused map."""
        size = list(input_size)
        total = np.int64(0)
        channels = [self.cfg.input_channels] + self.cfg.features_per_stage
        for s, stage in enumerate(self.encoder):
            if not is_identity(self.cfg.strides[s]):
                size = shrunk(size, self.cfg.strides[s])
                total += (n_elements(channels[s], size) if self.pool_type == "conv"
                          else (3 if self.pool_type == "max" else 1) * single_map(channels[s], size))
            total += stage.compute_conv_feature_map_size(size)
        return total + self.decoder.compute_conv_feature_map_size(input_size)

    @staticmethod
    def initialize(module: nn.Module) -> None:
        InitWeights_He(1e-2)(module)
