"""Bad input never becomes a number (issue 29): a table of bad inputs to ``nnunet-archs evaluate``, each ending in
one line that names what is wrong, exit status 2 and no file written or changed; a gzip stream cut at any byte is
refused; undefined label values can be downgraded to a warning; and a study's evaluation job does not score a
prediction its killed export left cut short."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_archs.cli.dispatch import main
from nnunet_archs.errors import UserError
from nnunet_archs.evaluation.images import read_segmentation

LABELS = {"background": 0, "organ": 1, "lesion": 2}
SHAPE, SPACING = (8, 16, 16), (3.0, 1.0, 1.0)  # z y x


def labels(shape=SHAPE) -> np.ndarray:
    array = np.zeros(shape, np.uint8)
    array[..., 3:11, 3:11] = 1
    array[..., 12:14, 12:14] = 2
    return array


def write(path: Path, array: np.ndarray, spacing=SPACING, origin=None, direction=None) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in spacing[::-1][:array.ndim]])
    if origin is not None:
        image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path), path.name.endswith(".gz"))


class Folders:
    """Two cases of references and predictions (identical, until spoilt), a dataset.json, and the output path."""

    def __init__(self, root: Path, ending: str = ".nii.gz"):
        self.reference, self.prediction, self.dataset = root / "ref", root / "pred", root / "dataset.json"
        self.output, self.ending = root / "out" / "metrics.csv", ending
        self.reference.mkdir(), self.prediction.mkdir()
        for case in ("case_000", "case_001"):
            write(self.reference / f"{case}{ending}", labels())
            write(self.prediction / f"{case}{ending}", labels())
        self.dataset.write_text(json.dumps({"labels": LABELS, "file_ending": ending, "channel_names": {"0": "CT"}}))

    def predicted(self, case: str = "case_001") -> Path:
        return self.prediction / f"{case}{self.ending}"

    def evaluate(self, *extra: str) -> int:
        return main(["evaluate", "--reference", str(self.reference), "--prediction", str(self.prediction),
                     "--dataset-json", str(self.dataset), "-o", str(self.output), "-np", "1", *extra])


def cut(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])


def dataset(f: Folders, **changes) -> None:
    content = json.loads(f.dataset.read_text())
    content.update(changes)
    f.dataset.write_text(json.dumps({k: v for k, v in content.items() if v is not None}))


BAD_INPUTS: Dict[str, tuple] = {
    "another shape": (lambda f: write(f.predicted(), labels((8, 16, 17))),
                      "case case_001: the prediction's shape 3D, 8 x 16 x 17 voxels differs from the reference's 3D, "
                      "8 x 16 x 16 voxels"),
    "2D for 3D": (lambda f: write(f.predicted(), labels((16, 16))), "shape 2D, 16 x 16 voxels differs"),
    "another spacing": (lambda f: write(f.predicted(), labels(), spacing=(3.0, 1.0, 1.2)),
                        "the prediction's spacing (3, 1, 1.2) differs from the reference's (3, 1, 1)"),
    "another origin": (lambda f: write(f.predicted(), labels(), origin=(0.0, 0.0, 5.0)), "the prediction's origin"),
    "another direction": (lambda f: write(f.predicted(), labels(), direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1)),
                          "the prediction's direction"),
    "a cut gzip stream": (lambda f: cut(f.predicted()), "case_001.nii.gz is cut short or not a gzip stream"),
    "not an image": (lambda f: f.predicted().write_bytes(b"<html>oops</html>"), "not a gzip stream"),
    "dataset.json not JSON": (lambda f: f.dataset.write_text("{labels"), "dataset.json"),
    "no file_ending": (lambda f: dataset(f, file_ending=None), "has no 'file_ending'"),
    "no labels": (lambda f: dataset(f, labels=None), "has no 'labels'"),
    "no foreground label": (lambda f: dataset(f, labels={"background": 0}), "has no foreground label"),
    "labels not values": (lambda f: dataset(f, labels={"background": 0, "organ": "one"}),
                          "'labels' must map each label name to an integer value"),
    "an undefined label value": (lambda f: write(f.predicted(), labels() * 7 // 2),
                                 "label values that dataset.json does not define (it defines 0, 1, 2): 3, 7 in the "
                                 "prediction of case_001"),
    "a non-integer label value": (lambda f: write(f.predicted(), labels().astype(np.float32) * 0.75),
                                  "0.75, 1.5 in the prediction of case_001"),
    "an undefined value in the reference": (lambda f: write(f.reference / "case_000.nii.gz", labels() + 1),
                                            "3 in the reference of case_000"),
    "a prediction without reference": (lambda f: (f.reference / "case_001.nii.gz").unlink(), "no reference in"),
    "no predictions": (lambda f: [p.unlink() for p in f.prediction.iterdir()], "no predictions ending in .nii.gz"),
}


def files(root: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("spoil, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_a_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, spoil: Callable, message: str):
    f = Folders(tmp_path)
    f.output.parent.mkdir()
    f.output.write_text("what an earlier run wrote\n")
    spoil(f)
    before = files(tmp_path)
    assert f.evaluate() == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and error.startswith("nnunet-archs evaluate: error:"), error
    assert files(tmp_path) == before


def test_a_cut_uncompressed_nifti_is_refused(tmp_path, capsys):
    f = Folders(tmp_path, ".nii")
    cut(f.predicted(), 0.9)
    assert f.evaluate() == 2
    assert "case_001.nii is cut short: its NIfTI header announces" in capsys.readouterr().err
    assert not f.output.exists()


def test_a_bad_option_is_refused(tmp_path, capsys):
    f = Folders(tmp_path)
    assert f.evaluate("-np", "0") == 2 and "-np must be at least 1" in capsys.readouterr().err


@settings(max_examples=40)
@given(fraction=st.floats(0.0, 0.9999))
def test_a_gzip_stream_cut_at_any_byte_is_refused(tmp_path_factory, fraction):
    folder = tmp_path_factory.mktemp("cut")
    path = folder / "case.nii.gz"
    write(path, labels())
    cut(path, fraction)
    with pytest.raises(UserError, match="case.nii.gz is cut short|not a NIfTI image"):
        read_segmentation(path, _reader(), frozenset(LABELS.values()))


def _reader():
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    return SimpleITKIO()


def test_undefined_values_can_be_measured_as_background_with_a_warning(tmp_path, capsys):
    f = Folders(tmp_path)
    spoilt = labels()
    spoilt[0, 0, 0] = 7
    write(f.predicted(), spoilt)
    assert f.evaluate("--undefined-labels", "warn", "--metrics", "Dice") == 0
    error = capsys.readouterr().err
    assert "warning: label values that dataset.json does not define (it defines 0, 1, 2): 7 in the prediction of " \
           "case_001: measured as background" in error
    assert f.output.read_text().count("\n") == 1 + 2 * 2  # both cases, both labels: Dice 1 (7 is no label's)


def test_a_study_does_not_score_a_prediction_its_killed_export_left_cut(tmp_path, capsys):
    """The study's evaluation job, as the job graph writes it, refuses the fold: no metrics table, so the report
    marks the fold missing instead of charging the network with the voxels after the cut."""
    from nnunet_archs.study.folder import StudyLayout
    from nnunet_archs.study.jobs import build_jobs
    from nnunet_archs.study.spec import Budget, StudySpec
    spec = StudySpec(dataset_id=501, architectures=["PlainConvUNet"], configuration="3d_fullres", folds=[0, 1],
                     budget=Budget(epochs=1), study_id="s")
    raw = tmp_path / "raw" / "Dataset501_X"
    layout = StudyLayout(raw, tmp_path / "pre", tmp_path / "results", tmp_path / "report")
    job = {j.name: j for j in build_jobs(spec, layout, {"PlainConvUNet": []})}["evaluate_PlainConvUNet_fold0_seed0"]
    validation = layout.fold_folder(spec, "PlainConvUNet", 0, 0) / "validation"
    f = Folders(tmp_path)
    (raw / "labelsTr").parent.mkdir(parents=True)
    f.reference.rename(raw / "labelsTr")
    f.dataset.rename(raw / "dataset.json")
    validation.parent.mkdir(parents=True)
    f.prediction.rename(validation)
    cut(validation / "case_001.nii.gz", 0.7)  # the export was killed while writing it
    assert main(job.command[1:]) == 2
    assert "case_001.nii.gz is cut short" in capsys.readouterr().err
    assert not layout.folder.fold_metrics("PlainConvUNet", 0, 0).exists()


@settings(max_examples=60)
@given(cut_at=st.integers(0, 10_000))
def test_a_metrics_table_cut_anywhere_is_refused_or_whole_rows(tmp_path_factory, cut_at):
    """A table cut at any byte is refused naming its file and line, unless the cut fell between two rows (then it is
    read as the rows before the cut: nothing tells it from a shorter table)."""
    from nnunet_archs.evaluation.tables import read_table, write_rows
    path = tmp_path_factory.mktemp("table") / "part.csv"
    write_rows([{"architecture": "A", "seed": 0, "fold": "0", "case": f"c{i}", "label": "l", "metric": "Dice",
                 "value": i / 7, "failure": "", "worst_case": float("nan")} for i in range(12)], path)
    text = path.read_text()
    path.write_text(text[:cut_at % len(text)])
    cut_text = text[:cut_at % len(text)]
    if cut_text.endswith("\n"):
        assert len(read_table(path)) == cut_text.count("\n") - 1
    else:
        with pytest.raises(UserError, match=rf"part.csv, line {cut_text.count(chr(10)) + 1}: the table (ends in|is empty)"):
            read_table(path)


def test_worker_processes_give_the_rows_of_one_process(tmp_path):
    from nnunet_archs.evaluation.folder import evaluate_folder
    from nnunet_archs.evaluation.labels import read_dataset_json
    f = Folders(tmp_path)
    write(f.predicted(), np.roll(labels(), 1, axis=2))
    alone, pooled = (evaluate_folder(f.reference, f.prediction, read_dataset_json(f.dataset), "A", "0",
                                     processes=n) for n in (1, 2))
    assert repr(pooled.rows) == repr(alone.rows) and repr(pooled.objects) == repr(alone.objects)  # NaN too
    assert len(alone.rows) == 2 * 2 * 7


def test_every_case_with_undefined_values_is_listed(tmp_path, capsys):
    f = Folders(tmp_path)
    for case in ("case_000", "case_001"):
        write(f.predicted(case), labels() * 3)
    assert f.evaluate() == 2
    assert "3, 6 in the prediction of case_000, case_001" in capsys.readouterr().err
