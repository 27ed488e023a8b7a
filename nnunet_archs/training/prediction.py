"""``nnunet-archs predict``: nnU-Net's own predictor (what ``nnUNetv2_predict`` runs, with the same sliding window,
Gaussian weighting and test-time mirroring), timing each case.

What is timed, per case: the prediction of the ensemble of the fold models (each one's sliding window over the
preprocessed image, with mirroring unless turned off), on the device; on CUDA also its peak memory. Preprocessing
and export run in nnU-Net's worker processes beside it and are not in the time; the time per model is the time
over the number of models. The predictions are nnUNetv2_predict's: timing changes nothing that is computed.
"""
from __future__ import annotations

import json
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import List, Sequence

import numpy as np
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunet_archs.training import environment
from nnunet_archs.training.gpu_memory import allocator_peaks

WHAT_IS_TIMED = ("per case: the ensemble of the fold models' sliding-window predictions on the device (mirroring "
                 "as configured), not preprocessing or export, which run in worker processes")


class TimedPredictor(nnUNetPredictor):
    """nnUNetPredictor that records the time (and on CUDA the peak memory) of each case's prediction."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timings: List[dict] = []

    def predict_logits_from_preprocessed_data(self, data: torch.Tensor) -> torch.Tensor:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        prediction = super().predict_logits_from_preprocessed_data(data)
        if cuda:
            torch.cuda.synchronize(self.device)
        self.timings.append({"seconds": time.perf_counter() - start, "voxels": int(np.prod(data.shape[1:])),
                             **allocator_peaks(self.device)})
        return prediction


def summarise(timings: Sequence[dict], models: int) -> dict:
    """Median seconds per case, per model and per megavoxel (of the preprocessed image)."""
    if not timings:
        return {"cases": 0}
    seconds = [t["seconds"] for t in timings]
    per_megavoxel = [t["seconds"] / (t["voxels"] / 1e6) for t in timings]
    peaks = [t["max_memory_allocated_bytes"] for t in timings if t["max_memory_allocated_bytes"] is not None]
    reserved = [t["max_memory_reserved_bytes"] for t in timings if t["max_memory_reserved_bytes"] is not None]
    return {"cases": len(timings), "models": models, "median_seconds_per_case": statistics.median(seconds),
            "median_seconds_per_case_per_model": statistics.median(seconds) / models,
            "median_seconds_per_megavoxel": statistics.median(per_megavoxel),
            "max_memory_allocated_bytes": max(peaks) if peaks else None,
            "max_memory_reserved_bytes": max(reserved) if reserved else None}


def predict(input_folder: Path, output_folder: Path, model_folder: Path, folds: Sequence[int], device: str,
            mirroring: bool, processes_preprocessing: int, processes_export: int, progress: bool = True) -> dict:
    """Predict every image in ``input_folder`` with the ensemble of ``folds`` of ``model_folder`` as
    nnUNetv2_predict does; write the predictions and ``environment.INFERENCE_LOG`` to ``output_folder``."""
    if device == "cpu":  # nnUNetv2_predict takes every core on a CPU; a study's job gets its share
        threads = environment.positive_integer(environment.THREADS)
        torch.set_num_threads(threads or multiprocessing.cpu_count())
    elif device == "cuda":  # as nnUNetv2_predict: threads do not help on a GPU
        torch.set_num_threads(1)
    predictor = TimedPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                               perform_everything_on_device=True, device=torch.device(device), verbose=False,
                               verbose_preprocessing=False, allow_tqdm=progress)
    predictor.initialize_from_trained_model_folder(str(model_folder), list(folds),
                                                   checkpoint_name="checkpoint_final.pth")
    output_folder.mkdir(parents=True, exist_ok=True)
    if processes_preprocessing == 0 and processes_export == 0:
        predictor.predict_from_files_sequential(str(input_folder), str(output_folder), save_probabilities=False,
                                                overwrite=True, folder_with_segs_from_prev_stage=None)
    else:
        predictor.predict_from_files(str(input_folder), str(output_folder), save_probabilities=False, overwrite=True,
                                     num_processes_preprocessing=processes_preprocessing,
                                     num_processes_segmentation_export=processes_export)
    record = {"what": WHAT_IS_TIMED, "device": device, "mirroring": mirroring, "threads": torch.get_num_threads(),
              **summarise(predictor.timings, len(predictor.list_of_parameters)), "per_case": predictor.timings}
    (output_folder / environment.INFERENCE_LOG).write_text(json.dumps(record, indent=1))
    return record
