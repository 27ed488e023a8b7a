"""``nnunet-archs compare`` end to end, and ``nnunet-archs demo``: the comparison on a built-in dataset."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Sequence

from nnunet_archs.comparison.compare import Budget, Comparison, label_names, write_report

DEMO_DATASET_ID = 990
DEMO_ARCHITECTURES = ["PlainConvUNet", "KiUNet", "UIUNet-minimal"]
# measured to finish the whole demo in under 10 minutes on a 2-core CPU (BENCHMARKS.md)
DEMO_BUDGET = Budget(epochs=6, iterations=25, val_iterations=2)


def prepare_report_folder(report: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to write into an existing folder unless told to resume it or to start it over."""
    if report.exists() and not (resume or overwrite):
        raise FileExistsError(f"{report} exists; pass --resume to continue that comparison or --overwrite to "
                              f"start it over")
    if report.exists() and overwrite:
        shutil.rmtree(report)
    report.mkdir(parents=True, exist_ok=True)


def run_comparison(dataset_id: int, architectures: Sequence[str], configuration: str, budget: Budget,
                   gpu_memory_target: float, report: Path, device: str, processes: int, fold: str = "0") -> Path:
    start = time.perf_counter()
    comparison = Comparison(dataset_id, architectures, configuration, budget, gpu_memory_target, report, device,
                            fold=fold, processes=processes)
    rows = comparison.run_all()
    costs = comparison.profile_costs()
    header = (f"Dataset {comparison.raw_folder().name}, configuration {configuration}, GPU memory target "
              f"{gpu_memory_target:g} GB, budget {budget}, device {device}; cost columns measured at "
              f"{architectures[0]}'s planned patch {'x'.join(map(str, costs['patch']))}, batch {costs['batch']} "
              f"({costs['machine']}); {time.strftime('%Y-%m-%d')}; this run {time.perf_counter() - start:.0f} s")
    table = write_report(report, rows, costs["rows"], label_names(comparison.raw_folder()), header)
    print("\n" + table.read_text())
    print(f"Report: {table}, {report / 'results.csv'}, plots {report / 'dice.png'}, {report / 'profile.png'}; "
          f"commands: {report / 'commands.sh'}")
    return table


def run_demo(work_dir: Path, resume: bool, overwrite: bool) -> Path:
    """Generate the built-in dataset in ``work_dir`` (its own nnU-Net folders; the user's are not touched) and
    compare U-Net, KiU-Net and minimal UIU-Net on it."""
    start = time.perf_counter()
    prepare_report_folder(work_dir, resume, overwrite)
    for variable, folder in (("nnUNet_raw", "nnUNet_raw"), ("nnUNet_preprocessed", "nnUNet_preprocessed"),
                             ("nnUNet_results", "nnUNet_results")):
        os.environ[variable] = str(work_dir / folder)
        (work_dir / folder).mkdir(exist_ok=True)
    from nnunet_archs.datasets import write_synthetic_dataset
    if not any((work_dir / "nnUNet_raw").glob(f"Dataset{DEMO_DATASET_ID}_*")):
        write_synthetic_dataset(work_dir / "nnUNet_raw", DEMO_DATASET_ID, "KiUDemo2D", shape=(64, 64),
                                spacing=(1.0, 1.0), n_train=10, n_test=4)
    report = work_dir / "report"
    report.mkdir(exist_ok=True)
    table = run_comparison(DEMO_DATASET_ID, DEMO_ARCHITECTURES, "2d", DEMO_BUDGET, 8, report, "cpu", processes=1)
    print(f"Demo finished in {time.perf_counter() - start:.0f} s (work folder {work_dir}).")
    return table
