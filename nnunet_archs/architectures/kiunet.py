"""DynamicKiUNet: KiU-Net for nnU-Net v2, in 2D and 3D, for any plans configuration.

KiU-Net (Valanarasu et al., "KiU-Net: Towards Accurate Segmentation of Biomedical Images using Over-complete
Representations", MICCAI 2020, arXiv:2006.04878; 3D extension in IEEE TMI, arXiv:2010.01663) runs an
undercomplete U-Net branch beside an overcomplete "Ki-Net" branch whose encoder *upsamples* (conv, then
upsample) so that its receptive field stays small and fine structures survive. Cross-residual fusion blocks
(CRFB) exchange features between the two branches at every stage where their resolutions differ.

What this port changes by default, and why (the README's departures table lists each with its measurement;
the ``KiUNet-original`` preset undoes every change that does not break nnU-Net's contract):
- the U-Net branch is exactly nnU-Net's PlainConvUNet (DNA ``PlainConvEncoder`` + ``UNetDecoder`` stages),
  so skips are concatenated as nnU-Net does; the Ki branch merges its skips by addition, as the original;
- the Ki branch mirrors the planned strides per axis (an anisotropic ``[1, 2, 2]`` stage upsamples in-plane
  only), its cumulative upsampling is capped per axis (``ki_max_scale``), and it is narrow and three stages
  deep (nnU-Net's first stage has stride 1, so it runs at 1x, 2x, 2x the input), because a full-width
  overcomplete branch costs ~200x a U-Net's activations in 3D;
- CRFBs resize by target size (the same sizes as the original's fixed 4**i factors on valid inputs, which break
  elsewhere), downsample by area averaging where the original's bilinear resize subsamples, and by default run
  both projections at the U-Net's (lower) resolution;
- the logits are never passed through the original's output ReLU; deep-supervision outputs come from the
  U-Net decoder, and the fused full-resolution output comes first, as nnU-Net expects.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from dynamic_network_architectures.architectures.abstract_arch import AbstractDynamicNetworkArchitectures
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU, StackedConvBlocks
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_archs.architectures.blocks import (ActivationTally, MaxPool, channels_last_on_cpu, downsample_to,
                                               is_identity, max_pool, maybe_checkpoint, n_elements, scaled_size, shrunk,
                                               single_map, upsample_to)
from nnunet_archs.architectures.config import (IntOrSeq, UNetConfig, build_unet_config, check_choice, per_axis,
                                               per_stage, _as_int)
from nnunet_archs.errors import UserError

POOL_TYPES = ("conv", "max", "avg")
SKIP_PLACEMENTS = ("after", "before")
FUSIONS = ("mean_logits", "feature_add")
CRFB_RESOLUTIONS = ("lower", "source")
CHECKPOINT_MODES = ("none", "ki", "stages")
UNET_WIDTHS = "unet"  # ki_features_per_stage: the U-Net's width at every Ki stage, as the original


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
        x = self.convs(channels_last_on_cpu(x))
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
    conv -> max-pool order; the argmax indices are recomputed in backward, not stored), then the additive skip."""

    def __init__(self, cfg: UNetConfig, level: int, in_channels: int, out_channels: int, down_factor: List[int]):
        super().__init__()
        self.convs = StackedConvBlocks(1, cfg.conv_op, in_channels, out_channels, cfg.kernel_sizes[level],
                                       1, **cfg.block_kwargs)
        self.out_channels = out_channels
        self.down_factor = down_factor

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.convs(channels_last_on_cpu(x))
        if not is_identity(self.down_factor):
            x = max_pool(x, self.down_factor)
        return x + skip

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        return (self.convs.compute_conv_feature_map_size(input_size)
                + single_map(self.out_channels, shrunk(input_size, self.down_factor)))  # the sum with the skip


