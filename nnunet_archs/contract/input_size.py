"""An input the strides cannot divide. nnU-Net's planner only plans divisible patches and sliding-window
prediction uses the planned patch, so inside nnU-Net this never happens; a direct caller (a script, another
framework) should get a clear error before any layer runs, or a correct result, never a silently wrong shape.
A shape error from deep inside is reported as a warning, not a failure: DNA's own U-Nets behave that way."""
from __future__ import annotations

import numpy as np
import torch

from nnunet_archs.contract.base import CheckResult, Status, Subject, worst
from nnunet_archs.contract.cases import NetworkCase

NAME = "clear error for indivisible input"


def _indivisible(subject: Subject, case: NetworkCase) -> CheckResult:
    divisor = [int(d) for d in np.prod(np.array(case.record.strides), axis=0)]
    axis = int(np.argmax(divisor))
    size = list(case.patch)
    size[axis] += max(1, divisor[axis] // 2)
    where = f"{case.name}, input {'x'.join(map(str, size))} (strides multiply to {'x'.join(map(str, divisor))})"
    fix = (f"check the input at the start of forward and raise a ValueError naming the multiple it needs (the "
           f"product of the strides, {tuple(divisor)} here)")
    net = subject.network(case)
    layers_ran = []
    hooks = [m.register_forward_pre_hook(lambda *_: layers_ran.append(True)) for m in net.modules() if m is not net]
    try:
        with torch.no_grad():
            output = net(torch.randn(1, case.record.num_input_channels, *size))
    except Exception as error:  # which exception, and from where, is what is being checked
        message = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}" if str(error) else type(error).__name__
        if not layers_ran:
            return CheckResult(NAME, Status.PASS, "")
        return CheckResult(NAME, Status.WARN, f"{where}: a shape error from inside the network ({message}); nnU-Net "
                           f"only feeds divisible patches, so its training and prediction are not affected", fix)
    finally:
        for hook in hooks:
            hook.remove()
    full = output[0] if isinstance(output, (list, tuple)) else output
    if list(full.shape[2:]) == size:
        return CheckResult(NAME, Status.PASS, "")
    return CheckResult(NAME, Status.FAIL, f"{where}: forward returned {list(full.shape[2:])} without an error, not "
                       f"the input size", fix)


def check_indivisible_input(subject: Subject) -> CheckResult:
    return worst(NAME, (_indivisible(subject, case) for case in subject.cases),
                 f"{len(subject.cases)} configurations: an input the strides cannot divide is refused before any "
                 f"layer runs, or segmented at its own size")
