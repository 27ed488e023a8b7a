"""How the demo's data were chosen: single-fold trainings at the demo's budget on candidate blob designs, with the
share of the small blobs each network finds (BENCHMARKS.md section 4.1).

Each design is written with ``write_synthetic_dataset`` as the demo writes its dataset (64x64 at 1 mm, 40 training
cases, seed 0), planned by each network's planner at the demo's GPU memory target, and trained with stock
``nnUNetv2_train`` and our seeded trainer at the demo's budget on one thread; ``nnunet-archs evaluate`` then counts
the blobs of the fold's validation cases. Recall = reference blobs found / reference blobs, pooled over the cases.
A design is ``COUNT_LOW,COUNT_HIGH,RADIUS_LOW,RADIUS_HIGH`` (numpy's integers(low, high) blobs per image, radius in
mm), several joined by ``/``.

    python benchmarks/demo_data.py --design 3,6,2.2,3.2/6,13,0.6,1.6 --networks PlainConvUNet KiUNet \\
        --runs 0:0 1:1 [--noise 0.6]
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent


def blobs(design: str):
    return [((int(a), int(b)), (float(c), float(d))) for a, b, c, d in (p.split(",") for p in design.split("/"))]


def run(*command: str, env: dict) -> None:
    result = subprocess.run([str(BIN / command[0]), *command[1:]], env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def main() -> None:
    from nnunet_archs.comparison.demo import DEMO_BUDGET, DEMO_CASES, DEMO_GPU_MEMORY_TARGET, DEMO_NAME
    from nnunet_archs.datasets import write_synthetic_dataset
    from nnunet_archs.evaluation.tables import objects_path
    from nnunet_archs.planning.planners import planner_name
    from nnunet_archs.training.environment import ext_trainers_path, seeded_trainer_name
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--design", required=True, help="blob populations, e.g. 3,6,2.2,3.2/6,13,0.6,1.6")
    parser.add_argument("--noise", type=float, default=0.6, help="sd of the Gaussian noise (default: 0.6)")
    parser.add_argument("--networks", nargs="+", default=["PlainConvUNet"], help="default: PlainConvUNet")
    parser.add_argument("--runs", nargs="+", default=["0:0"], metavar="FOLD:SEED", help="default: 0:0")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nnunet_archs_demo_data_"))
    env = {**os.environ, **DEMO_BUDGET.environment(), "nnUNet_compile": "f", "nnUNet_n_proc_DA": "0",
           "nnUNet_def_n_proc": "1", "nnUNet_extTrainer": ext_trainers_path(), "OMP_NUM_THREADS": "1",
           "NNUNET_ARCHS_THREADS": "1"}
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[name] = str(work / name)
    dataset = write_synthetic_dataset(work / "nnUNet_raw", 990, DEMO_NAME, shape=(64, 64), spacing=(1.0, 1.0),
                                      n_train=DEMO_CASES, n_test=0, blobs=blobs(args.design), noise=args.noise)
    print(f"design {args.design}, noise {args.noise:g}, budget {DEMO_BUDGET}; work folder {work}")
    for i, network in enumerate(args.networks):
        plans = f"DemoData_{network.replace('-', '')}"
        extra = ["-c", "2d", "-np", "1"] if i == 0 else []  # our planners share the default planner's 2d data
        run("nnunet-archs", "plan_and_preprocess" if i == 0 else "plan_experiment", "-d", "990", "-pl",
            planner_name(network), "-gpu_memory_target", f"{DEMO_GPU_MEMORY_TARGET:g}", "-overwrite_plans_name",
            plans, "--no_pbar", *extra, env=env)
        if i == 0:
            run("nnunet-archs", "splits", "-d", "990", env=env)
        for fold, seed in (r.split(":") for r in args.runs):
            trainer = seeded_trainer_name(int(seed))
            run("nnUNetv2_train", "990", "2d", fold, "-p", plans, "-tr", trainer, "-device", "cpu", env=env)
            table = work / f"{plans}_fold{fold}_seed{seed}.csv"
            run("nnunet-archs", "evaluate", "--reference", str(dataset / "labelsTr"), "--prediction",
                str(work / "nnUNet_results" / dataset.name / f"{trainer}__{plans}__2d" / f"fold_{fold}" /
                    "validation"), "--dataset-json", str(dataset / "dataset.json"), "--metrics", "DetectionRecall",
                "--object-labels", "small", "-o", str(table), env=env)
            reference = [r for r in csv.DictReader(open(objects_path(table))) if r["side"] == "reference"]
            found = sum(r["matched"] == "True" for r in reference)
            print(f"{network} fold {fold} training seed {seed}: {found}/{len(reference)} blobs found "
                  f"(recall {found / len(reference):.2f})", flush=True)


if __name__ == "__main__":
    main()
