"""Surface metrics on synthetic masks with analytically known answers, under anisotropic spacing, and the
conventions for empty masks; then the per-case evaluation of a folder as the study runs it."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nnunet_archs.datasets import _write
from nnunet_archs.evaluation.folder import evaluate_folder
from nnunet_archs.evaluation.surface import surface_metrics
from nnunet_archs.evaluation.tables import COLUMNS


def slab(shift: int = 0, axis: int = 0) -> np.ndarray:
    """A 6-voxel-thick slab, 28x28 across, inside a 24x40x40 volume, shifted by ``shift`` voxels along ``axis``.
    Its two large faces hold most of its surface, so a shift of k voxels along the thin axis moves more than 5 % of
    the surface voxels by exactly k voxels and none by more: HD95 = k x spacing, NSD(tolerance >= that) = 1."""
    mask = np.zeros((24, 40, 40), dtype=bool)
    index = [slice(8, 14), slice(6, 34), slice(6, 34)]
    index[axis] = slice(index[axis].start + shift, index[axis].stop + shift)
    mask[tuple(index)] = True
    return mask


@pytest.mark.parametrize("spacing, shift, expected_mm", [((3.0, 1.0, 1.0), 2, 6.0), ((0.5, 1.0, 1.0), 3, 1.5),
                                                        ((3.0, 1.0, 1.0), 0, 0.0)])
def test_shifted_slab_under_anisotropic_spacing(spacing, shift, expected_mm):
    nsd, hd95 = surface_metrics(slab(), slab(shift), spacing, tolerance_mm=max(expected_mm, 0.1))
    assert hd95 == pytest.approx(expected_mm)
    assert nsd == pytest.approx(1.0)
    if shift:
        nsd_tight, _ = surface_metrics(slab(), slab(shift), spacing, tolerance_mm=0.9 * expected_mm)
        assert nsd_tight < 0.75  # a large face is no longer within tolerance


def test_the_same_voxel_shift_costs_the_spacing_of_its_axis():
    spacing = (3.0, 1.0, 1.0)
    _, along_coarse_axis = surface_metrics(slab(0), slab(2), spacing, tolerance_mm=1)
    _, along_fine_axis = surface_metrics(np.swapaxes(slab(0), 0, 1), np.swapaxes(slab(2), 0, 1), spacing,
                                         tolerance_mm=1)
    assert along_coarse_axis == pytest.approx(6.0) and along_fine_axis == pytest.approx(2.0)


def test_empty_masks_follow_the_stated_conventions():
    empty, full = np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    full[2:5, 2:5] = True
    both = surface_metrics(empty, empty, (1.0, 1.0), 2.0)
    assert math.isnan(both[0]) and math.isnan(both[1])
    for one_empty in (surface_metrics(full, empty, (1.0, 1.0), 2.0), surface_metrics(empty, full, (1.0, 1.0), 2.0)):
        assert one_empty[0] == 0.0 and math.isnan(one_empty[1])


def test_a_2d_image_stored_as_one_slice_is_measured_in_2d():
    square, moved = np.zeros((1, 30, 30), bool), np.zeros((1, 30, 30), bool)
    square[0, 10:20, 10:20] = True
    moved[0, 10:20, 12:22] = True
    assert surface_metrics(square, moved, (999.0, 1.0, 0.5), 1.0) == pytest.approx(
        surface_metrics(square[0], moved[0], (1.0, 0.5), 1.0))
    assert surface_metrics(square, moved, (999.0, 1.0, 0.5), 1.0)[1] == pytest.approx(1.0)


def test_evaluate_folder_writes_every_case_label_and_metric(tmp_path):
    labels = {"background": 0, "large": 1, "small": 2}
    dataset = {"labels": labels, "file_ending": ".nii.gz", "channel_names": {"0": "x"}}
    reference, prediction = tmp_path / "ref", tmp_path / "pred"
    reference.mkdir(), prediction.mkdir()
    truth = np.zeros((1, 32, 32), np.uint8)
    truth[0, 4:20, 4:20] = 1
    truth[0, 25:28, 25:28] = 2
    guess = truth.copy()
    guess[0, 25:28, 25:28] = 0  # the small structure is missed
    _write(truth, (1.0, 1.0, 1.0), reference / "case_a.nii.gz")
    _write(guess, (1.0, 1.0, 1.0), prediction / "case_a.nii.gz")
    _write(truth, (1.0, 1.0, 1.0), reference / "case_b.nii.gz")
    _write(truth, (1.0, 1.0, 1.0), prediction / "case_b.nii.gz")
    rows = evaluate_folder(reference, prediction, dataset, "Net", "0", ["Dice", "NSD", "HD95"], 2.0, processes=1).rows
    assert len(rows) == 2 * 2 * 3 and set(rows[0]) == set(COLUMNS)
    value = {(r["case"], r["label"], r["metric"]): r["value"] for r in rows}
    assert value[("case_a", "large", "Dice")] == 1.0 and value[("case_a", "small", "Dice")] == 0.0
    assert value[("case_a", "small", "NSD")] == 0.0 and math.isnan(value[("case_a", "small", "HD95")])
    missed = {(r["case"], r["label"], r["metric"]): (r["failure"], r["worst_case"]) for r in rows}
    assert missed[("case_a", "small", "HD95")] == ("missed", pytest.approx(math.hypot(32, 32)))  # the diagonal
    assert missed[("case_a", "small", "Dice")][0] == "missed" and math.isnan(missed[("case_a", "small", "Dice")][1])
    assert missed[("case_b", "small", "HD95")] == ("", pytest.approx(math.hypot(32, 32)))  # HD95's upper bound
    assert {r["seed"] for r in rows} == {0}
    assert value[("case_b", "small", "HD95")] == 0.0 and value[("case_b", "small", "NSD")] == 1.0
    with pytest.raises(ValueError, match="no reference"):
        (prediction / "case_c.nii.gz").write_bytes((prediction / "case_a.nii.gz").read_bytes())
        evaluate_folder(reference, prediction, dataset, "Net", "0", processes=1)
    json.dumps(rows)  # plain types, as the CSV and the report need


def test_the_ignore_region_changes_neither_nsd_nor_hd95(tmp_path):
    """A prediction that differs from the reference only inside nnU-Net's ignore region scores as a perfect one on
    every metric (before, NSD 0.70 and HD95 21 mm for such a case)."""
    dataset = {"labels": {"background": 0, "organ": 1, "ignore": 2}, "file_ending": ".nii.gz",
               "channel_names": {"0": "x"}}
    reference, prediction = tmp_path / "ref", tmp_path / "pred"
    reference.mkdir(), prediction.mkdir()
    truth = np.zeros((1, 48, 48), np.uint8)
    truth[0, 8:20, 8:20] = 1
    truth[0, 30:46, 2:46] = 2  # unannotated: the ignore label
    guess = np.where(truth == 2, 0, truth).astype(np.uint8)
    guess[0, 34:44, 20:40] = 1  # organ predicted far away, but only where the reference ignores
    _write(truth, (1.0, 1.0, 1.0), reference / "case.nii.gz")
    _write(guess, (1.0, 1.0, 1.0), prediction / "case.nii.gz")
    value = {r["metric"]: r["value"] for r in evaluate_folder(reference, prediction, dataset, "Net", "0", processes=1).rows}
    assert value == {"Dice": 1.0, "NSD": 1.0, "HD95": 0.0, "DetectionRecall": 1.0, "DetectionPrecision": 1.0,
                     "DetectionF1": 1.0, "FalsePositiveObjects": 0.0}  # no invented object in the ignore region
