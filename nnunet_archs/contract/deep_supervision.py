"""Deep supervision as nnU-Net's trainer uses it: with it on, ``n_stages - 1`` raw-logit tensors, full resolution
first, entry i at ``patch / prod(strides[:i + 1])`` (``nnUNetTrainer._get_deep_supervision_scales``), in training
and in eval mode (nnU-Net validates in eval mode with it on); switched off through
``network.decoder.deep_supervision`` (``set_deep_supervision_enabled``), one tensor. The predictor builds the
network with it off and loads the training checkpoint strictly, so the parameters must not depend on it; DDP runs
without ``find_unused_parameters``, so with it on every parameter needs a gradient. A network trained without deep
supervision (``supports_deep_supervision = False``, as Swin UNETR; nnU-Net's trainer then runs without its
deep-supervision loss) returns one full-resolution tensor in both modes."""
from __future__ import annotations

from typing import List

import torch

from nnunet_archs.contract.base import CheckResult, Status, Subject, describe, worst
from nnunet_archs.contract.cases import NetworkCase, as_list

OUTPUTS = "deep-supervision outputs"
PARAMETERS = "parameters independent of deep supervision"
GRADIENTS = "gradient for every parameter (DDP)"

OUTPUTS_FIX = ("with deep supervision on, return a list of n_stages - 1 raw-logit tensors, full resolution "
               "first, entry i at input / prod(strides[:i + 1]); with network.decoder.deep_supervision = False, "
               "return only the full-resolution tensor")


def _expected(case: NetworkCase, batch: int) -> List[List[int]]:
    return [[batch, case.record.num_classes, *size] for size in case.expected_output_sizes()]


def _outputs_of(subject: Subject, case: NetworkCase) -> CheckResult:
    net = subject.network(case)
    x = case.input()
    expected = _expected(case, x.shape[0])
    decoder = getattr(net, "decoder", None)
    if not subject.deep_supervision:
        return _single_output_of(net, case, x, expected[0])
    with torch.no_grad():
        output = net.train()(x)
    if not isinstance(output, (list, tuple)):
        return CheckResult(OUTPUTS, Status.FAIL, f"{describe(case)}: with deep_supervision=True forward returned "
                           f"one {type(output).__name__}, nnU-Net's loss expects a list of {len(expected)}",
                           OUTPUTS_FIX)
    shapes = [list(o.shape) for o in output]
    if shapes != expected:
        if shapes == expected[::-1]:
            problem = "the outputs are in reverse order (lowest resolution first)"
        elif len(shapes) != len(expected):
            problem = f"{len(shapes)} outputs, expected n_stages - 1 = {len(expected)}"
        else:
            problem = f"shapes {shapes}, expected {expected}"
        return CheckResult(OUTPUTS, Status.FAIL, f"{describe(case)}: {problem}", OUTPUTS_FIX)
    with torch.no_grad():
        evaluated = net.eval()(x)
    net.train()
    if not isinstance(evaluated, (list, tuple)) or [list(o.shape) for o in evaluated] != expected:
        return CheckResult(OUTPUTS, Status.FAIL, f"{describe(case)}: in eval mode with deep supervision on forward "
                           f"returned {_found(evaluated)}; nnU-Net validates in eval mode with deep supervision on "
                           f"and expects the same {len(expected)} outputs",
                           "switch the outputs on decoder.deep_supervision, not on self.training")
    if decoder is None or not hasattr(decoder, "deep_supervision"):
        return _no_switch()
    decoder.deep_supervision = False
    try:
        with torch.no_grad():
            single = net(x)
    finally:
        decoder.deep_supervision = True
    if not isinstance(single, torch.Tensor) or list(single.shape) != expected[0]:
        return CheckResult(OUTPUTS, Status.FAIL, f"{describe(case)}: with decoder.deep_supervision = False forward "
                           f"returned {_found(single)}, expected one tensor of {expected[0]}", OUTPUTS_FIX)
    return CheckResult(OUTPUTS, Status.PASS, "")


def _found(output) -> str:
    if isinstance(output, torch.Tensor):
        return f"one tensor of {list(output.shape)}"
    if isinstance(output, (list, tuple)):
        return f"{len(output)} tensors of {[list(o.shape) for o in output]}"
    return f"a {type(output).__name__}"


def _no_switch() -> CheckResult:
    return CheckResult(OUTPUTS, Status.FAIL, "the network has no decoder.deep_supervision, which nnU-Net's trainer "
                       "sets to switch deep supervision off for validation",
                       "keep the flag in self.decoder.deep_supervision and read it in forward")


