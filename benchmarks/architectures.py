"""Architecture cost benchmark: every preset before -> after, side by side with PlainConvUNet, in one run.

"Before" is each network as nnunet-archs 0.1.0 built it (imported from git history, ``benchmarks/previous.py``),
"after" as today, built from the same plans entry; all networks of a configuration take turns step by step in one
process, so their ratios stay meaningful on a loaded machine, and each configuration has a process of its own (one
that fails or is killed costs its own rows, not the run). Configurations: a 2D, an isotropic 3D and an anisotropic 3D
entry of real nnU-Net plans files at a reduced patch (bottleneck of 2 voxels per axis), and the three small
configurations of issue 12 (3D 16x64x64 and 32^3 with features 16-128, 2D 128^2 with 16-256). Prints

1. per configuration and network: parameters, forward GFLOPs, median forward+backward step time, saved
   activation bytes, achieved GFLOP/s (forward+backward FLOPs / step time), each before -> after and as a ratio
   to PlainConvUNet's, and the estimate/measured memory ratio relative to PlainConvUNet's;
2. the checkpointing trade-off: peak activation bytes of a training step and step time per ``checkpoint`` mode;
3. what each efficiency change did: the changed module before -> after, on the inputs it gets in the network.

    python benchmarks/architectures.py [--configurations ...] [--networks ...] [--repeats 3]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.previous, run as a script

from benchmarks.previous import VERSION, previous_class_path  # noqa: E402
from nnunet_archs.architectures.blocks import upsample_to  # noqa: E402
from nnunet_archs.profiling import (count_parameters, fake_saved_activation_bytes, median_step_seconds,  # noqa: E402
                                    peak_step_bytes, profile_networks)
from nnunet_archs.real_plans import PlansRecord, showcase_records  # noqa: E402
from nnunet_archs.registry import KIUNET, PLAIN_UNET, UIUNET, VARIANTS, ArchitectureVariant  # noqa: E402

# a training step's peak over the bytes its forward saves: 1.1-1.2 measured (peak_step_bytes, BENCHMARKS section
# 1.2), with a margin; to skip what would not fit this machine
PEAK_PER_SAVED_BYTE = 1.5
OURS = [name for name, v in VARIANTS.items() if v.class_path in (KIUNET, UIUNET) and "checkpoint" not in v.kwargs]
CHECKPOINT_MODES = {KIUNET: ("none", "ki", "stages"), UIUNET: ("none", "rsu", "stages")}


def small_record(name: str, dim: int, features: List[int], strides: List[List[int]], kernels: List[List[int]],
                 patch: List[int], batch: int) -> PlansRecord:
    """A plans entry shaped like nnU-Net's, of the small sizes issue 12 measured."""
    conv, norm = ("Conv3d", "InstanceNorm3d") if dim == 3 else ("Conv2d", "InstanceNorm2d")
    n = len(features)
    kwargs = dict(n_stages=n, features_per_stage=features, conv_op=f"torch.nn.modules.conv.{conv}",
                  kernel_sizes=kernels, strides=strides, n_conv_per_stage=[2] * n, n_conv_per_stage_decoder=[2] * (n - 1),
                  conv_bias=True, norm_op=f"torch.nn.modules.instancenorm.{norm}",
                  norm_op_kwargs={"eps": 1e-5, "affine": True}, dropout_op=None, dropout_op_kwargs=None,
                  nonlin="torch.nn.LeakyReLU", nonlin_kwargs={"inplace": True})
    return PlansRecord(id=f"issue 12 small:{name}", configuration="3d_fullres" if dim == 3 else "2d",
                       patch_size=patch, batch_size=batch, num_input_channels=1, num_classes=3,
                       network_class_name=PLAIN_UNET, arch_kwargs=kwargs,
                       kw_requires_import=["conv_op", "norm_op", "dropout_op", "nonlin"])


