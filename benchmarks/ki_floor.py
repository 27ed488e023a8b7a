"""How much of KiU-Net's step its overcomplete branch's conv blocks alone take, next to PlainConvUNet's step.

Issue 12 asks for KiU-Net's training step within 1.5x PlainConvUNet's. The Ki branch's own conv blocks (conv,
instance norm, LeakyReLU of its encoder and decoder stages; not the resampling between them, not the CRFBs) are
work no exact rewrite removes: this times them alone, each on an input of the shape and memory layout it gets
inside the network (forward + backward, with the input's gradient only where the network needs it), side by side
with the whole training steps of both networks, interleaved. The goal leaves 0.5x the U-Net's step for everything
KiU-Net adds; what these blocks take of it is the floor.

    python benchmarks/ki_floor.py [--configurations ...] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, List, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.architectures, run as a script

from benchmarks.architectures import configurations, variant_builder  # noqa: E402
from nnunet_archs.profiling import TrainingStep, interleaved_median_seconds, nnunet_step_mode  # noqa: E402
from nnunet_archs.registry import VARIANTS  # noqa: E402

def ki_blocks(net: nn.Module, x: torch.Tensor) -> List[Tuple[nn.Module, torch.Tensor]]:
    """Every conv block of the Ki encoder and decoder with a copy of the input it got in one training forward."""
    seen: List[Tuple[nn.Module, torch.Tensor]] = []
    branch = [stage.convs for stage in (*net.ki_encoder, *net.decoder.ki_stages)]

    def keep(module: nn.Module, args: tuple) -> None:
        inp = args[0]
        seen.append((module, inp.detach().clone(memory_format=torch.preserve_format).requires_grad_(inp.requires_grad)))

    hooks = [block.register_forward_pre_hook(keep) for block in branch]
    net(x)
    for hook in hooks:
        hook.remove()
    return seen


def blocks_step(blocks: List[Tuple[nn.Module, torch.Tensor]]) -> Callable[[torch.Tensor], None]:
    """Forward and backward of each block on its own input; the output gradient in the output's layout."""
    def step(_: torch.Tensor) -> None:
        for block, inp in blocks:
            out = block(inp)
            out.backward(torch.ones_like(out))
    return step


def counted_flops(step: Callable[[torch.Tensor], None], x: torch.Tensor) -> int:
    """Forward + backward FLOPs of one ``step`` as it executes (``torch.utils.flop_counter``, as profile counts)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step(x)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    configs = configurations()
    parser.add_argument("--configurations", nargs="+", default=list(configs), choices=list(configs))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    mode = nnunet_step_mode("cpu", None, None)
    print("| configuration | PlainConvUNet step (s) | KiUNet step (s) | Ki conv blocks (s) | KiUNet x Plain | "
          "Ki conv blocks x Plain | Ki conv blocks GFLOP/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.configurations:
        record, patch, batch = configs[name]
        torch.manual_seed(0)
        x = torch.randn(batch, record.num_input_channels, *patch)
        plain = variant_builder(record, VARIANTS["PlainConvUNet"], previous=False)()
        kiunet = variant_builder(record, VARIANTS["KiUNet"], previous=False)()
        blocks = ki_blocks(kiunet, x)
        steps = [TrainingStep(plain, **mode), TrainingStep(kiunet, **mode), blocks_step(blocks)]
        plain_s, kiunet_s, blocks_s = interleaved_median_seconds(steps, x, repeats=args.repeats)
        print(f"| {name} | {plain_s:.3f} | {kiunet_s:.3f} | {blocks_s:.3f} | {kiunet_s / plain_s:.2f} | "
              f"{blocks_s / plain_s:.2f} | {counted_flops(steps[2], x) / blocks_s / 1e9:.1f} |", flush=True)


if __name__ == "__main__":
    main()
