"""``nnunet-archs profile``: the cost side of a comparison, every architecture at the same plans configuration.

Parameters, forward FLOPs, the planner's estimate, measured memory of a training step (activations, and
parameters plus optimizer state), median step time (and optionally inference time per patch), each with its ratio
to the first architecture, plus a sweep of estimate and measured memory over patch sizes. A step is nnU-Net's
(``profiling.TrainingStep``): on CUDA fp16 autocast, GradScaler and torch.compile by default, on CPU fp32 eager
(``--amp``: bf16 autocast). Written as a table, a JSON file and a PNG plot.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from nnunet_archs.architectures.zoo import divisor, fit_patch
from nnunet_archs.errors import UserError
from nnunet_archs.profiling import (AUTOCAST_DTYPES, TrainingStep, describe_step, nnunet_step_mode, profile_networks,
                                    require_device)
from nnunet_archs.real_plans import PlansRecord
from nnunet_archs.registry import get_variant

DEFAULT_ARCHITECTURES = ["PlainConvUNet", "ResEncUNet", "KiUNet", "UIUNet", "UIUNet-minimal"]
COLUMNS = ["params", "gflops", "estimate", "saved_bytes", "state_bytes", "step_s", "inference_s"]


@dataclass
class ProfileResult:
    configuration: str
    patch: List[int]
    batch_size: int
    device: str
    step: str  # how a training step ran (TrainingStep.describe)
    rows: Dict[str, dict]
    sweep: Dict[str, List[dict]]
    machine: str
    date: str


def ratios(rows: Dict[str, dict]) -> Dict[str, dict]:
    """Each architecture's figures divided by the first architecture's."""
    first = next(iter(rows.values()))
    return {name: {column: row[column] / first[column] for column in row if first.get(column)}
            for name, row in rows.items()}


def sweep_memory(record: PlansRecord, architectures: Sequence[str], bottlenecks: Sequence[int],
                 device: str, progress: tqdm, amp: bool = False) -> Dict[str, List[dict]]:
    """Estimate and measured activation memory of one sample at growing patches of the same topology, with the
    main table's precision but eager (compiling once per patch would cost minutes per point)."""
    sweep: Dict[str, List[dict]] = {name: [] for name in architectures}
    variants = [get_variant(name) for name in architectures]
    for bottleneck in bottlenecks:
        patch = record.shared_patch(variants, record.reduced_patch(bottleneck))
        x = torch.randn(1, record.num_input_channels, *patch, device=device)
        for name in architectures:
            net = record.build_variant(get_variant(name), deep_supervision=True).to(device)
            sweep[name].append({"patch": patch, "voxels": int(np.prod(patch)),
                                "estimate": int(net.compute_conv_feature_map_size(patch)),
                                "saved_bytes": TrainingStep(net, amp=amp).activation_bytes(x)})
            progress.update()
    return sweep


def run_profile(record: PlansRecord, architectures: Sequence[str], patch: List[int], batch_size: int,
                repeats: int = 3, inference: bool = False, sweep_bottlenecks: Sequence[int] = (),
                device: str = "cpu", amp: Optional[bool] = None, compile: Optional[bool] = None) -> ProfileResult:
    """``amp`` and ``compile`` default to nnU-Net's choice for the device (:func:`nnunet_step_mode`). Every
    argument is checked before anything is built."""
    require_device(device)
    if amp and device.split(":")[0] not in AUTOCAST_DTYPES:
        raise UserError(f"--amp measures autocast on {' or '.join(AUTOCAST_DTYPES)}, not {device!r}")
    for flag, value in (("--batch-size", batch_size), ("--repeats", repeats)):
        if value < 1:
            raise UserError(f"{flag} must be >= 1, got {value}")
    if any(b < 1 for b in sweep_bottlenecks):
        raise UserError(f"--sweep bottleneck sizes must be >= 1, got {list(sweep_bottlenecks)}")
    record.check_patch(patch)
    for name in architectures:
        step = divisor(get_variant(name).arch_kwargs(record.network_class_name, record.arch_kwargs))
        if any(p % d for p, d in zip(patch, step)):
            raise UserError(f"--patch {patch}: {name} needs a multiple of {step} along each axis (its own "
                            f"down-sampling), e.g. --patch {' '.join(map(str, fit_patch(step, patch, up=True)))}")
    mode = nnunet_step_mode(device, amp, compile)
    with tqdm(total=1 + len(architectures) * len(sweep_bottlenecks), desc="profiling", unit="step") as progress:
        builders = {name: (lambda v=get_variant(name): record.build_variant(v, deep_supervision=True))
                    for name in architectures}
        rows = profile_networks(builders, [batch_size, record.num_input_channels, *patch], repeats,
                                with_inference=inference, device=device, **mode)
        progress.update()
        sweep = sweep_memory(record, architectures, sweep_bottlenecks, device, progress, mode["amp"])
    machine = torch.cuda.get_device_name() if device.startswith("cuda") else \
        f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    return ProfileResult(record.id, patch, batch_size, device, describe_step(device, **mode), rows, sweep,
                         machine, time.strftime("%Y-%m-%d"))


