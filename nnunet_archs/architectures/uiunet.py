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

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from dynamic_network_architectures.architectures.abstract_arch import AbstractDynamicNetworkArchitectures
from dynamic_network_architectures.building_blocks.helper import get_matching_pool_op
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_archs.architectures.blocks import (ActivationTally, DilatedConvDropoutNormReLU, MaxPool, convolve,
                                               is_identity, max_pool, maybe_checkpoint, n_elements, shrunk, single_map,
                                               upsample_to)
from nnunet_archs.architectures.config import (IntOrSeq, UNetConfig, _as_int, build_unet_config, check_choice,
                                               per_stage)
from nnunet_archs.errors import UserError

POOL_TYPES = ("max", "conv", "avg")
CHECKPOINT_MODES = ("none", "rsu", "stages")
ORIGINAL_MID = "original"  # mid_ratio: the original's inner widths, block by block


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
        self.mid_channels, self.out_channels = mid_channels, out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.input_conv(x)
        h, skips = residual, []
        for j, conv in enumerate(self.encoder):
            if 0 < j <= len(self.pool_factors):
                h = max_pool(h, self.pool_factors[j - 1])
            h = conv(h)
            skips.append(h)
        d = self.bottom(h)
        for j in reversed(range(len(self.decoder))):
            if j < len(self.pool_factors):
                d = upsample_to(d, skips[j].shape[2:])
            d = self.decoder[j](torch.cat((d, skips[j]), 1))
        return d + residual

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        sizes = [list(input_size)]
        for factor in self.pool_factors:
            sizes.append(shrunk(sizes[-1], factor))
        sizes += [sizes[-1]] * (len(self.encoder) - len(sizes))
        total = self.input_conv.compute_conv_feature_map_size(input_size)
        total += single_map(self.out_channels, input_size)  # the residual sum
        for j, size in enumerate(sizes):
            total += self.encoder[j].compute_conv_feature_map_size(size)
            total += single_map(2 * self.mid_channels, size) + self.decoder[j].compute_conv_feature_map_size(size)
            if 0 < j <= len(self.pool_factors):
                total += single_map(self.mid_channels, size)  # pooled map (indices recomputed in backward)
        return total + self.bottom.compute_conv_feature_map_size(sizes[-1])


