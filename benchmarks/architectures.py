"""Architecture cost benchmark: every network at the same real nnU-Net configuration, measured side by side.

For each configuration (a 2D, an isotropic 3D and an anisotropic 3D plans entry from real nnU-Net plans files,
at a reduced patch that fits a CPU), prints parameters, forward GFLOPs (torch.utils.flop_counter), the planner
estimate (compute_conv_feature_map_size), saved-activation bytes of one training forward, and the median
forward+backward time, each also as a ratio to the first network. Step times are interleaved across networks.

    python benchmarks/architectures.py [--networks PlainConvUNet KiUNet ...] [--batch-size 2] [--repeats 5]
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from nnunet_archs.profiling import profile_networks
from nnunet_archs.real_plans import showcase_records
from nnunet_archs.registry import VARIANTS, get_variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=["PlainConvUNet", "KiUNet", "UIUNet", "UIUNet-minimal"],
                        choices=sorted(VARIANTS))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--bottleneck", type=int, default=2, help="bottleneck voxels per axis of the patch")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(f"# {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch_size}, median of {args.repeats} steps\n")
    print("| configuration | patch | network | params (M) | GFLOPs fwd | estimate (M) | saved act. (MB) | step (s) "
          "| params x | GFLOPs x | memory x | step x | estimate/measured vs first |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for record in showcase_records():
        patch = record.reduced_patch(args.bottleneck)
        builders = {name: (lambda v=get_variant(name): record.build_variant(v, deep_supervision=True))
                    for name in args.networks}
        rows = profile_networks(builders, [args.batch_size, record.num_input_channels, *patch], args.repeats)
        first = rows[args.networks[0]]
        for name, row in rows.items():
            honesty = (row["estimate"] / row["saved_bytes"]) / (first["estimate"] / first["saved_bytes"])
            print(f"| {record.id.split(':')[0]} {record.configuration} | {'x'.join(map(str, patch))} | {name} "
                  f"| {row['params'] / 1e6:.2f} | {row['gflops']:.1f} | {row['estimate'] / 1e6:.1f} "
                  f"| {row['saved_bytes'] / 2 ** 20:.0f} | {row['step_s']:.2f} "
                  f"| {row['params'] / first['params']:.2f} | {row['gflops'] / first['gflops']:.2f} "
                  f"| {row['saved_bytes'] / first['saved_bytes']:.2f} | {row['step_s'] / first['step_s']:.2f} "
                  f"| {honesty:.2f} |", flush=True)
    original_shaped_uiunet_parameters()


def original_shaped_uiunet_parameters() -> None:
    """UIU-Net's paper model is 2D, 6 stages of 64..512 features, 3 input channels, 1 class: about 50.5 M."""
    from nnunet_archs.architectures.uiunet import DynamicUIUNet3D
    from nnunet_archs.profiling import count_parameters
    kwargs = dict(input_channels=3, n_stages=6, features_per_stage=[64, 128, 256, 512, 512, 512],
                  conv_op=torch.nn.Conv2d, kernel_sizes=3, strides=[1, 2, 2, 2, 2, 2], n_conv_per_stage=1,
                  num_classes=1, n_conv_per_stage_decoder=1, conv_bias=True, norm_op=torch.nn.BatchNorm2d,
                  nonlin=torch.nn.ReLU)
    print("\nDynamicUIUNet3D shaped like the original 2D UIU-Net (features 64,128,256,512,512,512; original: "
          "about 50.5 M parameters):")
    for options in ({}, {"mid_ratio": 0.25}, {"use_ica": False}):
        print(f"- {options or 'defaults'}: {count_parameters(DynamicUIUNet3D(**kwargs, **options)) / 1e6:.1f} M")


if __name__ == "__main__":
    main()
