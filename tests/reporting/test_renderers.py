"""The renderers on results objects built from a small per-case table (the demo study's fixture): markdown, CSV and
LaTeX of one study and of several, each from the results alone (no file is opened while rendering)."""
from __future__ import annotations

import builtins
import csv
import io
import math
from pathlib import Path

import pandas as pd
import pytest

from nnunet_archs.analysis.consensus import Endpoint, consensus, pairwise, suitability
from nnunet_archs.analysis.costs import TrainingCost
from nnunet_archs.analysis.statistics import analyse, failure_sensitivity
from nnunet_archs.analysis.table import MEAN_LABEL, case_matrix, normalise, scored
from nnunet_archs.evaluation.tables import read_table
from nnunet_archs.reporting import combined_report, study_report
from nnunet_archs.reporting.results import CombinedResults, Costs, DatasetResults, Protocol, StudyResults
from nnunet_archs.reporting.study_files import CSV_HEADER, results_csv, results_latex
from nnunet_archs.reporting.text import fmt

PER_CASE = Path(__file__).parents[1] / "fixtures" / "demo_study" / "report" / "per_case.csv"
ARCHITECTURES = ["PlainConvUNet", "KiUNet", "UIUNet-minimal"]
METRICS = ["Dice", "HD95"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    data = read_table(PER_CASE)
    return data[data["metric"].isin(METRICS)]


def protocol(header: str = "Study of a small table", **registration) -> Protocol:
    return Protocol(header, ARCHITECTURES, ARCHITECTURES[0], METRICS, [0, 1, 2], [0], "2 epoch(s) x 3 iterations",
                    "cpu", False, {"Dice": 0.02}, 2.0, 0.0, **registration)


@pytest.fixture(scope="module")
def results(table) -> StudyResults:
    statistics = analyse(table, ARCHITECTURES, ARCHITECTURES[0], METRICS, seed=0, resamples=200)
    costs = Costs({"KiUNet": {"patch": [64, 64], "batch": 4, "estimated_gb": 0.05, "closest_preset": "M",
                              "params": 1.5e6, "gflops_per_patch": 0.4}},
                  {"KiUNet": TrainingCost(seconds={(0, 0): 120.0, (1, 0): 60.0})})
    return StudyResults(protocol(), scored(normalise(table), "worst"), statistics, costs=costs,
                        failed=["train_KiUNet_fold2_seed0: exit status 1; read log.txt"],
                        trainings=[["train_KiUNet_fold0_seed0", "2", "local 11 (killed), local 12 (done)", "120"]])


@pytest.fixture
def no_files(monkeypatch):
    """Opening any file while rendering fails the test: renderers read results, never files."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a renderer opened {args[0]}")
    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)


def test_the_markdown_of_a_study_states_each_section_from_its_results(results, no_files):
    text = study_report.markdown(results)
    sections = [line for line in text.splitlines() if line.startswith("### ")]
    assert [s.split(" (")[0].split(":")[0] for s in sections] == [
        "### Cross-validation", "### Variation of the primary endpoint", "### Cost", "### Footing",
        "### Secondary endpoints", "### Missing results", "### Trainings", "### Method"]
    summary = results.statistics.summary("PlainConvUNet", "Dice")
    baseline_row = next(line for line in text.splitlines() if line.startswith("| PlainConvUNet | "))
    assert baseline_row.split(" | ")[1].startswith(f"{fmt(summary.mean)} ± {fmt(summary.sd)} (")
    assert "| KiUNet | 1.5 min/training |" in text  # the mean of 120 s and 60 s
    verdicts = [line for line in text.splitlines() if " vs PlainConvUNet: " in line]
    assert [v.split(" vs ")[0] for v in verdicts] == ["KiUNet", "UIUNet-minimal"]
    assert "HD95 ±" not in text and "Dice ±0.02" in text  # the margin, in the method section
    assert "train_KiUNet_fold2_seed0: exit status 1" in text and "local 11 (killed)" in text
    # the verdict line gives the verdict's own effect and interval, and that interval's coverage if the cases were
    # the population; the method names the estimand and each interval's method
    comparison = results.statistics.comparison("KiUNet", "Dice")
    assert f"mean difference {comparison.mean_difference:+.3f} Dice (label mean) (95 % CI " \
           f"{comparison.ci[0]:+.3f}, {comparison.ci[1]:+.3f}; coverage {comparison.coverage:.2f} if these cases " \
           f"were the population)" in verdicts[0]
    assert "estimand: the mean per-case difference" in text and "sign-flip" in text and "Korn" not in text
    assert "Analysis not pre-registered" in text and "Failures as a sensitivity analysis" not in text


def test_a_post_hoc_analysis_labels_its_verdicts_and_names_what_changed(results, no_files):
    post_hoc = StudyResults(protocol(plan_hash="1a2b3c4d", post_hoc=("failures: worst -> exclude",),
                                     plan_file="study.json"), results.table, results.statistics)
    text = study_report.markdown(post_hoc)
    assert "Post hoc analysis: it differs from the plan pre-registered in study.json (hash 1a2b3c4d) in " \
           "failures: worst -> exclude" in text
    assert [line.split(":")[0] for line in text.splitlines() if " vs PlainConvUNet: " in line] == ["Post hoc"] * 2
    row = next(line for line in text.splitlines() if line.startswith("| KiUNet | "))
    assert row.split(" | ")[4].endswith("(post hoc)")
    assert {r["analysis"] for r in csv.DictReader(io.StringIO(results_csv(post_hoc)))} == {"post hoc (1a2b3c4d)"}
    registered = StudyResults(protocol(plan_hash="1a2b3c4d", plan_file="study.json"), results.table,
                              results.statistics)
    assert "Analysis as pre-registered in study.json when the study started (plan hash 1a2b3c4d" in \
        study_report.markdown(registered) and "post hoc" not in study_report.markdown(registered)


def test_the_method_names_the_networks_trained_without_deep_supervision(results, no_files):
    assert "without deep supervision" not in study_report.method_text(results)
    swin = StudyResults(protocol(without_deep_supervision=("KiUNet",)), results.table, results.statistics)
    assert "KiUNet trained without deep supervision, as its authors trained it " \
           "(nnUNetTrainerBudgetNoDeepSupervision_seed<S>" in study_report.method_text(swin)


def test_an_hd95_verdict_with_failures_is_shown_under_both_conventions(table, no_files):
    """The fixture's small label is missed in every case by two networks: HD95 as the primary endpoint has failures,
    so the report gives the verdict with them left out too, and says whether the conclusion changes."""
    primary = ("HD95", MEAN_LABEL)
    statistics = analyse(table, ARCHITECTURES, ARCHITECTURES[0], METRICS, 0, 200, primary)
    sensitivity = failure_sensitivity(table, ARCHITECTURES, ARCHITECTURES[0], 0, 200, primary)
    text = study_report.markdown(StudyResults(protocol(), scored(normalise(table), "worst"), statistics,
                                              sensitivity=sensitivity))
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("Failures as a sensitivity analysis")))
    assert "scored exclude instead of worst, i.e. left out of the HD95 mean and tests (and counted):" in lines[start]
    for architecture in ARCHITECTURES[1:]:
        other = sensitivity.comparison(architecture, "HD95")
        assert f"- {architecture}: mean difference {other.mean_difference:+.3f} mm" in text
        assert f"{other.verdict} (scored worst: {statistics.comparison(architecture, 'HD95').verdict})" in text
    depends = any(sensitivity.comparison(a, "HD95").verdict != statistics.comparison(a, "HD95").verdict
                  for a in ARCHITECTURES[1:])
    assert ("The conclusion depends on the failure convention" in text) == depends
    assert ("The conclusion does not depend on the failure convention." in text) != depends


def test_the_csv_of_a_study_has_one_row_per_summary_and_the_comparisons_beside_them(results, no_files):
    rows = list(csv.DictReader(io.StringIO(results_csv(results))))
    assert list(rows[0]) == CSV_HEADER and len(rows) == len(results.statistics.summaries)
    primary = [r for r in rows if r["role"] == "primary"]
    assert {(r["metric"], r["label"]) for r in primary} == {("Dice", MEAN_LABEL)} and len(primary) == 3
    baseline = next(r for r in primary if r["architecture"] == "PlainConvUNet")
    kiunet = next(r for r in primary if r["architecture"] == "KiUNet")
    assert baseline["delta_vs_baseline"] == "" and kiunet["verdict"] and kiunet["batch"] == "4"
    comparison = results.statistics.comparison("KiUNet", "Dice")
    # the verdict's own effect and interval (the test inverted), their method, and the interval's coverage estimate
    assert float(kiunet["delta_vs_baseline"]) == comparison.mean_difference
    assert (float(kiunet["delta_ci_low"]), float(kiunet["delta_ci_high"])) == comparison.ci
    assert kiunet["delta_ci_method"] == comparison.ci_method and kiunet["delta_ci_method"].startswith("sign-flip")
    assert float(kiunet["delta_ci_coverage_if_population"]) == comparison.coverage
    assert {r["ci_method"] for r in rows if r["metric"] == "Dice"} <= {"studentized bootstrap", "BCa bootstrap",
                                                                        "constant"}
    assert {r["analysis"] for r in rows} == {"not pre-registered"}
    assert kiunet["training_seconds_per_training"] == "90.0"


def test_the_latex_table_of_a_study_is_booktabs_with_escaped_cells(results, no_files):
    text = results_latex(results)
    lines = text.splitlines()
    assert lines[0].startswith("% nnunet-archs compare") and "\\begin{tabular}{lcccccccc}" in lines
    body = lines[lines.index("\\midrule") + 1:lines.index("\\bottomrule")]
    assert [row.split(" & ")[0] for row in body] == ARCHITECTURES
    assert all(row.count(" & ") == 8 and row.endswith(" \\\\") for row in body)
    assert "$\\pm$" in body[0] and "UIUNet-minimal" in body[2] and "_" not in text.replace("\\_", "")


@pytest.fixture(scope="module")
def combined(table) -> CombinedResults:
    """The fixture's cases as two datasets (its first and last 12 cases), Dice at the label mean."""
    scored_table = scored(normalise(table), "worst")
    cases = sorted(scored_table["case"].unique())
    studies = []
    for name, part in (("D1", cases[:12]), ("D2", cases[12:])):
        rows = scored_table[scored_table["case"].isin(part)]
        statistics = analyse(rows, ARCHITECTURES, ARCHITECTURES[0], ["Dice"], seed=0, resamples=200)
        endpoint = Endpoint(name, case_matrix(rows, "Dice", MEAN_LABEL)[ARCHITECTURES], False, 0.01, math.nan)
        studies.append(DatasetResults(Path(name), name, "Dice", endpoint,
                                      {a: statistics.summary(a, "Dice") for a in ARCHITECTURES}, pd.DataFrame()))
    pairs = {s.name: pairwise(s.endpoint, ARCHITECTURES, 0, 200) for s in studies}
    return CombinedResults(studies, ARCHITECTURES, ["--epochs: D1: 2; D2: 3"],
                           consensus([s.endpoint for s in studies], ARCHITECTURES, 0, 200), pairs,
                           {s.name: suitability(s.endpoint, pairs[s.name]) for s in studies}, 0, 200)


def test_the_combined_report_ranks_every_network_on_every_dataset(combined, no_files):
    text = combined_report.markdown(combined)
    assert text.startswith("Combined report of 2 studies of PlainConvUNet, KiUNet, UIUNet-minimal on D1, D2.")
    assert "- --epochs: D1: 2; D2: 3" in text
    first = min(ARCHITECTURES, key=lambda a: combined.consensus.rank[a])
    table_rows = [line for line in text.splitlines() if line.startswith("| ") and "#" in line]
    assert table_rows[0].startswith(f"| {first} | ") and len(table_rows) == 3
    assert text.count(" vs ") == 2 * 3  # every pair of every dataset
    assert "† fewer than 10 cases, or fewer than 40 where structures" in text  # 12 cases, failures: as one study
    assert ")† #" in table_rows[0]
    assert "no pair called different from fewer than 10 paired cases" in text
    rows = combined_report.csv_rows(combined)
    assert len(rows) == 2 * 3 and {r["dataset"] for r in rows} == {"D1", "D2"}
    assert sum(r["first_share"] for r in rows if r["dataset"] == "D1") == pytest.approx(1.0)
    latex = combined_report.latex(combined).splitlines()
    assert "\\begin{tabular}{lccc}" in latex and latex[latex.index("\\midrule") + 1].startswith(first)
