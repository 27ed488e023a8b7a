"""The contract between a study's jobs and our trainers: the environment variables the trainers read, the file
they log each epoch to, and the folder nnU-Net's trainer lookup searches. Both sides import the names from here,
so a rename cannot make one side write what the other no longer reads.

Standard library only: the study's job runner imports it in every job process.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, Optional

from nnunet_archs.errors import UserError

EPOCHS = "NNUNET_ARCHS_EPOCHS"
ITERATIONS = "NNUNET_ARCHS_ITERATIONS"
VAL_ITERATIONS = "NNUNET_ARCHS_VAL_ITERATIONS"
MINUTES = "NNUNET_ARCHS_MINUTES"
NO_MIRRORING = "NNUNET_ARCHS_NO_MIRRORING"
THREADS = "NNUNET_ARCHS_THREADS"

# nnU-Net's schedule, what each variable replaces (nnUNetTrainer.__init__ sets it; no class attribute to read)
NNUNET_SCHEDULE: Dict[str, int] = {EPOCHS: 1000, ITERATIONS: 250, VAL_ITERATIONS: 50}

# every variable our trainers read, with its effect (``nnunet-archs list`` prints this table)
VARIABLES: Dict[str, str] = {
    EPOCHS: f"epochs of a training (nnU-Net: {NNUNET_SCHEDULE[EPOCHS]})",
    ITERATIONS: f"training iterations per epoch (nnU-Net: {NNUNET_SCHEDULE[ITERATIONS]})",
    VAL_ITERATIONS: f"validation iterations per epoch (nnU-Net: {NNUNET_SCHEDULE[VAL_ITERATIONS]})",
    MINUTES: "wall-clock budget in minutes: training stops after the epoch that spends it",
    NO_MIRRORING: "1 turns nnU-Net's mirroring augmentation and test-time mirroring off",
    THREADS: "CPU threads of one training (nnU-Net takes every core)",
}
# the trainer attribute each schedule variable sets (integers >= 1)
SCHEDULE = {EPOCHS: "num_epochs", ITERATIONS: "num_iterations_per_epoch",
            VAL_ITERATIONS: "num_val_iterations_per_epoch"}

# one JSON line per epoch (epoch, seconds, device, peak CUDA memory), written by rank 0 into the fold's folder
EPOCH_LOG = "nnunet_archs_epochs.jsonl"
# the final validation's wall time and cases (the cross-validation predictions), beside it
VALIDATION_LOG = "nnunet_archs_validation.json"
# ``nnunet-archs predict``'s time and memory per case, in its output folder
INFERENCE_LOG = "nnunet_archs_inference.json"

# our trainer with the budget variables; ``nnUNetTrainerBudget_seed<S>`` is the same trainer seeded with S, so
# that each training seed has its own nnU-Net results folder (Trainer__Plans__configuration) and predictor lookup;
# ``nnUNetTrainerBudgetNoDeepSupervision(_seed<S>)`` trains without nnU-Net's deep-supervision loss, for networks
# whose authors trained them without (Swin UNETR)
BUDGET_TRAINER = "nnUNetTrainerBudget"
NO_DEEP_SUPERVISION = "NoDeepSupervision"
SEEDED_TRAINER = re.compile(BUDGET_TRAINER + f"({NO_DEEP_SUPERVISION})?" + r"_seed(0|[1-9][0-9]*)")


def seeded_trainer_name(seed: int, deep_supervision: bool = True) -> str:
    return f"{BUDGET_TRAINER}{'' if deep_supervision else NO_DEEP_SUPERVISION}_seed{seed}"


def ext_trainers_path() -> str:
    """The folder to put in ``nnUNet_extTrainer``: nnU-Net's trainer lookup finds our trainers there."""
    return str(Path(__file__).resolve().parents[1] / "ext_trainers")


def positive_integer(variable: str) -> Optional[int]:
    """``variable`` as an integer >= 1, None when unset."""
    value = os.environ.get(variable)
    if value is not None and (not value.isdigit() or int(value) < 1):
        raise UserError(f"{variable} must be an integer >= 1, got {value!r}")
    return None if value is None else int(value)


def schedule() -> Dict[str, int]:
    """The trainer attributes the schedule variables set, for those that are set."""
    values = {attribute: positive_integer(variable) for variable, attribute in SCHEDULE.items()}
    return {attribute: value for attribute, value in values.items() if value is not None}


def budget_minutes() -> Optional[float]:
    value = os.environ.get(MINUTES)
    if value is None:
        return None
    try:
        minutes = float(value)
    except ValueError:
        minutes = 0
    if not minutes > 0:
        raise UserError(f"{MINUTES} must be a number of minutes > 0, got {value!r}")
    return minutes


def training_variables(epochs: Optional[int] = None, iterations: Optional[int] = None,
                       val_iterations: Optional[int] = None, minutes: Optional[float] = None,
                       mirroring: bool = True) -> Dict[str, str]:
    """The variables that give a training this schedule (``None``: nnU-Net's)."""
    env = {NO_MIRRORING: "0" if mirroring else "1"}
    for variable, value in ((EPOCHS, epochs), (ITERATIONS, iterations), (VAL_ITERATIONS, val_iterations),
                            (MINUTES, minutes)):
        if value is not None:
            env[variable] = str(value)
    return env


def thread_variables(threads) -> Dict[str, str]:
    """OpenMP's and our trainers' thread count."""
    return {"OMP_NUM_THREADS": str(threads), THREADS: str(threads)}
