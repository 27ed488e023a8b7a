"""nnUNetTrainerBudget's own state: the wall-clock budget decided by rank 0 under DDP (two gloo processes whose
clocks disagree), the per-epoch record it appends for the study, and its throttled progress.png."""
from __future__ import annotations

import json
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from nnunetv2.training.logging.nnunet_logger import MetaLogger

from nnunet_archs.training.environment import EPOCH_LOG
from nnunet_archs.training.trainers import ThrottledProgressPlot, nnUNetTrainerBudget

WORLD_SIZE = 2
SECONDS_PER_EPOCH = {0: 25.0, 1: 45.0}  # rank 1's clock runs ahead: alone it would stop one epoch earlier
BUDGET_MINUTES = 1.0
NUM_EPOCHS = 10


def bare_trainer(**attributes) -> nnUNetTrainerBudget:
    """The trainer's budget state without its nnU-Net set-up (plans, data, network): what the methods read."""
    trainer = object.__new__(nnUNetTrainerBudget)
    defaults = dict(device=torch.device("cpu"), local_rank=0, is_ddp=False, current_epoch=0, num_epochs=NUM_EPOCHS,
                    budget_minutes=BUDGET_MINUTES, budget_start=0.0)
    trainer.__dict__.update({**defaults, **attributes})
    return trainer


def own_clock_stop(seconds_per_epoch: float) -> int:
    """The epoch after which a rank would stop if its own clock decided."""
    return next(e for e in range(1, NUM_EPOCHS) if e * seconds_per_epoch > 60 * BUDGET_MINUTES)


def _run_epochs(rank: int, store_path: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=WORLD_SIZE)
    try:
        now = {"seconds": 0.0}
        trainer = bare_trainer(is_ddp=True, local_rank=rank, clock=lambda: now["seconds"])
        stopped = None
        while trainer.current_epoch < NUM_EPOCHS:  # the trainer's epoch loop; on_epoch_end counts the epoch
            now["seconds"] += SECONDS_PER_EPOCH[rank]
            trainer.current_epoch += 1
            if trainer.budget_spent():
                stopped = trainer.current_epoch
                break
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump({"stopped_after": stopped}, f)
    finally:
        dist.destroy_process_group()


def test_ranks_stop_after_the_same_epoch_by_rank_zeros_clock(tmp_path):
    assert own_clock_stop(SECONDS_PER_EPOCH[0]) != own_clock_stop(SECONDS_PER_EPOCH[1])  # the clocks disagree
    mp.spawn(_run_epochs, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    stops = [json.loads((tmp_path / f"rank{r}.json").read_text())["stopped_after"] for r in range(WORLD_SIZE)]
    assert stops == [own_clock_stop(SECONDS_PER_EPOCH[0])] * WORLD_SIZE


def test_budget_without_process_group_uses_the_own_clock():
    now = {"seconds": 61.0}
    trainer = bare_trainer(current_epoch=2, clock=lambda: now["seconds"])
    assert trainer.budget_spent()
    now["seconds"] = 59.0
    assert not trainer.budget_spent()
    trainer.current_epoch, now["seconds"] = NUM_EPOCHS, 61.0  # the last epoch is finished anyway
    assert not trainer.budget_spent()


def test_epoch_record_line_on_cpu(tmp_path):
    trainer = bare_trainer(output_folder=str(tmp_path), log_file=str(tmp_path / "training_log.txt"),
                           logger=MetaLogger(str(tmp_path), resume=False))
    for epoch, (start, end) in enumerate([(100.0, 112.5), (112.6, 120.1)]):
        trainer.logger.log("epoch_start_timestamps", start, epoch)
        trainer.logger.log("epoch_end_timestamps", end, epoch)
        trainer.current_epoch = epoch + 1  # as after nnU-Net's on_epoch_end
        trainer.write_epoch_record()
    lines = [json.loads(line) for line in (tmp_path / EPOCH_LOG).read_text().splitlines()]
    # nothing a CPU cannot measure: no allocator peaks, no CUDA context (recorded once, with the first epoch)
    unmeasured = {"max_memory_allocated_bytes": None, "max_memory_reserved_bytes": None}
    context = {"nvml_process_bytes": None, "cuda_context_bytes": None, "nvml_note": None}
    assert lines == [{"epoch": 0, "epoch_seconds": 12.5, "device": "cpu", **unmeasured, **context},
                     {"epoch": 1, "epoch_seconds": 7.5, "device": "cpu", **unmeasured}]
    assert f"nnunet-archs epoch record: {json.dumps(lines[1])}" in (tmp_path / "training_log.txt").read_text()
    bare_trainer(output_folder=str(tmp_path / "other"), local_rank=1).write_epoch_record()  # rank 1 writes nothing
    assert not (tmp_path / "other").exists()


def test_progress_png_is_redrawn_after_the_interval_or_on_the_last_epoch(tmp_path):
    drawn, now, epoch = [], {"seconds": 0.0}, {"current": 0}

    class Logger:
        def plot_progress_png(self, folder):
            drawn.append((epoch["current"], folder))

        def get_value(self, key, step):
            return key

    logger = ThrottledProgressPlot(Logger(), 60.0, lambda: epoch["current"] >= 4, clock=lambda: now["seconds"])
    for current, seconds in enumerate([10.0, 59.0, 61.0, 70.0, 71.0]):  # epochs 0-4 end at these times
        epoch["current"], now["seconds"] = current, seconds
        logger.plot_progress_png("fold_0")
    assert drawn == [(2, "fold_0"), (4, "fold_0")]  # 61 s after the start, then the last epoch
    logger.plot_progress_png("fold_0", force=True)
    assert len(drawn) == 3 and logger.get_value("train_losses", -1) == "train_losses"  # the rest is the logger's