def configurations() -> Dict[str, tuple]:
    """name -> (plans record, patch, batch size)"""
    found = {f"{r.id.split(':')[0]} {r.configuration}": (r, r.reduced_patch(2), 2) for r in showcase_records()}
    for record in (
            small_record("3d 16x64x64", 3, [16, 32, 64, 128, 128, 128],
                         [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]],
                         [[1, 3, 3]] + [[3, 3, 3]] * 5, [16, 64, 64], 2),
            small_record("3d 32^3", 3, [16, 32, 64, 128, 128], [[1, 1, 1]] + [[2, 2, 2]] * 4, [[3, 3, 3]] * 5,
                         [32, 32, 32], 2),
            small_record("2d 128^2", 2, [16, 32, 64, 128, 256, 256], [[1, 1]] + [[2, 2]] * 5, [[3, 3]] * 6,
                         [128, 128], 4)):
        found[record.id.replace(":", " ")] = (record, record.patch_size, record.batch_size)
    return found


def variant_builder(record: PlansRecord, variant: ArchitectureVariant, previous: bool) -> Optional[Callable]:
    """A builder of the variant today or as 0.1.0 built it (None where 0.1.0 had no such options)."""
    if previous:
        variant = ArchitectureVariant(variant.name, previous_class_path(variant.class_path), variant.description,
                                      variant.kwargs, variant.feature_scale)
    try:
        record.build_variant(variant, deep_supervision=True)
    except (TypeError, ValueError):
        return None
    return lambda: record.build_variant(variant, deep_supervision=True)


def fits(builder: Callable, shape: List[int], limit_gb: float) -> Optional[float]:
    """None if a training step of the network on ``shape`` fits ``limit_gb``, else its expected peak in GB: the
    bytes its forward saves, counted on FakeTensors (seconds, no memory), times the step's peak per saved byte."""
    gigabytes = fake_saved_activation_bytes(builder, shape) * PEAK_PER_SAVED_BYTE / 2 ** 30
    return None if gigabytes <= limit_gb else gigabytes


def cost_header() -> None:
    print("## 1. Before -> after, ratios to PlainConvUNet measured in the same run\n")
    print(f"before = nnunet-archs {VERSION} (git), after = this tree; GFLOP/s = forward+backward FLOPs / step time; "
          f"estimate/measured relative to PlainConvUNet's (after)\n")
    print("| configuration | patch x batch | network | params (M) | GFLOPs fwd | step (s) | saved act. (MB) | GFLOP/s "
          "| step x Plain | memory x Plain | FLOP/s x Plain | estimate/measured vs Plain |")
    print("|---|---|---|---:|---:|---|---|---|---|---|---|---:|")


def cost_rows(args, name: str, config: tuple) -> None:
    record, patch, batch = config
    builders, skipped = {"PlainConvUNet": variant_builder(record, VARIANTS["PlainConvUNet"], False)}, {}
    for network in args.networks:
        for previous in (True, False):
            builder = variant_builder(record, VARIANTS[network], previous)
            too_big = builder and fits(builder, [batch, record.num_input_channels, *patch], args.memory_limit_gb)
            if builder and not too_big:
                builders[f"{network} ({'before' if previous else 'after'})"] = builder
            elif too_big:
                skipped[network] = too_big
    rows = profile_networks(builders, [batch, record.num_input_channels, *patch], args.repeats)
    plain = rows["PlainConvUNet"]
    shape = f"{'x'.join(map(str, patch))} x {batch}"
    print(f"| {name} | {shape} | PlainConvUNet | {plain['params'] / 1e6:.2f} | {plain['gflops']:.1f} "
          f"| {plain['step_s']:.2f} | {plain['saved_bytes'] / 2 ** 20:.0f} | {plain['gflop_per_s']:.1f} "
          f"| 1.00 | 1.00 | 1.00 | 1.00 |")
    for network in args.networks:
        if network in skipped:
            print(f"| {name} | {shape} | {network} | | | not run: a step would hold {skipped[network]:.0f} GB "
                  f"| | | | | | |")
            continue
        after, before = rows[f"{network} (after)"], rows.get(f"{network} (before)")

        def pair(column: str, fmt: str, relative: bool = False, scale: float = 1) -> str:
            def value(row: dict) -> float:
                return row[column] / plain[column] if relative else row[column] / scale
            text = format(value(after), fmt)
            return text if before is None else f"{format(value(before), fmt)} -> {text}"

        honesty = (after["estimate"] / after["saved_bytes"]) / (plain["estimate"] / plain["saved_bytes"])
        print(f"| {name} | {shape} | {network} | {after['params'] / 1e6:.2f} | {after['gflops']:.1f} "
              f"| {pair('step_s', '.2f')} | {pair('saved_bytes', '.0f', scale=2 ** 20)} "
              f"| {pair('gflop_per_s', '.1f')} | {pair('step_s', '.2f', True)} | {pair('saved_bytes', '.2f', True)} "
              f"| {pair('gflop_per_s', '.2f', True)} | {honesty:.2f} |", flush=True)


