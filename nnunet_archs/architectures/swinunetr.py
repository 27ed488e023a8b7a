"""DynamicSwinUNETR: MONAI's SwinUNETR for nnU-Net v2, in 2D and 3D.

Swin UNETR (Hatamizadeh et al., "Swin UNETR: Swin Transformers for Semantic Segmentation of Brain Tumors in MRI
Images", BrainLes 2021, arXiv:2201.01266) encodes with a Swin Transformer (2x patch embedding, four stages of
shifted-window attention, each followed by 2x patch merging) and decodes with residual conv blocks (UNETR's)
from the transformer's five feature maps and the input.

MONAI's ``SwinUNETR`` is built as it is (its own initialisation and checks), and its modules are arranged under
``encoder`` and ``decoder`` as nnU-Net expects: the output head sits in ``decoder.seg_layers`` (fine-tuning to
other classes skips it) and the decoder holds ``deep_supervision``. The input is checked in plain Python before
any layer runs (MONAI's check uses numpy, which breaks a torch.compile graph).

Nothing of nnU-Net's topology maps but the dimensionality (``conv_op``): Swin UNETR's down-sampling is fixed,
5 halvings of every axis (so every patch axis is a multiple of 32), its widths are ``feature_size`` x 1, 1, 2, 4,
8, 16, its conv kernels 3. Our planners write exactly that into the plans (``n_stages`` 6, ``strides``,
``features_per_stage``, ``kernel_sizes``), and this class refuses plans that say otherwise. The window size is
the paper's 7, shrunk by MONAI where a feature map is smaller. The plans' norm, nonlinearity, dropout, conv bias
and convs per stage are nnU-Net's U-Net settings and are not used.

Deep supervision: none, as its authors trained it (no invented side outputs); nnU-Net's trainer must run without
its deep-supervision loss (``nnUNetTrainerNoDeepSupervision``, or ``nnUNetTrainerBudgetNoDeepSupervision``, which
``nnunet-archs compare`` picks by itself), and building it with deep supervision is refused.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
from torch import nn

from nnunet_archs.architectures.config import IntOrSeq, _as_int, build_unet_config, check_choice
from nnunet_archs.architectures.zoo import (LinspaceInNumpy, ZooDecoder, ZooNetwork, check_input, conv_dimension,
                                            doubling, halvings, no_deep_supervision_message, refuse_topology,
                                            require_monai, with_stages)
from nnunet_archs.errors import UserError

N_STAGES = 6  # full resolution, then 5 halvings: the patch embedding and 4 patch mergings
FEATURE_SIZE = 48  # the paper's


def swin_widths(feature_size: int) -> List[int]:
    """The width of each of Swin UNETR's six resolutions: feature_size x 1, 1, 2, 4, 8, 16."""
    return [feature_size] + doubling(feature_size, N_STAGES - 1)