def format_table(result: ProfileResult) -> str:
    relative = ratios(result.rows)
    header = ("| architecture | params (M) | GFLOPs | estimate (M) | activations (MB) | params+optimizer (MB) "
              "| step (s) | inference (s) | GFLOP/s | params x | GFLOPs x | memory x | step x | FLOP/s x |")
    lines = [f"{result.configuration}, patch {'x'.join(map(str, result.patch))}, batch {result.batch_size}, "
             f"{result.machine}, {result.date}; training step: {result.step}; GFLOP/s = forward+backward FLOPs / "
             "step time", "", header, "|---" * 14 + "|"]
    for name, row in result.rows.items():
        r = relative[name]
        inference = f"{row['inference_s']:.3f}" if "inference_s" in row else "-"
        lines.append(f"| {name} | {row['params'] / 1e6:.2f} | {row['gflops']:.1f} | {row['estimate'] / 1e6:.1f} "
                     f"| {row['saved_bytes'] / 2 ** 20:.0f} | {row['state_bytes'] / 2 ** 20:.0f} "
                     f"| {row['step_s']:.3f} | {inference} | {row['gflop_per_s']:.1f} "
                     f"| {r['params']:.2f} | {r['gflops']:.2f} | {r['saved_bytes']:.2f} | {r['step_s']:.2f} "
                     f"| {r['gflop_per_s']:.2f} |")
    return "\n".join(lines)


def plot(result: ProfileResult, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    relative = ratios(result.rows)
    names = list(result.rows)
    columns = [("params", "parameters"), ("gflops", "FLOPs"), ("saved_bytes", "activation memory"),
               ("step_s", "step time")]
    figure, axes = plt.subplots(1, 2 if result.sweep and any(result.sweep.values()) else 1, figsize=(13, 4.5),
                                squeeze=False)
    width = 0.8 / len(columns)
    for i, (column, label) in enumerate(columns):
        axes[0][0].bar(np.arange(len(names)) + i * width, [relative[n][column] for n in names], width, label=label)
    axes[0][0].set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=20)
    axes[0][0].axhline(1, color="grey", lw=0.8)
    axes[0][0].set_ylabel(f"ratio to {names[0]}")
    axes[0][0].legend()
    axes[0][0].set_title(f"cost at patch {'x'.join(map(str, result.patch))}, batch {result.batch_size}")
    if axes.shape[1] > 1:
        for name, points in result.sweep.items():
            axes[0][1].plot([p["voxels"] for p in points], [p["saved_bytes"] / 2 ** 20 for p in points], "o-",
                            label=name)
        axes[0][1].set_xscale("log")
        axes[0][1].set_yscale("log")
        axes[0][1].set_xlabel("patch voxels")
        axes[0][1].set_ylabel("activation memory per sample (MB)")
        axes[0][1].set_title("scaling with patch size")
        axes[0][1].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_outputs(result: ProfileResult, output: Path) -> Dict[str, Path]:
    output.mkdir(parents=True, exist_ok=True)
    paths = {"json": output / "profile.json", "png": output / "profile.png", "table": output / "profile.md"}
    paths["json"].write_text(json.dumps({**asdict(result), "ratios": ratios(result.rows)}, indent=1))
    paths["table"].write_text(format_table(result) + "\n")
    plot(result, paths["png"])
    return paths


def default_patch(record: PlansRecord, device: str, patch: Optional[List[int]],
                  architectures: Sequence[str] = ()) -> List[int]:
    """The planned patch on a GPU; on a CPU, unless given, the smallest patch of the planned topology whose
    bottleneck is 2 voxels per axis (a planned 3D patch takes minutes per step on a CPU); rounded up to what every
    architecture accepts (Swin UNETR, for one, needs multiples of 32)."""
    if patch:
        return patch
    default = list(record.patch_size) if device.startswith("cuda") else record.reduced_patch(2)
    return record.shared_patch([get_variant(name) for name in architectures], default)
