"""The paper-faithful presets build from every real plans configuration (``nnunet_archs/data/real_plans.json``)
and have the published nets' scales: KiU-Net's Ki branch at 2x, 4x, 8x over the first three downsamplings at the
U-Net's widths; UIU-Net's RSU heights, dilations and inner widths. (Forward and backward of each preset run in
the contract suite, at a size a CPU test affords: ``KiUNet-original`` holds hundreds of times a U-Net's
activations.) Built on the meta device: only the structure is read, and real-width parameters cost seconds to
initialize."""
from __future__ import annotations

import pytest
import torch

from nnunet_archs.real_plans import load_records
from nnunet_archs.registry import get_variant

RECORDS = load_records()


def short(record) -> str:
    return record.id.split("/")[0] + "-" + record.configuration


@pytest.mark.parametrize("record", RECORDS, ids=short)
def test_kiunet_original_reaches_8x_at_the_unet_widths(record):
    with torch.device("meta"):
        net = record.build_variant(get_variant("KiUNet-original"), initialize=False)
    cumulative = net.cfg.cumulative_strides
    assert net.ki_scales == cumulative[:4]  # mirrors every planned stride, uncapped
    assert [max(scale) for scale in net.ki_scales] == [1, 2, 4, 8]  # 2x, 4x, 8x after each downsampling
    assert [stage.out_channels for stage in net.ki_encoder] == net.cfg.features_per_stage[:4]
    crfbs = list(net.encoder_crfbs.values()) + list(net.decoder.crfbs.values())
    assert crfbs and all(c.resolution == "source" and c.ki_to_u.conv.kernel_size == (3,) * net.cfg.dim
                         for c in crfbs)
    assert net.decoder.fusion == "feature_add" and net.pool_type == "max"


@pytest.mark.parametrize("record", RECORDS, ids=short)
def test_uiunet_original_has_the_published_heights_dilations_and_widths(record):
    with torch.device("meta"):
        net = record.build_variant(get_variant("UIUNet-original"), initialize=False)
    n, features = net.cfg.n_stages, net.cfg.features_per_stage
    dilated = [s >= n - 2 for s in range(n)]
    assert net.heights == [4 if dilated[s] else min(max(4, 7 - s), n - s + 1) for s in range(n)]
    if n == 6:
        assert net.heights == [7, 6, 5, 4, 4, 4]
    # RSU7(in, 32, 64), RSU6(64, 32, 128), RSU5(128, 64, 256), RSU4(256, 128, 512), RSU4F(512, 256, 512): half the
    # width in the first and the dilated stages, a quarter elsewhere; decoder RSU7(128, 16, 64) ... RSU4F(1024, 256)
    assert [b.mid_channels for b in net.encoder] == [f // 2 if s == 0 or dilated[s] else f // 4
                                                     for s, f in enumerate(features)]
    assert [b.mid_channels for b in net.decoder.stages] == [f // 2 if dilated[s] else f // 4
                                                           for s, f in enumerate(features[:-1])]
    bottom = net.encoder[-1]
    kernel_dims = [k > 1 for k in bottom.encoder[0].conv.kernel_size]
    assert [max(d for d, k in zip(c.conv.dilation, kernel_dims) if k) for c in bottom.encoder] == [1, 2, 4]
    assert max(bottom.bottom.conv.dilation) == 8
