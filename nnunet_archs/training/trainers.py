"""nnU-Net trainers that swap KiU-Net or UIU-Net into whatever plans they are given (the trainer names of the
nnU-Net fork aymuos15/nnUNet that first put both nets into nnU-Net), and ``nnUNetTrainerBudget``.

Stock ``nnUNetv2_train -tr NAME`` and ``nnUNetv2_predict`` find them through ``nnUNet_extTrainer`` (see
``nnunet-archs trainers-path``). They keep nnU-Net's schedule (1000 epochs of 250 iterations); the environment
variables of ``environment.VARIABLES`` shorten it for smoke tests and ``nnunet-archs compare``. Plans made for
these nets (``nnunet-archs plan_and_preprocess -pl nnUNetPlannerKiUNetM``) need no special trainer at all:
stock ``nnUNetTrainer`` trains them.
"""
from __future__ import annotations

import functools
import json
import os
import random
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np

import torch
import torch.distributed as dist
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunet_archs.planning.memory import MEMORY_WARNING_FACTOR, activation_memory_factor
from nnunet_archs.registry import ArchitectureVariant, get_variant
from nnunet_archs.training import environment
from nnunet_archs.training.gpu_memory import allocator_peaks, cuda_context

# progress.png is redrawn at most this often (and after the last epoch); see ThrottledProgressPlot
PROGRESS_PLOT_SECONDS = 60.0


def limit_cpu_threads(device: torch.device) -> None:
    """On CPU, use ``environment.THREADS`` threads when it is set (nnU-Net's choice, every core, otherwise):
    nnUNetv2_train takes every core, which oversubscribes the machine when compare runs trainings side by side."""
    threads = environment.positive_integer(environment.THREADS)
    if threads is not None and device.type == "cpu":
        torch.set_num_threads(threads)


class _BudgetSpent(Exception):
    pass


