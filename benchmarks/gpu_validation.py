"""GPU validation: one prepared command that a lent GPU machine runs once, stopping itself within a time budget.

Parts, in priority order (``--parts`` chooses; each writes the JSON after every network, so a run cut short keeps
what it measured, and a part that would not fit the remaining ``--budget-seconds`` is skipped and says so):

1. ``steps``: nnU-Net's training step (Dice+CE under deep supervision, SGD with Nesterov momentum, fp16 autocast
   with a GradScaler), eager, for PlainConvUNet, ResEncUNet, KiUNet and UIUNet each at the configuration its own M
   planner plans at 8 GB on a synthetic fingerprint made from a built-in real plans entry; peak of
   ``torch.cuda.max_memory_allocated`` (and ``max_memory_reserved``, and with NVML the nvidia-smi equivalent:
   reserved plus the CUDA context) and median step time, against ResEnc's;
2. ``zoo``: the same step for the networks users compare against, MedNeXt, SegResNet and SwinUNETR (Swin UNETR
   without deep supervision, as nnUNetTrainerNoDeepSupervision trains it), each at its own M plans, with ResEnc's
   row of ``steps`` (measured here if ``steps`` was not run) as the reference: allocated, reserved and nvidia-smi
   equivalent peaks against ResEnc's;
3. ``inference``: one case of the fingerprint's median size predicted by nnU-Net's predictor (sliding window,
   Gaussian weighting, test-time mirroring) with each network: seconds per case and peak memory;
4. ``calibration``: each network's bytes per sample against ResidualEncoderUNet's at its planned 3D patch and a 2D
   configuration's patch (``calibration.measure``, allocator peak under fp16 autocast): the estimate-per-byte
   factors the planners would use, measured where planning happens;
5. ``compiled``: the same steps through ``torch.compile`` (compiled first loss close to eager's), and a
   ``torch.profiler`` summary of UIU-Net's compiled step;
6. ``large``: the eager steps at the L preset (24 GB);
7. ``train``: stock ``nnUNetv2_train -device cuda`` with ``nnUNet_compile=t`` for a few iterations.

    benchmarks/gpu_check.sh        # on the GPU machine: installs the carried wheels, then runs this within 6 min

Without CUDA (or with ``--cpu-smoke``) the same code runs tiny: planned at a 0.05 GB target on a small fingerprint,
fp32 eager steps, CPU calibration (FakeTensors), ``-device cpu`` training of one iteration. ``make test`` runs every
part but ``train`` that way (tests/benchmarks/test_gpu_validation.py); wheels for the GPU: benchmarks/gpu_wheels.sh.
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
# the networks users compare against (the zoo part), each with its own M planner
ZOO = {"MedNeXt": "nnUNetPlannerMedNeXtM", "SegResNet": "nnUNetPlannerSegResNetM",
       "SwinUNETR": "nnUNetPlannerSwinUNETRM"}
REFERENCES = ("PlainConvUNet", "ResEncUNet")
DEFAULT_RECORD = "ismaseptem/comp0251:config/nnUNetPlans.json#3d_fullres"
RECORD_2D = "ismaseptem/comp0251:config/nnUNetPlans.json#2d"
PARTS = ("steps", "zoo", "inference", "calibration", "compiled", "large", "train")
PRESET_GB = {"M": 8.0, "L": 24.0}
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
    record = PlansRecord.from_plans_file(plans, planner_name, "3d_fullres", dataset_json)
    record.plans, record.dataset_json = plans, dataset_json  # what nnU-Net's predictor reads (measure_inference)
    return record


def nnunet_loss(record, compile: bool, deep_supervision: bool = True):
    """nnUNetTrainer._build_loss for a label dataset without DDP: Dice + CE, deep-supervision weights halving per
    scale with the lowest output unused (without deep supervision, as nnUNetTrainerNoDeepSupervision, the loss of
    the one full-resolution output), Dice compiled when the network is."""
    import numpy as np
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    if compile:
        loss.dc = torch.compile(loss.dc)
    if not deep_supervision:
        return lambda output, targets: loss(output, targets[0])
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
    from nnunet_archs.architectures.zoo import has_deep_supervision
    from nnunet_archs.profiling import TrainingStep
    from nnunet_archs.registry import get_variant
    from nnunet_archs.training.gpu_memory import cuda_context, nvidia_smi_equivalent
    torch.manual_seed(0)
    variant = get_variant(name)
    initial = record.build_variant(variant, deep_supervision=True)  # as the trainer builds it (Swin UNETR: without)
    deep_supervision = has_deep_supervision(type(initial))
    x, targets = training_batch(record, record.batch_size, device)
    rows = []
    for compile in modes:
        net = copy.deepcopy(initial).to(device)
        loss = nnunet_loss(record, compile, deep_supervision)
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
            row["reserved_bytes"] = torch.cuda.max_memory_reserved()  # what the caching allocator took
            context = cuda_context(torch.device(device))  # NVML (nnunet-archs[gpu]), or None with the reason
            row["nvidia_smi_bytes"] = nvidia_smi_equivalent(row["reserved_bytes"], context["cuda_context_bytes"])
            row["nvml_note"] = context["nvml_note"]
        else:  # no allocator peak on a CPU: autograd's saved bytes, parameters and optimizer state
            row["activation_bytes"] = step.activation_bytes(x)
            row["peak_bytes"] = row["activation_bytes"] + row["state_bytes"]
            row["reserved_bytes"] = row["nvidia_smi_bytes"] = None
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
            for key in ("reserved_bytes", "nvidia_smi_bytes"):
                if row.get(key) and resenc.get(key):
                    row[f"{key}_vs_ResEncUNet"] = row[key] / resenc[key]
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


def format_zoo(rows: list, gb: float) -> str:
    """Allocated, reserved and nvidia-smi equivalent peaks of each network's M plans, and their ratios to ResEnc's."""
    def ratio(row, key):
        return f"{row[key]:.2f}" if key in row else "-"
    return markdown_table(
        ["network", "patch", "#batch", "#allocated (GiB)", "#vs ResEnc", "#reserved (GiB)", "#vs ResEnc",
         "#nvidia-smi equivalent (GiB)", "#vs ResEnc", f"#allocated / {gb:g} GB", "#step (s)"],
        [[r["network"], "x".join(map(str, r["patch"])), r["batch"], gib(r["peak_bytes"]),
          ratio(r, "peak_over_target_vs_ResEncUNet"), gib(r.get("reserved_bytes")),
          ratio(r, "reserved_bytes_vs_ResEncUNet"), gib(r.get("nvidia_smi_bytes")),
          ratio(r, "nvidia_smi_bytes_vs_ResEncUNet"), f"{r['peak_over_target']:.2f}", f"{r['step_s']:.3f}"]
         for r in rows])


def markdown_table(header: list, rows: list) -> str:
    """A markdown table; a header starting with "#" marks a right-aligned (numeric) column."""
    names = [h.lstrip("#") for h in header]
    rule = "|" + "|".join("---:" if h.startswith("#") else "---" for h in header) + "|"
    return "\n".join(["| " + " | ".join(names) + " |", rule] + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def gib(value) -> str:
    return "-" if value is None else f"{value / 2 ** 30:.2f}"


def format_training(rows: list) -> str:
    def epoch(r) -> dict:
        return r["epochs"][-1] if r["epochs"] else {}
    return markdown_table(["network", "plans", "#exit", "torch.compile", "#epoch (s)", "#peak (GiB)", "#wall (s)"],
                          [[r["network"], r["plans"], r["returncode"], "yes" if r["compiled"] else "no",
                            epoch(r).get("epoch_seconds", "-"), gib(epoch(r).get("max_memory_allocated_bytes")),
                            f"{r['seconds']:.0f}"] for r in rows])


class Budget:
    """Seconds left of ``total`` (None: no limit) since the process started; a unit of work starts only when the
    longest unit so far would still fit, so the command stops itself in time."""

    def __init__(self, total):
        self.total, self.start, self.longest = total, time.perf_counter(), 0.0
        self.skipped = []

    def left(self) -> float:
        return math.inf if self.total is None else self.total - (time.perf_counter() - self.start)

    def run(self, what: str, unit):
        if self.left() < 1.2 * self.longest:
            self.skipped.append(what)
            print(f"skipped (time budget): {what}", flush=True)
            return None
        began = time.perf_counter()
        result = unit()
        self.longest = max(self.longest, time.perf_counter() - began)
        return result


def measure_inference(name: str, record, shape, device: str) -> dict:
    """One case of ``shape`` predicted by nnU-Net's predictor with the network at its planned configuration (random
    weights: time and memory do not depend on them), test-time mirroring on, as nnUNetv2_predict runs it."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnunet_archs.registry import get_variant
    from nnunet_archs.training.prediction import TimedPredictor
    net = record.build_variant(get_variant(name), deep_supervision=False).to(device).eval()
    manager = PlansManager(record.plans)
    predictor = TimedPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                               perform_everything_on_device=True, device=torch.device(device), allow_tqdm=False)
    predictor.manual_initialization(net, manager, manager.get_configuration("3d_fullres"), [net.state_dict()],
                                    record.dataset_json, "nnUNetTrainer", tuple(range(len(shape))))
    data = torch.randn(record.num_input_channels, *shape, generator=torch.Generator().manual_seed(0))
    predictor.predict_logits_from_preprocessed_data(data)
    timing = predictor.timings[-1]
    return {"network": name, "image": list(shape), "patch": list(record.patch_size), "mirroring": True, **timing,
            "seconds_per_megavoxel": timing["seconds"] / (timing["voxels"] / 1e6)}


