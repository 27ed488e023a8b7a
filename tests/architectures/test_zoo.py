"""The networks users compare against (MONAI's MedNeXt, SegResNetDS, Swin UNETR): nnU-Net's contract through the
``check`` suite, their own down-sampling taken from nnU-Net's plans keywords, clear refusals of plans and input
they cannot follow, and of a MONAI release without them. Their planners, plans and training steps:
tests/integration/test_zoo_planners.py."""
from __future__ import annotations

import json

import pytest
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunet_archs.architectures import zoo
from nnunet_archs.architectures.mednext import DynamicMedNeXt
from nnunet_archs.architectures.segresnet import DynamicSegResNetDS
from nnunet_archs.architectures.swinunetr import DynamicSwinUNETR
from nnunet_archs.contract import memory
from nnunet_archs.contract.base import Status
from nnunet_archs.contract.cases import plans_cases
from nnunet_archs.contract.suite import BUILDS, CHECKS, OPTIONAL, run_contract
from nnunet_archs.custom_networks import resolve_network
from nnunet_archs.errors import UserError
from nnunet_archs.registry import study_trainer_name
from tests.contract.conftest import TINY_RECORDS

# the cheapest options that keep each network's structure (Swin UNETR: every window path, at a fourth of its width)
NETWORKS = {"MedNeXt-S": None, "SegResNet": None, "SwinUNETR": json.dumps({"feature_size": 12})}
CLASSES = {DynamicMedNeXt: {"size": "S"}, DynamicSegResNetDS: {}, DynamicSwinUNETR: {"feature_size": 12}}


@pytest.mark.parametrize("network", NETWORKS)
def test_the_check_command_passes_every_check(network):
    """``nnunet-archs check`` on a small nnU-Net-shaped 2D configuration, each network in its own topology. The
    memory check is the shipped calibration's measurement (test_zoo_calibration.py)."""
    records = TINY_RECORDS[:1]
    checks = [name for name in CHECKS if name not in OPTIONAL | {memory.NAME}]
    results = {r.name: r for r in run_contract(resolve_network(network, NETWORKS[network]), plans_cases(records),
                                               records, checks)}
    assert list(results) == [BUILDS, *checks]
    assert {name: r.reason for name, r in results.items() if r.status != Status.PASS} == {}


def plans_kwargs(dim: int, n_stages: int = 6) -> dict:
    """nnU-Net's planner's keywords for an anisotropic 3D (first pooling in-plane only) or a 2D configuration."""
    strides = [[1] * dim, [1] + [2] * (dim - 1)] + [[2] * dim] * (n_stages - 2)
    kernels = [[1] + [3] * (dim - 1)] + [[3] * dim] * (n_stages - 1)
    return dict(n_stages=n_stages, features_per_stage=[min(32 * 2 ** s, 320) for s in range(n_stages)],
                conv_op=f"torch.nn.modules.conv.Conv{dim}d", kernel_sizes=kernels, strides=strides,
                n_conv_per_stage=[2] * n_stages, n_conv_per_stage_decoder=[2] * (n_stages - 1), conv_bias=True,
                norm_op=f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
                norm_op_kwargs={"eps": 1e-5, "affine": True}, dropout_op=None, dropout_op_kwargs=None,
                nonlin="torch.nn.LeakyReLU", nonlin_kwargs={"inplace": True})


def build(cls: type, arch_kwargs: dict, deep_supervision: bool = False) -> torch.nn.Module:
    with torch.device("meta"):
        return get_network_from_plans(f"{cls.__module__}.{cls.__name__}", arch_kwargs,
                                      ["conv_op", "norm_op", "dropout_op", "nonlin"], 1, 3, allow_init=False,
                                      deep_supervision=deep_supervision)


@pytest.mark.parametrize("dim", [2, 3])
def test_each_network_takes_its_own_topology_from_nnunet_keywords(dim):
    mednext = zoo.network_topology(DynamicMedNeXt, plans_kwargs(dim))
    assert mednext["strides"] == [[1] * dim] + [[2] * dim] * 4  # the paper's depth, every axis halved
    assert mednext["features_per_stage"] == [32, 64, 128, 256, 512]  # uncapped, as the paper's
    segresnet = zoo.network_topology(DynamicSegResNetDS, plans_kwargs(dim))
    assert segresnet["strides"] == plans_kwargs(dim)["strides"][:5]  # nnU-Net's per-axis strides
    assert segresnet["kernel_sizes"] == plans_kwargs(dim)["kernel_sizes"][:5]
    swin = zoo.network_topology(DynamicSwinUNETR, plans_kwargs(dim, n_stages=4))  # deeper than nnU-Net planned
    assert swin["strides"] == [[1] * dim] + [[2] * dim] * 5 and swin["n_stages"] == 6
    assert swin["features_per_stage"] == [48, 48, 96, 192, 384, 768]
    for cls, topology in ((DynamicMedNeXt, mednext), (DynamicSegResNetDS, segresnet), (DynamicSwinUNETR, swin)):
        assert zoo.network_topology(cls, topology) == topology  # planning it again changes nothing
        net = build(cls, topology, cls.supports_deep_supervision)
        assert net.compute_conv_feature_map_size(zoo.smallest_patch(topology)) > 0


