"""GPU validation: every network trained the way nnU-Net trains it on a GPU, at the M preset's planned configuration.

For PlainConvUNet, ResEncUNet, KiUNet and UIUNet (``nnunet_archs.registry``):
1. plan with the network's M planner (ours; nnU-Net's nnUNetPlannerResEncM for ResEncUNet) at 8 GB on a synthetic
   fingerprint made from a built-in real plans entry (its spacing; its planned patch as the median image size);
2. run nnU-Net's training step at that patch and batch (``profiling.TrainingStep`` with nnU-Net's Dice+CE loss under
   deep supervision, SGD with Nesterov momentum, fp16 autocast with a GradScaler), eager and torch.compile'd from
   the same initial weights: the first step's loss must be finite and the compiled one close to the eager one;
3. measure the peak of ``torch.cuda.max_memory_allocated`` over the timed steps against the planner's target (the
   planner-honesty table, measured; "vs ResEnc" is the ratio to ResEnc's peak/target, the goal is 1 +- 0.15) and
   the median step time, relative to PlainConvUNet and ResEncUNet (all planned for the same memory);
4. train each with stock ``nnUNetv2_train -device cuda`` and ``nnUNet_compile=t`` for a few iterations
   (nnUNetTrainerBudget, a tiny synthetic dataset planned by the same planners), reading the epoch time and peak
   memory that nnUNetTrainerBudget records.
Prints one table and writes JSON (``--output``). A device command is limited to 10 minutes: ``--parts`` and
``--networks`` split the work (e.g. ``--parts steps``, then ``--parts train --networks PlainConvUNet ResEncUNet``).

    python benchmarks/gpu_validation.py [--output benchmark_output/gpu_validation.json] [--parts steps train]

Without CUDA (or with ``--cpu-smoke``) the same code runs tiny: planned at a 0.05 GB target on a small fingerprint,
bf16 autocast, eager only unless ``--compile``, ``-device cpu`` training of one iteration. ``make test`` runs that
(tests/benchmarks/test_gpu_validation.py). Wheels for the lent GPU machines: benchmarks/gpu_wheels.sh.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path

import torch

NETWORKS = {"PlainConvUNet": "nnUNetPlannerPlainConvUNetM", "ResEncUNet": "nnUNetPlannerResEncM",
            "KiUNet": "nnUNetPlannerKiUNetM", "UIUNet": "nnUNetPlannerUIUNetM"}
REFERENCES = ("PlainConvUNet", "ResEncUNet")
DEFAULT_RECORD = "ismaseptem/comp0251:config/nnUNetPlans.json#3d_fullres"
FINGERPRINT_DATASET, TRAINING_DATASET = 901, 902
# first-step losses of the compiled and eager step from the same weights: fp16 autocast rounds differently once
# inductor fuses operations
LOSS_RTOL = 0.02


def nnunet_folders(root: Path) -> None:
    """nnU-Net reads its folders from the environment when it is first imported."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[name] = str(root / name)
        (root / name).mkdir(parents=True, exist_ok=True)


def record_spacing(record_id: str) -> list:
    records = json.loads(resources.files("nnunet_archs").joinpath("data/real_plans.json").read_text())["records"]
    return next(r["spacing"] for r in records if r["id"] == record_id)


def write_fingerprint(dataset_id: int, shape, spacing) -> None:
    """A tiny real dataset whose fingerprint claims ``shape`` at ``spacing``: planning reads only the fingerprint."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset
    from nnunet_archs.datasets import write_synthetic_dataset
    folder = write_synthetic_dataset(Path(os.environ["nnUNet_raw"]), dataset_id, f"Fingerprint{dataset_id}", n_test=0)
    fingerprint = extract_fingerprint_dataset(dataset_id, num_processes=1, verbose=False, show_progress_bar=False)
    fingerprint["shapes_after_crop"] = [list(shape)] * len(fingerprint["shapes_after_crop"])
    fingerprint["spacings"] = [list(spacing)] * len(fingerprint["spacings"])
    (Path(os.environ["nnUNet_preprocessed"]) / folder.name / "dataset_fingerprint.json").write_text(
        json.dumps(fingerprint))


def planned_record(dataset_id: int, planner_name: str, gb: float):
    """The 3d_fullres configuration ``planner_name`` plans at ``gb``, as a PlansRecord."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import plan_experiment_dataset
    from nnunet_archs.planning.lookup import find_planner
    from nnunet_archs.real_plans import PlansRecord
    plans, _ = plan_experiment_dataset(dataset_id, find_planner(planner_name), gb,
                                       overwrite_plans_name=f"validation_{planner_name}")
    dataset_json = json.loads(next(Path(os.environ["nnUNet_raw"]).glob(f"Dataset{dataset_id:03d}_*/dataset.json"))
                              .read_text())
    return PlansRecord.from_plans_file(plans, planner_name, "3d_fullres", dataset_json)


