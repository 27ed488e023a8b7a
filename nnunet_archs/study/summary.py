"""What a study will cost, said before it starts: every real study prints this summary first and ``--dry-run`` prints
it with its planning table. Networks and what they are compared with, trainings (networks x folds x training seeds)
with their schedule in numbers, the device and why, the jobs, and the training hours when they can be estimated
(``--hours-per-training``, or the trainings already finished in the report folder: a pilot study, or this study
when resumed).

It also holds the one refusal that needs these numbers: nnU-Net's full schedule on a CPU, days per training, starts
only when the user confirms it (``--yes``)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from nnunet_archs.errors import UserError
from nnunet_archs.study.folder import StudyFolder, StudyLayout
from nnunet_archs.study.jobs import Job
from nnunet_archs.study.spec import StudySpec

CONFIRM_FLAG = "--yes"


def pilot_hours(report: Path) -> Optional[float]:
    """Mean hours per training of the trainings a study in ``report`` has finished, None without any."""
    from nnunet_archs.study.records import training_costs
    folder = StudyFolder(Path(report))
    if not folder.is_study():
        return None
    spec, layout = folder.read_spec(), folder.read_layout()
    seconds = [s for cost in training_costs(spec, layout).values() for s in cost.seconds.values()]
    return sum(seconds) / len(seconds) / 3600 if seconds else None


@dataclass(frozen=True)
class Estimate:
    """Hours one training takes, and where that figure comes from; ``hours`` None when nothing says."""

    hours: Optional[float]
    source: str = ""

    @classmethod
    def find(cls, report: Path, hours_per_training: Optional[float]) -> "Estimate":
        if hours_per_training is not None:
            if not hours_per_training > 0:
                raise UserError(f"--hours-per-training must be > 0, got {hours_per_training:g}")
            return cls(hours_per_training, "--hours-per-training")
        hours = pilot_hours(report)
        return cls(hours, f"the trainings finished in {report}") if hours is not None else cls(None)


def full_schedule_on_cpu(spec: StudySpec) -> bool:
    return spec.budget.full_schedule and not spec.device.startswith("cuda")


def cpu_schedule_warning(spec: StudySpec, trainings: int) -> str:
    return (f"nnU-Net's full schedule on the CPU: each of the {trainings} trainings is {spec.budget.epochs_text}, "
            f"which takes days on a CPU. Shorten it with --epochs, --iterations or --minutes, train on a GPU "
            f"(-device cuda), or pass {CONFIRM_FLAG} to start it as it is")


def check_cpu_schedule(spec: StudySpec, trainings: int, confirmed: bool) -> Optional[str]:
    """Refuse nnU-Net's full schedule on a CPU unless the user confirmed it (``--yes``); the warning to print when
    they did."""
    if not full_schedule_on_cpu(spec):
        return None
    if not confirmed:
        raise UserError(f"not started: {cpu_schedule_warning(spec, trainings)}")
    return f"Warning: {cpu_schedule_warning(spec, trainings)}; confirmed with {CONFIRM_FLAG}."


def _networks(spec: StudySpec) -> str:
    if len(spec.architectures) == 1:
        return (f"1 network, {spec.baseline}: the study measures its spread over cases, folds and training seeds and "
                f"compares it with nothing (name two or more networks with -a to compare them)")
    others = [a for a in spec.architectures if a != spec.baseline]
    named = " and ".join([", ".join(others[:-1]), others[-1]] if len(others) > 1 else others)
    return (f"{len(spec.architectures)} networks: {named} {'each ' if len(others) > 1 else ''}tested against the "
            f"baseline {spec.baseline}")


def summary_lines(spec: StudySpec, layout: StudyLayout, jobs: Sequence[Job], device_reason: str, executor: str,
                  estimate: Estimate, max_parallel: Optional[int] = None) -> List[str]:
    """The summary, one line per fact."""
    trainings = sum(job.kind == "train" for job in jobs)
    kinds = Counter(job.kind for job in jobs)
    at_once = f", up to {max_parallel} at once" if max_parallel else ""
    lines = [f"Study of {layout.raw.name}, configuration {spec.configuration}: {_networks(spec)}",
             f"Trainings: {len(spec.architectures)} network(s) x {len(spec.folds)} folds x "
             f"{len(spec.training_seeds)} training seed(s) = {trainings}, each {spec.budget}",
             f"Device: {spec.device} ({device_reason})",
             f"Jobs: {len(jobs)} (" + ", ".join(f"{n} {kind}" for kind, n in kinds.items()) +
             f") on the {executor} executor{at_once}"]
    gpus = spec.num_gpus if spec.device.startswith("cuda") else 0
    if estimate.hours is None:
        lines.append("Estimated cost: unknown until a training has finished here (compare estimates it from "
                     "--hours-per-training H, or from a short pilot study run into the report folder first)")
    else:
        hours = trainings * estimate.hours * max(gpus, 1)
        lines.append(f"Estimated cost: {trainings} trainings x {estimate.hours:.2f} h ({estimate.source})"
                     + (f" x {gpus} GPU(s) = {hours:.1f} GPU-hours" if gpus else f" = {hours:.1f} hours of CPU"))
    return lines
