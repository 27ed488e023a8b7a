"""Every configuration from real nnU-Net plans files (``nnunet_archs/data/real_plans.json``, copied from public
repositories) builds through nnU-Net's own ``get_network_from_plans`` with ``network_class_name`` switched to
ours, and takes a training step's forward and backward at a reduced patch on the meta device: every output's
shape and every parameter's gradient at the real widths (up to 512 channels), without the arithmetic, which the
contract tests and the end-to-end runs do on real tensors (on the CPU these 22 steps took 100 s)."""
from __future__ import annotations

import pytest
import torch

from nnunet_archs.real_plans import load_records
from tests.architectures.cases import ARCHITECTURES, as_list

RECORDS = load_records()


def test_the_bundled_plans_cover_the_interesting_cases():
    configurations = {r.configuration for r in RECORDS}
    assert {"2d", "3d_fullres", "3d_lowres"} <= configurations
    assert any("ResidualEncoderUNet" in r.network_class_name for r in RECORDS)
    assert any(r.num_input_channels > 1 for r in RECORDS)
    assert any(any(s[0] != s[-1] for s in r.strides) for r in RECORDS)  # anisotropic


@pytest.mark.parametrize("case", ARCHITECTURES, ids=lambda c: c.name)
@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.id.split("/")[0] + "-" + r.configuration)
def test_real_configuration_trains_one_step(case, record):
    patch = record.reduced_patch(bottleneck=1)
    patch[-1] *= 2  # norm layers need more than one bottleneck voxel
    with torch.device("meta"):
        net = record.build(case.class_path, deep_supervision=True)
        assert type(net) is case.cls
        outputs = as_list(net(torch.randn(1, record.num_input_channels, *patch)))
    assert len(outputs) == record.arch_kwargs["n_stages"] - 1
    assert list(outputs[0].shape) == [1, record.num_classes, *patch]
    sum(o.mean() for o in outputs).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