class CrossRefinementBlock(nn.Module):
    """KiU-Net's cross residual fusion block: each branch adds a projection of the other, resized by target size.

    Both directions read the pre-exchange tensors, as in the original. With ``resolution='lower'`` both
    convolutions run at the U-Net's resolution, the lower of the two: the Ki map is area-downsampled *before*
    its projection and the U map is upsampled *after* its projection, so no projected map is ever held at the
    overcomplete size. ``'source'`` runs each projection at its input's resolution, as the original does (the
    Ki->U convolution at the Ki resolution, then downsampled).
    """

    def __init__(self, cfg: UNetConfig, u_channels: int, ki_channels: int, kernel_size: List[int],
                 resolution: str = "lower"):
        super().__init__()
        self.ki_to_u = ConvDropoutNormReLU(cfg.conv_op, ki_channels, u_channels, kernel_size, 1, **cfg.block_kwargs)
        self.u_to_ki = ConvDropoutNormReLU(cfg.conv_op, u_channels, ki_channels, kernel_size, 1, **cfg.block_kwargs)
        self.u_channels = u_channels
        self.ki_channels = ki_channels
        self.resolution = resolution

    def forward(self, u: torch.Tensor, ki: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.resolution == "lower":
            u_out = u + self.ki_to_u(downsample_to(ki, u.shape[2:]))
        else:
            u_out = u + downsample_to(self.ki_to_u(ki), u.shape[2:])
        ki_out = ki + upsample_to(self.u_to_ki(u), ki.shape[2:])
        return u_out, ki_out

    def compute_conv_feature_map_size(self, u_size: Sequence[int], ki_size: Sequence[int]) -> np.int64:
        if self.resolution == "lower":
            ki_to_u = single_map(self.ki_channels, u_size) + self.ki_to_u.compute_conv_feature_map_size(u_size)
        else:
            ki_to_u = self.ki_to_u.compute_conv_feature_map_size(ki_size)
        return (ki_to_u + self.u_to_ki.compute_conv_feature_map_size(u_size)
                + single_map(self.u_channels, u_size) + single_map(self.ki_channels, ki_size))  # refined maps

    def largest_map(self, u_size: Sequence[int], ki_size: Sequence[int]) -> np.int64:
        projected = n_elements(self.u_channels, ki_size if self.resolution == "source" else u_size)
        return max(projected, n_elements(self.ki_channels, ki_size))


class KiUNetDecoder(UNetDecoder):
    """nnU-Net's UNetDecoder (same modules, same state-dict keys) plus the Ki decoder, CRFBs and the fusion head.

    ``deep_supervision`` lives here and is read in ``forward``: nnU-Net's trainer toggles
    ``network.decoder.deep_supervision``. Every class-dependent layer is in ``seg_layers``, which nnU-Net's
    ``load_pretrained_weights`` leaves at its initialisation when fine-tuning: DNA's U-Net heads, then (with
    ``fusion='mean_logits'``) the Ki head. With ``'feature_add'`` the Ki head projects onto the U-Net's
    features, does not depend on the classes and stays ``ki_head``.
    """

    def __init__(self, encoder: PlainConvEncoder, cfg: UNetConfig, ki_channels: List[int],
                 ki_scales: List[List[int]], crfb_kernel_size: List[int], crfb_resolution: str, fusion: str,
                 checkpoint: str):
        super().__init__(encoder, cfg.num_classes, cfg.n_conv_per_stage_decoder, cfg.deep_supervision,
                         nonlin_first=cfg.nonlin_first)
        n_ki = len(ki_channels)
        shrink = cfg.cumulative_strides
        self.ki_stages = nn.ModuleList([
            KiDecoderStage(cfg, s, ki_channels[s + 1], ki_channels[s],
                           [a // b for a, b in zip(ki_scales[s + 1], ki_scales[s])])
            for s in range(n_ki - 1)])
        self.crfbs = nn.ModuleDict({
            str(s): CrossRefinementBlock(cfg, cfg.features_per_stage[s], ki_channels[s], crfb_kernel_size,
                                         crfb_resolution)
            for s in range(n_ki - 1) if not is_identity(shrink[s])})
        self.fusion = fusion
        if fusion == "mean_logits":  # Ki logits averaged with the U-Net's
            self.seg_layers.append(cfg.conv_op(ki_channels[0], cfg.num_classes, 1, 1, 0, bias=True))
        else:  # Ki features projected onto the U-Net's and added before its head
            self.ki_head = cfg.conv_op(ki_channels[0], cfg.features_per_stage[0], 1, 1, 0, bias=True)
        self.ki_scales = ki_scales
        self.shrink = shrink
        self.checkpoint = checkpoint
        self.register_load_state_dict_pre_hook(self._rename_keys_of_0_1_0)

    def _rename_keys_of_0_1_0(self, module, state_dict: dict, prefix: str, *args) -> None:
        """nnunet-archs 0.1.0 kept the ``mean_logits`` Ki head as ``decoder.ki_head``; it is now the last of
        ``decoder.seg_layers``, so that fine-tuning to other classes skips it. Its checkpoints load unchanged."""
        if self.fusion != "mean_logits":
            return
        for name in ("weight", "bias"):
            old = f"{prefix}ki_head.{name}"
            if old in state_dict:
                state_dict[f"{prefix}seg_layers.{len(self.stages)}.{name}"] = state_dict.pop(old)

    def forward(self, u_skips: List[torch.Tensor], ki_skips: List[torch.Tensor]):
        x, ki = u_skips[-1], ki_skips[-1]
        n_levels = len(self.stages)
        aux_outputs = []
        for i in range(n_levels):
            level = n_levels - 1 - i
            u_checkpoint, ki_checkpoint = self._checkpointed(level)
            x = maybe_checkpoint(u_checkpoint, self._u_level, i, x, u_skips[level])
            if level < len(ki_skips) - 1:
                x, ki = maybe_checkpoint(ki_checkpoint, self._ki_level, level, x, ki, ki_skips[level])
            if self.deep_supervision and level > 0:
                aux_outputs.append(self.seg_layers[i](x))
        if self.fusion == "mean_logits":
            ki = self.seg_layers[n_levels](ki)
        else:
            ki = self.ki_head(ki)
        if ki.shape[2:] != x.shape[2:]:
            ki = downsample_to(ki, x.shape[2:])
        if self.fusion == "mean_logits":
            final = (self.seg_layers[n_levels - 1](x) + ki) / 2
        else:
            final = self.seg_layers[n_levels - 1](x + ki)
        if not self.deep_supervision:
            return final
        return [final] + aux_outputs[::-1]

    def _checkpointed(self, level: int) -> Tuple[bool, bool]:
        """Whether the U-Net part and the Ki part of decoder ``level`` run checkpointed. As the encoder, 'stages'
        checkpoints them separately. The last part of the network (the Ki part of level 0, or its U-Net part
        where it has none) never is: backward needs it first, so recomputing it costs time and lowers no peak."""
        has_ki = level < len(self.ki_stages)
        u_part = self.checkpoint == "stages" and not (level == 0 and not has_ki)
        ki_part = self.checkpoint != "none" and level > 0
        return u_part, ki_part

    def _u_level(self, i: int, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.stages[i](torch.cat((self.transpconvs[i](x), skip), 1))

    def _ki_level(self, level: int, x: torch.Tensor, ki: torch.Tensor,
                  ki_skip: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        ki = self.ki_stages[level](ki, ki_skip)
        if str(level) in self.crfbs:
            x, ki = self.crfbs[str(level)](x, ki)
        return x, ki

    def tally_activations(self, tally: ActivationTally, input_size: Sequence[int]) -> None:
        """Add the decoder's activations, level by level as ``forward`` checkpoints them, to ``tally``."""
        ki_size = [scaled_size(input_size, q) for q in self.ki_scales]
        u_size = [shrunk(input_size, p) for p in self.shrink]
        features = self.encoder.output_channels
        n_levels = len(self.stages)
        for i in range(n_levels):
            level = n_levels - 1 - i
            u_checkpoint, ki_checkpoint = self._checkpointed(level)
            u_full = (self.stages[i].compute_conv_feature_map_size(u_size[level])
                      + n_elements(features[level], u_size[level]))  # transposed-conv output, DNA's unit
            u_kept = u_skip = single_map(features[level], u_size[level])
            u_largest = n_elements(features[level], u_size[level])
            if level < len(self.ki_stages):
                ki_stage = self.ki_stages[level]
                ki_full = ki_stage.compute_conv_feature_map_size(ki_size[level + 1])
                ki_kept = ki_skip = single_map(ki_stage.out_channels, ki_size[level])
                ki_largest = n_elements(ki_stage.out_channels, ki_size[level + 1])  # its conv, before pooling
                if str(level) in self.crfbs:
                    crfb = self.crfbs[str(level)]
                    ki_full += crfb.compute_conv_feature_map_size(u_size[level], ki_size[level])
                    ki_kept += single_map(features[level], u_size[level])  # the refined U map
                    ki_largest = max(ki_largest, crfb.largest_map(u_size[level], ki_size[level]))
                tally.add(u_full, u_kept, u_checkpoint, u_skip, u_largest)
                tally.add(ki_full, ki_kept, ki_checkpoint, ki_skip, ki_largest)
            else:
                tally.add(u_full, u_kept, u_checkpoint, u_skip, u_largest)
            if self.deep_supervision and level > 0:
                tally.add(n_elements(self.num_classes, u_size[level]))
        head = self.seg_layers[n_levels] if self.fusion == "mean_logits" else self.ki_head
        tally.add(single_map(head.out_channels, ki_size[0]) + single_map(self.num_classes, u_size[0]))  # Ki head, fused
        if ki_size[0] != u_size[0]:
            tally.add(single_map(head.out_channels, u_size[0]))
        if self.fusion == "feature_add":
            tally.add(single_map(head.out_channels, u_size[0]))
        tally.add(n_elements(self.num_classes, u_size[0]))  # the U-Net's final logits, as DNA counts them


class DynamicKiUNet(AbstractDynamicNetworkArchitectures):
    """KiU-Net with nnU-Net's self-configured topology (2D or 3D, chosen by ``conv_op``).

    Takes every keyword of DNA's ``PlainConvUNet`` (so a plans ``arch_kwargs`` dict works with only
    ``network_class_name`` changed), plus:

    Args:
        pool_type: U-Net downsampling: ``'conv'`` (strided conv, nnU-Net's default), ``'max'`` (max-pooling, as
            the original, though before the stage's convolutions as DNA does, where the original pools after
            its single conv) or ``'avg'``.
        ki_features_per_stage: Ki-branch width, an int, one int per Ki stage, or ``'unet'`` (the U-Net's width
            at each Ki stage, as the original). Default: a constant ``max(8, features_per_stage[0] // 4)`` in 2D
            and ``max(4, features_per_stage[0] // 8)`` in 3D.
        ki_num_stages: how many stages carry a Ki branch (>= 1). Clipped to ``n_stages``. nnU-Net's first stage
            has stride 1, so the original's three upsampling Ki blocks are ``ki_num_stages=4``.
        ki_max_scale: per-axis cap on the Ki branch's cumulative upsampling relative to the input, a power of
            two (int or one per axis). ``None`` = unlimited: the Ki branch mirrors every planned stride (with
            ``ki_num_stages=4``: 2x, 4x, 8x over the first three downsamplings, as the original). ``1`` = a
            full-resolution second branch, no overcomplete projection.
        crfb_kernel_size: kernel of the CRFB projections (odd; int or per axis). 1 = the fork aymuos15/nnUNet's;
            the original's is 3, with ``crfb_resolution='source'``.
        crfb_resolution: where the CRFB projections run: ``'lower'`` (both at the U-Net's resolution) or
            ``'source'`` (each at its input's resolution: the Ki->U projection at the Ki resolution, as the
            original).
        skip_placement: whether skips are stored ``'after'`` the CRFB (the original) or ``'before'`` it
            (the fork's).
        fusion: ``'mean_logits'`` (average of the U-Net and Ki heads' logits) or ``'feature_add'`` (Ki features
            projected by a 1x1 conv and added to the U-Net's before its head; the original adds its two equally
            wide maps without a projection; no ReLU on the logits).
        checkpoint: activation checkpointing (non-reentrant ``torch.utils.checkpoint``; same outputs and
            gradients): ``'none'``, ``'ki'`` (each Ki stage with its CRFB, encoder and decoder) or ``'stages'``
            (every encoder stage and decoder level, its U-Net part and its Ki part separately). The network's
            last part (the Ki part of the last decoder level) is never checkpointed: backward needs it first.
            ``compute_conv_feature_map_size`` counts what the mode keeps. With batch norm, checkpointed stages
            update its running statistics twice.
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
                 ki_features_per_stage: Union[None, str, IntOrSeq] = None,
                 ki_num_stages: int = 3,
                 ki_max_scale: Optional[IntOrSeq] = 2,
                 crfb_kernel_size: IntOrSeq = 1,
                 crfb_resolution: str = "lower",
                 skip_placement: str = "after",
                 fusion: str = "mean_logits",
                 checkpoint: str = "none",
                 n_blocks_per_stage: Optional[IntOrSeq] = None):
        super().__init__()
        cfg = build_unet_config(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                                n_conv_per_stage, num_classes, n_conv_per_stage_decoder, conv_bias, norm_op,
                                norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs,
                                deep_supervision, nonlin_first, n_blocks_per_stage)
        self.pool_type = check_choice("pool_type", pool_type, POOL_TYPES)
        self.skip_placement = check_choice("skip_placement", skip_placement, SKIP_PLACEMENTS)
        check_choice("fusion", fusion, FUSIONS)
        check_choice("crfb_resolution", crfb_resolution, CRFB_RESOLUTIONS)
        self.checkpoint = check_choice("checkpoint", checkpoint, CHECKPOINT_MODES)
        n_ki = min(_as_int("ki_num_stages", ki_num_stages, 1), cfg.n_stages)
        ki_channels = self._ki_channels(cfg, ki_features_per_stage, n_ki)
        ki_scales = self._ki_scales(cfg, ki_max_scale)[:n_ki]
        crfb_kernel = per_axis("crfb_kernel_size", crfb_kernel_size, cfg.dim)
        if any(k % 2 == 0 for k in crfb_kernel):
            raise UserError(f"crfb_kernel_size must be odd along every axis, got {crfb_kernel_size!r}")
        self.cfg = cfg

        self.encoder = PlainConvEncoder(cfg.input_channels, cfg.n_stages, cfg.features_per_stage, cfg.conv_op,
                                        cfg.kernel_sizes, cfg.strides, cfg.n_conv_per_stage, return_skips=True,
                                        pool=pool_type, **cfg.block_kwargs)
        if pool_type == "max":  # DNA's nn.MaxPoolNd, pooling in the input's precision on every device (see MaxPool)
            for s, stage in enumerate(self.encoder.stages):
                if len(stage) > 1:
                    stage[0] = MaxPool(cfg.strides[s])
        previous_scales = [[1] * cfg.dim] + ki_scales[:-1]
        self.ki_encoder = nn.ModuleList([
            KiBranchStage(cfg, s, ([cfg.input_channels] + ki_channels)[s], ki_channels[s],
                          [a // b for a, b in zip(ki_scales[s], previous_scales[s])])
            for s in range(n_ki)])
        self.encoder_crfbs = nn.ModuleDict({
            str(s): CrossRefinementBlock(cfg, cfg.features_per_stage[s], ki_channels[s], crfb_kernel,
                                         crfb_resolution)
            for s in range(n_ki) if not is_identity(cfg.cumulative_strides[s])})
        self.decoder = KiUNetDecoder(self.encoder, cfg, ki_channels, ki_scales, crfb_kernel, crfb_resolution,
                                     fusion, self.checkpoint)

        self.key_to_encoder = "encoder.stages"
        self.key_to_stem = "encoder.stages.0"
        # every convolution that reads the raw input (U-Net stem, Ki stem), each under both of DNA's names; they
        # differ in output channels, so adapt each from its own pretrained weight
        u_stem = f"encoder.stages.0.{len(self.encoder.stages[0]) - 1}.convs.0"
        self.keys_to_in_proj = (f"{u_stem}.conv", f"{u_stem}.all_modules.0",
                                "ki_encoder.0.convs.convs.0.conv", "ki_encoder.0.convs.convs.0.all_modules.0")

    @property
    def ki_scales(self) -> List[List[int]]:
        """Cumulative resolution factor of each Ki stage relative to the input, per axis."""
        return self.decoder.ki_scales

    @staticmethod
    def _ki_channels(cfg: UNetConfig, ki_features_per_stage: Union[None, str, IntOrSeq], n_ki: int) -> List[int]:
        if ki_features_per_stage is None:
            # narrow, as the authors' own 3D code (1-2 channels); wider doubled the step time (BENCHMARKS.md)
            ki_features_per_stage = max(8, cfg.features_per_stage[0] // 4) if cfg.dim == 2 else \
                max(4, cfg.features_per_stage[0] // 8)
        elif ki_features_per_stage == UNET_WIDTHS:
            ki_features_per_stage = cfg.features_per_stage[:n_ki]
        elif isinstance(ki_features_per_stage, str):
            raise UserError(f"ki_features_per_stage must be None, {UNET_WIDTHS!r}, an int or a list of ints, got "
                             f"{ki_features_per_stage!r}")
        return per_stage(f"ki_features_per_stage (one per Ki stage: min(ki_num_stages, n_stages) = {n_ki})",
                         ki_features_per_stage, n_ki)

    @staticmethod
    def _ki_scales(cfg: UNetConfig, ki_max_scale: Optional[IntOrSeq]) -> List[List[int]]:
        """Cumulative Ki upsampling per stage and axis: the U-Net's cumulative strides, capped."""
        if ki_max_scale is None:
            return cfg.cumulative_strides
        cap = per_axis("ki_max_scale", ki_max_scale, cfg.dim)
        if any(c & (c - 1) for c in cap):
            raise UserError(f"ki_max_scale must be None or a power of two (1, 2, 4, ...) per axis, "
                             f"got {ki_max_scale!r}")
        return [[min(p, c) for p, c in zip(stage, cap)] for stage in cfg.cumulative_strides]

    def forward(self, x: torch.Tensor):
        self.cfg.check_input(x)
        # 'stages' checkpoints a stage's U-Net part and its Ki part (with the CRFB) separately: backward then
        # recomputes one of them at a time, never both (measured: 3D 32^3, peak 0.61 -> 0.52x of none)
        u_checkpoint, ki_checkpoint = self.checkpoint == "stages", self.checkpoint != "none"
        u_skips, ki_skips = [], []
        u = ki = x
        for s, stage in enumerate(self.encoder.stages):
            u = u_skip = maybe_checkpoint(u_checkpoint, stage, u)
            if s < len(self.ki_encoder):
                u_skip, ki_skip, u, ki = maybe_checkpoint(ki_checkpoint, self._ki_stage, s, u, ki)
                ki_skips.append(ki_skip)
            u_skips.append(u_skip)
        return self.decoder(u_skips, ki_skips)

    def _ki_stage(self, s: int, u: torch.Tensor, ki: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Ki stage ``s`` and its exchange with the U-Net: (U skip, Ki skip, U, Ki)."""
        ki = self.ki_encoder[s](ki)
        u_pre, ki_pre = u, ki
        if str(s) in self.encoder_crfbs:
            u, ki = self.encoder_crfbs[str(s)](u, ki)
        # the deepest tensors start the decoders, so they always carry the exchange (else its convs idle)
        keep_pre = self.skip_placement == "before"
        return (u_pre if keep_pre and s < self.cfg.n_stages - 1 else u,
                ki_pre if keep_pre and s < len(self.ki_encoder) - 1 else ki, u, ki)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Activation elements of one sample, on the scale of PlainConvUNet's estimate (nnU-Net's planner unit),
        counting what the ``checkpoint`` mode keeps plus the largest checkpointed stage recomputed in backward."""
        input_size = per_axis("input_size (spatial only)", list(input_size), self.cfg.dim)
        tally = ActivationTally()
        size = ki_size = input_size
        channels = [self.cfg.input_channels] + self.cfg.features_per_stage
        per_stage_checkpoint = self.checkpoint == "stages"
        for s, stage in enumerate(self.encoder.stages):
            u_full = np.int64(0)
            if self.pool_type == "conv":
                u_full += stage[-1].compute_conv_feature_map_size(size)
                size = shrunk(size, self.cfg.strides[s])
            else:
                size = shrunk(size, self.cfg.strides[s])
                if len(stage) > 1:
                    u_full += single_map(channels[s], size)  # pooled map
                    if self.pool_type == "max":
                        u_full += 4 * single_map(channels[s], size)  # int64 indices: 4 half-precision maps
                u_full += stage[-1].compute_conv_feature_map_size(size)
            u_kept = single_map(channels[s + 1], size)
            u_largest = n_elements(channels[s + 1], size)
            if s >= len(self.ki_encoder):
                tally.add(u_full, u_kept, per_stage_checkpoint, largest=u_largest)
                continue
            ki_stage = self.ki_encoder[s]
            ki_full = ki_stage.compute_conv_feature_map_size(ki_size)
            ki_size = scaled_size(ki_size, ki_stage.up_factor)
            ki_kept = single_map(ki_stage.out_channels, ki_size)
            ki_largest = n_elements(ki_stage.out_channels, ki_size)
            if str(s) in self.encoder_crfbs:
                crfb = self.encoder_crfbs[str(s)]
                ki_full += crfb.compute_conv_feature_map_size(size, ki_size)
                ki_kept += single_map(channels[s + 1], size)  # the refined U map
                ki_largest = max(ki_largest, crfb.largest_map(size, ki_size))
                if self.skip_placement == "before":
                    ki_kept *= 2  # the pre-exchange maps are outputs too
            tally.add(u_full, u_kept, per_stage_checkpoint, largest=u_largest)
            tally.add(ki_full, ki_kept, self.checkpoint != "none", largest=ki_largest)
        self.decoder.tally_activations(tally, input_size)
        return tally.total

    @staticmethod
    def initialize(module: nn.Module) -> None:
        InitWeights_He(1e-2)(module)
