"""The same small study with ``--max-parallel 1`` and ``2``: wall time, and the scheduling overhead per job.

Each run gets fresh nnU-Net folders with the same synthetic 2D dataset (so neither reuses the other's
preprocessing) and runs ``nnunet-archs compare`` (local executor, 2 architectures x 2 folds, a few iterations).
"Slot time outside jobs" is (wall time x parallel slots - sum of the jobs' own run times) / jobs. With one slot it
is the scheduling overhead per job: what the driver, submitit's process start and the polling add to every job;
with more slots it also holds the time a slot waits because the next jobs depend on a running one.

    python benchmarks/study_parallel.py [--parallel 1 2] [--epochs 2] [--iterations 5]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def run(parallel: int, epochs: int, iterations: int) -> dict:
    from nnunet_archs.datasets import write_synthetic_dataset
    work = Path(tempfile.mkdtemp(prefix=f"nnunet_archs_study_parallel{parallel}_"))
    env = {**os.environ}
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[name] = str(work / name)
        (work / name).mkdir()
    write_synthetic_dataset(work / "nnUNet_raw", 502, "Synthetic2D", shape=(64, 64), spacing=(1.0, 1.0), n_train=10,
                            n_test=2)
    report = work / "report"
    start = time.perf_counter()
    subprocess.run([str(BIN / "nnunet-archs"), "compare", "-d", "502", "-a", "PlainConvUNet", "KiUNet", "-c", "2d",
                    "--folds", "0", "1", "-gpu_memory_target", "0.1", "--epochs", str(epochs), "--iterations",
                    str(iterations), "--val-iterations", "1", "-o", str(report), "--max-parallel", str(parallel),
                    "-device", "cpu"],
                   env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    job_seconds = [json.loads(p.read_text())["seconds"] for p in (report / "jobs").glob("*/done.json")]
    return {"parallel": parallel, "wall_s": wall, "jobs": len(job_seconds), "job_s": sum(job_seconds),
            "overhead_per_job_s": (wall * parallel - sum(job_seconds)) / len(job_seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    rows = [run(p, args.epochs, args.iterations) for p in args.parallel]
    print(f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}; 2 architectures x 2 folds, {args.epochs} epochs x "
          f"{args.iterations} iterations\n")
    print("| --max-parallel | jobs | wall time (s) | sum of job run times (s) | slot time outside jobs, per job (s) "
          "| speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['parallel']} | {row['jobs']} | {row['wall_s']:.0f} | {row['job_s']:.0f} | "
              f"{row['overhead_per_job_s']:.1f} | {rows[0]['wall_s'] / row['wall_s']:.2f} |")


if __name__ == "__main__":
    main()
