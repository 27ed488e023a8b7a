"""Evaluation at CT scale (issue 30): ``nnunet-archs evaluate`` with all seven metrics against nnU-Net's own Dice
evaluation (``nnUNetv2_evaluate_simple``) on the same folder, with the same number of workers, in one run.

Writes CT-sized synthetic cases in nnU-Net's raw format (``.nii.gz``, uint8 labels) to a temporary folder: per case
a large organ (an ellipsoid), a tumour inside it and many small lesions (blobs of 2-4 mm), and a prediction that
shifts and reshapes the organ and tumour, misses some lesions, shifts the others by a voxel and invents a few.
Then it times, alternately and ``--repeats`` times each, the two commands as a user runs them (their process start
included), and ours with the metrics of one family at a time (``--metrics`` of that family, reading included), and
prints the median and least seconds, the ratios and seconds per megavoxel. Then, per case in one process without
worker processes (what a study of many cases pays per case): nnU-Net's ``compute_metrics`` against ours per family;
and how much one case raises a process's peak memory.

    python benchmarks/evaluation_speed.py [--cases 3] [--shape 160 288 288] [--np 2] [--repeats 3] [--before DIR]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

BIN = Path(sys.executable).parent
SPACING = (2.5, 0.8, 0.8)  # mm, z y x: an abdominal CT
LABELS = {"background": 0, "organ": 1, "tumour": 2, "lesion": 3}


def _ellipsoid(volume: np.ndarray, centre: Sequence[float], radii_mm: Sequence[float], value: int) -> None:
    """Paint an axis-aligned ellipsoid (centre in voxels, radii in mm) into ``volume``, touching only its box."""
    radii = np.array(radii_mm) / np.array(SPACING)
    low = np.maximum(np.floor(np.array(centre) - radii).astype(int), 0)
    high = np.minimum(np.ceil(np.array(centre) + radii).astype(int) + 1, volume.shape)
    grid = np.ogrid[tuple(slice(a, b) for a, b in zip(low, high))]
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
    volume[tuple(slice(a, b) for a, b in zip(low, high))][inside] = value


def write_case(rng: np.random.Generator, shape: Sequence[int], lesions: int) -> Dict[str, np.ndarray]:
    """A reference and a prediction of one case."""
    reference, prediction = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    extent = np.array(shape) * np.array(SPACING)
    organ_centre = np.array(shape) * rng.uniform(0.4, 0.6, 3)
    organ_radii = extent * rng.uniform(0.2, 0.3, 3)
    _ellipsoid(reference, organ_centre, organ_radii, 1)
    _ellipsoid(prediction, organ_centre + rng.normal(0, 1.0, 3), organ_radii * rng.uniform(0.93, 1.07, 3), 1)
    tumour_centre = organ_centre + rng.uniform(-0.3, 0.3, 3) * organ_radii / np.array(SPACING)
    tumour_radii = np.full(3, rng.uniform(12, 25))
    _ellipsoid(reference, tumour_centre, tumour_radii, 2)
    _ellipsoid(prediction, tumour_centre + rng.normal(0, 1.5, 3), tumour_radii * rng.uniform(0.8, 1.2, 3), 2)
    for i in range(lesions):
        centre = np.array(shape) * rng.uniform(0.05, 0.95, 3)
        radius = np.full(3, rng.uniform(2.0, 4.0))
        _ellipsoid(reference, centre, radius, 3)
        if i % 5:  # four in five found, a voxel off
            _ellipsoid(prediction, centre + rng.integers(-1, 2, 3), radius, 3)
    for _ in range(max(1, lesions // 8)):  # invented lesions
        _ellipsoid(prediction, np.array(shape) * rng.uniform(0.05, 0.95, 3), np.full(3, 3.0), 3)
    return {"reference": reference, "prediction": prediction}


def write_folder(root: Path, cases: int, shape: Sequence[int], lesions: int, seed: int) -> None:
    import SimpleITK as sitk
    rng = np.random.default_rng(seed)
    for side in ("reference", "prediction"):
        (root / side).mkdir(parents=True)
    for i in range(cases):
        for side, array in write_case(rng, shape, lesions).items():
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(SPACING[::-1])
            sitk.WriteImage(image, str(root / side / f"ct_{i:03d}.nii.gz"), True)
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": LABELS,
                                                   "numTraining": cases, "file_ending": ".nii.gz"}))


def commands(root: Path, processes: int, metrics: Sequence[str], before: Optional[Path]) -> Dict[str, List[str]]:
    """The commands timed; with ``before`` (a checkout of an earlier nnunet-archs, which had no -np) also its
    ``evaluate``, run with that checkout first on PYTHONPATH."""
    inputs = ["evaluate", "--reference", str(root / "reference"), "--prediction", str(root / "prediction"),
              "--dataset-json", str(root / "dataset.json")]
    evaluate = [str(BIN / "nnunet-archs"), *inputs, "-np", str(processes)]
    labels = [str(v) for v in LABELS.values() if v]
    runs = {"nnUNetv2_evaluate_simple": [str(BIN / "nnUNetv2_evaluate_simple"), str(root / "reference"),
                                         str(root / "prediction"), "-l", *labels, "-np", str(processes), "-o",
                                         str(root / "nnunet_summary.json")],
            "nnunet-archs evaluate (all seven)": [*evaluate, "-o", str(root / "all.csv"), "--metrics", *metrics]}
    if before is not None:
        runs[f"  before: {before}"] = ["env", f"PYTHONPATH={before}", str(BIN / "nnunet-archs"), *inputs, "-o",
                                       str(root / "before.csv"), "--metrics", *metrics]
    from nnunet_archs.evaluation.metrics import METRICS
    for family in dict.fromkeys(METRICS[m].family for m in metrics):
        names = [m for m in metrics if METRICS[m].family == family]
        runs[f"  {family} only ({', '.join(names)})"] = [*evaluate, "-o", str(root / f"{family}.csv"), "--metrics",
                                                         *names]
    return runs


def time_commands(runs: Dict[str, List[str]], repeats: int) -> Dict[str, List[float]]:
    """Each command ``repeats`` times, the commands interleaved."""
    seconds: Dict[str, List[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, command in runs.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def time_in_process(root: Path, repeats: int) -> Dict[str, float]:
    """Per case, in this process and without worker processes, the least of ``repeats`` interleaved runs: nnU-Net's
    ``compute_metrics`` (both files read, Dice of every label) and ``cases.evaluate_case`` with the metrics of one
    family, and with all seven."""
    import torch
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunet_archs.evaluation.cases import Case, Settings, evaluate_case
    from nnunet_archs.evaluation.labels import defined_values, label_regions, read_dataset_json
    from nnunet_archs.evaluation.metrics import METRIC_NAMES, METRICS
    torch.set_num_threads(1)  # as in a pool worker
    dataset = read_dataset_json(root / "dataset.json")
    regions = label_regions(dataset)
    families = {"all seven": METRIC_NAMES, **{METRICS[m].family: [n for n in METRIC_NAMES if METRICS[n].family ==
                                                                    METRICS[m].family] for m in METRIC_NAMES}}
    runs = {"nnU-Net compute_metrics (Dice)": lambda case: compute_metrics(
        str(case.reference), str(case.prediction), SimpleITKIO(), list(regions.values()), None)}
    for name, metrics in families.items():
        settings = Settings(SimpleITKIO, regions, defined_values(dataset), None, tuple(metrics), 2.0, tuple(regions),
                            0.0, {"architecture": "A", "seed": 0, "fold": "0"})
        runs[f"ours: {name}"] = lambda case, settings=settings: evaluate_case(case, settings)
    cases = [Case(p.name, root / "reference" / p.name, p) for p in sorted((root / "prediction").iterdir())]
    best = {(name, case.name): math.inf for name in runs for case in cases}
    for run in runs.values():  # imports done, caches warm
        run(cases[0])
    for _ in range(repeats):
        for case in cases:
            for name, run in runs.items():
                start = time.perf_counter()
                run(case)
                best[name, case.name] = min(best[name, case.name], time.perf_counter() - start)
    return {name: sum(best[name, case.name] for case in cases) for name in runs}


def peak_memory(root: Path) -> Dict[str, float]:
    """How far one case raises a fresh process's peak resident memory (Linux's VmHWM, reset to the current resident
    memory after the imports) in MB, for nnU-Net's ``compute_metrics`` and for ``evaluate_case`` with all seven
    metrics."""
    code = """