class InteractiveCrossAttention(nn.Module):
    """IC-A (``AsymBiChaFuseReduce`` in the original code): channel attention from the deeper feature gates the
    skip, spatial attention from the gated skip gates the deeper feature; both pass one shared conv block and are
    concatenated (2 x ``channels``).

    Takes the deeper feature at its own resolution: its 1x1 projection runs there and is upsampled after it,
    which equals projecting the upsampled map (a 1x1 convolution commutes with linear interpolation) at a
    fraction of the cost, and never holds the wider deeper feature at the skip's resolution."""

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

    def forward(self, deeper: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        projected = upsample_to(self.feature_high.conv(deeper), low.shape[2:])
        high = self.feature_high.all_modules[1:](projected)  # dropout, norm, nonlinearity
        channel_weights = self.channel_attention(high)
        reduced = self.spatial_reduce(low * channel_weights)
        pooled = torch.cat((reduced.mean(1, keepdim=True), reduced.amax(1, keepdim=True)), 1)
        spatial_weights = torch.sigmoid(self.spatial_attention(pooled))
        # the original's factor 2 scales the small weight maps, not full-size copies of the features (the same
        # numbers: scaling by 2 is exact in floating point)
        return torch.cat((self.post(low * (2 * channel_weights)), self.post(high * (2 * spatial_weights))), 1)

    def compute_conv_feature_map_size(self, size: Sequence[int]) -> np.int64:
        return (self.feature_high.compute_conv_feature_map_size(size)
                + 2 * self.post.compute_conv_feature_map_size(size)
                + self.spatial_reduce.compute_conv_feature_map_size(size)
                + 3 * single_map(self.channels, size)  # the gated skip and both gated inputs of ``post``
                + 8 * single_map(1, size))  # mean/max/attention maps


class UIUNetDecoder(nn.Module):
    """Outer decoder: upsample by size, IC-A (levels >= 1) or concatenation, an RSU per level; side heads on
    every level and the bottleneck, fused at full resolution. Holds nnU-Net's ``deep_supervision`` switch.

    Every class-dependent layer is in ``seg_layers`` (``sides``: the side heads; ``fuse``: their fusion), which
    nnU-Net's ``load_pretrained_weights`` leaves at its initialisation when fine-tuning to other classes."""

    def __init__(self, cfg: UNetConfig, heights: List[int], mid_channels: List[int], dilated: List[bool],
                 use_ica: bool, ica_reduction: int, side_kernels: List[List[int]], checkpoint: str):
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
        self.seg_layers = nn.ModuleDict({
            "sides": nn.ModuleList([
                cfg.conv_op(features[s], cfg.num_classes, side_kernels[s], 1,
                            [(k - 1) // 2 for k in side_kernels[s]], bias=True) for s in range(n)]),
            "fuse": cfg.conv_op(n * cfg.num_classes, cfg.num_classes, 1, bias=True)})
        self.cfg = cfg
        self.checkpoint = checkpoint
        self.register_load_state_dict_pre_hook(self._rename_keys_of_0_1_0)

    @staticmethod
    def _rename_keys_of_0_1_0(module, state_dict: dict, prefix: str, *args) -> None:
        """nnunet-archs 0.1.0 kept the side heads and their fusion as ``decoder.side_heads`` and ``decoder.fuse``;
        they are now under ``decoder.seg_layers``, so that fine-tuning to other classes skips them. Its
        checkpoints load unchanged."""
        for old, new in (("side_heads.", "seg_layers.sides."), ("fuse.", "seg_layers.fuse.")):
            for key in [k for k in state_dict if k.startswith(prefix + old)]:
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)

    def forward(self, skips: List[torch.Tensor]):
        d = skips[-1]
        decoded = []
        for s in reversed(range(len(self.stages))):
            d = maybe_checkpoint(self.checkpoint == "stages" and s > 0, self._level, s, d, skips[s])
            decoded.insert(0, d)
        sides = [head(f) for head, f in zip(self.seg_layers["sides"], decoded + [skips[-1]])]
        fused = self._fuse(sides)
        if not self.deep_supervision:
            return fused
        return [fused] + sides[1:-1]

    def _level(self, s: int, deeper: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if str(s) in self.fusions:
            x = self.fusions[str(s)](deeper, skip)
        else:
            x = torch.cat((upsample_to(deeper, skip.shape[2:]), skip), 1)
        # the full-resolution level is the network's last part: backward needs it first, so recomputing it would
        # cost time (UIU-Net's largest RSU) and lower no peak
        return maybe_checkpoint(self.checkpoint == "rsu" and s > 0, self.stages[s], x)

    def _fuse(self, sides: List[torch.Tensor]) -> torch.Tensor:
        """The original's 1x1 fusion of all sides upsampled to full resolution, computed as the sum of each side's
        share of that 1x1 map, upsampled: the same linear map (a 1x1 convolution commutes with linear
        interpolation), without a (sides x classes)-channel concatenation at full resolution."""
        fuse, classes = self.seg_layers["fuse"], self.cfg.num_classes
        fused = convolve(sides[0], fuse.weight[:, :classes], fuse.bias)
        for s, side in enumerate(sides[1:], start=1):
            fused = fused + upsample_to(convolve(side, fuse.weight[:, s * classes:(s + 1) * classes]),
                                        fused.shape[2:])
        return fused

    def tally_activations(self, tally: ActivationTally, input_size: Sequence[int]) -> None:
        """Add the decoder's activations, level by level as ``forward`` checkpoints them, to ``tally``."""
        cfg, features = self.cfg, self.cfg.features_per_stage
        sizes = [shrunk(input_size, p) for p in cfg.cumulative_strides]
        for s in reversed(range(len(self.stages))):
            in_channels = 2 * features[s] if str(s) in self.fusions else features[s + 1] + features[s]
            merge = single_map(in_channels, sizes[s])  # the RSU's input: concatenation of both halves
            if str(s) in self.fusions:
                merge += self.fusions[str(s)].compute_conv_feature_map_size(sizes[s])
            rsu = self.stages[s].compute_conv_feature_map_size(sizes[s])
            kept = skip = single_map(features[s], sizes[s])  # the level's output; the encoder's skip it reads
            if self.checkpoint == "stages":
                tally.add(merge + rsu, kept, s > 0, skip)
            else:
                tally.add(merge, skips=skip)
                tally.add(rsu, kept, self.checkpoint == "rsu" and s > 0)
        # each side output (read by its share of the fusion) and the fused sum
        tally.add(sum(single_map(cfg.num_classes, size) for size in sizes) + single_map(cfg.num_classes, sizes[0]))


class DynamicUIUNet3D(AbstractDynamicNetworkArchitectures):
    """UIU-Net with nnU-Net's self-configured topology (3D, or 2D with ``conv_op=Conv2d``).

    Takes every keyword of DNA's ``PlainConvUNet`` (a plans ``arch_kwargs`` dict works with only
    ``network_class_name`` changed). ``n_conv_per_stage``/``n_conv_per_stage_decoder`` are accepted and checked
    but not used: every RSU level has one conv block, as in the original. UIU-Net options:

    Args:
        rsu_heights: RSU height per stage (decoder level s mirrors stage s); ``None`` = the height rule
            ``min(max(rsu_min_height, rsu_max_height - s), n_stages - s + 1)``, and ``rsu_min_height`` for the
            dilated stages: 7, 6, 5, 4, 4F, 4F for six stages, as the original.
        rsu_max_height, rsu_min_height: the height rule's bounds (the fork's minimal variant: 5 and 3).
        num_dilated_stages: how many of the deepest stages use the dilated RSU-F (original: 2).
        mid_ratio: RSU inner width relative to the stage width (at least 4 channels), or ``'original'``: the
            original's widths block by block, half the stage width in the first encoder stage and the dilated
            stages, a quarter elsewhere.
        use_ica: fuse decoder levels >= 1 with IC-A (UIU-Net's distinguishing module); off = U^2-Net-style concat.
        ica_reduction: IC-A bottleneck reduction ``r``.
        side_kernel: side-head kernel, ``'stage'`` (the stage's kernel; 3x3 in the original) or an odd int.
        pool_type: outer downsampling, ``'max'`` (original), ``'conv'`` (strided conv) or ``'avg'``.
        checkpoint: activation checkpointing (non-reentrant ``torch.utils.checkpoint``; same outputs and
            gradients): ``'none'``, ``'rsu'`` (every nested RSU block) or ``'stages'`` (every encoder stage and
            decoder level with its downsampling, IC-A or concatenation), except the full-resolution decoder
            level, the network's last part, which backward needs first. ``compute_conv_feature_map_size``
            counts what the mode keeps. With batch norm, checkpointed parts update its running statistics twice.
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
                 mid_ratio: Union[float, str] = 0.5,
                 use_ica: bool = True,
                 ica_reduction: int = 4,
                 side_kernel: Union[str, int] = "stage",
                 pool_type: str = "max",
                 checkpoint: str = "none",
                 n_blocks_per_stage: Optional[IntOrSeq] = None):
        super().__init__()
        cfg = build_unet_config(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                                n_conv_per_stage, num_classes, n_conv_per_stage_decoder, conv_bias, norm_op,
                                norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs,
                                deep_supervision, nonlin_first, n_blocks_per_stage)
        n = cfg.n_stages
        self.pool_type = check_choice("pool_type", pool_type, POOL_TYPES)
        self.checkpoint = check_choice("checkpoint", checkpoint, CHECKPOINT_MODES)
        num_dilated = _as_int("num_dilated_stages", num_dilated_stages, 0)
        if num_dilated > n:
            raise UserError(f"num_dilated_stages must be between 0 and n_stages={n}, got {num_dilated}")
        dilated = [s >= n - num_dilated for s in range(n)]
        heights = self._heights(cfg, rsu_heights, rsu_max_height, rsu_min_height, dilated)
        encoder_mid, decoder_mid = self._mid_channels(cfg, mid_ratio, dilated)
        check_choice("use_ica", use_ica, (True, False))
        ica_reduction = _as_int("ica_reduction", ica_reduction, 1)
        if side_kernel == "stage":
            side_kernels = cfg.kernel_sizes
        elif isinstance(side_kernel, int) and not isinstance(side_kernel, bool) and side_kernel > 0 \
                and side_kernel % 2 == 1:
            side_kernels = [[side_kernel] * cfg.dim] * n
        else:
            raise UserError(f"side_kernel must be 'stage' or an odd int >= 1, got {side_kernel!r}")
        self.cfg, self.heights = cfg, heights

        channels = [cfg.input_channels] + cfg.features_per_stage
        self.downsamples = nn.ModuleList([self._downsample(cfg, s, channels[s]) for s in range(n)])
        self.encoder = nn.ModuleList([
            ResidualUBlock(cfg, s, heights[s], channels[s], encoder_mid[s], cfg.features_per_stage[s], dilated[s])
            for s in range(n)])
        self.decoder = UIUNetDecoder(cfg, heights, decoder_mid, dilated, use_ica, ica_reduction, side_kernels,
                                     self.checkpoint)

        self.key_to_encoder = "encoder"
        self.key_to_stem = "encoder.0"
        self.keys_to_in_proj = ("encoder.0.input_conv.conv", "encoder.0.input_conv.all_modules.0")

    @staticmethod
    def _mid_channels(cfg: UNetConfig, mid_ratio: Union[float, str],
                      dilated: List[bool]) -> Tuple[List[int], List[int]]:
        """RSU inner widths of the encoder stages and the decoder levels."""
        features = cfg.features_per_stage
        if mid_ratio == ORIGINAL_MID:  # UIU-Net's RSU7(in, 32, 64), RSU6(64, 32, 128), ..., RSU7(128, 16, 64)
            encoder = [f // 2 if s == 0 or dilated[s] else f // 4 for s, f in enumerate(features)]
            decoder = [f // 2 if dilated[s] else f // 4 for s, f in enumerate(features)]
        elif isinstance(mid_ratio, bool) or not isinstance(mid_ratio, (int, float)) or mid_ratio <= 0:
            raise UserError(f"mid_ratio must be a number > 0 or {ORIGINAL_MID!r}, got {mid_ratio!r}")
        else:
            encoder = decoder = [int(f * mid_ratio) for f in features]
        return [max(4, m) for m in encoder], [max(4, m) for m in decoder]

    @staticmethod
    def _heights(cfg: UNetConfig, rsu_heights: Optional[IntOrSeq], max_height: int, min_height: int,
                 dilated: List[bool]) -> List[int]:
        n = cfg.n_stages
        if rsu_heights is None:
            max_height = _as_int("rsu_max_height", max_height, 2)
            min_height = _as_int("rsu_min_height", min_height, 2)
            if min_height > max_height:
                raise UserError(f"rsu_min_height ({min_height}) must not exceed rsu_max_height ({max_height})")
            return [min_height if dilated[s] else min(max(min_height, max_height - s), n - s + 1)
                    for s in range(n)]
        heights = per_stage("rsu_heights", rsu_heights, n, minimum=2)
        for s, height in enumerate(heights):
            if not dilated[s] and height - 2 > n - 1 - s:
                raise UserError(f"rsu_heights[{s}]={height} needs {height - 2} inner poolings, but only {n - 1 - s} "
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
        if self.pool_type == "max":  # its input is read again as a skip but not kept for backward: keep indices
            return MaxPool(stride)
        return get_matching_pool_op(cfg.conv_op, pool_type=self.pool_type)(stride, stride)

    def forward(self, x: torch.Tensor):
        self.cfg.check_input(x)
        skips = []
        for s in range(self.cfg.n_stages):
            x = maybe_checkpoint(self.checkpoint == "stages", self._stage, s, x)
            skips.append(x)
        return self.decoder(skips)

    def _stage(self, s: int, x: torch.Tensor) -> torch.Tensor:
        return maybe_checkpoint(self.checkpoint == "rsu", self.encoder[s], self.downsamples[s](x))

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Activation elements of one sample on the scale of PlainConvUNet's estimate: every nested RSU level,
        IC-A maps, side outputs and the fused map, as far as the ``checkpoint`` mode keeps them, plus the
        largest checkpointed part recomputed in backward."""
        size = list(input_size)
        tally = ActivationTally()
        channels = [self.cfg.input_channels] + self.cfg.features_per_stage
        for s, stage in enumerate(self.encoder):
            downsample = np.int64(0)
            if not is_identity(self.cfg.strides[s]):
                size = shrunk(size, self.cfg.strides[s])
                # a strided conv block; a pooled map (and, for max-pooling, its int64 indices: 4 half-precision
                # maps under nnU-Net's autocast)
                downsample = (n_elements(channels[s], size) if self.pool_type == "conv"
                              else (5 if self.pool_type == "max" else 1) * single_map(channels[s], size))
            rsu, kept = stage.compute_conv_feature_map_size(size), single_map(channels[s + 1], size)
            if self.checkpoint == "stages":
                tally.add(downsample + rsu, kept, True)
            else:
                tally.add(downsample)
                tally.add(rsu, kept, self.checkpoint == "rsu")
        self.decoder.tally_activations(tally, input_size)
        return tally.total

    @staticmethod
    def initialize(module: nn.Module) -> None:
        InitWeights_He(1e-2)(module)