@pytest.mark.parametrize("cls, key, why", [
    (DynamicMedNeXt, "strides", "halve every axis"),
    (DynamicSwinUNETR, "strides", "halve every axis"),
])
def test_plans_whose_strides_the_network_cannot_follow_are_refused(cls, key, why):
    with pytest.raises(UserError, match=rf"{cls.__name__[7:]} cannot follow these plans: {key} .*{why}.*"
                                        rf"nnUNetPlanner{cls.__name__[7:]}M"):
        build(cls, plans_kwargs(3))


@pytest.mark.parametrize("cls, overrides, parameter", [
    (DynamicMedNeXt, {"kernel_size": 4}, "kernel_size"),
    (DynamicMedNeXt, {"size": "XL"}, "size"),
    (DynamicMedNeXt, {"expansion_ratio": [2, 2]}, "expansion_ratio"),
    (DynamicMedNeXt, {"kernel_size": 5}, "kernel_sizes"),  # the plans say 3: set both through the planner
    (DynamicSegResNetDS, {"blocks_down": [1, 2]}, "blocks_down"),
    (DynamicSegResNetDS, {"upsample_mode": "magic"}, "magic"),
    (DynamicSwinUNETR, {"feature_size": 18}, "feature_size"),
    (DynamicSwinUNETR, {"feature_size": 24}, "features_per_stage"),  # the plans were made for 12
    (DynamicSwinUNETR, {"deep_supervision": True}, "train it with -tr nnUNetTrainerNoDeepSupervision"),
])
def test_bad_options_are_refused_in_the_constructor(cls, overrides, parameter):
    kwargs = zoo.network_topology(cls, {**plans_kwargs(2), **CLASSES[cls]})
    overrides = dict(overrides)
    deep_supervision = overrides.pop("deep_supervision", False)  # what nnU-Net's trainer passes
    with pytest.raises((UserError, ValueError), match=parameter):
        build(cls, {**kwargs, **overrides}, deep_supervision)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_an_input_the_network_cannot_take_is_refused_before_any_layer_runs(cls):
    kwargs = zoo.network_topology(cls, {**plans_kwargs(2), **CLASSES[cls]})
    net = build(cls, kwargs)
    patch = zoo.smallest_patch(kwargs)
    with pytest.raises(UserError, match="must be a multiple of"):
        net(torch.empty(1, 1, patch[0] + 1, patch[1], device="meta"))
    with pytest.raises(UserError, match="input must have shape"):
        net(torch.empty(1, 2, *patch, device="meta"))


def test_swin_unetr_returns_one_output_whatever_the_trainer_sets_and_the_study_trains_it_without():
    """nnU-Net's trainers set decoder.deep_supervision back on after their final validation (nnUNetTrainer's and
    nnUNetTrainerNoDeepSupervision's alike): accepted, and the output stays one tensor; building it with deep
    supervision is what is refused (test_bad_options_are_refused_in_the_constructor)."""
    kwargs = zoo.network_topology(DynamicSwinUNETR, {**plans_kwargs(2), "feature_size": 12})
    net = build(DynamicSwinUNETR, kwargs)
    net.decoder.deep_supervision = True
    output = net(torch.empty(1, 1, *zoo.smallest_patch(kwargs), device="meta"))
    assert isinstance(output, torch.Tensor) and list(output.shape[2:]) == zoo.smallest_patch(kwargs)
    assert study_trainer_name("SwinUNETR", 3) == "nnUNetTrainerBudgetNoDeepSupervision_seed3"
    assert study_trainer_name("MedNeXt", 0) == "nnUNetTrainerBudget_seed0"
    assert study_trainer_name("my_package.not_installed.Net", 1) == "nnUNetTrainerBudget_seed1"


def test_a_monai_without_the_networks_is_refused_naming_the_release(monkeypatch):
    monkeypatch.setattr(zoo, "monai_version", lambda: "1.3.2")
    kwargs = zoo.network_topology(DynamicSegResNetDS, plans_kwargs(2))
    with pytest.raises(UserError, match=r"SegResNet needs monai>=1\.5 .* installed: monai 1\.3\.2"):
        build(DynamicSegResNetDS, kwargs)
