"""The MONAI networks through our planners: plans for a 2D, an isotropic and an anisotropic 3D configuration whose
strides are each network's real down-sampling, from which nnU-Net's ``get_network_from_plans`` builds the network
with deep-supervision outputs at nnU-Net's target scales; and nnU-Net's own trainer taking training steps on those
plans in this process (Swin UNETR's end-to-end run through compare, with the trainer picked for it: test_compare.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunet_archs.architectures.zoo import divisor
from nnunet_archs.planning.planners import PLANNERS
from tests.integration.conftest import DATASET_3D, DATASET_ZOO_ISOTROPIC, claim_large_images
from tests.integration.plan_in_process import plan_all

pytestmark = pytest.mark.slow(30)

TARGET_GB = 0.1  # small patches: the training steps below stay cheap
NETWORKS = ["MedNeXt-S", "SegResNet", "SwinUNETR"]


@pytest.fixture(scope="module")
def planned(nnunet, fingerprint_3d) -> dict:
    """(network, 'isotropic' | 'anisotropic') -> the plans file (2d and 3d_fullres configurations)."""
    isotropic = claim_large_images(nnunet, DATASET_3D, DATASET_ZOO_ISOTROPIC, [48, 48, 48], [1.0, 1.0, 1.0])
    keys = [(network, fingerprint) for network in NETWORKS for fingerprint in ("isotropic", "anisotropic")]
    datasets = [isotropic if fingerprint == "isotropic" else DATASET_3D for _, fingerprint in keys]
    plan_all(nnunet, [{"d": dataset, "pl": f"nnUNetPlanner{network.replace('-', '')}M", "gpu_memory_target": TARGET_GB}
                      for (network, _), dataset in zip(keys, datasets)])
    return {key: json.loads(nnunet.plans_path(dataset, f"in_process_{index}").read_text())
            for index, (key, dataset) in enumerate(zip(keys, datasets))}


def strides_of(configuration: dict) -> list:
    return configuration["architecture"]["arch_kwargs"]["strides"]


def test_each_network_is_planned_with_its_own_down_sampling(planned):
    for fingerprint in ("isotropic", "anisotropic"):
        for name in ("2d", "3d_fullres"):
            dim = 2 if name == "2d" else 3
            mednext = strides_of(planned["MedNeXt-S", fingerprint]["configurations"][name])
            assert all(s == [2] * dim for s in mednext[1:]) and len(mednext) <= 5
            swin = strides_of(planned["SwinUNETR", fingerprint]["configurations"][name])
            assert swin == [[1] * dim] + [[2] * dim] * 5
    # SegResNetDS follows nnU-Net's per-axis strides: in-plane first on the anisotropic (3 x 1 x 1 mm) images
    assert strides_of(planned["SegResNet", "anisotropic"]["configurations"]["3d_fullres"])[1] == [1, 2, 2]
    assert strides_of(planned["SegResNet", "isotropic"]["configurations"]["3d_fullres"])[1] == [2, 2, 2]


@pytest.mark.parametrize("network", NETWORKS)
def test_plans_build_through_nnunet_with_outputs_at_its_deep_supervision_scales(planned, network):
    planner = PLANNERS[f"nnUNetPlanner{network.replace('-', '')}M"]
    for fingerprint in ("isotropic", "anisotropic"):
        for name, configuration in planned[network, fingerprint]["configurations"].items():
            if "patch_size" not in configuration:  # nnU-Net's 3d_cascade_fullres, which inherits from 3d_fullres
                continue
            entry, patch = configuration["architecture"], list(configuration["patch_size"])
            assert all(p % d == 0 for p, d in zip(patch, divisor(entry["arch_kwargs"]))), (fingerprint, name, patch)
            assert entry["network_class_name"] == planner.variant.class_path
            with torch.device("meta"):
                net = get_network_from_plans(entry["network_class_name"], entry["arch_kwargs"],
                                             entry["_kw_requires_import"], 1, 3, allow_init=False,
                                             deep_supervision=network != "SwinUNETR")
                outputs = net(torch.empty(configuration["batch_size"], 1, *patch))
            # nnU-Net's targets: 1 / cumprod(strides) of the patch, all but the lowest resolution
            scales = np.cumprod(np.array(strides_of(configuration)), axis=0)[:-1]
            expected = [[int(p // s) for p, s in zip(patch, scale)] for scale in scales]
            found = [list(o.shape[2:]) for o in (outputs if isinstance(outputs, list) else [outputs])]
            assert found == (expected if network != "SwinUNETR" else expected[:1]), (fingerprint, name)


@pytest.mark.parametrize("network, configuration, trainer_name", [
    ("MedNeXt-S", "3d_fullres", "nnUNetTrainerBudget"), ("SegResNet", "3d_fullres", "nnUNetTrainerBudget"),
    ("SwinUNETR", "2d", "nnUNetTrainerBudgetNoDeepSupervision")])
def test_nnunets_trainer_takes_training_steps_on_the_plans(nnunet, planned, network, configuration, trainer_name,
                                                           monkeypatch):
    """nnU-Net's trainer as nnUNetv2_train builds it from our plans (network, loss, with deep supervision weighted at
    the plans' strides, SGD; Swin UNETR with the trainer the study picks for it), two steps on random batches at the
    planned patch and batch of the anisotropic dataset's plans (nothing is preprocessed: the data loaders' file
    format is not looked up)."""
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as nnunet_trainer

    from nnunet_archs.training import trainers
    monkeypatch.setattr(nnunet_trainer, "infer_dataset_class", lambda folder: None)
    plans = {**planned[network, "anisotropic"], "continue_training": False}  # get_trainer_from_args's key
    dataset_json = json.loads((nnunet.raw_dataset(DATASET_3D) / "dataset.json").read_text())
    with nnunet.variables():
        trainer = getattr(trainers, trainer_name)(plans, configuration, 0, dataset_json, torch.device("cpu"))
        trainer.initialize()
    batch, patch = trainer.configuration_manager.batch_size, list(trainer.configuration_manager.patch_size)
    generator = torch.Generator().manual_seed(0)

    def labels(scale) -> torch.Tensor:
        return torch.randint(0, 3, (batch, 1, *[int(p * s) for p, s in zip(patch, scale)]), generator=generator).float()
    scales = trainer._get_deep_supervision_scales()
    target = [labels(scale) for scale in scales] if scales is not None else labels([1] * len(patch))
    before = torch.cat([p.detach().flatten() for p in trainer.network.parameters()])
    losses = [trainer.train_step({"data": torch.randn(batch, 1, *patch, generator=generator), "target": target})["loss"]
              for _ in range(2)]
    assert all(np.isfinite(loss) for loss in losses)
    assert not torch.equal(before, torch.cat([p.detach().flatten() for p in trainer.network.parameters()]))
    trainer.set_deep_supervision_enabled(True)  # what nnU-Net's final validation ends with, for every trainer
