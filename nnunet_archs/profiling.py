"""Cost measurements shared by the benchmarks, the showcase and the tests: parameters, FLOPs, activation
memory and step time of a network on one input batch. Everything here measures; nothing is estimated."""
from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from nnunet_archs.errors import UserError


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
        # detached: a packed tensor that kept its grad_fn would make a reference cycle with the graph that saves it
        # (outputs saved by their own node), so the graph and all its activations would outlive the forward
        return t.detach()

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
    return _on_fake_tensors(saved_activation_bytes, build, input_shape, autocast_dtype)


def _on_fake_tensors(measure: Callable, build: Callable[[], nn.Module], input_shape: Sequence[int],
                     autocast_dtype: Optional[torch.dtype]) -> int:
    """``measure(net, x, autocast_dtype)`` with network and input built as FakeTensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        return measure(build(), torch.empty(*input_shape), autocast_dtype)


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
        # storages told apart by their C++ object, as in saved_activation_bytes: FakeTensors have no data pointers
        inputs = {t.untyped_storage()._cdata for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(output):
            if isinstance(t, torch.Tensor) and t.shape not in self.parameter_shapes:
                storage = t.untyped_storage()
                key = storage._cdata
                if key in inputs:  # a view or an in-place result: no new memory
                    continue
                if key not in self.live or self.live[key][0].expired():
                    self.live[key] = (StorageWeakRef(storage), storage.nbytes())
        self.live = {key: entry for key, entry in self.live.items() if not entry[0].expired()}
        self.peak = max(self.peak, sum(nbytes for _, nbytes in self.live.values()))
        return output


def peak_step_bytes(net: nn.Module, x: torch.Tensor, autocast_dtype: Optional[torch.dtype] = None) -> int:
    """Peak bytes of the tensors alive during one training step (forward, loss, backward), parameters and their
    gradients excluded (and with ``autocast_dtype`` the forward under autocast, its casts of the weights too).

    The CPU counterpart of ``torch.cuda.max_memory_allocated``, on any device: unlike
    :func:`saved_activation_bytes` it sees what activation checkpointing keeps and recomputes.
    """
    net.train()
    net.zero_grad(set_to_none=True)
    tracker = _LiveBytes({p.shape for p in net.parameters()})
    with tracker:
        with _autocast(x, autocast_dtype):
            loss = _loss(net(x))
        loss.backward()
    net.zero_grad(set_to_none=True)
    return tracker.peak


def fake_peak_step_bytes(build: Callable[[], nn.Module], input_shape: Sequence[int],
                         autocast_dtype: Optional[torch.dtype] = None) -> int:
    """:func:`peak_step_bytes` of the network ``build()`` makes, on FakeTensors: any patch size in seconds and no
    memory (see :func:`fake_saved_activation_bytes`)."""
    return _on_fake_tensors(peak_step_bytes, build, input_shape, autocast_dtype)


# nnU-Net trains under fp16 autocast on CUDA (nnUNetTrainer.train_step); bf16 is the CPU's stand-in (CPU autocast
# has no fp16 kernels for convolutions)
AUTOCAST_DTYPES = {"cuda": torch.float16, "cpu": torch.bfloat16}


def default_device() -> Tuple[str, str]:
    """The device our commands that train or predict use when none is given, and why: CUDA when torch sees a GPU,
    else the CPU (nnU-Net's own commands always default to cuda; ours detect, so that a laptop works too)."""
    if torch.cuda.is_available():
        return "cuda", "a CUDA GPU is visible; -device cpu to use the CPU"
    return "cpu", "no CUDA GPU is visible to torch"


def require_device(device: str, flag: str = "-device") -> None:
    """Refuse a device this machine does not have (``flag``: how the user gave it), before any work starts."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{flag} {device} was given but no CUDA GPU is available")


def nnunet_step_mode(device: str, amp: Optional[bool] = None, compile: Optional[bool] = None) -> Dict[str, bool]:
    """``amp`` and ``compile``, each as given or, when ``None``, as nnU-Net trains on ``device``: autocast and
    torch.compile on CUDA, neither on CPU (nnUNetTrainer.train_step and _do_i_compile)."""
    on_cuda = torch.device(device).type == "cuda"
    return {"amp": on_cuda if amp is None else amp, "compile": on_cuda if compile is None else compile}


def describe_step(device: str, amp: bool, compile: bool) -> str:
    """How :class:`TrainingStep` runs on ``device``, for table headers."""
    device_type = torch.device(device).type
    precision = f"{str(AUTOCAST_DTYPES[device_type]).split('.')[-1]} autocast" if amp else "fp32"
    scaler = " + GradScaler" if amp and device_type == "cuda" else ""
    return f"{precision}{scaler}, SGD (Nesterov), {'torch.compile' if compile else 'eager'}"


class TrainingStep:
    """One training step of ``net`` as nnUNetTrainer.train_step runs it: SGD with Nesterov momentum (nnU-Net's
    learning rate, momentum and weight decay, so that its optimizer state is allocated), gradient clipping at 12,
    and with ``amp`` autocast (fp16 on CUDA with a GradScaler, bf16 on CPU); ``compile`` runs the network through
    ``torch.compile`` as nnU-Net does by default on CUDA. ``loss`` maps the network's output to the loss; by
    default the sum of the outputs' means (the network's cost without nnU-Net's loss functions)."""

    def __init__(self, net: nn.Module, amp: bool = False, compile: bool = False,
                 loss: Callable[[object], torch.Tensor] = _loss):
        self.net = net
        self.loss = loss
        self.device_type = next(net.parameters()).device.type
        self.amp_dtype = AUTOCAST_DTYPES.get(self.device_type) if amp else None
        if amp and self.amp_dtype is None:
            raise UserError(f"amp: autocast is measured on {sorted(AUTOCAST_DTYPES)}, not {self.device_type!r}")
        self.compiled = compile
        self.module = torch.compile(net) if compile else net
        self.optimizer = torch.optim.SGD(net.parameters(), 1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
        # torch < 2.3 has GradScaler only under torch.cuda.amp (as nnU-Net's import fallback)
        scaler = getattr(torch.amp, "GradScaler", None)
        self.scaler = (scaler("cuda") if scaler else torch.cuda.amp.GradScaler()) \
            if amp and self.device_type == "cuda" else None

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.loss(self.module(x))
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 12)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 12)
            self.optimizer.step()
        return loss.detach()

    def describe(self) -> str:
        return describe_step(self.device_type, self.amp_dtype is not None, self.compiled)

    def state_bytes(self) -> int:
        """Parameters plus optimizer state (SGD's momentum buffers exist after the first step)."""
        tensors = list(self.net.parameters()) + [t for state in self.optimizer.state.values()
                                                 for t in state.values() if torch.is_tensor(t)]
        return sum(t.numel() * t.element_size() for t in tensors)

    def activation_bytes(self, x: torch.Tensor) -> int:
        """Activation memory of one step: on CUDA the allocator's peak during the step minus what was held
        before it (parameters, optimizer state, inputs; so it includes gradients and autocast's weight copies);
        on CPU the bytes autograd saves in the forward (under autocast when ``amp``), with parameters excluded."""
        if self.device_type != "cuda":
            with self.autocast():
                return saved_activation_bytes(self.module, x)
        self(x)  # compiles, allocates the optimizer state
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        self(x)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before


