"""Object-level detection on constructed masks with known answers (2D and anisotropic 3D), the matching rule on
touching, split and merged objects, empty masks, and the size-bin table."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nnunet_archs.analysis.sizes import detection_by_size
from nnunet_archs.evaluation.metrics import OBJECTS, family_names, metric
from nnunet_archs.evaluation.objects import Detection, detect, object_rows, size_bin


def values(detection: Detection) -> dict:
    """The object metrics of one case and label, read through their records as the evaluation reads them."""
    return {name: metric(name).value(detection) for name in family_names(OBJECTS)}


def squares(shape, corners, size=3) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for y, x in corners:
        mask[y:y + size, x:x + size] = True
    return mask


def test_k_objects_j_found_and_f_invented_in_2d():
    reference = squares((40, 40), [(2, 2), (2, 20), (20, 2), (20, 20)])  # k = 4
    prediction = squares((40, 40), [(2, 2), (2, 20), (20, 2), (32, 32), (10, 30)])  # j = 3 exactly, f = 2
    metrics = values(detect(reference, prediction, (1.0, 1.0)))
    assert metrics == {"DetectionRecall": 3 / 4, "DetectionPrecision": 3 / 5, "DetectionF1": 2 * 3 / (4 + 5),
                       "FalsePositiveObjects": 2.0}


def test_anisotropic_3d_sizes_are_in_cubic_millimetres():
    reference = np.zeros((8, 20, 20), bool)
    reference[2:4, 2:5, 2:5] = True  # 18 voxels of 3 x 1 x 1 mm
    reference[5:6, 10:14, 10:14] = True  # 16 voxels
    detection = detect(reference, reference, (3.0, 1.0, 1.0))
    assert sorted(detection.reference_sizes) == [48.0, 54.0] and detection.reference_iou == [1.0, 1.0]
    assert values(detection)["DetectionRecall"] == 1.0
    rows = object_rows(detection, {"architecture": "A", "seed": 0, "fold": "0", "case": "c", "label": "l"})
    assert [(r["side"], r["object"], r["matched"]) for r in rows] == [
        ("reference", 1, True), ("reference", 2, True), ("predicted", 1, True), ("predicted", 2, True)]


def test_a_2d_image_stored_as_one_slice_has_areas_and_8_connected_objects():
    reference = np.zeros((1, 12, 12), bool)
    reference[0, 2:4, 2:4] = True
    reference[0, 4:6, 4:6] = True  # touches the first square at a corner only: one object (8-connectivity)
    detection = detect(reference, reference, (999.0, 0.5, 0.5))
    assert detection.reference_sizes == [8 * 0.25]


def test_touching_objects_are_one_object_in_3d_too():
    reference = np.zeros((6, 6, 6), bool)
    reference[1, 1, 1] = reference[2, 2, 2] = True  # corner neighbours: 26-connectivity joins them
    assert len(detect(reference, np.zeros_like(reference), (1.0, 1.0, 1.0)).reference_sizes) == 1


def test_a_split_object_matches_once_and_a_merged_pair_finds_one():
    bar = np.zeros((10, 20), bool)
    bar[3:6, 2:18] = True
    halves = bar.copy()
    halves[:, 9:11] = False  # the prediction splits it in two
    split = values(detect(bar, halves, (1.0, 1.0)))
    assert split["DetectionRecall"] == 1.0 and split["DetectionPrecision"] == 0.5
    assert split["FalsePositiveObjects"] == 1.0
    merged = values(detect(halves, bar, (1.0, 1.0)))  # two reference objects, one prediction over both
    assert merged["DetectionRecall"] == 0.5 and merged["DetectionPrecision"] == 1.0
    assert merged["FalsePositiveObjects"] == 0.0


def test_empty_masks():
    empty, one = np.zeros((10, 10), bool), squares((10, 10), [(2, 2)])
    neither = values(detect(empty, empty, (1.0, 1.0)))
    assert all(math.isnan(neither[m]) for m in ("DetectionRecall", "DetectionPrecision", "DetectionF1"))
    assert neither["FalsePositiveObjects"] == 0.0
    missed = values(detect(one, empty, (1.0, 1.0)))
    assert missed["DetectionRecall"] == 0.0 and missed["DetectionF1"] == 0.0
    assert math.isnan(missed["DetectionPrecision"])
    invented = values(detect(empty, one, (1.0, 1.0)))
    assert invented["DetectionPrecision"] == 0.0 and invented["FalsePositiveObjects"] == 1.0
    assert math.isnan(invented["DetectionRecall"])


def test_the_iou_threshold_decides_a_shifted_small_object():
    reference, prediction = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    reference[2, 1:3] = True
    prediction[2, 2:4] = True  # shifted by one voxel: IoU 1/3
    assert detect(reference, prediction, (1.0, 1.0)).reference_iou == [pytest.approx(1 / 3)]
    assert values(detect(reference, prediction, (1.0, 1.0), threshold=0.5))["DetectionRecall"] == 0.0
    with pytest.raises(ValueError, match=r"--match-iou must be in \[0, 1\)"):
        detect(reference, prediction, (1.0, 1.0), threshold=1.0)


def test_recall_by_size_pools_the_objects_of_a_bin_with_an_exact_interval():
    rows = []
    for case in range(4):  # per case: two 5 mm³ objects, A finds both and B one; one 50 mm³ object both find
        for architecture, found_small in (("A", 2), ("B", 1)):
            sizes = [(5.0, True), (5.0, found_small == 2), (50.0, True)]
            rows += [{"architecture": architecture, "seed": "0", "fold": "0", "case": f"c{case}", "label": "blob",
                      "side": "reference", "object": i + 1, "size_mm3": size, "matched": matched, "iou": 0.5}
                     for i, (size, matched) in enumerate(sizes)]
    rows.append({**rows[0], "side": "predicted", "size_mm3": 1e6, "matched": False})  # not a reference object
    table = {(r.architecture, r.size_bin): r for r in detection_by_size(pd.DataFrame(rows), ["A", "B"])}
    assert sorted({bin_ for _, bin_ in table}) == ["3-10", "30-100"] and size_bin(5.0) == "3-10"
    assert table[("A", "3-10")].recall == 1.0 and table[("B", "3-10")].recall == 0.5
    assert table[("B", "3-10")].n_objects == 8 and table[("B", "3-10")].n_cases == 4
    # every case alike: no clustering to widen it (design effect 1), Clopper-Pearson's 4 of 8, never a point
    exact = stats.binomtest(4, 8).proportion_ci(method="exact")
    assert table[("B", "3-10")].design_effect == 1.0 and table[("B", "3-10")].ci == pytest.approx((exact.low,
                                                                                                     exact.high))
    assert table[("A", "30-100")].recall == table[("B", "30-100")].recall == 1.0
