"""One cross-validation split for every network of a study: nnU-Net's own ``splits_final.json``, made once before
any training (as nnU-Net's trainer would make it: 5 folds of the sorted case identifiers, seed 12345), or the one
the dataset already has, checked against the requested folds."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Sequence

from nnunet_archs.errors import UserError
from nnunet_archs.files import write_json_atomically


def training_cases(raw_folder: Path) -> List[str]:
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets
    return sorted(get_filenames_of_train_images_and_targets(str(raw_folder)))


def check_splits(splits: list, folds: Sequence[int], cases: Sequence[str], path: Path) -> None:
    if not isinstance(splits, list) or not all(isinstance(s, dict) and {"train", "val"} <= set(s) for s in splits):
        raise UserError(f"{path} is not an nnU-Net split file (a list of {{'train': [...], 'val': [...]}})")
    beyond = [f for f in folds if f >= len(splits)]
    if beyond:
        raise UserError(f"{path} defines {len(splits)} fold(s) (0-{len(splits) - 1}); the requested folds {beyond} "
                         f"are not among them (nnU-Net would silently train a random 80:20 split instead)")
    unknown = sorted({c for f in folds for c in splits[f]["train"] + splits[f]["val"]} - set(cases))
    if unknown:
        raise UserError(f"{path} names cases that are not in the dataset: {unknown[:5]}")


def ensure_splits(raw_folder: Path, preprocessed_folder: Path, folds: Sequence[int]) -> Path:
    """Create ``splits_final.json`` when it is missing; check it against ``folds`` when it exists."""
    path = preprocessed_folder / "splits_final.json"
    cases = training_cases(raw_folder)
    if path.exists():
        check_splits(json.loads(path.read_text()), folds, cases, path)
        return path
    from nnunetv2.utilities.crossval_split import generate_crossval_split
    preprocessed_folder.mkdir(parents=True, exist_ok=True)
    write_json_atomically(path, generate_crossval_split(cases, seed=12345, n_splits=5))
    return path