def checkpoint_header() -> None:
    print("## 2. Checkpointing: peak activation memory of a training step and step time, per mode\n")
    print("| configuration | network | checkpoint | peak act. (MB) | step (s) | memory vs none | step vs none "
          "| estimate/peak vs Plain |")
    print("|---|---|---|---:|---:|---:|---:|---:|")


def checkpoint_rows(args, name: str, config: tuple) -> None:
    record, patch, batch = config
    x = torch.randn(batch, record.num_input_channels, *patch)
    plain = record.build_variant(VARIANTS["PlainConvUNet"], deep_supervision=True)
    plain_ratio = float(plain.compute_conv_feature_map_size(patch)) * batch / peak_step_bytes(plain, x)
    for class_path, modes in CHECKPOINT_MODES.items():
        nets = [record.build_variant(ArchitectureVariant(m, class_path, "", {"checkpoint": m}), True)
                for m in modes]
        peaks = [peak_step_bytes(net, x) for net in nets]
        steps = median_step_seconds(nets, x, args.repeats)
        for mode, net, peak, step in zip(modes, nets, peaks, steps):
            honesty = float(net.compute_conv_feature_map_size(patch)) * batch / peak / plain_ratio
            print(f"| {name} | {class_path.split('.')[-1]} | {mode} | {peak / 2 ** 20:.0f} | {step:.2f} "
                  f"| {peak / peaks[0]:.2f} | {step / steps[0]:.2f} | {honesty:.2f} |", flush=True)


def _timed(function: Callable, inputs: Sequence[torch.Tensor], repeats: int) -> float:
    """Median forward+backward seconds of ``function(*inputs)``."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        outputs = function(*inputs)
        sum(o.float().mean() for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])).backward()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _saved(function: Callable, inputs: Sequence[torch.Tensor], module: torch.nn.Module) -> int:
    """Bytes autograd saves inside ``function(*inputs)``: the inputs and the module's parameters excluded."""
    excluded = {t.untyped_storage().data_ptr() for t in [*inputs, *module.parameters()]}
    seen = {}

    def pack(t: torch.Tensor):
        if t.untyped_storage().data_ptr() not in excluded:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t.detach()  # as profiling.saved_activation_bytes: no reference cycle keeping the graph alive

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        function(*inputs)
    return sum(seen.values())


