"""What a dataset.json says the segmentations hold, checked before anything is read: its labels (nnU-Net's
``LabelManager`` decides the foreground labels or regions evaluated, as nnU-Net's own evaluation does), the label
values a segmentation may contain, and the file ending of its images."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Sequence

from nnunet_archs.errors import UserError
from nnunet_archs.files import read_json

REQUIRED_KEYS = ("labels", "file_ending")
# what a label value dataset.json does not define makes of a folder: a refusal, or a warning (measured as background)
UNDEFINED_LABELS = ("error", "warn")


def read_dataset_json(path: Path) -> dict:
    """dataset.json from ``path``, refused with the file and the key named when nnU-Net could not evaluate with
    it."""
    dataset_json = read_json(path, "dataset.json")
    check_dataset_json(dataset_json, str(path))
    return dataset_json


def check_dataset_json(dataset_json: dict, source: str = "dataset.json") -> None:
    if not isinstance(dataset_json, dict):
        raise UserError(f"{source} is not a JSON object (nnU-Net's dataset.json: {{\"labels\": ..., "
                        f"\"file_ending\": ...}})")
    missing = [key for key in REQUIRED_KEYS if key not in dataset_json]
    if missing:
        raise UserError(f"{source} has no {' and no '.join(map(repr, missing))} (nnU-Net's dataset.json needs "
                        f"{' and '.join(map(repr, REQUIRED_KEYS))})")
    ending = dataset_json["file_ending"]
    if not isinstance(ending, str) or not ending.startswith("."):
        raise UserError(f"{source}: 'file_ending' must be a file ending such as \".nii.gz\", got {ending!r}")
    labels = dataset_json["labels"]
    if not isinstance(labels, dict) or not all(_is_label_value(v) for v in labels.values()):
        raise UserError(f"{source}: 'labels' must map each label name to an integer value or a list of them (a "
                        f"region), got {labels!r}")
    if not label_regions(dataset_json, source):
        raise UserError(f"{source}: 'labels' has no foreground label (only {sorted(labels)}): nothing to evaluate")


def _is_label_value(value) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_is_label_value(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def label_regions(dataset_json: dict, source: str = "dataset.json") -> Dict[str, object]:
    """Label name -> the label value or region nnU-Net evaluates (foreground only), from dataset.json."""
    from nnunetv2.utilities.label_handling.label_handling import LabelManager
    try:
        manager = LabelManager(dataset_json["labels"], regions_class_order=dataset_json.get("regions_class_order"))
    except (AssertionError, RuntimeError, TypeError, ValueError) as problem:  # nnU-Net's own checks of 'labels'
        raise UserError(f"{source}: 'labels' {dataset_json['labels']!r}: {problem}") from None
    names = {(tuple(v) if isinstance(v, list) else v): k for k, v in dataset_json["labels"].items()}
    regions = manager.foreground_regions if manager.has_regions else manager.foreground_labels
    return {str(names.get(tuple(r) if isinstance(r, list) else r, r)): r for r in regions}


def defined_values(dataset_json: dict) -> FrozenSet[int]:
    """Every voxel value dataset.json defines (background, each label, the labels of a region, ``ignore``)."""
    values = set()
    for value in dataset_json["labels"].values():
        values.update(value if isinstance(value, list) else [value])
    return frozenset(values)


def ignore_label(dataset_json: dict) -> Optional[int]:
    return dataset_json["labels"].get("ignore")


def check_undefined_labels(policy: str) -> None:
    if policy not in UNDEFINED_LABELS:
        raise UserError(f"--undefined-labels must be one of {list(UNDEFINED_LABELS)}, got {policy!r}")


def check_object_labels(object_labels: Optional[Sequence[str]], labels: Sequence[str]) -> List[str]:
    """The labels whose objects are counted: ``object_labels``, or every foreground label when None."""
    if object_labels is None:
        return list(labels)
    unknown = [label for label in object_labels if label not in labels]
    if unknown or not object_labels:
        raise UserError(f"--object-labels {list(object_labels)}: the dataset's labels are {list(labels)}")
    return list(object_labels)
