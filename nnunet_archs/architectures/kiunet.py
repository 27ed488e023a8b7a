"""DynamicKiUNet: KiU-Net for nnU-Net v2, in 2D and 3D, for any plans configuration.

KiU-Net (Valanarasu et al., "KiU-Net: Towards Accurate Segmentation of Biomedical Images using Over-complete
Representations", MICCAI 2020, arXiv:2006.04878; 3D extension in IEEE TMI, arXiv:2010.01663) runs an
undercomplete U-Net branch beside an overcomplete "Ki-Net" branch whose encoder *upsamples* (conv, then
upsample) so that its receptive field stays small and fine structures survive. Cross-residual fusion blocks
(CRFB) exchange features between the two branches at every stage where their resolutions differ.

What this port changes, and why (see ``docs`` in the README):
- the U-Net branch is exactly nnU-Net's PlainConvUNet (DNA ``PlainConvEncoder`` + ``UNetDecoder`` stages),
  so skips are concatenated as nnU-Net does; the Ki branch merges its skips by addition, as the original;
- the Ki branch mirrors the planned strides per axis (an anisotropic ``[1, 2, 2]`` stage upsamples in-plane
  only), its cumulative upsampling is capped per axis (``ki_max_scale``, ``None`` = the original's unlimited
  2D behaviour) and it is narrow and ``ki_num_stages`` deep, because a full-width overcomplete branch costs
  ~200x a U-Net's activations in 3D;
- CRFBs resize by target size (the original's fixed 4**i factors are the same thing on valid inputs, and
  break elsewhere) and run their convolutions at the U-Net's (lower) resolution;
- the logits are never passed through the original's output ReLU; deep-supervision outputs come from the
  U-Net decoder, and the fused full-resolution output comes first, as nnU-Net expects.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from dynamic_network_architectures.architectures.abstract_arch import AbstractDynamicNetworkArchitectures
from dynamic_network_architectures.building_blocks.helper import get_matching_pool_op
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU, StackedConvBlocks
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_archs.architectures.blocks import (downsample_to, is_identity, scaled_size, shrunk, single_map,
                                               upsample_to)
from nnunet_archs.architectures.config import (IntOrSeq, UNetConfig, build_unet_config, check_choice, per_axis,
                                               per_stage, _as_int)

POOL_TYPES = ("conv", "max", "avg")
SKIP_PLACEMENTS = ("after", "before")
FUSIONS = ("mean_logits", "feature_add")


class KiBranchStage(nn.Module):
    """One overcomplete encoder stage: a conv block at the current resolution, then upsampling by ``up_factor``
    (KiU-Net's "conv then upsample" order keeps the convolution at the cheaper resolution). One conv per
    block, as every block of the original; two doubled the Ki branch's step time for little reach."""

    def __init__(self, cfg: UNetConfig, stage: int, in_channels: int, out_channels: int, up_factor: List[int]):
        super().__init__()
        self.convs = StackedConvBlocks(1, cfg.conv_op, in_channels, out_channels, cfg.kernel_sizes[stage], 1,
                                       **cfg.block_kwargs)
        self.out_channels = out_channels
        self.up_factor = up_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        if is_identity(self.up_factor):
            return x
        return upsample_to(x, scaled_size(x.shape[2:], self.up_factor))

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        total = self.convs.compute_conv_feature_map_size(input_size)
        if not is_identity(self.up_factor):
            total += single_map(self.out_channels, scaled_size(input_size, self.up_factor))
        return total


class KiDecoderStage(nn.Module):
    """One overcomplete decoder stage: a conv block, max-pooling back down by ``down_factor`` (the original's
    conv -> max-pool order), then the additive Ki skip."""

    def __init__(self, cfg: UNetConfig, level: int, in_channels: int, out_channels: int, down_factor: List[int]):
        super().__init__()
        self.convs = StackedConvBlocks(1, cfg.conv_op, in_channels, out_channels, cfg.kernel_sizes[level],
                                       1, **cfg.block_kwargs)
        self.out_channels = out_channels
        self.down_factor = down_factor
        self.pool = (nn.Identity() if is_identity(down_factor)
                     else get_matching_pool_op(cfg.conv_op, pool_type="max")(down_factor, down_factor))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.pool(self.convs(x)) + skip

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        output_size = shrunk(input_size, self.down_factor)
        total = self.convs.compute_conv_feature_map_size(input_size) + single_map(self.out_channels, output_size)
        if not is_identity(self.down_factor):
            total += 2 * single_map(self.out_channels, output_size)  # int64 pooling indices
        return total


class CrossRefinementBlock(nn.Module):
    """KiU-Net's cross residual fusion block: each branch adds a projection of the other, resized by target size.

    Both directions read the pre-exchange tensors, as in the original. Both convolutions run at the U-Net's
    resolution, the lower of the two: the Ki map is area-downsampled *before* its projection and the U map is
    upsampled *after* its projection. With the default 1x1 kernel this equals the original's resize-then-conv
    up to where norm and nonlinearity sit, and never materialises a projected map at the overcomplete size
    twice.
    """

    def __init__(self, cfg: UNetConfig, u_channels: int, ki_channels: int, kernel_size: List[int]):
        super().__init__()
        self.ki_to_u = ConvDropoutNormReLU(cfg.conv_op, ki_channels, u_channels, kernel_size, 1, **cfg.block_kwargs)
        self.u_to_ki = ConvDropoutNormReLU(cfg.conv_op, u_channels, ki_channels, kernel_size, 1, **cfg.block_kwargs)
        self.u_channels = u_channels
        self.ki_channels = ki_channels

    def forward(self, u: torch.Tensor, ki: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        u_out = u + self.ki_to_u(downsample_to(ki, u.shape[2:]))
        ki_out = ki + upsample_to(self.u_to_ki(u), ki.shape[2:])
        return u_out, ki_out

    def compute_conv_feature_map_size(self, u_size: Sequence[int], ki_size: Sequence[int]) -> np.int64:
        at_u = (single_map(self.ki_channels, u_size)  # downsampled Ki map
                + self.ki_to_u.compute_conv_feature_map_size(u_size)
                + self.u_to_ki.compute_conv_feature_map_size(u_size)
                + single_map(self.u_channels, u_size))  # refined U map
        return at_u + single_map(self.ki_channels, ki_size)  # refined Ki map


class KiUNetDecoder(UNetDecoder):
    """nnU-Net's UNetDecoder (same modules, same state-dict keys) plus the Ki decoder, CRFBs and the fusion head.

    ``deep_supervision`` lives here and is read in ``forward``: nnU-Net's trainer toggles
    ``network.decoder.deep_supervision``.
    """

    def __init__(self, encoder: PlainConvEncoder, cfg: UNetConfig, ki_channels: List[int],
                 ki_scales: List[List[int]], crfb_kernel_size: List[int], fusion: str):
        super().__init__(encoder, cfg.num_classes, cfg.n_conv_per_stage_decoder, cfg.deep_supervision,
                         nonlin_first=cfg.nonlin_first)
        n_ki = len(ki_channels)
        shrink = cfg.cumulative_strides
        self.ki_stages = nn.ModuleList([
            KiDecoderStage(cfg, s, ki_channels[s + 1], ki_channels[s],
                           [a // b for a, b in zip(ki_scales[s + 1], ki_scales[s])])
            for s in range(n_ki - 1)])
        self.crfbs = nn.ModuleDict({
            str(s): CrossRefinementBlock(cfg, cfg.features_per_stage[s], ki_channels[s], crfb_kernel_size)
            for s in range(n_ki - 1) if not is_identity(shrink[s])})
        self.fusion = fusion
        head_channels = cfg.num_classes if fusion == "mean_logits" else cfg.features_per_stage[0]
        # mean_logits: Ki logits averaged with the U-Net's; feature_add: Ki features added before the U-Net's head
        self.ki_head = cfg.conv_op(ki_channels[0], head_channels, 1, 1, 0, bias=True)
        self.ki_scales = ki_scales
        self.shrink = shrink

    def forward(self, u_skips: List[torch.Tensor], ki_skips: List[torch.Tensor]):
        x, ki = u_skips[-1], ki_skips[-1]
        n_levels = len(self.stages)
        aux_outputs = []
        for i in range(n_levels):
            level = n_levels - 1 - i
            x = self.stages[i](torch.cat((self.transpconvs[i](x), u_skips[level]), 1))
            if level < len(ki_skips) - 1:
                ki = self.ki_stages[level](ki, ki_skips[level])
                if str(level) in self.crfbs:
                    x, ki = self.crfbs[str(level)](x, ki)
            if self.deep_supervision and level > 0:
                aux_outputs.append(self.seg_layers[i](x))
        ki = self.ki_head(ki)
        if ki.shape[2:] != x.shape[2:]:
            ki = downsample_to(ki, x.shape[2:])
        if self.fusion == "mean_logits":
            final = (self.seg_layers[-1](x) + ki) / 2
        else:
            final = self.seg_layers[-1](x + ki)
        if not self.deep_supervision:
            return final
        return [final] + aux_outputs[::-1]

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        total = super().compute_conv_feature_map_size(input_size)
        ki_size = [scaled_size(input_size, q) for q in self.ki_scales]
        u_size = [shrunk(input_size, p) for p in self.shrink]
        for s, stage in enumerate(self.ki_stages):
            total += stage.compute_conv_feature_map_size(ki_size[s + 1])
            if str(s) in self.crfbs:
                total += self.crfbs[str(s)].compute_conv_feature_map_size(u_size[s], ki_size[s])
        head_channels = self.ki_head.out_channels
        total += single_map(head_channels, ki_size[0]) + single_map(self.num_classes, u_size[0])  # Ki head, fused
        if ki_size[0] != u_size[0]:
            total += single_map(head_channels, u_size[0])
        if self.fusion == "feature_add":
            total += single_map(head_channels, u_size[0])
        return total


class DynamicKiUNet(AbstractDynamicNetworkArchitectures):
    """KiU-Net with nnU-Net's self-configured topology (2D or 3D, chosen by ``conv_op``).

    Takes every keyword of DNA's ``PlainConvUNet`` (so a plans ``arch_kwargs`` dict works with only
    ``network_class_name`` changed), plus:

    Args:
        pool_type: U-Net downsampling: ``'conv'`` (strided conv, nnU-Net's default), ``'max'`` (closest to the
            original KiU-Net) or ``'avg'``.
        ki_features_per_stage: Ki-branch width, an int or one int per Ki stage. Default: a constant
            ``max(8, features_per_stage[0] // 4)`` in 2D and ``max(4, features_per_stage[0] // 8)`` in 3D.
        ki_num_stages: how many stages carry a Ki branch (>= 1; the original has 3). Clipped to ``n_stages``.
        ki_max_scale: per-axis cap on the Ki branch's cumulative upsampling relative to the input, a power of
            two (int or one per axis). ``None`` = unlimited: the Ki branch mirrors every planned stride, like
            the original 2D KiU-Net. ``1`` = a full-resolution second branch, no overcomplete projection.
        crfb_kernel_size: kernel of the CRFB projections (odd; int or per axis). 1 = the seed fork's choice,
            3 = the original's.
        skip_placement: whether skips are stored ``'after'`` the CRFB (the original) or ``'before'`` it
            (the seed fork's).
        fusion: ``'mean_logits'`` (average of the U-Net and Ki heads' logits) or ``'feature_add'`` (Ki features
            projected and added to the U-Net's before its head, as the original; no ReLU on the logits).
        n_blocks_per_stage: accepted only to reject Residual-Encoder plans with a clear message.

    With ``deep_supervision`` on, ``forward`` returns ``n_stages - 1`` logit tensors, full resolution first,
    entry i at ``input / prod(strides[:i + 1])``; off, one tensor. The parameter set does not depend on it.
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
                 pool_type: str = "conv",
                 ki_features_per_stage: Optional[IntOrSeq] = None,
                 ki_num_stages: int = 3,
                 ki_max_scale: Optional[IntOrSeq] = 2,
                 crfb_kernel_size: IntOrSeq = 1,
                 skip_placement: str = "after",
                 fusion: str = "mean_logits",
                 n_blocks_per_stage: Optional[IntOrSeq] = None):
        super().__init__()
        cfg = build_unet_config(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                                n_conv_per_stage, num_classes, n_conv_per_stage_decoder, conv_bias, norm_op,
                                norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs,
                                deep_supervision, nonlin_first, n_blocks_per_stage)
        self.pool_type = check_choice("pool_type", pool_type, POOL_TYPES)
        self.skip_placement = check_choice("skip_placement", skip_placement, SKIP_PLACEMENTS)
        check_choice("fusion", fusion, FUSIONS)
        n_ki = min(_as_int("ki_num_stages", ki_num_stages, 1), cfg.n_stages)
        ki_channels = self._ki_channels(cfg, ki_features_per_stage, n_ki)
        ki_scales = self._ki_scales(cfg, ki_max_scale)[:n_ki]
        crfb_kernel = per_axis("crfb_kernel_size", crfb_kernel_size, cfg.dim)
        if any(k % 2 == 0 for k in crfb_kernel):
            raise ValueError(f"crfb_kernel_size must be odd along every axis, got {crfb_kernel_size!r}")
        self.cfg = cfg

        self.encoder = PlainConvEncoder(cfg.input_channels, cfg.n_stages, cfg.features_per_stage, cfg.conv_op,
                                        cfg.kernel_sizes, cfg.strides, cfg.n_conv_per_stage, return_skips=True,
                                        pool=pool_type, **cfg.block_kwargs)
        previous_scales = [[1] * cfg.dim] + ki_scales[:-1]
        self.ki_encoder = nn.ModuleList([
            KiBranchStage(cfg, s, ([cfg.input_channels] + ki_channels)[s], ki_channels[s],
                          [a // b for a, b in zip(ki_scales[s], previous_scales[s])])
            for s in range(n_ki)])
        self.encoder_crfbs = nn.ModuleDict({
            str(s): CrossRefinementBlock(cfg, cfg.features_per_stage[s], ki_channels[s], crfb_kernel)
            for s in range(n_ki) if not is_identity(cfg.cumulative_strides[s])})
        self.decoder = KiUNetDecoder(self.encoder, cfg, ki_channels, ki_scales, crfb_kernel, fusion)

        self.key_to_encoder = "encoder.stages"
        self.key_to_stem = "encoder.stages.0"
        # DNA's pretraining loader expects equally shaped input projections, so only the U-Net stem is listed
        self.keys_to_in_proj = (f"encoder.stages.0.{len(self.encoder.stages[0]) - 1}.convs.0.conv",)

    @staticmethod
    def _ki_channels(cfg: UNetConfig, ki_features_per_stage: Optional[IntOrSeq], n_ki: int) -> List[int]:
        if ki_features_per_stage is None:
            # narrow, as the authors' own 3D code (1-2 channels); wider doubled the step time (BENCHMARKS.md)
            ki_features_per_stage = max(8, cfg.features_per_stage[0] // 4) if cfg.dim == 2 else \
                max(4, cfg.features_per_stage[0] // 8)
        return per_stage(f"ki_features_per_stage (one per Ki stage: min(ki_num_stages, n_stages) = {n_ki})",
                         ki_features_per_stage, n_ki)

    @staticmethod
    def _ki_scales(cfg: UNetConfig, ki_max_scale: Optional[IntOrSeq]) -> List[List[int]]:
        """Cumulative Ki upsampling per stage and axis: the U-Net's cumulative strides, capped."""
        if ki_max_scale is None:
            return cfg.cumulative_strides
        cap = per_axis("ki_max_scale", ki_max_scale, cfg.dim)
        if any(c & (c - 1) for c in cap):
            raise ValueError(f"ki_max_scale must be None or a power of two (1, 2, 4, ...) per axis, "
                             f"got {ki_max_scale!r}")
        return [[min(p, c) for p, c in zip(stage, cap)] for stage in cfg.cumulative_strides]

    def forward(self, x: torch.Tensor):
        self.cfg.check_input(x)
        n_ki, last = len(self.ki_encoder), self.cfg.n_stages - 1
        keep_pre_crfb = self.skip_placement == "before"
        u_skips, ki_skips = [], []
        u = ki = x
        for s, stage in enumerate(self.encoder.stages):
            u = stage(u)
            if s >= n_ki:
                u_skips.append(u)
                continue
            ki = self.ki_encoder[s](ki)
            u_pre, ki_pre = u, ki
            if str(s) in self.encoder_crfbs:
                u, ki = self.encoder_crfbs[str(s)](u, ki)
            # the deepest tensors start the decoders, so they always carry the exchange (else its convs idle)
            u_skips.append(u_pre if keep_pre_crfb and s < last else u)
            ki_skips.append(ki_pre if keep_pre_crfb and s < n_ki - 1 else ki)
        return self.decoder(u_skips, ki_skips)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Activation elements of one sample, on the scale of PlainConvUNet's estimate (nnU-Net's planner unit)."""
        input_size = per_axis("input_size (spatial only)", list(input_size), self.cfg.dim)
        total = np.int64(0)
        size = input_size
        channels = [self.cfg.input_channels] + self.cfg.features_per_stage
        for s, stage in enumerate(self.encoder.stages):
            convs = stage[-1]
            if self.pool_type == "conv":
                total += convs.compute_conv_feature_map_size(size)
                size = shrunk(size, self.cfg.strides[s])
            else:
                size = shrunk(size, self.cfg.strides[s])
                if len(stage) > 1:
                    total += single_map(channels[s], size)  # pooled map
                total += convs.compute_conv_feature_map_size(size)
        ki_size = input_size
        for s, stage in enumerate(self.ki_encoder):
            total += stage.compute_conv_feature_map_size(ki_size)
            ki_size = scaled_size(ki_size, stage.up_factor)
            if str(s) in self.encoder_crfbs:
                u_size = shrunk(input_size, self.cfg.cumulative_strides[s])
                total += self.encoder_crfbs[str(s)].compute_conv_feature_map_size(u_size, ki_size)
        return total + self.decoder.compute_conv_feature_map_size(input_size)

    @staticmethod
    def initialize(module: nn.Module) -> None:
        InitWeights_He(1e-2)(module)
