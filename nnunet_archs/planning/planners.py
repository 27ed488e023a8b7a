"""Memory-aware experiment planners for every registry network, sized like nnU-Net's Residual-Encoder presets.

nnU-Net's planner shrinks the patch until the network's ``compute_conv_feature_map_size`` fits a reference
value scaled to the GPU target, then spends the remaining headroom on the batch size. Planning with the net
that will actually be trained is what prevents out-of-memory crashes: a KiU-Net or UIU-Net dropped into plans
sized for the U-Net holds about twice its activations.

Calibration (how the reference values were obtained): our networks count activations in PlainConvUNet's unit
(one element per conv-block output; ``blocks.single_map`` for maps autograd keeps once). Measured on real plans
configurations (``benchmarks/planners.py``, bytes autograd saves in a training forward), estimate per saved
byte in fp32 is within 1 % across ResidualEncoderUNet, PlainConvUNet and DynamicKiUNet, and 8 % higher for
DynamicUIUNet3D (its estimate counts some transient maps). Under autocast, what nnU-Net trains with, KiU-Net's
saved tensors shrink more than ResEnc's: at the planned sizes of every preset its factor is 1.15-1.22, so it
uses 1.19 (with 1.00 half of its plans used up to a fifth less memory than ResEnc's; BENCHMARKS.md section 2).
So each preset reuses the ResEnc preset's reference values (M 8 GB, L 24 GB, XL 40 GB) multiplied by our
estimate-per-byte relative to ResidualEncoderUNet's (``memory``, where the numbers and the arithmetic live): the
planned configuration then takes the same measured activation memory as the ResEnc preset's at the same target.

The networks from MONAI (MedNeXt, SegResNetDS, Swin UNETR) down-sample as their authors built them: every
candidate patch of nnU-Net's shrinking loop is estimated, and the plans are written, in the network's own topology
(``zoo.network_topology``: strides, stage count and widths) with the patch rounded down to what it accepts; their
estimate per byte comes from the calibration shipped for each (``memory.SHIPPED_CALIBRATIONS``).
"""
from __future__ import annotations

import json
import pydoc
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import numpy as np
import torch
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import \
    ResEncUNetPlanner
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunet_archs.architectures.config import takes_residual_blocks
from nnunet_archs.architectures.zoo import divisor, fit_patch, network_topology, smallest_patch
from nnunet_archs.planning.identifiers import data_identifier
from nnunet_archs.planning.memory import (ESTIMATE_PER_BYTE, RESENC_PRESETS, batch_within, estimated_gigabytes,
                                          reference_value)
from nnunet_archs.registry import RESENC_UNET, VARIANTS, ArchitectureVariant

# nnU-Net's planner widths, which a variant's feature_scale scales
BASE_FEATURES, MAX_FEATURES_2D, MAX_FEATURES_3D = 32, 512, 320


