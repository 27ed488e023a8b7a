"""Calibrating any network's memory model against ResidualEncoderUNet, and the calibration file planning reads.

nnU-Net's planner sizes patch and batch from ``compute_conv_feature_map_size`` against reference values that
nnU-Net set for one network at a known GPU memory; the ResEnc presets' values belong to ResidualEncoderUNet.
A network is calibrated by measuring its activation memory per sample (the tensors autograd saves in a
training forward, under the precision nnU-Net trains in) and ResidualEncoderUNet's, built from the same plans
configurations at the same patches, then fitting one of two memory models:

- the network has ``compute_conv_feature_map_size``: its estimate per byte relative to ResidualEncoderUNet's
  (geometric mean over the points). The planner multiplies the ResEnc preset's reference values by it, so the
  planned configuration holds the same activation memory as the ResEnc preset's at the same target.
- it has none: a bytes-per-sample model of the topology, ``a * sum over stages of voxels x features + b *
  input voxels`` (non-negative least squares on relative errors), expressed in ResidualEncoderUNet's estimate
  units, which the planner then uses in place of ``compute_conv_feature_map_size``.

The residuals (predicted / measured bytes - 1 per point) say how far a planned configuration can be off.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import pydoc
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from scipy.optimize import nnls

from nnunet_archs.custom_networks import NetworkError
from nnunet_archs.errors import UserError
from nnunet_archs.files import read_json
from nnunet_archs.profiling import (activation_bytes, fake_saved_activation_bytes, require_device,
                                    saved_activation_bytes)
from nnunet_archs.real_plans import PlansRecord
from nnunet_archs.registry import ArchitectureVariant, get_variant

FORMAT = "nnunet-archs calibration 1"
PRECISIONS = ("autocast", "fp32")  # autocast: fp16 on CUDA as nnU-Net trains, bf16 on CPU as its stand-in
# packages whose changes change the measured bytes: a calibration made under other versions is refused
MEASURING_PACKAGES = ("torch", "dynamic-network-architectures")
RECORDED_PACKAGES = MEASURING_PACKAGES + ("nnunetv2", "nnunet-archs")


class CalibrationError(UserError):
    """A calibration file that cannot be used for the network being planned."""


def autocast_dtype(precision: str, device: str) -> Optional[torch.dtype]:
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    return torch.float16 if device.startswith("cuda") else torch.bfloat16


def topology_predictors(patch_size: Sequence[int], arch_kwargs: dict) -> Dict[str, float]:
    """The fitted model's inputs: sum over stages of feature-map voxels x features, and input voxels."""
    voxels = np.array(patch_size, dtype=np.float64)
    feature_volume = 0.0
    for features, stride in zip(arch_kwargs["features_per_stage"], arch_kwargs["strides"]):
        voxels = voxels / np.array(stride if isinstance(stride, (list, tuple)) else [stride] * len(voxels))
        feature_volume += float(np.prod(voxels)) * features
    return {"feature_volume": feature_volume, "voxels": float(np.prod(patch_size))}


@dataclass
class ActivationModel:
    """Activation memory per sample in ResidualEncoderUNet's estimate units, from the topology alone: what the
    custom planner uses for a network without ``compute_conv_feature_map_size``."""

    feature_volume: float
    voxels: float

    def __call__(self, patch_size: Sequence[int], arch_kwargs: dict) -> float:
        predictors = topology_predictors(patch_size, arch_kwargs)
        return self.feature_volume * predictors["feature_volume"] + self.voxels * predictors["voxels"]


@dataclass
class Point:
    """One measurement: the network and ResidualEncoderUNet at one configuration and patch, one sample each."""

    configuration: str
    patch: List[int]
    bytes: int
    reference_bytes: int
    reference_estimate: float
    estimate: Optional[float]
    predictors: Dict[str, float]
    how: str  # "fake" (FakeTensors on CPU), "cpu" (real tensors) or "cuda" (allocator peak, per sample)

    @property
    def target(self) -> float:
        """The network's bytes in ResidualEncoderUNet's estimate units at this configuration and patch."""
        return self.bytes * self.reference_estimate / self.reference_bytes