def _single_output_of(net: torch.nn.Module, case: NetworkCase, x: torch.Tensor, expected: List[int]) -> CheckResult:
    """A network trained without deep supervision (``supports_deep_supervision = False``, nnU-Net's trainer then
    runs without its deep-supervision loss): one full-resolution tensor in training and in eval mode, and a
    ``decoder.deep_supervision`` for nnU-Net's trainer to switch off."""
    for training in (True, False):
        with torch.no_grad():
            output = net.train(training)(x)
        if not isinstance(output, torch.Tensor) or list(output.shape) != expected:
            return CheckResult(OUTPUTS, Status.FAIL, f"{describe(case)}: trained without deep supervision, forward "
                               f"({'training' if training else 'eval'} mode) returned {_found(output)}, expected one "
                               f"tensor of {expected}", "return only the full-resolution logits")
    net.train()
    decoder = getattr(net, "decoder", None)
    return CheckResult(OUTPUTS, Status.PASS, "") if hasattr(decoder, "deep_supervision") else _no_switch()


def check_outputs(subject: Subject) -> CheckResult:
    if not subject.deep_supervision:
        return worst(OUTPUTS, (_outputs_of(subject, case) for case in subject.cases),
                     f"{len(subject.cases)} configurations: no deep supervision (trained without it, with "
                     f"nnUNetTrainerNoDeepSupervision): one full-resolution tensor in training and eval mode, and "
                     f"decoder.deep_supervision for nnU-Net's trainer")
    return worst(OUTPUTS, (_outputs_of(subject, case) for case in subject.cases),
                 f"{len(subject.cases)} configurations: n_stages - 1 outputs, full resolution first, shapes as "
                 f"nnU-Net's targets, also in eval mode; one tensor when decoder.deep_supervision is switched off")


def _parameters_of(subject: Subject, case: NetworkCase) -> CheckResult:
    on, off = subject.shapes(case, True), subject.shapes(case, False)
    if on == off:
        return CheckResult(PARAMETERS, Status.PASS, "")
    only_on = sorted(set(on) - set(off))
    only_off = sorted(set(off) - set(on))
    reshaped = sorted(k for k in set(on) & set(off) if on[k] != off[k])
    parts = [f"{label}: {keys[:4]}" for label, keys in (("only with it on", only_on), ("only with it off", only_off),
                                                        ("other shape", reshaped)) if keys]
    return CheckResult(PARAMETERS, Status.FAIL, f"{describe(case)}: state-dict keys differ, {'; '.join(parts)}",
                       "create every head whatever deep_supervision is and only skip using it when it is off (the "
                       "predictor builds the network with deep supervision off and loads the training checkpoint "
                       "strictly)")


def check_parameters(subject: Subject) -> CheckResult:
    if not subject.deep_supervision:
        return CheckResult(PARAMETERS, Status.PASS, "no deep supervision: the predictor builds the network the "
                           "trainer trained")
    return worst(PARAMETERS, (_parameters_of(subject, case) for case in subject.cases),
                 f"{len(subject.cases)} configurations: the same state-dict keys and shapes with deep supervision "
                 f"on and off")


def _gradients_of(subject: Subject, case: NetworkCase) -> CheckResult:
    net = subject.network(case).train()
    net.zero_grad(set_to_none=True)
    sum(o.float().mean() for o in as_list(net(case.input()))).backward()
    missing = [name for name, p in net.named_parameters() if p.requires_grad and p.grad is None]
    net.zero_grad(set_to_none=True)
    if not missing:
        return CheckResult(GRADIENTS, Status.PASS, "")
    return CheckResult(GRADIENTS, Status.FAIL, f"{describe(case)}: {len(missing)} parameters get no gradient with "
                       f"deep supervision on, e.g. {missing[:3]}; nnU-Net's DDP (no find_unused_parameters) "
                       f"stops at the second step",
                       "use every module in the deep-supervision forward, or remove the unused ones")


def check_gradients(subject: Subject) -> CheckResult:
    outputs = "deep-supervision outputs" if subject.deep_supervision else "training output"
    return worst(GRADIENTS, (_gradients_of(subject, case) for case in subject.cases),
                 f"{len(subject.cases)} configurations: every parameter gets a gradient from the {outputs} (the DDP "
                 f"condition; --ddp runs 2 processes)")