class ArchitecturePresetPlanner(ExperimentPlanner):
    """nnU-Net's ExperimentPlanner planning for a registry ``variant`` with a ResEnc preset's memory references.

    The variant is planned as itself: its class and keyword overrides are what the planner estimates and what
    the plans file records, and its ``feature_scale`` scales nnU-Net's widths, so stock ``nnUNetv2_train``
    trains exactly the network that was sized. Honours ``gpu_memory_target_in_gb`` (``-gpu_memory_target``)
    and ``plans_name`` (``-overwrite_plans_name``) as nnU-Net's presets do, and shares the default planner's
    preprocessed ``2d``/``3d_fullres`` data: spacing, normalisation and transposition are the default planner's.
    A class built like ResidualEncoderUNet is planned with nnU-Net's ResEnc planner arithmetic, any other with
    the default planner's (``make_planner``). A class without ``compute_conv_feature_map_size`` is sized by a
    fitted ``memory_model(patch_size, arch_kwargs)`` (``calibration.ActivationModel``) in its place.
    """

    variant: ArchitectureVariant
    estimate_per_byte: float
    memory_model: Optional[Callable[[Sequence[int], dict], float]] = None
    _estimate_network: Tuple[Optional[str], Optional[torch.nn.Module]] = (None, None)  # (topology, network)
    preset: str
    preset_gb: float
    reference_3d: float  # the ResEnc preset's reference values, before the estimate per byte
    reference_2d: float
    default_plans_name: str

    def __init__(self, dataset_name_or_id: Union[str, int], gpu_memory_target_in_gb: Optional[float] = None,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: Optional[str] = None,
                 overwrite_target_spacing: Union[List[float], Tuple[float, ...]] = None,
                 suppress_transpose: bool = False):
        target = self.preset_gb if gpu_memory_target_in_gb is None else gpu_memory_target_in_gb
        super().__init__(dataset_name_or_id, target, preprocessor_name, plans_name or self.default_plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.UNet_class = pydoc.locate(self.variant.class_path)
        self.UNet_reference_val_corresp_GB = self.preset_gb
        self.UNet_reference_val_3d = reference_value(self.preset, 3, self.estimate_per_byte)
        self.UNet_reference_val_2d = reference_value(self.preset, 2, self.estimate_per_byte)
        scale = self.variant.feature_scale
        self.UNet_base_num_features = max(1, round(BASE_FEATURES * scale))
        self.UNet_max_features_2d = max(1, round(MAX_FEATURES_2D * scale))
        self.UNet_max_features_3d = max(1, round(MAX_FEATURES_3D * scale))
        self.max_dataset_covered = 1  # as the ResEnc presets: no 5 % batch cap
        self._warned: set = set()  # patches already said to exceed the target
        self._estimates: Dict[tuple, float] = {}  # (network, patch) -> estimate

    def static_estimate_VRAM_usage(self, patch_size, input_channels, output_channels, arch_class_name, arch_kwargs,
                                   arch_kwargs_req_import):
        # nnU-Net calls this hook through self, with its U-Net's topology for the candidate patch: the variant's own
        # options change what the network holds, and a network with a down-sampling of its own is estimated as it
        # will be planned (``_network_plan``). Where that is already its smallest patch, the estimate is capped so
        # that nnU-Net's shrinking loop ends (it knows no smallest patch), and the batch is decided afterwards
        patch, arch_kwargs = self._network_plan(patch_size, arch_kwargs)
        estimate = self._estimate(patch, input_channels, output_channels, arch_class_name, arch_kwargs,
                                  arch_kwargs_req_import)
        if self._has_own_topology and np.prod(patch) <= np.prod(smallest_patch(arch_kwargs)):
            batch = self.UNet_reference_val_corresp_bs_2d if len(patch) == 2 else self.UNet_reference_val_corresp_bs_3d
            return min(estimate, self._reference(len(patch)) * batch / self.UNet_min_batch_size)
        return estimate

    @property
    def _has_own_topology(self) -> bool:
        return hasattr(self.UNet_class, "plans_topology")

    def _network_plan(self, patch_size, arch_kwargs: dict) -> Tuple[List[int], dict]:
        """nnU-Net's candidate patch and keywords as this planner plans them: the variant's options, and for a
        network with a down-sampling of its own (MedNeXt, SegResNetDS, Swin UNETR) its topology, with the patch
        rounded down to what it accepts."""
        kwargs = {**arch_kwargs, **self.variant.kwargs}
        if not self._has_own_topology:
            return list(patch_size), kwargs
        kwargs = network_topology(self.UNet_class, kwargs)
        return fit_patch(divisor(kwargs), patch_size), kwargs

    def _reference(self, dim: int) -> float:
        """The estimate of ``REFERENCE_BATCH[dim]`` samples that fills the memory target."""
        reference = self.UNet_reference_val_2d if dim == 2 else self.UNet_reference_val_3d
        return reference * self.UNet_vram_target_GB / self.UNet_reference_val_corresp_GB

    def _estimate(self, patch_size, input_channels, output_channels, arch_class_name, arch_kwargs,
                  arch_kwargs_req_import) -> float:
        if self.memory_model is not None:
            return self.memory_model(patch_size, arch_kwargs)
        network = (input_channels, output_channels, arch_class_name, arch_kwargs, list(arch_kwargs_req_import))
        key = json.dumps(network, sort_keys=True, default=str)
        # nnU-Net's planner builds the network anew for every candidate patch (and initialises its weights at real
        # widths); the estimate reads the structure only, as `nnunet-archs calibrate` does: build on the meta
        # device, and only when the topology changes
        if self._estimate_network[0] != key:
            with torch.device("meta"):
                self._estimate_network = (key, get_network_from_plans(arch_class_name, arch_kwargs,
                                                                      arch_kwargs_req_import, input_channels,
                                                                      output_channels, allow_init=False))
        # a network with a topology of its own often meets the same patch again (nnU-Net's candidates round down to
        # it), and counting its forward on the meta device takes a tenth of a second or more
        patch = tuple(int(p) for p in patch_size)
        if (key, patch) not in self._estimates:
            self._estimates[key, patch] = self._estimate_network[1].compute_conv_feature_map_size(patch)
        return self._estimates[key, patch]

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier, approximate_n_voxels_dataset,
                                    _cache) -> dict:
        plan = super().get_plans_for_configuration(spacing, median_shape, data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        entry = plan["architecture"]
        patch, entry["arch_kwargs"] = self._network_plan(plan["patch_size"], entry["arch_kwargs"])
        plan["patch_size"] = tuple(int(p) for p in patch)
        if self.variant.class_path != RESENC_UNET:  # ResEncUNet stays exactly nnU-Net's nnUNetPlannerResEnc{M,L,XL}
            plan["batch_size"] = self._batch_within_target(plan, len(spacing))
        return plan

    def _batch_within_target(self, plan: dict, dim: int) -> int:
        """The planned batch, rounded down to what the target holds.

        nnU-Net sets ``batch = round(reference / estimate * ref_bs)``: where the patch leaves memory to spare (it
        reached the whole image, or its last shrinking step was a large one) the rounding can add a sample the
        target has no room for (up to 1.2x the target at ``ref_bs`` 2; our KiU-Net and UIU-Net with checkpointing
        planned 3 samples of a 96x384x384 image at XL, 1.44x ResEnc's measured peak, BENCHMARKS.md section 2).
        nnU-Net's minimum batch stays the floor, also where the network's smallest patch does not fit the target
        (said in the planner's output).
        """
        entry = plan["architecture"]
        channels = self.dataset_json.get("channel_names", self.dataset_json.get("modality"))
        estimate = self._estimate(plan["patch_size"], len(channels), len(self.dataset_json["labels"]),
                                  entry["network_class_name"], entry["arch_kwargs"], entry["_kw_requires_import"])
        fits = batch_within(estimate, dim, self.UNet_vram_target_GB, self.estimate_per_byte, self.preset)
        if fits < self.UNet_min_batch_size and tuple(plan["patch_size"]) not in self._warned:
            self._warned.add(tuple(plan["patch_size"]))  # nnU-Net's 3d_lowres search plans the same patch often
            needed = estimated_gigabytes(estimate, self.UNet_min_batch_size, dim, self.estimate_per_byte, self.preset)
            print(f"WARNING: {self.variant.name} at patch {list(plan['patch_size'])} ({dim}D) needs about "
                  f"{needed:.2f} GB at nnU-Net's minimum batch of {self.UNet_min_batch_size}, more than the "
                  f"{self.UNet_vram_target_GB:g} GB target; planned anyway (its smallest patch, or nnU-Net's)")
        return max(min(plan["batch_size"], fits), self.UNet_min_batch_size)

    def generate_data_identifier(self, configuration_name: str) -> str:
        return data_identifier(self.plans_identifier, configuration_name)


def planner_stem(variant_name: str) -> str:
    """``UIUNet-minimal`` -> ``UIUNetMinimal``: the part of planner and plans names that names the variant."""
    head, *rest = variant_name.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def make_planner(variant: ArchitectureVariant, preset: str, estimate_per_byte: Optional[float] = None,
                 memory_model: Optional[Callable[[Sequence[int], dict], float]] = None
                 ) -> Type[ArchitecturePresetPlanner]:
    """The planner class that sizes ``variant`` for ``preset`` (M/L/XL), e.g. ``nnUNetPlannerKiUNetM`` writing
    ``nnUNetKiUNetMPlans``; ``estimate_per_byte`` defaults to the measured value of the variant's class."""
    gb, reference_3d, reference_2d = RESENC_PRESETS[preset]
    stem = planner_stem(variant.name)
    base = ResEncUNetPlanner if takes_residual_blocks(pydoc.locate(variant.class_path)) else ExperimentPlanner
    return type(f"nnUNetPlanner{stem}{preset}", (ArchitecturePresetPlanner, base), {
        "__module__": __name__,
        "__doc__": f"{variant.name} ({variant.description}) planned for {gb:g} GB, like nnUNetPlannerResEnc{preset}.",
        "variant": variant, "preset": preset, "preset_gb": gb, "reference_3d": reference_3d,
        "reference_2d": reference_2d,
        "estimate_per_byte": ESTIMATE_PER_BYTE[variant.class_path] if estimate_per_byte is None
        else estimate_per_byte,
        "memory_model": staticmethod(memory_model) if memory_model else None,
        "default_plans_name": f"nnUNet{stem}{preset}Plans"})


# one planner per registry variant and preset; ResEncUNet is planned by nnU-Net's own nnUNetPlannerResEnc{M,L,XL}
PLANNERS: Dict[str, Type[ArchitecturePresetPlanner]] = {
    p.__name__: p for p in (make_planner(v, s) for v in VARIANTS.values() if v.class_path != RESENC_UNET
                            for s in RESENC_PRESETS)}
globals().update(PLANNERS)  # importable by name, e.g. nnunet_archs.planning.planners.nnUNetPlannerKiUNetM
# the names the loop above makes, spelled out so that a search for one lands here (tests/planning/test_custom.py
# checks that they are exactly PLANNERS)
__all__ = [
    "ArchitecturePresetPlanner", "PLANNERS", "make_planner", "planner_name", "planner_stem",
    "nnUNetPlannerPlainConvUNetM", "nnUNetPlannerPlainConvUNetL", "nnUNetPlannerPlainConvUNetXL",
    "nnUNetPlannerKiUNetM", "nnUNetPlannerKiUNetL", "nnUNetPlannerKiUNetXL",
    "nnUNetPlannerKiUNetMaxpoolM", "nnUNetPlannerKiUNetMaxpoolL", "nnUNetPlannerKiUNetMaxpoolXL",
    "nnUNetPlannerKiUNetMinimalM", "nnUNetPlannerKiUNetMinimalL", "nnUNetPlannerKiUNetMinimalXL",
    "nnUNetPlannerKiUNetUncappedM", "nnUNetPlannerKiUNetUncappedL", "nnUNetPlannerKiUNetUncappedXL",
    "nnUNetPlannerKiUNetOriginalM", "nnUNetPlannerKiUNetOriginalL", "nnUNetPlannerKiUNetOriginalXL",
    "nnUNetPlannerKiUNetCheckpointM", "nnUNetPlannerKiUNetCheckpointL", "nnUNetPlannerKiUNetCheckpointXL",
    "nnUNetPlannerUIUNetM", "nnUNetPlannerUIUNetL", "nnUNetPlannerUIUNetXL",
    "nnUNetPlannerUIUNetMinimalM", "nnUNetPlannerUIUNetMinimalL", "nnUNetPlannerUIUNetMinimalXL",
    "nnUNetPlannerUIUNetOriginalM", "nnUNetPlannerUIUNetOriginalL", "nnUNetPlannerUIUNetOriginalXL",
    "nnUNetPlannerUIUNetCheckpointM", "nnUNetPlannerUIUNetCheckpointL", "nnUNetPlannerUIUNetCheckpointXL",
    "nnUNetPlannerMedNeXtM", "nnUNetPlannerMedNeXtL", "nnUNetPlannerMedNeXtXL",
    "nnUNetPlannerMedNeXtSM", "nnUNetPlannerMedNeXtSL", "nnUNetPlannerMedNeXtSXL",
    "nnUNetPlannerMedNeXtBM", "nnUNetPlannerMedNeXtBL", "nnUNetPlannerMedNeXtBXL",
    "nnUNetPlannerMedNeXtMM", "nnUNetPlannerMedNeXtML", "nnUNetPlannerMedNeXtMXL",
    "nnUNetPlannerMedNeXtK5M", "nnUNetPlannerMedNeXtK5L", "nnUNetPlannerMedNeXtK5XL",
    "nnUNetPlannerSegResNetM", "nnUNetPlannerSegResNetL", "nnUNetPlannerSegResNetXL",
    "nnUNetPlannerSwinUNETRM", "nnUNetPlannerSwinUNETRL", "nnUNetPlannerSwinUNETRXL",
]


def planner_name(variant_name: str, preset: str = "M") -> str:
    """The planner that sizes a registry variant (nnU-Net's ResEnc preset for ResEncUNet)."""
    if VARIANTS[variant_name].class_path == RESENC_UNET:
        return f"nnUNetPlannerResEnc{preset}"
    return f"nnUNetPlanner{planner_stem(variant_name)}{preset}"