def nnunet_loss(record, compile: bool):
    """nnUNetTrainer._build_loss for a label dataset without DDP: Dice + CE, deep-supervision weights halving per
    scale with the lowest output unused, Dice compiled when the network is."""
    import numpy as np
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    if compile:
        loss.dc = torch.compile(loss.dc)
    weights = np.array([1 / 2 ** i for i in range(len(record.strides) - 1)])
    weights[-1] = 0
    return DeepSupervisionWrapper(loss, weights / weights.sum())


def training_batch(record, batch_size: int, device: str):
    """Random images and labels, the labels at every deep-supervision scale (nnU-Net downsamples them likewise)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, record.num_input_channels, *record.patch_size, generator=generator).to(device)
    labels = torch.randint(0, record.num_classes, (batch_size, 1, *record.patch_size), generator=generator).float()
    scales = torch.tensor(record.strides).cumprod(0)[:-1]
    targets = [torch.nn.functional.interpolate(labels, size=[p // s for p, s in zip(record.patch_size, scale)],
                                               mode="nearest-exact").to(device) for scale in scales.tolist()]
    return x, targets


def measure_steps(name: str, record, device: str, amp: bool, modes, repeats: int) -> list:
    """Eager and compiled training steps of one network from the same initial weights."""
    from nnunet_archs.profiling import TrainingStep
    from nnunet_archs.registry import get_variant
    torch.manual_seed(0)
    initial = record.build_variant(get_variant(name), deep_supervision=True)
    x, targets = training_batch(record, record.batch_size, device)
    rows = []
    for compile in modes:
        net = copy.deepcopy(initial).to(device)
        loss = nnunet_loss(record, compile)
        step = TrainingStep(net, amp=amp, compile=compile, loss=lambda output: loss(output, targets))
        row = {"network": name, "compile": compile, "step": step.describe(), "patch": record.patch_size,
               "batch": record.batch_size, "first_loss": float(step(x))}
        if device == "cuda":
            torch.cuda.synchronize()
            held_before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(1 + repeats):  # the first compiles the backward graph or settles the allocator
            start = time.perf_counter()
            step(x)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        row["step_s"] = sorted(times[1:])[len(times[1:]) // 2]
        row["state_bytes"] = step.state_bytes()
        if device == "cuda":
            # everything the step holds: parameters, optimizer state, gradients, activations, workspaces
            row["peak_bytes"] = torch.cuda.max_memory_allocated()
            row["activation_bytes"] = row["peak_bytes"] - held_before
        else:  # no allocator peak on a CPU: autograd's saved bytes, parameters and optimizer state
            row["activation_bytes"] = step.activation_bytes(x)
            row["peak_bytes"] = row["activation_bytes"] + row["state_bytes"]
        rows.append(row)
        del net, step, loss
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def check_and_relate(rows: list, gb: float) -> list:
    """Assertions (finite losses, compiled close to eager) and the ratios of the table; returns the failures."""
    failures = []
    by_key = {(r["network"], r["compile"]): r for r in rows}
    for row in rows:
        row["peak_over_target"] = row["peak_bytes"] / (gb * 2 ** 30)
    for row in rows:
        if not math.isfinite(row["first_loss"]):
            failures.append(f"{row['network']} ({row['step']}): first loss {row['first_loss']}")
        eager = by_key.get((row["network"], False))
        if row["compile"] and eager and not math.isclose(row["first_loss"], eager["first_loss"], rel_tol=LOSS_RTOL):
            failures.append(f"{row['network']}: compiled first loss {row['first_loss']:.4f} vs eager "
                            f"{eager['first_loss']:.4f}")
        for reference in REFERENCES:
            other = by_key.get((reference, row["compile"]))
            if other:
                row[f"step_x_{reference}"] = row["step_s"] / other["step_s"]
        resenc = by_key.get(("ResEncUNet", row["compile"]))
        if resenc:
            row["peak_over_target_vs_ResEncUNet"] = row["peak_over_target"] / resenc["peak_over_target"]
    return failures


def entry_point_command(script: str) -> list:
    """A console script of an installed package, run by this interpreter (wheels installed with ``--target`` have
    no scripts on the PATH)."""
    target = next(iter(entry_points(group="console_scripts", name=script))).value
    module, function = target.split(":")
    return [sys.executable, "-c", f"import sys; sys.argv[0] = {script!r}; from {module} import {function}; "
                                  f"sys.exit({function}())"]


def stock_training(networks, device: str, gb: float, iterations: int, compile: bool, work: Path) -> list:
    """Plan, preprocess and train each network with the stock programs. ``compile`` sets nnUNet_compile (t is
    nnU-Net's default on CUDA; on a CPU its trainer never compiles, but its predictor, which runs the final
    validation, does when nnUNet_compile=t)."""
    from nnunet_archs.datasets import write_synthetic_dataset
    from nnunet_archs.planning.api import default_plans_name
    from nnunet_archs.planning.lookup import find_planner
    from nnunet_archs.training.environment import EPOCH_LOG, ext_trainers_path
    write_synthetic_dataset(Path(os.environ["nnUNet_raw"]), TRAINING_DATASET, "GpuValidation")
    env = {**os.environ, "nnUNet_compile": "t" if compile else "f", "nnUNet_extTrainer": ext_trainers_path(),
           "NNUNET_ARCHS_EPOCHS": "1", "NNUNET_ARCHS_ITERATIONS": str(iterations), "NNUNET_ARCHS_VAL_ITERATIONS": "1"}
    rows = []
    for name in networks:
        planner = NETWORKS[name]
        plans = default_plans_name(find_planner(planner))
        log = work / f"train_{name}.log"
        start = time.perf_counter()
        with log.open("w") as out:
            commands = [
                entry_point_command("nnunet-archs") + ["plan_and_preprocess", "-d", str(TRAINING_DATASET), "-pl",
                                                       planner, "-gpu_memory_target", str(gb), "-c", "3d_fullres",
                                                       "-np", "2", "--no_pbar"],
                entry_point_command("nnUNetv2_train") + [str(TRAINING_DATASET), "3d_fullres", "0", "-p", plans,
                                                         "-tr", "nnUNetTrainerBudget", "-device", device]]
            returncode = 0
            for command in commands:
                returncode = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
                if returncode:
                    break
        fold = next(Path(os.environ["nnUNet_results"]).glob(
            f"Dataset{TRAINING_DATASET}_*/nnUNetTrainerBudget__{plans}__3d_fullres/fold_0"), None)
        epochs = [json.loads(line) for line in (fold / EPOCH_LOG).read_text().splitlines()] \
            if fold and (fold / EPOCH_LOG).exists() else []
        text = log.read_text()
        rows.append({"network": name, "plans": plans, "returncode": returncode,
                     "compiled": "Using torch.compile..." in text, "seconds": time.perf_counter() - start,
                     "epochs": epochs, "log_tail": text[-2000:] if returncode else ""})
    return rows


def format_steps(rows: list, gb: float) -> str:
    lines = [f"| network | step | patch | batch | first loss | peak (GiB) | peak / {gb:g} GB | vs ResEnc "
             "| activations (GiB) | params+optimizer (MiB) | step (s) | step x PlainConvUNet | step x ResEnc |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def ratio(row, key):
        return f"{row[key]:.2f}" if key in row else "-"
    for r in rows:
        lines.append(f"| {r['network']} | {r['step']} | {'x'.join(map(str, r['patch']))} | {r['batch']} "
                     f"| {r['first_loss']:.4f} | {r['peak_bytes'] / 2 ** 30:.2f} | {r['peak_over_target']:.2f} "
                     f"| {ratio(r, 'peak_over_target_vs_ResEncUNet')} | {r['activation_bytes'] / 2 ** 30:.2f} "
                     f"| {r['state_bytes'] / 2 ** 20:.0f} | {r['step_s']:.3f} | {ratio(r, 'step_x_PlainConvUNet')} "
                     f"| {ratio(r, 'step_x_ResEncUNet')} |")
    return "\n".join(lines)


def format_training(rows: list) -> str:
    lines = ["| network | plans | exit | torch.compile | epoch (s) | peak (GiB) | wall (s) |", "|---|---|---:|---|---:|---:|---:|"]
    for r in rows:
        epoch = r["epochs"][-1] if r["epochs"] else {}
        peak = epoch.get("max_memory_allocated_bytes")
        lines.append(f"| {r['network']} | {r['plans']} | {r['returncode']} | {'yes' if r['compiled'] else 'no'} "
                     f"| {epoch.get('epoch_seconds', '-')} | {'-' if peak is None else f'{peak / 2 ** 30:.2f}'} "
                     f"| {r['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("benchmark_output/gpu_validation.json"))
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--parts", nargs="+", default=["steps", "train"], choices=["steps", "train"])
    parser.add_argument("--builtin", default=DEFAULT_RECORD, help="the built-in plans entry the fingerprint is made of")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per network and mode")
    parser.add_argument("--iterations", type=int, default=10, help="training iterations of each nnUNetv2_train run")
    parser.add_argument("--cpu-smoke", action="store_true", help="the tiny CPU path (automatic without CUDA)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also measure the torch.compile'd step (default: on CUDA only)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="autocast (default: on CUDA only; bf16 3D convolutions run about 20x slower than fp32 "
                             "on a CPU without bf16 instructions)")
    parser.add_argument("--work-dir", type=Path, default=None, help="nnU-Net folders (default: a new temporary one)")
    args = parser.parse_args(argv)
    smoke = args.cpu_smoke or not torch.cuda.is_available()
    device = "cpu" if smoke else "cuda"
    compile = (not smoke) if args.compile is None else args.compile
    amp = (not smoke) if args.amp is None else args.amp
    gb = 0.05 if smoke else 8.0
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="nnunet_archs_gpu_validation_"))
    nnunet_folders(work)

    from nnunet_archs.real_plans import find_record
    record = find_record(args.builtin)
    fingerprint_shape = record.reduced_patch(1) if smoke else record.patch_size
    result = {"date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name() if device == "cuda" else
              f"{platform.machine()} CPU", "torch": torch.__version__, "cpu_smoke": smoke, "target_gb": gb,
              "fingerprint": {"record": record.id, "shape": fingerprint_shape, "spacing": record_spacing(record.id)},
              "steps": [], "training": [], "failures": []}
    print(f"# GPU validation, {result['date']}, {result['device']}, torch {torch.__version__}; M preset "
          f"({gb:g} GB) planned on a fingerprint of {record.id} (median image {fingerprint_shape}); work folder "
          f"{work}" + ("; CPU smoke: peak = saved activations + parameters and optimizer state" if smoke else "")
          + "\n")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if "steps" in args.parts:
        write_fingerprint(FINGERPRINT_DATASET, fingerprint_shape, result["fingerprint"]["spacing"])
        modes = (False, True) if compile else (False,)
        for name in args.networks:
            planned = planned_record(FINGERPRINT_DATASET, NETWORKS[name], gb)
            result["steps"].extend(measure_steps(name, planned, device, amp, modes, args.repeats))
            args.output.write_text(json.dumps(result, indent=1))  # partial results survive a time limit
        result["failures"] += check_and_relate(result["steps"], gb)
        print(format_steps(result["steps"], gb))
    if "train" in args.parts:
        result["training"] = stock_training(args.networks, device, 0.1 if smoke else gb,
                                            1 if smoke else args.iterations, compile, work)
        result["failures"] += [f"{r['network']}: nnUNetv2_train exited {r['returncode']}:\n{r['log_tail']}"
                               for r in result["training"] if r["returncode"]]
        result["failures"] += [f"{r['network']}: nnUNetv2_train did not compile" for r in result["training"]
                               if device == "cuda" and compile and not r["compiled"]]
        print("\n" + format_training(result["training"]))
    args.output.write_text(json.dumps(result, indent=1))
    print(f"\nWritten: {args.output}")
    for failure in result["failures"]:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
