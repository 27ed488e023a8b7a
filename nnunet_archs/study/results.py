"""A study's report, from what its folder holds: the per-case tables assembled, the statistics run, the costs and
the jobs' records read, then rendered (``reporting``) and written into the folder. ``nnunet-archs report DIR``
redraws it from those files alone."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from nnunet_archs.analysis.sizes import detection_by_size
from nnunet_archs.analysis.statistics import analyse, failure_sensitivity
from nnunet_archs.analysis.table import normalise, scored
from nnunet_archs.registry import study_trainer_name
from nnunet_archs.reporting.results import Costs, Protocol, StudyResults
from nnunet_archs.reporting.study_files import draw_figures, results_csv, results_latex, sizes_csv
from nnunet_archs.reporting.study_report import markdown
from nnunet_archs.reporting.study_tables import endpoint_name
from nnunet_archs.study.folder import SPEC, StudyFolder, StudyLayout, open_study
from nnunet_archs.study.records import failures, inference_costs, training_costs, training_jobs
from nnunet_archs.study.spec import StudySpec, analysis_plan, analysis_versions, plan_hash, post_hoc_changes
from nnunet_archs.training.environment import seeded_trainer_name


def protocol(spec: StudySpec, layout: StudyLayout, convention: str, header_extra: str = "") -> Protocol:
    header = (f"Study of dataset {spec.dataset_id} ({layout.raw.name}), configuration {spec.configuration}, folds "
              f"{' '.join(map(str, spec.folds))}, training seeds {' '.join(map(str, spec.training_seeds))}, GPU "
              f"memory target {spec.gpu_memory_target:g} GB, budget {spec.budget}, device {spec.device}, baseline "
              f"{spec.baseline}, primary endpoint {endpoint_name(spec.primary_metric, spec.primary_label)}, NSD "
              f"tolerance {spec.nsd_tolerance_mm:g} mm, failures scored {convention}, bootstrap seed "
              f"{spec.seed}{header_extra}")
    registered = spec.preregistration
    changes = post_hoc_changes(registered, analysis_plan(spec, convention, analysis_versions())) if registered else []
    return Protocol(header, list(spec.architectures), spec.baseline, list(spec.metrics), list(spec.folds),
                    list(spec.training_seeds), str(spec.budget), spec.device, spec.compile_enabled,
                    dict(spec.margins), spec.nsd_tolerance_mm, spec.match_iou,
                    plan_hash(registered) if registered else "", tuple(changes), SPEC,
                    tuple(a for a in spec.architectures if study_trainer_name(a, 0) != seeded_trainer_name(0)))


def load_results(folder: StudyFolder, header_extra: str = "", failures_convention: Optional[str] = None
                 ) -> StudyResults:
    """Assemble the per-case tables, run the statistics and read the costs of a study folder;
    ``failures_convention`` overrides the study's (``report --failures``) without evaluating again."""
    spec, layout = folder.read_spec(), folder.read_layout()
    convention = failures_convention or spec.failures
    options = dict(primary=(spec.primary_metric, spec.primary_label), margins=spec.margins, failures=convention)
    tables = folder.tables(spec)
    table, test_table, objects = tables.per_case, tables.per_case_test, tables.per_object
    statistics = analyse(table, spec.architectures, spec.baseline, spec.metrics, spec.seed, spec.bootstrap_resamples,
                         **options)
    test_statistics = None if test_table is None else analyse(
        test_table, spec.architectures, spec.baseline, spec.metrics, spec.seed, spec.bootstrap_resamples, **options)
    sizes = [] if objects is None else detection_by_size(objects, spec.architectures)
    costs = Costs(folder.read_costs(), training_costs(spec, layout), inference_costs(spec, layout),
                  folder.read_environment())
    sensitivity = failure_sensitivity(table, spec.architectures, spec.baseline, spec.seed, spec.bootstrap_resamples,
                                      **options)
    return StudyResults(protocol(spec, layout, convention, header_extra), scored(normalise(table), convention),
                        statistics, test_statistics, sizes, costs, failures(layout), training_jobs(spec, layout),
                        sensitivity)


def write_report(report: Path, header_extra: str = "", failures_convention: Optional[str] = None) -> Path:
    """Redraw the report of the study in ``report``; returns its ``results.md``."""
    folder = open_study(report)
    results = load_results(folder, header_extra, failures_convention)
    written = folder.write_report(markdown(results), results_csv(results), results_latex(results), sizes_csv(results))
    draw_figures(results, folder.path)
    return written