def _step_seconds(step: Callable[[torch.Tensor], object], x: torch.Tensor) -> float:
    start = time.perf_counter()
    step(x)
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _forward_backward(net: nn.Module) -> Callable[[torch.Tensor], None]:
    def step(x: torch.Tensor) -> None:
        net.zero_grad(set_to_none=True)
        _loss(net(x)).backward()
    return step


def interleaved_median_seconds(steps: Sequence[Callable[[torch.Tensor], object]], x: torch.Tensor, repeats: int = 3,
                               warmup: int = 1) -> List[float]:
    """Median wall time of each step function on ``x``.

    The steps take turns, so that drift in the machine's speed (other load, thermal state) hits all of them alike
    and their ratios stay meaningful.
    """
    times = [[] for _ in steps]
    for i in range(warmup + repeats):
        for step, step_times in zip(steps, times):
            seconds = _step_seconds(step, x)
            if i >= warmup:
                step_times.append(seconds)
    return [statistics.median(t) for t in times]


def median_step_seconds(nets: Sequence[nn.Module], x: torch.Tensor, repeats: int = 3,
                        warmup: int = 1) -> List[float]:
    """Median wall time of forward + backward (no optimizer) for each network, interleaved."""
    for net in nets:
        net.train()
    return interleaved_median_seconds([_forward_backward(net) for net in nets], x, repeats, warmup)


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
                     with_flops: bool = True, with_inference: bool = False, device: str = "cpu",
                     amp: Optional[bool] = None, compile: Optional[bool] = None) -> Dict[str, dict]:
    """All cost figures of several networks on the same (batch, channels, *spatial) input, measured side by
    side in one run, each training step a :class:`TrainingStep` (``amp``/``compile`` default to nnU-Net's
    choice for the device, :func:`nnunet_step_mode`); step times are interleaved. ``saved_bytes`` is the
    activation memory of a step (:meth:`TrainingStep.activation_bytes`), ``state_bytes`` parameters plus optimizer
    state."""
    mode = nnunet_step_mode(device, amp, compile)
    torch.manual_seed(0)
    x = torch.randn(*input_shape, device=device)
    nets = {name: build().to(device) for name, build in builders.items()}
    steps = {name: TrainingStep(net, **mode) for name, net in nets.items()}
    rows = {}
    for name, net in nets.items():
        rows[name] = {"params": count_parameters(net),
                      "estimate": int(net.compute_conv_feature_map_size(list(input_shape[2:]))),
                      "saved_bytes": steps[name].activation_bytes(x)}
        if with_flops:
            rows[name]["gflops"] = forward_flops(net, x) / 1e9
            rows[name]["step_gflops"] = step_flops(net, x) / 1e9
        if with_inference:
            rows[name]["inference_s"] = median_inference_seconds(net, x[:1], repeats)
    # compiled steps get a second warm-up step (the backward graph compiles on the first)
    step_times = interleaved_median_seconds(list(steps.values()), x, repeats=repeats, warmup=2 if mode["compile"] else 1)
    for name, seconds in zip(rows, step_times):
        rows[name]["step_s"] = seconds
        rows[name]["state_bytes"] = steps[name].state_bytes()  # after steps: the optimizer state exists
        if with_flops:
            rows[name]["gflop_per_s"] = rows[name]["step_gflops"] / seconds  # forward+backward FLOPs / step time
    return rows
