"""DynamicMedNeXt: MedNeXt for nnU-Net v2, in 2D and 3D, built from MONAI's MedNeXt blocks.

MedNeXt (Roy et al., "MedNeXt: Transformer-driven Scaling of ConvNets for Medical Image Segmentation", MICCAI 2023,
arXiv:2303.09975) is a U-Net of ConvNeXt blocks: a depthwise convolution, per-channel GroupNorm, a 1x1 expansion
by the stage's ratio, GELU and a 1x1 compression, with residual connections, also in the stride-2 down- and
up-sampling blocks. The paper's sizes S, B, M and L differ in expansion ratios and blocks per stage.

From nnU-Net's plans this adapter takes the dimensionality (``conv_op``), the depth (``n_stages``) and the widths
(``features_per_stage``). MedNeXt's own, as its authors set them: one odd ``kernel_size`` for every depthwise
convolution (3: the paper's "k3"), the size's expansion ratios and blocks per stage (the decoder mirrors the
encoder), and down-sampling by 2 in every axis at every stage, so the plans' strides must halve every axis
(``nnUNetPlannerMedNeXt*`` plan that; per-axis strides such as [1, 2, 2] are refused). The plans' norm, nonlinearity,
dropout, conv bias and convs per stage are nnU-Net's U-Net settings and are not used.

Departures from the paper: at most 5 stages, the paper's depth (4 halvings), fewer where the patch is small; the
widths double from the plans' first one as the paper's 32, 64, ..., 512 (our planners write them uncapped); no
UpKern (a k5 network is trained from scratch, not initialised from a k3 one). Deep supervision as its authors
trained it: one head after each decoder stage, ``n_stages - 1`` outputs full resolution first; the head MONAI's
MedNeXt adds at the bottleneck is not built (nnU-Net has no target for it).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from nnunet_archs.architectures.config import IntOrSeq, build_unet_config, check_choice, per_stage, _as_int
from nnunet_archs.architectures.zoo import (AddedSkipDecoder, ZooNetwork, check_input, conv_dimension, divisor,
                                            doubling, with_stages, halvings, refuse_topology, require_monai)
from nnunet_archs.errors import UserError

MAX_STAGES = 5  # the paper's depth: four stride-2 blocks
KERNEL_SIZE = 3  # the paper's "k3"
# the paper's sizes: (expansion ratio, blocks) per stage, the encoder stages then the bottleneck; decoder stage s
# uses stage s's values (the paper's decoder lists are the encoder's reversed)
SIZES: Dict[str, Tuple[List[int], List[int]]] = {
    "S": ([2, 2, 2, 2, 2], [2, 2, 2, 2, 2]),
    "B": ([2, 3, 4, 4, 4], [2, 2, 2, 2, 2]),
    "M": ([2, 3, 4, 4, 4], [3, 4, 4, 4, 4]),
    "L": ([3, 4, 8, 8, 8], [3, 4, 8, 8, 8]),
}


def _stage_values(name: str, value: Optional[IntOrSeq], table: List[int], n_stages: int) -> List[int]:
    """``value`` per stage, or the size's table (its last entry repeated beyond the paper's five stages)."""
    if value is None:
        return [table[min(s, len(table) - 1)] for s in range(n_stages)]
    return per_stage(name, value, n_stages)


class MedNeXtEncoder(nn.Module):
    """The 1x1 stem, then per stage its MedNeXt blocks and (but for the bottleneck) a stride-2 down block."""

    def __init__(self, blocks, dim: str, input_channels: int, features: List[int], expansion: List[int],
                 n_blocks: List[int], kernel_size: int, global_resp_norm: bool):
        super().__init__()
        block, down = blocks
        conv = nn.Conv2d if dim == "2d" else nn.Conv3d
        self.stem = conv(input_channels, features[0], kernel_size=1)
        options = dict(kernel_size=kernel_size, use_residual_connection=True, norm_type="group", dim=dim)
        self.stages = nn.ModuleList([
            nn.Sequential(*[block(f, f, e, global_resp_norm=global_resp_norm, **options) for _ in range(b)])
            for f, e, b in zip(features, expansion, n_blocks)])
        self.downs = nn.ModuleList([down(features[s], features[s + 1], expansion[s], **options)
                                    for s in range(len(features) - 1)])

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        skips = []
        x = self.stem(x)
        for s, stage in enumerate(self.stages):
            x = stage(x)
            skips.append(x)
            if s < len(self.downs):
                x = self.downs[s](x)
        return skips


class MedNeXtDecoder(AddedSkipDecoder):
    """Per decoder stage (deepest first): a stride-2 up block, the skip added, MedNeXt blocks and a head."""

    def __init__(self, blocks, dim: str, num_classes: int, features: List[int], expansion: List[int],
                 n_blocks: List[int], kernel_size: int, global_resp_norm: bool, deep_supervision: bool):
        super().__init__(deep_supervision)
        block, up, head = blocks
        options = dict(kernel_size=kernel_size, use_residual_connection=True, norm_type="group", dim=dim)
        levels = list(reversed(range(len(features) - 1)))  # decoder stage s, deepest first
        self.ups = nn.ModuleList([up(features[s + 1], features[s], expansion[s], global_resp_norm=global_resp_norm,
                                     **options) for s in levels])
        self.stages = nn.ModuleList([
            nn.Sequential(*[block(features[s], features[s], expansion[s], global_resp_norm=global_resp_norm,
                                  **options) for _ in range(n_blocks[s])]) for s in levels])
        self.seg_layers = nn.ModuleList([head(features[s], num_classes, dim) for s in levels])


class DynamicMedNeXt(ZooNetwork):
    """MedNeXt with nnU-Net's self-configured depth and widths (3D, or 2D with ``conv_op=Conv2d``).

    Takes every keyword of DNA's ``PlainConvUNet`` (see the module docstring for what is used). MedNeXt options:

    Args:
        size: the paper's ``'S'``, ``'B'``, ``'M'`` or ``'L'`` (expansion ratios and blocks per stage); ``'L'``
            is the one nnU-Net Revisited (Isensee et al., MICCAI 2024) benchmarked.
        kernel_size: the depthwise kernel of every block, odd (3: "k3"; 5: "k5", trained from scratch).
        expansion_ratio, blocks_per_stage: an int or one value per stage, in place of the size's.
        global_resp_norm: ConvNeXt-V2's global response normalisation in every block (off in the paper).
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
                 size: str = "L",
                 kernel_size: int = KERNEL_SIZE,
                 expansion_ratio: Optional[IntOrSeq] = None,
                 blocks_per_stage: Optional[IntOrSeq] = None,
                 global_resp_norm: bool = False,
                 n_blocks_per_stage: Optional[IntOrSeq] = None):
        super().__init__({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        cfg = build_unet_config(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                                n_conv_per_stage, num_classes, n_conv_per_stage_decoder, conv_bias, norm_op,
                                norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs,
                                deep_supervision, nonlin_first, n_blocks_per_stage)
        n, dim = cfg.n_stages, cfg.dim
        check_choice("size", size, list(SIZES))
        kernel_size = _as_int("kernel_size", kernel_size, 1)
        if kernel_size % 2 == 0:
            raise UserError(f"kernel_size must be odd (MedNeXt's blocks pad by kernel_size // 2), got {kernel_size}")
        check_choice("global_resp_norm", global_resp_norm, (True, False))
        refuse_topology("MedNeXt", "strides", cfg.strides, halvings(n, dim),
                        "its down and up blocks halve every axis at every stage")
        refuse_topology("MedNeXt", "kernel_sizes", cfg.kernel_sizes, [[kernel_size] * dim] * n,
                        "one depthwise kernel_size everywhere; set the kernel_size option instead")
        expansion = _stage_values("expansion_ratio", expansion_ratio, SIZES[size][0], n)
        n_blocks = _stage_values("blocks_per_stage", blocks_per_stage, SIZES[size][1], n)
        require_monai("MedNeXt")
        from monai.networks.blocks.mednext_block import (MedNeXtBlock, MedNeXtDownBlock, MedNeXtOutBlock,
                                                         MedNeXtUpBlock)
        dims = f"{dim}d"
        self.input_channels, self.dim, self.step = cfg.input_channels, dim, divisor({"strides": cfg.strides})
        self.encoder = MedNeXtEncoder((MedNeXtBlock, MedNeXtDownBlock), dims, cfg.input_channels,
                                      cfg.features_per_stage, expansion, n_blocks, kernel_size, global_resp_norm)
        self.decoder = MedNeXtDecoder((MedNeXtBlock, MedNeXtUpBlock, MedNeXtOutBlock), dims, cfg.num_classes,
                                      cfg.features_per_stage, expansion, n_blocks, kernel_size, global_resp_norm,
                                      cfg.deep_supervision)
        self.key_to_encoder = "encoder"
        self.key_to_stem = "encoder.stem"
        self.keys_to_in_proj = ("encoder.stem",)

    @classmethod
    def plans_topology(cls, arch_kwargs: dict) -> dict:
        """nnU-Net's keywords for MedNeXt: at most 5 stages, each halving every axis, widths doubling from the
        plans' first, the ``kernel_size`` option (default 3) in every stage."""
        dim = conv_dimension(arch_kwargs["conv_op"])
        n = min(int(arch_kwargs["n_stages"]), MAX_STAGES)
        kwargs = with_stages(arch_kwargs, n)
        first = per_stage("features_per_stage", kwargs["features_per_stage"], n)[0]
        kernel = kwargs.get("kernel_size", KERNEL_SIZE)
        return {**kwargs, "strides": halvings(n, dim), "features_per_stage": doubling(first, n),
                "kernel_sizes": [[kernel] * dim for _ in range(n)]}

    def forward(self, x: torch.Tensor):
        check_input(x, self.dim, self.input_channels, self.step, "MedNeXt")
        return self.decoder(self.encoder(x))
