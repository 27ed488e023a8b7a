"""Calibration residuals: how well one memory model per network predicts its measured activation memory.

For each network, runs ``nnunet_archs.calibration.calibrate`` (what ``nnunet-archs calibrate`` runs) on the
built-in 2D, isotropic and anisotropic 3D plans configurations at patches with 2 and 4 bottleneck voxels per axis:
activation bytes of one sample (saved tensors, counted on FakeTensors) against ResidualEncoderUNet's at the same
points, in nnU-Net's training precision (bf16 autocast as the CPU stand-in for fp16 on CUDA) and in fp32. Prints
the fitted factor (estimate per byte relative to ResidualEncoderUNet's; the planner multiplies the ResEnc
references by it), the built-in factor the named planners use, and the residual at every point (predicted /
measured bytes - 1, the error of a planned configuration's memory there). A network without
compute_conv_feature_map_size gets the topology model instead of a factor.

    python benchmarks/calibration.py [--networks PlainConvUNet KiUNet ...] [--precisions autocast fp32]
"""
from __future__ import annotations

import argparse
import time

import torch

from nnunet_archs.calibration import PRECISIONS, calibrate
from nnunet_archs.custom_networks import resolve_network
from nnunet_archs.planning.memory import ESTIMATE_PER_BYTE
from nnunet_archs.real_plans import showcase_records

NETWORKS = ["ResEncUNet", "PlainConvUNet", "KiUNet", "UIUNet", "UIUNet-minimal",
            "tests.integration.custom_net.BottleneckResUNet"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=NETWORKS)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--bottlenecks", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()
    torch.set_num_threads(2)
    records = showcase_records()
    print(f"# {time.strftime('%Y-%m-%d')}, torch {torch.__version__}, CPU; points: "
          + ", ".join(f"{r.id.split(':')[0]} {r.configuration}" for r in records)
          + f" x bottleneck {' and '.join(map(str, args.bottlenecks))}\n")
    print("| network | precision | fit | factor | built-in | residuals (predicted/measured - 1) | max abs |")
    print("|---|---|---|---:|---:|---|---:|")
    for name in args.networks:
        variant = resolve_network(name)
        for precision in args.precisions:
            result = calibrate(variant, records, args.bottlenecks, precision)
            fit = "factor" if result.model is None else \
                f"model {result.model.feature_volume:.3g} x FV + {result.model.voxels:.3g} x V"
            built_in = ESTIMATE_PER_BYTE.get(variant.class_path)
            print(f"| {name.split('.')[-1]} | {precision} | {fit} | {result.estimate_per_byte:.3f} | "
                  f"{'-' if built_in is None else f'{built_in:.2f}'} | "
                  f"{' '.join(f'{r:+.1%}' for r in result.residuals)} | {result.max_abs_residual:.1%} |", flush=True)


if __name__ == "__main__":
    main()
