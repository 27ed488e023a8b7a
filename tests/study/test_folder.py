"""The report folder's owner: a report folder written by an earlier version (``tests/fixtures/demo_study``: what
``make demo`` wrote on 2026-12-07, with everything its loader reads) opens and is redrawn byte for byte; a folder that
is not a study is refused; the spec and environment round-trip."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nnunet_archs.errors import UserError
from nnunet_archs.study.driver import check_folder, prepare_folder
from nnunet_archs.study.folder import StudyFolder, StudyLayout, open_study
from nnunet_archs.reporting.study_files import results_csv, results_latex, sizes_csv
from nnunet_archs.reporting.study_report import markdown
from nnunet_archs.study.results import load_results, protocol
from nnunet_archs.study.spec import analysis_plan, analysis_versions, plan_hash

FIXTURE = Path(__file__).parents[1] / "fixtures" / "demo_study"
REDRAWN = ("results.md", "results.csv", "results.tex", "detection_by_size.csv")


def old_study(tmp_path: Path) -> StudyFolder:
    """The fixture copied, its layout.json pointing at the copy (a finished study stores absolute paths)."""
    root = tmp_path / "demo"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("expected"))
    layout = root / "report" / "layout.json"
    layout.write_text(json.dumps({k: str(root / v) for k, v in json.loads(layout.read_text()).items()}, indent=1))
    return StudyFolder(root / "report")


def test_an_old_report_folder_is_redrawn_byte_for_byte(tmp_path):
    """``write_report`` without the figures (drawn by the end-to-end study test)."""
    folder = old_study(tmp_path)
    results = load_results(folder)
    assert folder.write_report(markdown(results), results_csv(results), results_latex(results),
                               sizes_csv(results)) == folder.path / "results.md"
    for name in REDRAWN:
        assert (folder.path / name).read_bytes() == (FIXTURE / "expected" / name).read_bytes(), name


def test_the_folder_reads_what_the_study_stored(tmp_path):
    folder = old_study(tmp_path)
    spec, layout = folder.read_spec(), folder.read_layout()
    assert spec.architectures == ["PlainConvUNet", "KiUNet", "UIUNet-minimal"] and spec.folds == [0, 1, 2]
    assert layout.folder == folder and layout.raw.name == "Dataset990_KiUDemo2D"
    tables = folder.tables(spec)
    table = tables.per_case
    # the 24 cases of folds 0-2 of 40; per case Dice, NSD and HD95 of both labels, the objects of one label
    assert table.groupby("architecture")["case"].nunique().tolist() == [24, 24, 24]
    assert set(table.groupby(["architecture", "case"]).size()) == {2 * 3 + 4}
    assert tables.per_case_test["fold"].unique().tolist() == ["ensemble"]
    assert folder.read_environment()[0]["versions"]["nnunetv2"] == "2.8.1"
    assert folder.read_costs()["KiUNet"]["batch"] > 0


def test_spec_and_environment_round_trip(tmp_path):
    folder = old_study(tmp_path)
    spec = folder.read_spec()
    spec.metrics = spec.metrics[:2]
    folder.write_spec(spec)
    assert folder.read_spec() == spec
    folder.append_environment({"started": "now"})
    assert [s.get("started") for s in folder.read_environment()][-1] == "now"
    assert len(folder.read_environment()) == 2


def test_a_folder_that_is_not_a_study_is_refused_naming_what_is_missing(tmp_path):
    with pytest.raises(UserError, match="is not a study report folder: study.json is missing"):
        open_study(tmp_path)
    folder = old_study(tmp_path)  # its report not drawn yet
    with pytest.raises(UserError, match=r"is not a finished study \(results.md is missing\)"):
        folder.check_finished()
    (folder.path / "per_case.csv").unlink()
    with pytest.raises(UserError, match="has no per-case metrics yet"):
        folder.tables(folder.read_spec())


def test_an_analysis_is_pre_registered_when_a_study_starts_and_a_report_that_changes_it_is_post_hoc(tmp_path):
    """compare fixes the plan in the spec (a resumed study keeps the one it started with, an old one its lack of
    one); the report prints its hash, and lists what a report computed otherwise changes."""
    folder = old_study(tmp_path)
    spec, layout = folder.read_spec(), folder.read_layout()
    assert spec.preregistration is None and protocol(spec, layout, "worst").plan_hash == ""  # not pre-registered
    fresh = StudyLayout(layout.raw, layout.preprocessed, layout.results, tmp_path / "new_report")
    check_folder(spec, fresh, resume=False, overwrite=False)
    prepare_folder(spec, fresh, overwrite=False)
    registered = fresh.folder.read_spec().preregistration
    assert registered == analysis_plan(spec, "worst", analysis_versions()) and registered["alpha"] == 0.05
    assert {"primary", "margins", "failures", "estimand"} <= set(registered) and registered["versions"]["monai"]
    as_planned = protocol(fresh.folder.read_spec(), fresh, "worst")
    assert as_planned.plan_hash == plan_hash(registered) and len(as_planned.plan_hash) == 8
    assert as_planned.post_hoc == () and as_planned.plan_file == "study.json"
    assert protocol(fresh.folder.read_spec(), fresh, "exclude").post_hoc == ("failures: worst -> exclude",)
    older = fresh.folder.read_spec()
    older.preregistration = {**registered, "versions": {**registered["versions"], "scipy": "1.9.0"}}
    fresh.folder.write_spec(older)
    assert protocol(older, fresh, "worst").post_hoc == (f"scipy 1.9.0 -> {registered['versions']['scipy']}",)
    spec.preregistration = None
    check_folder(spec, fresh, resume=True, overwrite=False)  # resumed: the plan it started with
    prepare_folder(spec, fresh, overwrite=False)
    assert fresh.folder.read_spec().preregistration == older.preregistration
    check_folder(spec, layout, resume=True, overwrite=False)  # an old study stays not pre-registered
    prepare_folder(spec, layout, overwrite=False)
    assert folder.read_spec().preregistration is None




def _first_rows(text: str, rows: int) -> str:
    return "".join(text.splitlines(keepends=True)[:rows + 1])


DAMAGED_TABLES = {  # a per-job table, spoilt -> what the refusal names
    "cut in the middle of a row": ("metrics/PlainConvUNet_fold0_seed0.csv", lambda t: t[:-9],
                                   "PlainConvUNet_fold0_seed0.csv, line 4: the table ends in the middle of a row"),
    "a row with a value too many": ("metrics/PlainConvUNet_fold0_seed0.csv",
                                    lambda t: t.replace(",Dice,", ",Dice,n/a,", 1),
                                    "line 2: 10 values where the header has 9 columns"),
    "a non-numeric value": ("metrics/PlainConvUNet_fold0_seed0.csv",
                            lambda t: "\n".join(l if i != 2 else ",".join(l.split(",")[:6] + ["high"] +
                                                                          l.split(",")[7:])
                                                for i, l in enumerate(t.split("\n"))),
                            "line 3: column 'value' holds 'high', not a number"),
    "no value column": ("metrics/PlainConvUNet_fold0_seed0.csv",
                        lambda t: "\n".join(",".join(c for j, c in enumerate(l.split(",")) if j != 6)
                                            for l in t.split("\n")),
                        "line 1: no column value"),
    "a cut test-set table": ("metrics_test/PlainConvUNet_seed0.csv", lambda t: t[:-3], "line 4: the table ends"),
    "an objects table saying 'yes'": ("metrics/PlainConvUNet_fold0_seed0_objects.csv",
                                      lambda t: t.replace(",False,", ",yes,", 1),
                                      "column 'matched' holds 'yes', not True or False"),
}


@pytest.mark.parametrize("part, spoil, message", DAMAGED_TABLES.values(), ids=DAMAGED_TABLES.keys())
def test_a_damaged_metrics_table_is_refused_and_the_folder_left_as_it_was(tmp_path, capsys, part, spoil, message):
    """``nnunet-archs report`` on a study one of whose per-job tables is cut or malformed: one line naming the file
    and line, exit 2, no report drawn, nothing in the folder written, changed or deleted."""
    from nnunet_archs.cli.dispatch import main
    folder = old_study(tmp_path)
    per_case, per_object = (folder.path / "per_case.csv").read_text(), (folder.path / "per_object.csv").read_text()
    for name, source in (("metrics/PlainConvUNet_fold0_seed0.csv", per_case),
                         ("metrics/PlainConvUNet_fold0_seed0_objects.csv", per_object),
                         ("metrics_test/PlainConvUNet_seed0.csv", (folder.path / "per_case_test.csv").read_text())):
        (folder.path / name).parent.mkdir(exist_ok=True)
        (folder.path / name).write_text(_first_rows(source, 3))
    (folder.path / part).write_text(spoil((folder.path / part).read_text()))
    before = {p: p.read_bytes() for p in folder.path.rglob("*") if p.is_file()}
    assert main(["report", str(folder.path)]) == 2
    error = capsys.readouterr().err
    assert message in error and part.split("/")[-1] in error and error.count("\n") == 1, error
    assert {p: p.read_bytes() for p in folder.path.rglob("*") if p.is_file()} == before
    assert not (folder.path / "results.md").exists()


def test_report_metrics_does_not_score_a_cut_prediction_and_changes_nothing(tmp_path, capsys):
    """``report DIR --metrics`` evaluates every stored prediction folder before it writes: one cut prediction refuses
    the addition, and neither the per-job tables nor study.json change."""
    import numpy as np
    import SimpleITK as sitk
    from nnunet_archs.cli.dispatch import main
    folder = old_study(tmp_path)
    spec, layout = folder.read_spec(), folder.read_layout()
    spec.metrics = [m for m in spec.metrics if m != spec.metrics[1]]  # NSD not measured yet
    folder.write_spec(spec)
    (layout.raw / "labelsTr").mkdir(parents=True)
    (layout.raw / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "large": 1, "small": 2},
                                                         "file_ending": ".nii.gz"}))
    for fold in (0, 1):
        part = folder.fold_metrics("PlainConvUNet", fold, 0)
        part.parent.mkdir(exist_ok=True)
        part.write_text(_first_rows((folder.path / "per_case.csv").read_text(), 2))
        validation = layout.fold_folder(spec, "PlainConvUNet", fold, 0) / "validation"
        validation.mkdir()
        label = np.zeros((1, 16, 16), np.uint8)
        label[0, 4:9, 4:9] = 1
        for where in (layout.raw / "labelsTr", validation):
            sitk.WriteImage(sitk.GetImageFromArray(label), str(where / f"case{fold}.nii.gz"), True)
    cut = layout.fold_folder(spec, "PlainConvUNet", 1, 0) / "validation" / "case1.nii.gz"
    cut.write_bytes(cut.read_bytes()[:-20])
    before = {p: p.read_bytes() for p in folder.path.rglob("*") if p.is_file()}
    assert main(["report", str(folder.path), "--metrics", spec.metrics[0], "NSD", "-np", "1"]) == 2
    assert "case1.nii.gz is cut short" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in folder.path.rglob("*") if p.is_file()} == before
