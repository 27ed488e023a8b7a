"""``nnunet-archs demo`` (``make demo``): the study protocol of ``compare`` on a built-in dataset, in its own work
folder (the user's nnU-Net folders are never touched), sized to finish within 10 minutes on a 2-core CPU."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from nnunet_archs.datasets import write_small_structures_dataset
from nnunet_archs.errors import StudyIncomplete, UserError
from nnunet_archs.study.driver import ExecutionOptions, StudyOutcome, run_study
from nnunet_archs.study.spec import Budget, StudySpec

DEMO_DATASET_ID = 990
DEMO_NAME = "KiUDemo2D"
DEMO_ARCHITECTURES = ["PlainConvUNet", "KiUNet", "UIUNet-minimal"]
# two folds, each network trained twice per fold (training seeds 0 and 1): the seed columns of the report get values
DEMO_FOLDS = [0, 1]
DEMO_TRAINING_SEEDS = [0, 1]
DEMO_CASES = 40
# measured to finish the whole demo within 10 minutes on a 2-core CPU (BENCHMARKS.md)
DEMO_BUDGET = Budget(epochs=4, iterations=15, val_iterations=1)
DEMO_DEVICE = "cpu"  # on every machine: the demo's budget and its figures, reproducible to the last digit, are the CPU's
DEMO_GPU_MEMORY_TARGET = 0.05
DEMO_PARALLEL = 2
# the blobs are what KiU-Net and UIU-Net are for: count them as objects (the large structure is one per image)
DEMO_OBJECT_LABELS = ["small"]


def run_demo(work_dir: Path, resume: bool, overwrite: bool) -> StudyOutcome:
    """Generate the built-in dataset in ``work_dir`` and run the cross-validated study on it (with every check
    ``compare`` makes); raises ``StudyIncomplete`` when a job failed, after printing the report."""
    start = time.perf_counter()
    if Path(work_dir).exists() and not (resume or overwrite):
        raise UserError(f"{work_dir} exists; pass --resume to continue the demo or --overwrite to start it over")
    if overwrite:
        shutil.rmtree(work_dir, ignore_errors=True)
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[variable] = str(Path(work_dir).resolve() / variable)
        Path(os.environ[variable]).mkdir(parents=True, exist_ok=True)
    raw = Path(os.environ["nnUNet_raw"])
    if not any(raw.glob(f"Dataset{DEMO_DATASET_ID}_*")):
        write_small_structures_dataset(raw, DEMO_DATASET_ID, DEMO_NAME, n_train=DEMO_CASES)
    spec = StudySpec(DEMO_DATASET_ID, DEMO_ARCHITECTURES, "2d", DEMO_FOLDS, budget=DEMO_BUDGET,
                     gpu_memory_target=DEMO_GPU_MEMORY_TARGET, device=DEMO_DEVICE, study_id="demo",
                     training_seeds=DEMO_TRAINING_SEEDS, object_labels=DEMO_OBJECT_LABELS)
    outcome = run_study(spec, Path(work_dir) / "report", ExecutionOptions(max_parallel=DEMO_PARALLEL), resume=True,
                        device_reason="the demo's on every machine: its budget and figures are the CPU's")
    if outcome.results is not None:
        print("\n" + outcome.results.read_text())
    print(f"Demo finished in {time.perf_counter() - start:.0f} s (work folder {work_dir}; report "
          f"{outcome.results or outcome.layout.report}).")
    if outcome.failed:
        raise StudyIncomplete(f"{len(outcome.failed)} job(s) failed:\n  " + "\n  ".join(outcome.failed))
    return outcome
