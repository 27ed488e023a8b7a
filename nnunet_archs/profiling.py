"""Cost measurements shared by the benchmarks, the showcase and the tests: parameters, FLOPs, activation
memory and step time of a network on one input batch. Everything here measures; nothing is estimated."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _loss(output) -> torch.Tensor:
    outputs = output if isinstance(output, (list, tuple)) else [output]
    return sum(o.float().mean() for o in outputs)


def activation_bytes(net: nn.Module, x: torch.Tensor, autocast_dtype: Optional[torch.dtype] = None) -> int:
    """Activation memory of one training step: saved tensors on CPU, the CUDA allocator's peak on a GPU."""
    if not x.is_cuda:
        return saved_activation_bytes(net, x, autocast_dtype)
    net.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with _autocast(x, autocast_dtype):
        output = net(x)
    _loss(output).backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - baseline


def _autocast(x: torch.Tensor, dtype: Optional[torch.dtype]):
    return torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None)


def saved_activation_bytes(net: nn.Module, x: torch.Tensor, autocast_dtype: Optional[torch.dtype] = None) -> int:
    """Bytes of the distinct tensors autograd keeps for backward during one training-mode forward.

    This is the activation memory a training step holds at its peak (parameters excluded), measured on any
    device, so CPU runs can be compared with the planner's GPU-calibrated estimate. With ``autocast_dtype`` the
    forward runs under autocast, as nnU-Net trains (fp16 on CUDA; bf16 is the CPU stand-in); the low-precision
    copies autocast makes of the parameters are not counted: they do not grow with the patch.
    """
    parameters = {id(p) for p in net.parameters()}
    parameter_storages = {p.untyped_storage()._cdata for p in net.parameters()}
    seen: Dict[int, int] = {}

    def is_parameter_copy(t: torch.Tensor) -> bool:
        sources = t.grad_fn.next_functions if t.grad_fn is not None else ()
        return len(sources) == 1 and id(getattr(sources[0][0], "variable", None)) in parameters

    def pack(t: torch.Tensor):
        # storages are told apart by their C++ object, which FakeTensors (fake_saved_activation_bytes) also have
        storage = t.untyped_storage()
        if storage._cdata not in parameter_storages and not is_parameter_copy(t):
            seen[storage._cdata] = storage.nbytes()
        return t

    net.train()
    with _autocast(x, autocast_dtype), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = net(x)
    del output
    return sum(seen.values())


def fake_saved_activation_bytes(build: Callable[[], nn.Module], input_shape: Sequence[int],
                                autocast_dtype: Optional[torch.dtype] = None) -> int:
    """:func:`saved_activation_bytes` of the network ``build()`` makes, without computing anything.

    Network and input are FakeTensors (shapes, dtypes and storages, no data), so the count is the same as on
    real tensors for any network whose forward does not branch on tensor values, and any patch size costs the
    same few seconds and no memory. Raises whatever the forward raises on FakeTensors (e.g. for ``.item()``).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        return saved_activation_bytes(build(), torch.empty(*input_shape), autocast_dtype)


def forward_flops(net: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass (``torch.utils.flop_counter``: convolutions and matrix products)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(x)
    return counter.get_total_flops()


def _step_seconds(net: nn.Module, x: torch.Tensor) -> float:
    net.zero_grad(set_to_none=True)
    start = time.perf_counter()
    _loss(net(x)).backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def median_step_seconds(nets: Sequence[nn.Module], x: torch.Tensor, repeats: int = 3,
                        warmup: int = 1) -> List[float]:
    """Median wall time of forward + backward for each network.

    The networks take turns, step by step, so that drift in the machine's speed (other load, thermal state)
    hits all of them alike and their ratios stay meaningful.
    """
    for net in nets:
        net.train()
    times = [[] for _ in nets]
    for i in range(warmup + repeats):
        for net, net_times in zip(nets, times):
            seconds = _step_seconds(net, x)
            if i >= warmup:
                net_times.append(seconds)
    return [statistics.median(t) for t in times]


def median_inference_seconds(net: nn.Module, x: torch.Tensor, repeats: int = 3) -> float:
    """Median wall time of one evaluation-mode forward without gradients (one sliding-window tile)."""
    net.eval()
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            start = time.perf_counter()
            net(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - start)
    net.train()
    return statistics.median(times)


def profile_networks(builders: Dict[str, Callable[[], nn.Module]], input_shape: Sequence[int], repeats: int = 3,
                     with_flops: bool = True, with_inference: bool = False,
                     device: str = "cpu") -> Dict[str, dict]:
    """All cost figures of several networks on the same (batch, channels, *spatial) input, measured side by
    side in one run; step times are interleaved (see :func:`median_step_seconds`). ``saved_bytes`` is the
    activation memory of a training step (:func:`activation_bytes`)."""
    torch.manual_seed(0)
    x = torch.randn(*input_shape, device=device)
    nets = {name: build().to(device) for name, build in builders.items()}
    rows = {}
    for name, net in nets.items():
        rows[name] = {"params": count_parameters(net),
                      "estimate": int(net.compute_conv_feature_map_size(list(input_shape[2:]))),
                      "saved_bytes": activation_bytes(net, x)}
        if with_flops:
            rows[name]["gflops"] = forward_flops(net, x) / 1e9
        if with_inference:
            rows[name]["inference_s"] = median_inference_seconds(net, x[:1], repeats)
    step_times = median_step_seconds(list(nets.values()), x, repeats=repeats)
    for row, seconds in zip(rows.values(), step_times):
        row["step_s"] = seconds
    return rows
