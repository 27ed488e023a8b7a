"""Cost measurements shared by the benchmarks, the showcase and the tests: parameters, FLOPs, activation
memory and step time of a network on one input batch. Everything here measures; nothing is estimated."""
from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Set

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
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


def _is_parameter_cast(t: torch.Tensor) -> bool:
    """Whether ``t`` is autocast's dtype cast of a parameter (or of a slice or view of one)."""
    node = t.grad_fn
    if node is None or node.name() != "ToCopyBackward0":
        return False
    while node is not None and not hasattr(node, "variable"):  # AccumulateGrad: a leaf, i.e. a parameter
        if len(node.next_functions) != 1:
            return False
        node = node.next_functions[0][0]
    return node is not None


def _autocast(x: torch.Tensor, dtype: Optional[torch.dtype]):
    # no context at all without a dtype: a disabled autocast would switch off one the caller entered
    return contextlib.nullcontext() if dtype is None else torch.autocast(x.device.type, dtype=dtype)


def saved_activation_bytes(net: nn.Module, x: torch.Tensor, autocast_dtype: Optional[torch.dtype] = None) -> int:
    """Bytes of the distinct tensors autograd keeps for backward during one training-mode forward.

    This is the activation memory a training step holds at its peak (parameters excluded), measured on any
    device, so CPU runs can be compared with the planner's GPU-calibrated estimate. With ``autocast_dtype`` the
    forward runs under autocast, as nnU-Net trains (fp16 on CUDA; bf16 is the CPU stand-in); the low-precision
    copies autocast makes of the parameters are not counted: they do not grow with the patch.
    """
    parameter_storages = {p.untyped_storage()._cdata for p in net.parameters()}
    seen: Dict[int, int] = {}

    def pack(t: torch.Tensor):
        # storages are told apart by their C++ object, which FakeTensors (fake_saved_activation_bytes) also have
        storage = t.untyped_storage()
        if storage._cdata not in parameter_storages and not _is_parameter_cast(t):
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


def step_flops(net: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one training step, forward and backward (``torch.utils.flop_counter``: convolutions and matrix
    products), as they execute: recomputation under activation checkpointing included."""
    net.train()
    counter = FlopCounterMode(display=False)
    with counter:
        _loss(net(x)).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()


class _LiveBytes(TorchDispatchMode):
    """Bytes of the activation storages allocated while active and still alive, and their peak. A new tensor
    shaped like a parameter is a gradient (or a cast) of one: parameter memory, not counted."""

    def __init__(self, parameter_shapes: Set[torch.Size]):
        super().__init__()
        self.parameter_shapes = parameter_shapes
        self.live: Dict[int, tuple] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(output):
            if isinstance(t, torch.Tensor) and t.shape not in self.parameter_shapes:
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key in inputs:  # a view or an in-place result: no new memory
                    continue
                if key not in self.live or self.live[key][0].expired():
                    self.live[key] = (StorageWeakRef(storage), storage.nbytes())
        self.live = {key: entry for key, entry in self.live.items() if not entry[0].expired()}
        self.peak = max(self.peak, sum(nbytes for _, nbytes in self.live.values()))
        return output


def peak_step_bytes(net: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes of the tensors alive during one training step (forward, loss, backward), parameters and their
    gradients excluded.

    The CPU counterpart of ``torch.cuda.max_memory_allocated``, on any device: unlike
    :func:`saved_activation_bytes` it sees what activation checkpointing keeps and recomputes.
    """
    net.train()
    net.zero_grad(set_to_none=True)
    tracker = _LiveBytes({p.shape for p in net.parameters()})
    with tracker:
        _loss(net(x)).backward()
    net.zero_grad(set_to_none=True)
    return tracker.peak


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
            rows[name]["step_gflops"] = step_flops(net, x) / 1e9
        if with_inference:
            rows[name]["inference_s"] = median_inference_seconds(net, x[:1], repeats)
    step_times = median_step_seconds(list(nets.values()), x, repeats=repeats)
    for row, seconds in zip(rows.values(), step_times):
        row["step_s"] = seconds
        if with_flops:
            row["gflop_per_s"] = row["step_gflops"] / seconds  # achieved: forward+backward FLOPs / step time
    return rows
