"""Per-case metrics of a folder of predictions against their references, usable without a study (``nnunet-archs
evaluate``) as nnU-Net's ``evaluate_folder`` is: every metric of ``metrics.METRICS`` that was asked for, one tidy row
per (case, label, metric), in the image's spacing. Voxels of nnU-Net's ``ignore`` label are left out of both masks
for every metric, as nnU-Net's Dice leaves them out.

Conventions for empty masks (stated in every report, ``metrics.empty_conventions``): reference and prediction both
empty: Dice, NSD and HD95 NaN (nnU-Net's own convention; the case does not count for that label); exactly one of
them empty is a failure (``failures``).

Cases are evaluated by a pool of ``processes`` worker processes, nnU-Net's convention (``-np``, by default
``nnUNet_def_n_proc``, else 8; started by "spawn", as nnU-Net's evaluation starts them), each case by one worker
that reads its two files once (``cases``). Nothing is returned, and so nothing is written, unless every case was read
whole and its prediction lies on its reference's grid: the first case that is not stops the evaluation with one
sentence naming it. Label values dataset.json does not define are refused too, every case and value listed, unless
``undefined_labels`` is "warn" (they are then in no label's mask, as background is).
"""
from __future__ import annotations

import multiprocessing
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from nnunet_archs.errors import UserError
from nnunet_archs.evaluation.cases import Case, CaseResult, Settings, evaluate_case, pooled_case, start_worker
from nnunet_archs.evaluation.labels import (check_dataset_json, check_object_labels, check_undefined_labels,
                                            defined_values, ignore_label, label_regions)
from nnunet_archs.evaluation.metrics import METRIC_NAMES, OBJECTS, check_metrics, metric
from nnunet_archs.evaluation.objects import check_threshold
from nnunet_archs.evaluation.tables import OBJECT_COLUMNS, objects_path, write_rows

_LISTED_CASES = 5  # cases named per undefined value before "and N more"


@dataclass
class Evaluation:
    """A folder's per-case rows (``tables.COLUMNS``), with object metrics its objects (``tables.OBJECT_COLUMNS``),
    and what the user should know about the input (label values measured as background)."""

    rows: List[dict] = field(default_factory=list)
    objects: List[dict] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def default_processes() -> int:
    """nnU-Net's worker count: ``nnUNet_def_n_proc``, else 8."""
    from nnunetv2.configuration import default_num_processes
    return default_num_processes


def evaluate_folder(reference_folder: Path, prediction_folder: Path, dataset_json: dict, architecture: str, fold: str,
                    metrics: Sequence[str] = METRIC_NAMES, tolerance_mm: float = 2.0, seed: int = 0,
                    object_labels: Optional[Sequence[str]] = None, match_iou: float = 0.0,
                    processes: Optional[int] = None, undefined_labels: str = "error") -> Evaluation:
    """Every prediction in ``prediction_folder`` (each must have its reference) against its reference; ``seed`` is
    the training seed of the models that predicted them; the object metrics are computed for ``object_labels``
    (default: every foreground label), objects matching at IoU > ``match_iou``; ``processes`` workers (default:
    ``default_processes``)."""
    processes = default_processes() if processes is None else processes
    check_metrics(metrics, tolerance_mm)
    check_threshold(match_iou)
    check_undefined_labels(undefined_labels)
    if processes < 1:
        raise UserError(f"-np must be at least 1 (worker processes), got {processes}")
    check_dataset_json(dataset_json)
    regions = label_regions(dataset_json)
    settings = Settings(_reader(dataset_json), regions, defined_values(dataset_json), ignore_label(dataset_json),
                        tuple(metrics), tolerance_mm, tuple(check_object_labels(object_labels, list(regions))),
                        match_iou, {"architecture": architecture, "seed": seed, "fold": fold},
                        measure_undefined=undefined_labels == "warn")
    cases = _cases(Path(reference_folder), Path(prediction_folder), dataset_json["file_ending"])
    evaluation = Evaluation()
    undefined: Dict[Tuple[str, Tuple[float, ...]], List[str]] = defaultdict(list)
    for case, result in zip(cases, _each_case(cases, settings, processes)):
        evaluation.rows += result.rows
        evaluation.objects += result.objects
        for side, values in result.undefined.items():
            undefined[side, values].append(case.name)
    if undefined:
        text = _undefined_text(undefined, settings)
        if not settings.measure_undefined:
            raise UserError(f"{text}; nothing was written (--undefined-labels warn measures them as background)")
        evaluation.warnings.append(f"{text}: measured as background")
    return evaluation