def decided_by_rank_zero(decision: bool, device: torch.device) -> bool:
    """Rank 0's ``decision`` on every rank of an initialised process group (``decision`` itself without one).

    A collective: every rank must call it at the same point. NCCL only moves CUDA tensors, gloo CPU ones.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return decision
    flag = torch.tensor([int(decision)], device=device if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def epoch_record(epoch: int, seconds: float, device: torch.device) -> dict:
    """One line of ``environment.EPOCH_LOG``; the peaks are those of the CUDA allocator since the epoch began
    (reset in ``on_epoch_start``) and ``None`` on other devices, which have no such counter."""
    return {"epoch": int(epoch), "epoch_seconds": round(float(seconds), 3), "device": device.type,
            **allocator_peaks(device)}


class ThrottledProgressPlot:
    """nnU-Net's logger, except that ``plot_progress_png`` redraws progress.png only when ``seconds`` have passed
    since the last drawing (or since ``restart``) or on the last epoch. nnU-Net redraws its 3000x5400-pixel figure
    after every epoch, about 1.8 s on a CPU: negligible after nnU-Net's epochs of minutes, more than the epoch itself
    under a short budget (a study's smoke run). Everything else is the wrapped logger's."""

    def __init__(self, logger, seconds: float, last_epoch: Callable[[], bool], clock=time.monotonic):
        self._logger, self._seconds, self._last_epoch, self._clock = logger, seconds, last_epoch, clock
        self._drawn = clock()

    def __getattr__(self, name: str):
        return getattr(self._logger, name)

    def restart(self) -> None:
        self._drawn = self._clock()

    def plot_progress_png(self, output_folder: str, force: bool = False) -> None:
        if force or self._last_epoch() or self._clock() - self._drawn >= self._seconds:
            self._logger.plot_progress_png(output_folder)
            self._drawn = self._clock()


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seed Python's, NumPy's and torch's global generators (nnU-Net's weight initialisation, patch sampling and
    augmentations draw from them); every DDP rank gets its own stream. Returns the seed used."""
    value = seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
    return value


class nnUNetTrainerBudget(nnUNetTrainer):
    """nnUNetTrainer whose schedule the variables of ``environment.VARIABLES`` can shorten (nnU-Net's schedule
    when unset), and which records each epoch's time and peak GPU memory in ``environment.EPOCH_LOG``.

    nnU-Net does not seed training; ``nnUNetTrainerBudget_seed<S>`` (any S >= 0, made on request) seeds it with S
    before the network is initialised and the data loaders are made. With nnU-Net's single-process data loading
    (``nnUNet_n_proc_DA=0``, what a study uses on a CPU) a training then repeats exactly on the same machine,
    thread count and package versions; augmentation worker processes (nnU-Net's default, and on CUDA) draw their own
    random state, and cuDNN picks kernels by timing, so there the same seed gives a comparable, not an identical,
    run. A training continued with ``--c`` restarts the data stream, and a wall-clock budget ends after a varying
    number of epochs: neither repeats a run exactly."""

    # the budget's clock; only rank 0's reading counts under DDP (see ``budget_spent``)
    clock = staticmethod(time.monotonic)
    training_seed: Optional[int] = None  # None: unseeded, as nnU-Net

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        for attribute, value in environment.schedule().items():
            setattr(self, attribute, value)
        self.budget_minutes = environment.budget_minutes()
        self.budget_start = self.clock()
        limit_cpu_threads(self.device)
        self.logger = ThrottledProgressPlot(self.logger, PROGRESS_PLOT_SECONDS,
                                            lambda: self.current_epoch >= self.num_epochs - 1)

    def on_train_start(self):
        if self.training_seed is not None:  # before nnU-Net initialises the network and makes the data loaders
            used = seed_everything(self.training_seed, self.local_rank)
            self.print_to_log_file(f"nnunet-archs: training seed {self.training_seed} (Python, NumPy and torch "
                                   f"seeded with {used} on rank {self.local_rank})")
        super().on_train_start()
        self.budget_start = self.clock()
        self.logger.restart()

    def run_training(self):
        try:
            super().run_training()
        except _BudgetSpent:
            self.print_to_log_file(f"Wall-clock budget of {self.budget_minutes:g} min spent after epoch "
                                   f"{self.current_epoch - 1}; finishing as after the last epoch.")
            self.on_train_end()

    def on_epoch_start(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        super().on_epoch_start()

    def on_epoch_end(self):
        super().on_epoch_end()  # logs the end timestamp, then counts the epoch
        self.write_epoch_record()
        if self.budget_minutes is not None and self.budget_spent():
            if self.local_rank == 0:  # the last epoch after all: its progress.png
                self.logger.plot_progress_png(self.output_folder, force=True)
            raise _BudgetSpent()

    def budget_spent(self) -> bool:
        """Whether the wall-clock budget is spent with epochs left, by rank 0's clock on every rank, so that DDP
        ranks (whose clocks and epoch times differ) stop after the same epoch instead of waiting on each other."""
        spent = self.clock() - self.budget_start > 60 * self.budget_minutes and self.current_epoch < self.num_epochs
        return decided_by_rank_zero(spent, self.device)

    def write_epoch_record(self) -> None:
        """Append the epoch just finished to ``environment.EPOCH_LOG`` and the training log (rank 0 only); the
        seconds are nnU-Net's own "Epoch time". The first epoch of a process also records the CUDA context
        (``gpu_memory.cuda_context``: NVML, once per process, as it reports current use only)."""
        if self.local_rank != 0:
            return
        seconds = (self.logger.get_value("epoch_end_timestamps", step=-1)
                   - self.logger.get_value("epoch_start_timestamps", step=-1))
        record = epoch_record(self.current_epoch - 1, seconds, self.device)
        if not getattr(self, "_context_recorded", False):
            record.update(cuda_context(self.device))
            self._context_recorded = True
        line = json.dumps(record)
        with open(os.path.join(self.output_folder, environment.EPOCH_LOG), "a") as log:
            log.write(line + "\n")
        self.print_to_log_file(f"nnunet-archs epoch record: {line}")

    def perform_actual_validation(self, save_probabilities: bool = False):
        """nnU-Net's final validation (the cross-validation predictions), timed: its wall time per case, which
        includes test-time mirroring as trained and waiting for the export workers, and on CUDA its peak memory,
        go to ``environment.VALIDATION_LOG``."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        super().perform_actual_validation(save_probabilities)
        seconds = time.perf_counter() - start
        if self.local_rank != 0:
            return
        ending = self.dataset_json["file_ending"]
        cases = len([f for f in os.listdir(os.path.join(self.output_folder, "validation")) if f.endswith(ending)])
        with open(os.path.join(self.output_folder, environment.VALIDATION_LOG), "w") as log:
            json.dump({"cases": cases, "seconds": round(seconds, 3), "device": self.device.type,
                       "mirroring": bool(self.inference_allowed_mirroring_axes), **allocator_peaks(self.device)},
                      log, indent=1)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, mirror_axes = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if os.environ.get(environment.NO_MIRRORING) == "1":
            mirror_axes = None
            self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, mirror_axes


class nnUNetTrainerBudgetNoDeepSupervision(nnUNetTrainerBudget):
    """nnUNetTrainerBudget without nnU-Net's deep-supervision loss (as nnU-Net's nnUNetTrainerNoDeepSupervision),
    for networks their authors trained without it (Swin UNETR): ``nnunet-archs compare`` picks it for them."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False


class ArchitectureTrainer(nnUNetTrainerBudget):
    """Trains ``variant`` on any plans (default or ResEnc), optionally at a fixed batch size."""

    variant: ArchitectureVariant
    batch_size: Optional[int] = None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.planned_batch_size = self.configuration_manager.batch_size
        if self.batch_size is not None:
            self.configuration_manager.configuration["batch_size"] = self.batch_size

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        # a classmethod, not nnU-Net's staticmethod, so that each variant class builds its own net; nnU-Net
        # calls it on the class (predictor) and on the instance (trainer) with these same arguments
        kwargs = cls.variant.arch_kwargs(configuration_manager.network_arch_class_name,
                                         configuration_manager.network_arch_init_kwargs)
        return get_network_from_plans(cls.variant.class_path, kwargs,
                                      configuration_manager.network_arch_init_kwargs_req_import, num_input_channels,
                                      num_output_channels, allow_init=True, deep_supervision=enable_deep_supervision)

    def on_train_start(self):
        super().on_train_start()
        self.print_to_log_file(f"Network: {self.variant.class_path} ({self.variant.description}), batch size "
                               f"{self.configuration_manager.batch_size}; swapped into the plans' "
                               f"{self.configuration_manager.network_arch_class_name}")
        self._warn_if_plans_sized_for_a_lighter_net()

    def _warn_if_plans_sized_for_a_lighter_net(self) -> None:
        cm = self.configuration_manager
        factor = activation_memory_factor(cm, self.planned_batch_size, self.variant, self.num_input_channels,
                                          self.label_manager.num_segmentation_heads)
        if factor > MEMORY_WARNING_FACTOR:
            architecture = self.variant.name.split("-")[0]
            self.print_to_log_file(
                f"WARNING: these plans were sized for {cm.network_arch_class_name.split('.')[-1]}. At patch "
                f"{list(cm.patch_size)}, batch {cm.batch_size}, {self.variant.class_path.split('.')[-1]} needs an "
                f"estimated {factor:.1f}x its activation memory and may run out of GPU memory. Plan for it "
                f"instead: nnunet-archs plan_and_preprocess -d {self.plans_manager.dataset_name} "
                f"-pl nnUNetPlanner{architecture}M (or L/XL), then train with -p nnUNet{architecture}MPlans.",
                also_print_to_console=True)


@dataclass(frozen=True)
class TrainerSpec:
    variant: str
    batch_size: Optional[int]
    description: str


# The trainer names of the fork aymuos15/nnUNet (and two descriptive ones), declared once.
TRAINERS: Dict[str, TrainerSpec] = {
    "nnUNetTrainerKiUNet": TrainerSpec("KiUNet", None, "DynamicKiUNet with default options on the given plans"),
    "kiunet": TrainerSpec("KiUNet-maxpool", None, "DynamicKiUNet, max-pool downsampling"),
    "kiunet_conv": TrainerSpec("KiUNet", None, "DynamicKiUNet, strided-conv downsampling"),
    "kiunet_minimal": TrainerSpec("KiUNet-minimal", 1, "DynamicKiUNet, 50% features, strided conv, batch 1"),
    "kiunet_large": TrainerSpec("KiUNet", 1, "DynamicKiUNet, the plans' full features, strided conv, batch 1"),
    "nnUNetTrainerUIUNet": TrainerSpec("UIUNet", None, "DynamicUIUNet3D with default options on the given plans"),
    "uiunet": TrainerSpec("UIUNet", None, "DynamicUIUNet3D, full RSU heights 7,6,5,4,..."),
    "uiunet_minimal": TrainerSpec("UIUNet-minimal", 1, "DynamicUIUNet3D, 50% features, RSU heights 5,4,3,..., "
                                                       "batch 1"),
    "nnUNetTrainerKiUNetOriginal": TrainerSpec("KiUNet-original", None, "DynamicKiUNet closest to the published net "
                                                                        "(registry preset KiUNet-original)"),
    "nnUNetTrainerUIUNetOriginal": TrainerSpec("UIUNet-original", None, "DynamicUIUNet3D closest to the published net "
                                                                        "(registry preset UIUNet-original)"),
}


def _make_trainer(name: str, spec: TrainerSpec) -> type:
    return type(name, (ArchitectureTrainer,), {"__module__": __name__, "__doc__": spec.description,
                                               "variant": get_variant(spec.variant),
                                               "batch_size": spec.batch_size})


globals().update({name: _make_trainer(name, spec) for name, spec in TRAINERS.items()})
__all__ = ["nnUNetTrainerBudget", "nnUNetTrainerBudgetNoDeepSupervision", *TRAINERS]


@functools.lru_cache(maxsize=None)
def seeded_trainer(seed: int, deep_supervision: bool = True) -> type:
    """``nnUNetTrainerBudget(NoDeepSupervision)_seed<seed>``: one class per seed, so that nnU-Net names its results
    folder after it."""
    base = nnUNetTrainerBudget if deep_supervision else nnUNetTrainerBudgetNoDeepSupervision
    return type(environment.seeded_trainer_name(seed, deep_supervision), (base,), {
        "__module__": __name__, "training_seed": seed,
        "__doc__": f"{base.__name__} seeded with {seed} (see {base.__name__})."})


def __getattr__(name: str) -> type:
    """The seeded trainers by name (PEP 562): nnU-Net's trainer lookup asks each module ``hasattr(module, name)``,
    so ``-tr nnUNetTrainerBudget_seed7`` finds one for any seed without a class per seed written out."""
    match = environment.SEEDED_TRAINER.fullmatch(name)
    if match is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return seeded_trainer(int(match.group(2)), deep_supervision=match.group(1) is None)