class SwinUNETREncoder(nn.Module):
    """The Swin Transformer and the residual conv blocks on the input and on its first feature maps: the skip at
    each of the six resolutions, full resolution first."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.swinViT = net.swinViT
        self.encoder1, self.encoder2, self.encoder3 = net.encoder1, net.encoder2, net.encoder3
        self.encoder4, self.encoder10 = net.encoder4, net.encoder10
        self.normalize = net.normalize

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        hidden = self.swinViT(x, self.normalize)
        return [self.encoder1(x), self.encoder2(hidden[0]), self.encoder3(hidden[1]), self.encoder4(hidden[2]),
                hidden[3], self.encoder10(hidden[4])]


class SwinUNETRDecoder(ZooDecoder):
    """UNETR's up blocks from the deepest skip to full resolution, then the 1x1 head: one output, whatever
    ``deep_supervision`` says."""

    def __init__(self, net: nn.Module):
        super().__init__(False)
        self.ups = nn.ModuleList([net.decoder5, net.decoder4, net.decoder3, net.decoder2, net.decoder1])
        self.seg_layers = nn.ModuleList([net.out])

    def forward(self, skips: List[torch.Tensor]) -> torch.Tensor:
        x = skips[-1]
        for i, up in enumerate(self.ups):
            x = up(x, skips[-(i + 2)])
        return self.seg_layers[0](x)


class DynamicSwinUNETR(ZooNetwork):
    """Swin UNETR as an nnU-Net architecture (3D, or 2D with ``conv_op=Conv2d``).

    Takes every keyword of DNA's ``PlainConvUNet`` (see the module docstring for what is used). Swin UNETR
    options (MONAI's, with the paper's values):

    Args:
        feature_size: the width at full resolution, a multiple of 12 (48).
        depths: Swin blocks per transformer stage (2, 2, 2, 2).
        num_heads: attention heads per transformer stage (3, 6, 12, 24).
        window_size: attention window, per axis or one int (7).
        use_v2: SwinUNETR-V2's residual conv block before each transformer stage (off).
        use_checkpoint: MONAI's gradient checkpointing of the transformer blocks (off).
        drop_rate, attn_drop_rate, dropout_path_rate: dropout rates (0).
        norm_name: MONAI norm of the conv blocks (``'instance'``).
        n_blocks_per_stage: accepted only to reject Residual-Encoder plans with a clear message.
    """

    supports_deep_supervision = False

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
                 feature_size: int = FEATURE_SIZE,
                 depths: Sequence[int] = (2, 2, 2, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: IntOrSeq = 7,
                 use_v2: bool = False,
                 use_checkpoint: bool = False,
                 drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0,
                 dropout_path_rate: float = 0.0,
                 norm_name: Union[str, tuple] = "instance",
                 n_blocks_per_stage: Optional[IntOrSeq] = None):
        super().__init__({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        if deep_supervision:
            raise UserError(no_deep_supervision_message("SwinUNETR"))
        cfg = build_unet_config(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                                n_conv_per_stage, num_classes, n_conv_per_stage_decoder, conv_bias, norm_op,
                                norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs,
                                deep_supervision, nonlin_first, n_blocks_per_stage)
        feature_size = _as_int("feature_size", feature_size, 12)
        if feature_size % 12:
            raise UserError(f"feature_size must be a multiple of 12 (Swin UNETR's heads split it), got {feature_size}")
        for name, value in (("use_v2", use_v2), ("use_checkpoint", use_checkpoint)):
            check_choice(name, value, (True, False))
        refuse_topology("SwinUNETR", "n_stages", cfg.n_stages, N_STAGES, "the input and 5 fixed halvings")
        refuse_topology("SwinUNETR", "strides", cfg.strides, halvings(N_STAGES, cfg.dim),
                        "its patch embedding and patch merging halve every axis")
        refuse_topology("SwinUNETR", "features_per_stage", cfg.features_per_stage, swin_widths(feature_size),
                        f"its widths for feature_size={feature_size}; set the feature_size option instead")
        refuse_topology("SwinUNETR", "kernel_sizes", cfg.kernel_sizes, [[3] * cfg.dim] * N_STAGES,
                        "its conv blocks use 3")
        require_monai("SwinUNETR")
        from monai.networks.nets.swin_unetr import SwinUNETR
        try:
            with LinspaceInNumpy():
                net = SwinUNETR(cfg.input_channels, cfg.num_classes, depths=tuple(depths),
                                num_heads=tuple(num_heads), window_size=window_size, feature_size=feature_size,
                                norm_name=norm_name, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
                                dropout_path_rate=dropout_path_rate, use_checkpoint=use_checkpoint,
                                spatial_dims=cfg.dim, use_v2=use_v2)
        except (ValueError, TypeError, AssertionError) as error:  # MONAI's checks of its own options
            raise UserError(f"SwinUNETR refused its options: {error}") from None
        self.input_channels, self.dim = cfg.input_channels, cfg.dim
        self.encoder = SwinUNETREncoder(net)
        self.decoder = SwinUNETRDecoder(net)
        self.key_to_encoder = "encoder"
        self.key_to_stem = "encoder.swinViT.patch_embed"
        # two layers read the input: the patch embedding and the full-resolution residual block (conv1, and conv3,
        # its 1x1 projection of the input to feature_size channels)
        self.keys_to_in_proj = ("encoder.swinViT.patch_embed.proj", "encoder.encoder1.layer.conv1.conv",
                                "encoder.encoder1.layer.conv3.conv")

    @classmethod
    def plans_topology(cls, arch_kwargs: dict) -> dict:
        """nnU-Net's keywords for Swin UNETR: 6 stages, 5 halvings of every axis, its widths for the
        ``feature_size`` option (default 48), kernels 3."""
        dim = conv_dimension(arch_kwargs["conv_op"])
        kwargs = with_stages(arch_kwargs, N_STAGES)
        return {**kwargs, "strides": halvings(N_STAGES, dim),
                "features_per_stage": swin_widths(kwargs.get("feature_size", FEATURE_SIZE)),
                "kernel_sizes": [[3] * dim for _ in range(N_STAGES)]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.dim, self.input_channels, [2 ** (N_STAGES - 1)] * self.dim, "SwinUNETR")
        return self.decoder(self.encoder(x))
