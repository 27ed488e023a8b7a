"""A quick look at DynamicKiUNet next to PlainConvUNet on real nnU-Net configurations (``make demo``)."""
from __future__ import annotations

import time

import torch

from nnunet_archs.profiling import count_parameters, median_step_seconds
from nnunet_archs.real_plans import showcase_records
from nnunet_archs.registry import get_variant

NETWORKS = ("PlainConvUNet", "KiUNet")


def run_showcase(batch_size: int = 1, bottleneck: int = 2) -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; one training step (forward + "
          f"backward, deep supervision on) per network at a reduced patch\n")
    header = f"{'configuration':<48} {'network':<14} {'params':>10} {'step s':>7} {'ratio':>6}  outputs"
    print(header)
    print("-" * len(header))
    start = time.perf_counter()
    for record in showcase_records():
        patch = record.reduced_patch(bottleneck)
        nets = {name: record.build_variant(get_variant(name), deep_supervision=True) for name in NETWORKS}
        x = torch.randn(batch_size, record.num_input_channels, *patch)
        seconds = median_step_seconds(list(nets.values()), x, repeats=1)
        for (name, net), step in zip(nets.items(), seconds):
            with torch.no_grad():
                shapes = [tuple(o.shape[2:]) for o in net(x)]
            label = f"{record.id.split(':')[0]} {record.configuration} {'x'.join(map(str, patch))}"
            print(f"{label:<48} {name:<14} {count_parameters(net):>10,} {step:>7.2f} {step / seconds[0]:>5.2f}x  "
                  f"{len(shapes)} maps, {shapes[0]} .. {shapes[-1]}")
    print(f"\nDone in {time.perf_counter() - start:.0f} s. Full figures: make benchmark (see BENCHMARKS.md).")