def _captured_inputs(net: torch.nn.Module, module: torch.nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
    """The inputs ``module`` receives in a forward of ``net``, as leaves that require gradients."""
    captured = []
    handle = module.register_forward_pre_hook(lambda m, inputs: captured.append(inputs) if not captured else None)
    with torch.no_grad():
        net(x)
    handle.remove()
    return [t.detach().requires_grad_() for t in captured[0]]


def changes_header() -> None:
    print("## 3. What each efficiency change did: the module before -> after, inside the network\n")
    print(f"before = nnunet-archs {VERSION}; forward+backward time of the module alone and the bytes autograd saves "
          f"inside it\n")
    print("| configuration | change | module | fwd+bwd (ms) | saved (MB) |")
    print("|---|---|---|---|---|")


def changes_rows(args, name: str, config: tuple) -> None:
    """Each changed module as 0.1.0 and as today, same weights, on the inputs it receives in the network."""
    record, patch, batch = config
    x = torch.randn(batch, record.num_input_channels, *patch)
    old_ki = record.build_variant(ArchitectureVariant("old", previous_class_path(KIUNET), ""), True)
    old_ui = record.build_variant(ArchitectureVariant("old", previous_class_path(UIUNET), ""), True)
    kiunet = record.build_variant(VARIANTS["KiUNet"], deep_supervision=True)
    uiunet = record.build_variant(VARIANTS["UIUNet"], deep_supervision=True)
    kiunet.load_state_dict(old_ki.state_dict())
    uiunet.load_state_dict(old_ui.state_dict())
    deepest_ki = len(kiunet.decoder.ki_stages) - 1
    ica_level = min(int(k) for k in uiunet.decoder.fusions)
    old_ica = old_ui.decoder.fusions[str(ica_level)]
    cases = [
        ("Ki encoder convs channels-last on CPU", f"ki_encoder[{len(kiunet.ki_encoder) - 1}]",
         old_ki.ki_encoder[-1], kiunet.ki_encoder[-1], kiunet),
        ("Ki decoder: channels-last conv, max-pool indices recomputed", f"decoder.ki_stages[{deepest_ki}]",
         old_ki.decoder.ki_stages[deepest_ki], kiunet.decoder.ki_stages[deepest_ki], kiunet),
        ("RSU: max-pool indices recomputed", "encoder[0] (RSU)", old_ui.encoder[0], uiunet.encoder[0], uiunet),
        ("RSU-F: taps that read only padding skipped", "encoder[-1] (dilated RSU)", old_ui.encoder[-1],
         uiunet.encoder[-1], uiunet),
        ("IC-A: 1x1 projection before the upsampling, no doubled copies (0.1.0: upsampling included)",
         f"decoder.fusions[{ica_level}]",
         lambda deeper, low: old_ica(upsample_to(deeper, low.shape[2:]), low),
         uiunet.decoder.fusions[str(ica_level)], uiunet),
    ]
    for change, where, before, after, net in cases:
        inputs = _captured_inputs(net, after, x)
        print(f"| {name} | {change} | {where} | {_timed(before, inputs, args.repeats) * 1e3:.0f} -> "
              f"{_timed(after, inputs, args.repeats) * 1e3:.0f} | {_saved(before, inputs, net) / 2 ** 20:.1f} -> "
              f"{_saved(after, inputs, net) / 2 ** 20:.1f} |", flush=True)
    fuse = uiunet.decoder.seg_layers["fuse"]
    sides = [head(f) for head, f in zip(uiunet.decoder.seg_layers["sides"], _decoded(uiunet, x))]
    sides = [s.detach().requires_grad_() for s in sides]

    def concatenated(*s):  # 0.1.0: every side upsampled to full resolution, concatenated, one 1x1 conv
        return fuse(torch.cat([s[0]] + [upsample_to(side, s[0].shape[2:]) for side in s[1:]], 1))

    def summed(*s):
        return uiunet.decoder._fuse(list(s))

    print(f"| {name} | fused output as the sum of each side's upsampled 1x1 share | decoder fusion "
          f"| {_timed(concatenated, sides, args.repeats) * 1e3:.0f} -> {_timed(summed, sides, args.repeats) * 1e3:.0f} "
          f"| {_saved(concatenated, sides, uiunet) / 2 ** 20:.1f} -> {_saved(summed, sides, uiunet) / 2 ** 20:.1f} |")


def _decoded(net: torch.nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
    """UIU-Net's decoder levels and bottleneck: what its side heads read."""
    skips, decoded = [], []
    with torch.no_grad():
        h = x
        for s in range(net.cfg.n_stages):
            h = net._stage(s, h)
            skips.append(h)
        d = skips[-1]
        for s in reversed(range(len(net.decoder.stages))):
            d = net.decoder._level(s, d, skips[s])
            decoded.insert(0, d)
    return decoded + [skips[-1]]


def original_shaped_uiunet_parameters() -> None:
    """UIU-Net's paper model is 2D, 6 stages of 64..512 features, 3 input channels, 1 class: about 50.5 M."""
    from nnunet_archs.architectures.uiunet import DynamicUIUNet3D
    kwargs = dict(input_channels=3, n_stages=6, features_per_stage=[64, 128, 256, 512, 512, 512],
                  conv_op=torch.nn.Conv2d, kernel_sizes=3, strides=[1, 2, 2, 2, 2, 2], n_conv_per_stage=1,
                  num_classes=1, n_conv_per_stage_decoder=1, conv_bias=True, norm_op=torch.nn.BatchNorm2d,
                  nonlin=torch.nn.ReLU)
    print("DynamicUIUNet3D shaped like the original 2D UIU-Net (features 64,128,256,512,512,512; original: "
          "about 50.5 M parameters):")
    for options in ({}, {"mid_ratio": "original"}, {"mid_ratio": 0.25}, {"use_ica": False}):
        print(f"- {options or 'defaults'}: {count_parameters(DynamicUIUNet3D(**kwargs, **options)) / 1e6:.1f} M")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    configs = configurations()
    parser.add_argument("--configurations", nargs="+", default=list(configs), choices=list(configs))
    parser.add_argument("--networks", nargs="+", default=OURS, choices=OURS)
    parser.add_argument("--checkpoint-configurations", nargs="+", choices=list(configs),
                        default=[c for c in configs if "isotropic" not in c and "cs231n 3d" not in c])
    parser.add_argument("--change-configurations", nargs="+", choices=list(configs),
                        default=["issue 12 small 3d 16x64x64", "issue 12 small 2d 128^2"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-limit-gb", type=float, default=6.0,
                        help="skip networks whose training step would hold more activation memory than this "
                             "(KiUNet-original in 3D)")
    parser.add_argument("--sections", nargs="+", default=["costs", "checkpoint", "changes", "parameters"],
                        choices=["costs", "checkpoint", "changes", "parameters"])
    parser.add_argument("--rows-only", action="store_true",
                        help="internal: print one section's rows for one configuration in this process")
    args = parser.parse_args()
    if args.rows_only:
        section, name = args.sections[0], args.configurations[0]
        SECTIONS[section][1](args, name, configs[name])
        return
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} steps\n")
    chosen = {"costs": args.configurations, "checkpoint": args.checkpoint_configurations,
              "changes": args.change_configurations}
    failed = []
    for section in ("costs", "checkpoint", "changes"):
        if section in args.sections:
            SECTIONS[section][0]()
            failed += [f"{section}: {name}" for name in chosen[section] if not rows_in_own_process(section, name, args)]
            print()
    if "parameters" in args.sections:
        original_shaped_uiunet_parameters()
    if failed:
        sys.exit(f"failed: {'; '.join(failed)}")


# section -> (table header, rows of one configuration)
SECTIONS = {"costs": (cost_header, cost_rows), "checkpoint": (checkpoint_header, checkpoint_rows),
            "changes": (changes_header, changes_rows)}


def rows_in_own_process(section: str, name: str, args) -> bool:
    """One configuration's rows in a fresh Python, so that one killed (e.g. for memory) leaves a row saying so and
    the run goes on; whether it succeeded."""
    command = [sys.executable, __file__, "--rows-only", "--sections", section, "--configurations", name,
               "--networks", *args.networks, "--repeats", str(args.repeats),
               "--memory-limit-gb", str(args.memory_limit_gb)]
    sys.stdout.flush()
    code = subprocess.run(command).returncode
    if code:
        print(f"| {name} | {section} rows stopped: exit status {code}{' (killed)' if code < 0 else ''} |", flush=True)
    return code == 0


if __name__ == "__main__":
    main()
