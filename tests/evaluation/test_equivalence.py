"""The per-case values are the definitions' own, bit for bit: on random label images (2D, nnU-Net's 2D stored as one
slice, 3D; anisotropic spacing; an ignore label; empty and one-sided masks), ``cases.measure_labels`` (one label at a
time, cut to where the masks are, one surface extraction for NSD and HD95) gives exactly what MONAI's two calls on
the whole masks give, nnU-Net's Dice, and the object matching of connected components labelled on the whole
image."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_archs.evaluation.cases import Settings, measure_labels
from nnunet_archs.evaluation.metrics import METRIC_NAMES, OBJECTS, OVERLAP, SURFACE, family_names

REGIONS = {"blob": 1, "speck": 2, "both": (1, 2)}
IGNORE = 3
TOLERANCE_MM = 1.5


def random_labels(rng: np.random.Generator, shape, ignore: bool) -> np.ndarray:
    """Blobs of labels 1 and 2 (smoothed noise, so structures of several voxels and single specks), sometimes an
    ignore band, sometimes a label left out entirely."""
    from scipy.ndimage import uniform_filter
    noise = uniform_filter(rng.random(shape), size=3)
    labels = np.zeros(shape, np.uint8)
    labels[noise > np.quantile(noise, rng.uniform(0.6, 0.95))] = 1
    labels[rng.random(shape) > rng.uniform(0.97, 1.0)] = 2
    if rng.random() < 0.2:
        labels[labels == rng.integers(1, 3)] = 0
    if ignore:
        labels[(slice(None),) * (len(shape) - 1) + (slice(0, shape[-1] // 4),)] = IGNORE
    return labels


def monai(reference: np.ndarray, prediction: np.ndarray, spacing) -> tuple:
    """NSD and HD95 as the evaluation computed them before: MONAI's two calls on the whole (squeezed) masks."""
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice
    if not reference.any() and not prediction.any():
        return math.nan, math.nan
    if reference.any() != prediction.any():
        return 0.0, math.nan

    def tensor(mask):
        return torch.from_numpy(np.ascontiguousarray(mask))[None, None].float()
    nsd = compute_surface_dice(tensor(prediction), tensor(reference), class_thresholds=[TOLERANCE_MM],
                               include_background=True, spacing=list(spacing))
    hd95 = compute_hausdorff_distance(tensor(prediction), tensor(reference), include_background=True, percentile=95,
                                      spacing=list(spacing))
    return float(nsd.item()), float(hd95.item())


def nnunet_dice(reference_labels, prediction_labels, region, ignore) -> float:
    from nnunetv2.evaluation.evaluate_predictions import compute_tp_fp_fn_tn, region_or_label_to_mask
    tp, fp, fn, _ = compute_tp_fp_fn_tn(region_or_label_to_mask(reference_labels, region),
                                        region_or_label_to_mask(prediction_labels, region),
                                        None if ignore is None else reference_labels == ignore)
    return math.nan if tp + fp + fn == 0 else float(2 * tp / (2 * tp + fp + fn))  # compute_metrics' formula


def whole_image_objects(mask: np.ndarray) -> np.ndarray:
    """The connected components' voxel counts, numbered on the whole image."""
    import cc3d
    components = cc3d.connected_components(mask.astype(np.uint8), connectivity=26 if mask.ndim == 3 else 8)
    return np.bincount(components.ravel())[1:]


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=60)
@given(seed=st.integers(0, 2 ** 32 - 1), kind=st.sampled_from(["2d", "2d as one slice", "3d"]),
       spacing=st.lists(st.floats(0.3, 4.0), min_size=3, max_size=3), ignore=st.booleans())
def test_every_value_is_the_definitions_own(seed, kind, spacing, ignore):
    rng = np.random.default_rng(seed)
    shape = {"2d": (23, 31), "2d as one slice": (1, 23, 31), "3d": (9, 17, 14)}[kind]
    spacing = spacing[-len(shape):]
    reference, prediction = random_labels(rng, shape, ignore), random_labels(rng, shape, ignore)
    if rng.random() < 0.3:  # a prediction close to its reference: small distances, most objects matched
        prediction = np.where(rng.random(shape) < 0.9, reference, prediction)
    measured = Settings(None, REGIONS, frozenset({0, 1, 2, IGNORE}), IGNORE if ignore else None, METRIC_NAMES,
                        TOLERANCE_MM, tuple(REGIONS), 0.0, {"architecture": "A", "seed": 0, "fold": "0"})
    rows, objects = measure_labels(reference, prediction, spacing, measured, {"case": "c"})
    value = {(r["label"], r["metric"]): r["value"] for r in rows}
    keep = [axis for axis, n in enumerate(shape) if n > 1]
    for name, region in REGIONS.items():
        kept = np.ones(shape, bool) if not ignore else reference != IGNORE
        truth = np.isin(reference, np.atleast_1d(region)) & kept
        guess = np.isin(prediction, np.atleast_1d(region)) & kept
        dice = nnunet_dice(reference, prediction, region, IGNORE if ignore else None)
        nsd, hd95 = monai(truth.squeeze(), guess.squeeze(), [spacing[axis] for axis in keep])
        assert same(value[name, family_names(OVERLAP)[0]], dice)
        assert [same(value[name, m], v) for m, v in zip(family_names(SURFACE), (nsd, hd95))] == [True, True]
        sizes = {side: [o["size_mm3"] for o in objects if o["label"] == name and o["side"] == side]
                 for side in ("reference", "predicted")}
        voxel = float(np.prod([spacing[axis] for axis in keep]))
        assert sizes["reference"] == list(whole_image_objects(truth.squeeze()) * voxel)
        assert sizes["predicted"] == list(whole_image_objects(guess.squeeze()) * voxel)
        assert {m for (label, m) in value if label == name} == set(METRIC_NAMES)
    assert {m for (_, m) in value} >= set(family_names(OBJECTS))


@pytest.mark.parametrize("spacing", [(3.0, 0.7, 0.7), (1.0, 1.0, 1.0)])
def test_a_ct_like_case_with_surfaces_far_apart(spacing):
    """Large, distant structures (the box of both masks is most of the image): distances of many voxels."""
    reference, prediction = np.zeros((20, 60, 60), np.uint8), np.zeros((20, 60, 60), np.uint8)
    reference[2:12, 5:40, 5:40] = 1
    prediction[6:18, 20:58, 25:59] = 1
    measured = Settings(None, {"organ": 1}, frozenset({0, 1}), None, family_names(SURFACE), TOLERANCE_MM, (), 0.0,
                        {"architecture": "A", "seed": 0, "fold": "0"})
    rows, _ = measure_labels(reference, prediction, spacing, measured, {"case": "c"})
    assert [r["value"] for r in rows] == list(monai(reference == 1, prediction == 1, spacing))