def bytes_per_sample(build, record: PlansRecord, patch: Sequence[int], dtype: Optional[torch.dtype],
                     device: str) -> tuple:
    """Activation bytes of one sample and how they were measured. On CUDA: the allocator's peak at batch 2
    minus batch 1 (parameters, gradients and autocast's weight copies cancel). On CPU: saved tensors counted on
    FakeTensors, or on real tensors where the forward needs values."""
    shape = [record.num_input_channels, *patch]
    if device.startswith("cuda"):
        net = build().to(device)
        one, two = (activation_bytes(net, torch.randn(b, *shape, device=device), dtype) for b in (1, 2))
        return two - one, "cuda"
    try:
        return fake_saved_activation_bytes(build, [1, *shape], dtype), "fake"
    except Exception:  # a forward that reads tensor values cannot run on FakeTensors: measure for real
        return saved_activation_bytes(build(), torch.randn(1, *shape), dtype), "cpu"


def _bytes_and_estimate(variant: ArchitectureVariant, record: PlansRecord, patch: Sequence[int],
                        dtype: Optional[torch.dtype], device: str) -> tuple:
    # bytes and estimate depend on the modules and shapes, not on the weights' values: no initialisation
    measured, how = bytes_per_sample(lambda: record.build_variant(variant, True, initialize=False), record, patch,
                                     dtype, device)
    with torch.device("meta"):
        net = record.build_variant(variant, True, initialize=False)
    estimate = float(net.compute_conv_feature_map_size(list(patch))) \
        if hasattr(net, "compute_conv_feature_map_size") else None
    return int(measured), estimate, how


_references: Dict[str, tuple] = {}  # ResidualEncoderUNet's figures, measured once per process and point


def measure(variant: ArchitectureVariant, record: PlansRecord, patch: Sequence[int], precision: str = "autocast",
            device: str = "cpu") -> Point:
    """The network and ResidualEncoderUNet, both built from ``record`` as nnU-Net builds them, at ``patch``."""
    dtype = autocast_dtype(precision, device)
    measured, estimate, how = _bytes_and_estimate(variant, record, patch, dtype, device)
    key = json.dumps([record.id, record.arch_kwargs, record.num_input_channels, record.num_classes, list(patch),
                      precision, device])
    if key not in _references:
        _references[key] = _bytes_and_estimate(get_variant("ResEncUNet"), record, patch, dtype, device)
    reference_bytes, reference_estimate, _ = _references[key]
    return Point(record.id, list(patch), measured, reference_bytes, reference_estimate, estimate,
                 topology_predictors(patch, variant.arch_kwargs(record.network_class_name, record.arch_kwargs)), how)


def fit(points: Sequence[Point]) -> tuple:
    """(estimate per byte relative to ResidualEncoderUNet, activation model or None, residuals)."""
    if all(p.estimate is not None for p in points):
        ratios = np.array([p.estimate / p.target for p in points])
        factor = float(np.exp(np.mean(np.log(ratios))))
        return factor, None, [float(r / factor - 1) for r in ratios]
    targets = np.array([p.target for p in points])
    design = np.array([[p.predictors["feature_volume"], p.predictors["voxels"]] for p in points]) / targets[:, None]
    coefficients, _ = nnls(design, np.ones(len(points)))
    model = ActivationModel(*map(float, coefficients))
    return 1.0, model, [float(v - 1) for v in design @ coefficients]


def source_hash(class_path: str) -> Optional[str]:
    """SHA-256 of the file that defines the class (None where there is no file)."""
    try:
        source = inspect.getsourcefile(pydoc.locate(class_path))
    except TypeError:
        return None
    return hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else None