def write_evaluation(evaluation: Evaluation, path: Path) -> None:
    """The per-case rows to ``path``; the objects, when there are object metrics, beside it (``objects_path``)."""
    write_rows(evaluation.rows, path)
    if evaluation.objects or any(metric(r["metric"]).family == OBJECTS for r in evaluation.rows):
        write_rows(evaluation.objects, objects_path(path), OBJECT_COLUMNS)


def _reader(dataset_json: dict) -> type:
    """nnU-Net's reader/writer for the dataset's file ending (or the one dataset.json names), chosen as nnU-Net
    chooses it but without test-reading a file: the reads below refuse what it cannot read, naming the file."""
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    try:
        return determine_reader_writer_from_dataset_json(dataset_json, verbose=False)
    except RuntimeError:
        raise UserError(f"dataset.json: nnU-Net has no reader for file_ending {dataset_json['file_ending']!r}") from None


def _cases(reference_folder: Path, prediction_folder: Path, ending: str) -> List[Case]:
    for folder in (reference_folder, prediction_folder):
        if not folder.is_dir():
            raise UserError(f"{folder} is not a folder")
    predictions = sorted(p for p in prediction_folder.iterdir() if p.name.endswith(ending))
    if not predictions:
        raise UserError(f"no predictions ending in {ending} in {prediction_folder}")
    missing = [p.name for p in predictions if not (reference_folder / p.name).exists()]
    if missing:
        raise UserError(f"no reference in {reference_folder} for {missing}")
    return [Case(p.name[:-len(ending)], reference_folder / p.name, p) for p in predictions]


def _each_case(cases: List[Case], settings: Settings, processes: int) -> Iterator[CaseResult]:
    """Each case's result, in order; once a case holds undefined label values that will refuse the folder, the
    later cases are read and checked but not measured. A refused case ends it (the pool with it)."""
    workers = min(processes, len(cases))
    if workers == 1:
        measure = True
        for case in cases:
            result = _checked(evaluate_case(case, settings, measure))
            measure = measure and not (result.undefined and not settings.measure_undefined)
            yield result
        return
    context = multiprocessing.get_context("spawn")
    stop_measuring = context.Event()
    with context.Pool(workers, initializer=start_worker, initargs=(stop_measuring,)) as pool:
        for result in pool.imap(pooled_case, [(case, settings) for case in cases]):
            if result.undefined and not settings.measure_undefined:
                stop_measuring.set()
            yield _checked(result)


def _checked(result: CaseResult) -> CaseResult:
    if result.refusal:
        raise UserError(f"{result.refusal}; nothing was written")
    return result


def _undefined_text(undefined: Dict[Tuple[str, Tuple[float, ...]], List[str]], settings: Settings) -> str:
    found = []
    for (side, values), cases in undefined.items():
        more = f" and {len(cases) - _LISTED_CASES} more" if len(cases) > _LISTED_CASES else ""
        found.append(f"{', '.join(map(_number, values))} in the {side} of {', '.join(cases[:_LISTED_CASES])}{more}")
    return (f"label values that dataset.json does not define (it defines {', '.join(map(str, sorted(settings.defined)))}"
            f"): {'; '.join(found)}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
