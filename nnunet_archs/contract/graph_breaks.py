"""torch.compile without graph breaks: nnU-Net compiles the network on CUDA by default, and every graph break
costs speed on every step. Checked with ``torch._dynamo.explain`` in training mode on the smallest configuration
of each dimensionality, the first with deep supervision on and the second with it off (both forward paths, both
dimensionalities, in two traces of a few seconds each)."""
from __future__ import annotations

from typing import List

import torch

from nnunet_archs.contract.base import CheckResult, Status, Subject, describe, worst
from nnunet_archs.contract.cases import NetworkCase

NAME = "no graph breaks (torch.compile)"
FIX = ("keep forward free of Python decisions on tensor values (.item(), .tolist(), numpy, if on a tensor), of "
       "print/logging and of data-dependent shapes; compute such values once in __init__")


def _smallest_per_dimensionality(cases: List[NetworkCase]) -> List[NetworkCase]:
    chosen = {}
    for case in sorted(cases, key=lambda c: sum(c.record.arch_kwargs["features_per_stage"]) * sum(c.patch)):
        chosen.setdefault(case.dim, case)
    return list(chosen.values())


def _explain(subject: Subject, case: NetworkCase, deep_supervision: bool) -> CheckResult:
    net = subject.network(case).train()
    if not deep_supervision:
        net.decoder.deep_supervision = False
    torch._dynamo.reset()
    try:
        explanation = torch._dynamo.explain(net)(case.input())
    except Exception as error:  # tracing can fail in any way the forward does
        return CheckResult(NAME, Status.FAIL, f"{describe(case)}: dynamo could not trace forward: "
                           f"{type(error).__name__}: {str(error).splitlines()[0][:200]}", FIX)
    finally:
        if not deep_supervision and subject.deep_supervision:
            net.decoder.deep_supervision = True
        torch._dynamo.reset()
    if explanation.graph_break_count == 0:
        return CheckResult(NAME, Status.PASS, "")
    first = explanation.break_reasons[0]
    where = f" at {first.user_stack[-1].filename}:{first.user_stack[-1].lineno}" if first.user_stack else ""
    return CheckResult(NAME, Status.FAIL, f"{describe(case)}, deep supervision {'on' if deep_supervision else 'off'}"
                       f": {explanation.graph_break_count} graph break(s), first{where}: "
                       f"{first.reason.splitlines()[0][:200]}", FIX)


def check_graph_breaks(subject: Subject) -> CheckResult:
    cases = _smallest_per_dimensionality(subject.cases)
    switchable = hasattr(getattr(subject.network(cases[-1]), "decoder", None), "deep_supervision")
    if not subject.deep_supervision:  # trained without it (Swin UNETR): the one forward there is
        runs = [(case, False) for case in cases]
        return worst(NAME, (_explain(subject, case, ds) for case, ds in runs), "torch._dynamo.explain, no graph "
                     "break: " + ", ".join(f"{case.dim}D (no deep supervision)" for case, _ in runs))
    runs = [(case, i == 0 or not switchable) for i, case in enumerate(cases)]
    if len(cases) == 1 and switchable:
        runs.append((cases[0], False))
    return worst(NAME, (_explain(subject, case, ds) for case, ds in runs),
                 "torch._dynamo.explain, no graph break: " +
                 ", ".join(f"{case.dim}D with deep supervision {'on' if ds else 'off'}" for case, ds in runs))
