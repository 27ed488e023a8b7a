"""The seed-parity trainers: one table, each variant swapped into foreign plans, the memory warning's factor,
and the schedule's environment overrides."""
from __future__ import annotations

import pytest
import torch
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunet_archs.real_plans import load_records
from nnunet_archs.planning.memory import activation_memory_factor
from nnunet_archs.training import trainers
from nnunet_archs.training.environment import budget_minutes, schedule
from nnunet_archs.training.trainers import TRAINERS, limit_cpu_threads


def configuration_manager(record) -> ConfigurationManager:
    return ConfigurationManager({"patch_size": record.reduced_patch(2), "batch_size": 2,
                                 "architecture": {"network_class_name": record.network_class_name,
                                                  "arch_kwargs": record.arch_kwargs,
                                                  "_kw_requires_import": record.kw_requires_import}})


def record(configuration: str, resenc: bool = False):
    return next(r for r in load_records() if r.configuration == configuration
                and ("ResidualEncoderUNet" in r.network_class_name) == resenc)


@pytest.mark.parametrize("name", TRAINERS)
def test_every_trainer_builds_its_variant_on_default_and_resenc_plans(name):
    trainer = getattr(trainers, name)
    assert trainer.__module__ == "nnunet_archs.training.trainers" and trainer.__name__ == name
    for plans_record in (record("3d_fullres"), record("3d_fullres", resenc=True)):
        with torch.device("meta"):  # only the structure is read; initializing real widths costs seconds
            net = trainer.build_network_architecture(None, configuration_manager(plans_record), 1, 3, False)
        assert f"{type(net).__module__}.{type(net).__name__}" == trainer.variant.class_path
        expected_width = round(plans_record.arch_kwargs["features_per_stage"][0] * trainer.variant.feature_scale)
        assert net.cfg.features_per_stage[0] == expected_width


def test_memory_factor_flags_plans_sized_for_the_unet():
    cm = configuration_manager(record("3d_fullres"))
    full = activation_memory_factor(cm, 2, trainers.uiunet.variant, 1, 3)
    assert full > 1.5  # UIU-Net at the U-Net's patch and batch: warn
    cm.configuration["batch_size"] = 1
    minimal = activation_memory_factor(cm, 2, trainers.uiunet_minimal.variant, 1, 3)
    assert minimal < full / 2  # half the batch, half the features


def test_budget_variables_are_validated(monkeypatch):
    monkeypatch.setenv("NNUNET_ARCHS_EPOCHS", "3")
    monkeypatch.setenv("NNUNET_ARCHS_ITERATIONS", "5")
    assert schedule() == {"num_epochs": 3, "num_iterations_per_epoch": 5}
    monkeypatch.setenv("NNUNET_ARCHS_ITERATIONS", "0")
    with pytest.raises(ValueError, match="NNUNET_ARCHS_ITERATIONS"):
        schedule()


def test_cpu_threads_follow_the_study_variable(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("NNUNET_ARCHS_THREADS", "3")  # not what the suite runs with (1 or 2)
    try:
        limit_cpu_threads(torch.device("cpu"))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv("NNUNET_ARCHS_THREADS", "all")
    with pytest.raises(ValueError, match="NNUNET_ARCHS_THREADS must be an integer >= 1"):
        limit_cpu_threads(torch.device("cpu"))


@pytest.mark.parametrize("value, expected", [("1.5", 1.5), ("30", 30.0), ("0", None), ("-2", None), ("soon", None)])
def test_minutes_budget_is_validated(monkeypatch, value, expected):
    monkeypatch.setenv("NNUNET_ARCHS_MINUTES", value)
    if expected is None:
        with pytest.raises(ValueError, match="NNUNET_ARCHS_MINUTES"):
            budget_minutes()
    else:
        assert budget_minutes() == expected


def test_the_trainer_without_deep_supervision_is_found_by_name_for_any_seed():
    """nnU-Net's trainer lookup asks the module for the name (through nnUNet_extTrainer)."""
    seeded = getattr(trainers, "nnUNetTrainerBudgetNoDeepSupervision_seed5")
    assert issubclass(seeded, trainers.nnUNetTrainerBudgetNoDeepSupervision) and seeded.training_seed == 5
    assert seeded.__name__ == "nnUNetTrainerBudgetNoDeepSupervision_seed5"
    assert not issubclass(getattr(trainers, "nnUNetTrainerBudget_seed5"), trainers.nnUNetTrainerBudgetNoDeepSupervision)