def package_versions(names: Sequence[str] = RECORDED_PACKAGES) -> Dict[str, Optional[str]]:
    """The installed version of each distribution in ``names`` (None where it is not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@dataclass
class Calibration:
    """What ``nnunet-archs calibrate`` writes and ``-pl nnUNetPlannerCustom --calibration`` reads."""

    class_path: str
    kwargs: dict
    feature_scale: float
    precision: str
    device: str
    points: List[Point]
    estimate_per_byte: float
    model: Optional[ActivationModel]
    residuals: List[float]
    versions: Dict[str, Optional[str]] = field(default_factory=package_versions)
    source_sha256: Optional[str] = None
    format: str = FORMAT

    @property
    def max_abs_residual(self) -> float:
        return max(abs(r) for r in self.residuals)

    def to_json(self) -> dict:
        data = asdict(self)
        data["fit"] = {"kind": "activation model" if self.model else "estimate per byte",
                       "estimate_per_byte": data.pop("estimate_per_byte"), "model": data.pop("model"),
                       "residuals": data.pop("residuals")}
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Calibration":
        fit_entry = data["fit"]
        return cls(class_path=data["class_path"], kwargs=data["kwargs"], feature_scale=float(data["feature_scale"]),
                   precision=data["precision"],
                   device=data["device"], points=[Point(**p) for p in data["points"]],
                   estimate_per_byte=float(fit_entry["estimate_per_byte"]),
                   model=ActivationModel(**fit_entry["model"]) if fit_entry["model"] else None,
                   residuals=list(fit_entry["residuals"]), versions=data["versions"],
                   source_sha256=data["source_sha256"], format=data["format"])

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        data = read_json(path, "calibration file", CalibrationError)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise CalibrationError(f"{path} is not an nnunet-archs calibration file of format {FORMAT!r} (found "
                                   f"{found!r}); write one with nnunet-archs calibrate")
        try:
            return cls.from_json(data)
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"calibration file {path} is incomplete or damaged ({type(error).__name__}: "
                                   f"{error}); recalibrate with nnunet-archs calibrate") from None

    def check_matches(self, variant: ArchitectureVariant, path: Path) -> None:
        """Refuse a calibration of another class, other keyword overrides, other source or other versions of
        the packages that did the measuring: all of them change the memory the network holds."""
        found = {"class": self.class_path, "--kwargs": self.kwargs, "feature scale": self.feature_scale,
                 "source (SHA-256 of the class's file)": self.source_sha256,
                 **{n: self.versions.get(n) for n in MEASURING_PACKAGES}}
        versions = package_versions()
        now = {"class": variant.class_path, "--kwargs": variant.kwargs, "feature scale": variant.feature_scale,
               "source (SHA-256 of the class's file)": source_hash(variant.class_path),
               **{n: versions[n] for n in MEASURING_PACKAGES}}
        differences = [f"{name}: {found[name]!r} in the file, {now[name]!r} now" for name in found
                       if found[name] != now[name]]
        if differences:
            kwargs = f" --kwargs '{json.dumps(variant.kwargs)}'" if variant.kwargs else ""
            raise CalibrationError(f"calibration file {path} does not fit {variant.class_path} as used now ("
                                   f"{'; '.join(differences)}); recalibrate: nnunet-archs calibrate "
                                   f"{variant.class_path}{kwargs} -o {path} --overwrite")


def calibrate(variant: ArchitectureVariant, records: Sequence[PlansRecord], bottlenecks: Sequence[int] = (2, 4),
              precision: str = "autocast", device: str = "cpu", progress=None) -> Calibration:
    """Measure ``variant`` and ResidualEncoderUNet at every record's topology with ``bottlenecks`` voxels per
    axis at the lowest resolution (e.g. 64x64x64 and 128x128x128 for five stride-2 stages; rounded up to what a
    network with a down-sampling of its own accepts), and fit."""
    require_device(device)
    autocast_dtype(precision, device)
    if any(b < 1 for b in bottlenecks):
        raise UserError(f"--bottlenecks must be >= 1 voxel, got {list(bottlenecks)}")
    points = []
    for record in records:
        for bottleneck in bottlenecks:
            patch = record.shared_patch([variant], record.reduced_patch(bottleneck))
            try:
                points.append(measure(variant, record, patch, precision, device))
            except UserError:
                raise
            except ValueError as error:  # the network refused nnU-Net's keywords or the patch: the user's to fix
                raise NetworkError(f"{variant.class_path} at {record.id}: {error}") from None
            if progress:
                progress(points[-1])
    factor, model, residuals = fit(points)
    if not math.isfinite(factor) or factor <= 0:
        raise NetworkError(f"{variant.class_path}.compute_conv_feature_map_size gave {factor} per measured byte; it "
                         f"must return a positive element count")
    return Calibration(variant.class_path, dict(variant.kwargs), variant.feature_scale, precision, device, points,
                       factor, model, residuals, source_sha256=source_hash(variant.class_path))