import re, sys
from pathlib import Path
from nnunetv2.evaluation.evaluate_predictions import compute_metrics
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from nnunet_archs.evaluation.cases import Case, Settings, evaluate_case
from nnunet_archs.evaluation.labels import defined_values, label_regions, read_dataset_json
from nnunet_archs.evaluation.metrics import METRIC_NAMES
import torch, scipy.spatial, scipy.optimize, cc3d, nibabel
def high_water_mark():
    return int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
root = Path(sys.argv[1]); case = sorted((root / "prediction").iterdir())[0]
dataset = read_dataset_json(root / "dataset.json"); regions = label_regions(dataset)
Path("/proc/self/clear_refs").write_text("5")
before = high_water_mark()
if sys.argv[2] == "nnunet":
    compute_metrics(str(root / "reference" / case.name), str(case), SimpleITKIO(), list(regions.values()), None)
else:
    evaluate_case(Case(case.name, root / "reference" / case.name, case), Settings(
        SimpleITKIO, regions, defined_values(dataset), None, METRIC_NAMES, 2.0, tuple(regions), 0.0, {}))
print(high_water_mark() - before)
"""
    return {who: float(subprocess.run([sys.executable, "-c", code, str(root), who], check=True, capture_output=True,
                                      text=True).stdout.split()[-1]) for who in ("nnunet", "ours")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs=3, default=[160, 288, 288], help="z y x voxels per case")
    parser.add_argument("--lesions", type=int, default=40, help="small lesions per case")
    parser.add_argument("--np", type=int, default=2, help="worker processes of both commands")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command (median and least reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="write the cases here and keep them")
    parser.add_argument("--before", type=Path, default=None, help="a checkout of an earlier nnunet-archs to time as "
                        "well (e.g. git archive 7f4a1c8 | tar -x -C /tmp/before)")
    args = parser.parse_args()
    from nnunet_archs.evaluation.metrics import METRIC_NAMES
    root = args.keep or Path(tempfile.mkdtemp(prefix="nnunet_archs_evaluation_speed_"))
    try:
        start = time.perf_counter()
        write_folder(root, args.cases, args.shape, args.lesions, args.seed)
        voxels = float(np.prod(args.shape))
        mvox = args.cases * voxels / 1e6
        print(f"{args.cases} cases of {' x '.join(map(str, args.shape))} voxels ({mvox:.1f} Mvox), spacing "
              f"{SPACING} mm, {len(LABELS) - 1} labels ({args.lesions} lesions per case), written in "
              f"{time.perf_counter() - start:.0f} s to {root}; -np {args.np}; {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.2f} before; {time.strftime('%Y-%m-%d %H:%M')}\n")
        seconds = time_commands(commands(root, args.np, METRIC_NAMES, args.before), args.repeats)
        base, least = statistics.median(seconds["nnUNetv2_evaluate_simple"]), min(seconds["nnUNetv2_evaluate_simple"])
        print("The commands, as a user runs them (process start included)\n")
        print("| command | median s | least s | runs (s) | median x nnUNetv2_evaluate_simple | least x | "
              "s per Mvox (median) |")
        print("|---|---:|---:|---|---:|---:|---:|")
        for name, values in seconds.items():
            median = statistics.median(values)
            print(f"| {name} | {median:.2f} | {min(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} | "
                  f"{median / base:.2f} | {min(values) / least:.2f} | {median / mvox:.3f} |")
        if args.before is not None:
            same = all((root / f"before{t}.csv").read_bytes() == (root / f"all{t}.csv").read_bytes()
                       for t in ("", "_objects"))
            print(f"\nThe per-case and per-object tables of {args.before} and of this checkout are "
                  f"{'identical' if same else 'DIFFERENT'}")
        print(f"\nPer case in one process (no worker processes, no process start; least of {args.repeats} "
              f"interleaved runs), load average {os.getloadavg()[0]:.2f}\n")
        in_process = time_in_process(root, args.repeats)
        nnunet = in_process["nnU-Net compute_metrics (Dice)"]
        print("| what | s for all cases | s per Mvox | x nnU-Net's |")
        print("|---|---:|---:|---:|")
        for name, value in in_process.items():
            print(f"| {name} | {value:.2f} | {value / mvox:.4f} | {value / nnunet:.2f} |")
        memory = peak_memory(root)
        volume = 4 * voxels / 2 ** 20
        print(f"\nOne case's rise of a process's peak resident memory: nnU-Net's compute_metrics {memory['nnunet']:.0f} "
              f"MB, ours (all seven) {memory['ours']:.0f} MB; one volume as nnU-Net's reader returns it (float32): "
              f"{volume:.0f} MB, so {memory['ours'] / volume:.2f}x")
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