def measure_calibration(name: str, records, device: str) -> dict:
    """The network's estimate per byte against ResidualEncoderUNet's at planning sizes (allocator peak per sample
    under fp16 autocast on CUDA, FakeTensor saved bytes under bf16 on a CPU)."""
    from nnunet_archs.calibration import fit, measure
    from nnunet_archs.registry import get_variant
    points = [measure(get_variant(name), record, list(record.patch_size), "autocast", device) for record in records]
    factor, _, residuals = fit(points)
    return {"network": name, "points": [{"configuration": p.configuration, "patch": p.patch, "bytes": p.bytes,
                                         "reference_bytes": p.reference_bytes, "how": p.how} for p in points],
            "estimate_per_byte": factor, "per_point": [factor * (1 + r) for r in residuals]}


def profile_compiled_step(record, device: str, amp: bool) -> str:
    """torch.profiler's summary (top 20 operators by device time) of UIU-Net's compiled step."""
    from torch.profiler import ProfilerActivity, profile
    from nnunet_archs.profiling import TrainingStep
    from nnunet_archs.registry import get_variant
    net = record.build_variant(get_variant("UIUNet"), deep_supervision=True).to(device)
    x, targets = training_batch(record, record.batch_size, device)
    loss = nnunet_loss(record, True)
    step = TrainingStep(net, amp=amp, compile=True, loss=lambda output: loss(output, targets))
    for _ in range(2):  # compile and settle first
        step(x)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as profiler:
        step(x)
        if device == "cuda":
            torch.cuda.synchronize()
    key = "cuda_time_total" if device == "cuda" else "cpu_time_total"
    return profiler.key_averages().table(sort_by=key, row_limit=20)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("benchmark_output/gpu_validation.json"))
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--zoo", nargs="+", default=list(ZOO), choices=list(ZOO), help="networks of the zoo part")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="in priority order")
    parser.add_argument("--budget-seconds", type=float, default=None, help="stop starting work after this many "
                        "seconds from the start (default: no limit)")
    parser.add_argument("--builtin", default=DEFAULT_RECORD, help="the built-in plans entry the fingerprint is made of")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per network and mode")
    parser.add_argument("--iterations", type=int, default=10, help="training iterations of each nnUNetv2_train run")
    parser.add_argument("--cpu-smoke", action="store_true", help="the tiny CPU path (automatic without CUDA)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="autocast (default: on CUDA only; bf16 3D convolutions run about 20x slower than fp32 "
                             "on a CPU without bf16 instructions)")
    parser.add_argument("--work-dir", type=Path, default=None, help="nnU-Net folders (default: a new temporary one)")
    args = parser.parse_args(argv)
    budget = Budget(args.budget_seconds)
    smoke = args.cpu_smoke or not torch.cuda.is_available()
    device = "cpu" if smoke else "cuda"
    amp = (not smoke) if args.amp is None else args.amp
    targets = {preset: (0.05 * gb / 8 if smoke else gb) for preset, gb in PRESET_GB.items()}
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="nnunet_archs_gpu_validation_"))
    nnunet_folders(work)

    from nnunet_archs.real_plans import find_record
    record = find_record(args.builtin)
    fingerprint_shape = record.reduced_patch(1) if smoke else record.patch_size
    result = {"date": time.strftime("%Y-%m-%d"), "device": torch.cuda.get_device_name() if device == "cuda" else
              f"{platform.machine()} CPU", "torch": torch.__version__, "cpu_smoke": smoke, "target_gb": targets,
              "fingerprint": {"record": record.id, "shape": fingerprint_shape, "spacing": record_spacing(record.id)},
              "parts": list(args.parts), "steps": [], "zoo": [], "large": [], "inference": [], "calibration": [],
              "profile": None, "training": [], "skipped": budget.skipped, "failures": []}
    print(f"# GPU validation, {result['date']}, {result['device']}, torch {torch.__version__}; M preset "
          f"({targets['M']:g} GB) planned on a fingerprint of {record.id} (median image {fingerprint_shape}); work "
          f"folder {work}" + ("; CPU smoke: peak = saved activations + parameters and optimizer state" if smoke
                              else "") + "\n", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every unit: a run cut short keeps what it measured
        result["seconds"] = round(time.perf_counter() - budget.start, 1)
        args.output.write_text(json.dumps(result, indent=1))

    planned = {}
    if set(args.parts) - {"train"}:
        write_fingerprint(FINGERPRINT_DATASET, fingerprint_shape, result["fingerprint"]["spacing"])
    planners = {**NETWORKS, **ZOO}
    for part in args.parts:
        networks = args.networks if part in ("steps", "inference", "calibration", "compiled", "large") else []
        if part == "zoo":  # ResEnc's step is the reference: measured here unless the steps part has it
            resenc = [r for r in result["steps"] if r["network"] == "ResEncUNet"]
            result["zoo"] += [dict(r) for r in resenc]
            networks = ([] if resenc else ["ResEncUNet"]) + args.zoo
        for name in networks:
            preset = "L" if part == "large" else "M"
            if (name, preset) not in planned:  # the M planner's name with the preset's letter
                planned[(name, preset)] = planned_record(FINGERPRINT_DATASET, planners[name][:-1] + preset,
                                                         targets[preset])
            plans = planned[(name, preset)]
            if part == "zoo":
                result["zoo"] += budget.run(f"zoo {name}", lambda: measure_steps(name, plans, device, amp, (False,),
                                                                                 args.repeats)) or []
            elif part in ("steps", "compiled", "large"):
                rows = budget.run(f"{part} {name}", lambda: measure_steps(name, plans, device, amp,
                                                                          (part == "compiled",), args.repeats))
                result["large" if part == "large" else "steps"] += rows or []
            elif part == "inference":
                row = budget.run(f"inference {name}", lambda: measure_inference(name, plans, fingerprint_shape, device))
                result["inference"] += [row] if row else []
            else:
                records = [plans, find_record(RECORD_2D)]
                row = budget.run(f"calibration {name}", lambda: measure_calibration(name, records, device))
                result["calibration"] += [row] if row else []
            save()
        if part == "compiled" and "UIUNet" in args.networks:
            result["profile"] = budget.run("profile of UIU-Net's compiled step", lambda: profile_compiled_step(
                planned[("UIUNet", "M")], device, amp))
            save()
        if part == "train":
            rows = budget.run("train", lambda: stock_training(args.networks, device, 0.1 if smoke else targets["M"],
                                                              1 if smoke else args.iterations, not smoke, work))
            result["training"] = rows or []
            result["failures"] += [f"{r['network']}: nnUNetv2_train exited {r['returncode']}:\n{r['log_tail']}"
                                   for r in result["training"] if r["returncode"]]
            save()
    result["failures"] += check_and_relate(result["steps"], targets["M"]) + check_and_relate(result["large"],
                                                                                              targets["L"])
    result["failures"] += check_and_relate(result["zoo"], targets["M"])
    save()
    for title, rows, formatter in (("Steps at the M preset", result["steps"], lambda r: format_steps(r, targets["M"])),
                                   ("The networks users compare against, M preset", result["zoo"],
                                    lambda r: format_zoo(r, targets["M"])),
                                   ("Steps at the L preset", result["large"], lambda r: format_steps(r, targets["L"])),
                                   ("Inference per case", result["inference"], format_inference),
                                   ("Calibration at planning sizes", result["calibration"], format_calibration),
                                   ("nnUNetv2_train", result["training"], format_training)):
        if rows:
            print(f"\n## {title}\n\n{formatter(rows)}")
    if result["profile"]:
        print(f"\n## torch.profiler: UIU-Net's compiled step\n\n{result['profile']}")
    print(f"\nWritten: {args.output} ({result['seconds']:.0f} s" + (f"; skipped: {', '.join(budget.skipped)}"
                                                                   if budget.skipped else "") + ")")
    for failure in result["failures"]:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if result["failures"] else 0


def format_inference(rows: list) -> str:
    return markdown_table(["network", "image", "patch", "#s per case (mirroring)", "#s per megavoxel", "#peak (GiB)"],
                          [[r["network"], "x".join(map(str, r["image"])), "x".join(map(str, r["patch"])),
                            f"{r['seconds']:.3f}", f"{r['seconds_per_megavoxel']:.3f}",
                            gib(r["max_memory_allocated_bytes"])] for r in rows])


def format_calibration(rows: list) -> str:
    return markdown_table(["network", "#estimate per byte (all points)", "per point (configuration: factor)"],
                          [[r["network"], f"{r['estimate_per_byte']:.3f}", ", ".join(
                              f"{p['configuration'].split('#')[-1]} {'x'.join(map(str, p['patch']))}: {f:.3f}"
                              for p, f in zip(r["points"], r["per_point"]))] for r in rows])


if __name__ == "__main__":
    raise SystemExit(main())
