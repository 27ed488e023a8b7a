"""The contract suite: every check, in order, on one network over its configurations."""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence

from nnunet_archs.contract import ddp, deep_supervision, finetuning, graph_breaks, input_size, memory
from nnunet_archs.contract.base import CheckResult, Status, Subject, describe
from nnunet_archs.contract.cases import NetworkCase, plans_cases, random_cases
from nnunet_archs.errors import UserError
from nnunet_archs.real_plans import PlansRecord
from nnunet_archs.registry import ArchitectureVariant

BUILDS = "builds from nnU-Net plans"
CHECKS = {
    deep_supervision.OUTPUTS: deep_supervision.check_outputs,
    deep_supervision.PARAMETERS: deep_supervision.check_parameters,
    deep_supervision.GRADIENTS: deep_supervision.check_gradients,
    ddp.NAME: ddp.check_ddp,
    graph_breaks.NAME: graph_breaks.check_graph_breaks,
    finetuning.NAME: finetuning.check_finetuning_keys,
    input_size.NAME: input_size.check_indivisible_input,
    memory.NAME: memory.check_memory_estimate,
}
OPTIONAL = {ddp.NAME}  # run only when asked for (--ddp): two processes, a few seconds each
PLANS_KEYWORDS = ("input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides, n_conv_per_stage, "
                  "num_classes, n_conv_per_stage_decoder, conv_bias, norm_op, norm_op_kwargs, dropout_op, "
                  "dropout_op_kwargs, nonlin, nonlin_kwargs, deep_supervision")


def default_cases(records: Optional[Sequence[PlansRecord]] = None, random: int = 8) -> List[NetworkCase]:
    """Real configurations (the built-in 2D, isotropic and anisotropic 3D ones unless ``records`` are given) and
    ``random`` random valid ones."""
    if random < 0:
        raise UserError(f"--random must be >= 0, got {random}")
    return plans_cases(records) + random_cases(random)


def _builds(subject: Subject) -> CheckResult:
    for case in subject.cases:
        try:
            subject.network(case)
        except Exception as error:  # whatever the constructor raises is the finding
            return CheckResult(BUILDS, Status.FAIL, f"{describe(case)}: {type(error).__name__}: "
                               f"{str(error).splitlines()[0][:200] if str(error) else ''}",
                               f"accept nnU-Net's plans keywords ({PLANS_KEYWORDS}) plus your own options")
    return CheckResult(BUILDS, Status.PASS, f"{len(subject.cases)} configurations through nnU-Net's "
                       f"get_network_from_plans")


def run_contract(variant: ArchitectureVariant, cases: Sequence[NetworkCase], memory_records: Sequence[PlansRecord],
                 checks: Optional[Sequence[str]] = None, with_ddp: bool = False) -> Iterator[CheckResult]:
    """Run ``checks`` (default: all but the optional ones, plus DDP with ``with_ddp``), yielding one result
    each as it finishes. A network that does not build skips the rest."""
    names = list(checks) if checks is not None else [n for n in CHECKS if n not in OPTIONAL or with_ddp]
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise UserError(f"unknown checks {unknown}; choose from {list(CHECKS)}")
    subject = Subject(variant, [case.for_variant(variant) for case in cases], list(memory_records))
    built = _builds(subject)
    yield built
    for name in names:
        if built.status == Status.FAIL:
            yield CheckResult(name, Status.SKIP, "the network does not build")
            continue
        try:
            yield CHECKS[name](subject)
        except Exception as error:  # a check that meets an unexpected error in the user's network fails
            yield CheckResult(name, Status.FAIL, f"{type(error).__name__}: "
                              f"{str(error).splitlines()[0][:200] if str(error) else ''}")


def passed(results: Sequence[CheckResult]) -> bool:
    return all(r.status != Status.FAIL for r in results)
