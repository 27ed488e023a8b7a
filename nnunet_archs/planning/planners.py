"""Memory-aware experiment planners for KiU-Net and UIU-Net, sized like nnU-Net's Residual-Encoder presets.

nnU-Net's planner shrinks the patch until the network's ``compute_conv_feature_map_size`` fits a reference
value scaled to the GPU target, then spends the remaining headroom on the batch size. Planning with the net
that will actually be trained is what prevents out-of-memory crashes: a KiU-Net or UIU-Net dropped into plans
sized for the U-Net holds about twice its activations.

Calibration (how the reference values were obtained): our networks count activations in PlainConvUNet's unit
(one element per conv-block output; ``blocks.single_map`` for maps autograd keeps once). Measured on real plans
configurations (``benchmarks/planners.py``, bytes autograd saves in a training forward), estimate per saved
byte is within 1 % across ResidualEncoderUNet, PlainConvUNet and DynamicKiUNet, and 8 % higher for
DynamicUIUNet3D (its estimate counts some transient maps). So each preset reuses the ResEnc preset's reference
values (M 8 GB, L 24 GB, XL 40 GB; ``nnunetv2/.../residual_encoder_unet_planners.py``) multiplied by our
estimate-per-byte relative to ResidualEncoderUNet's: the planned configuration then takes the same measured
activation memory as the ResEnc preset's at the same target.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Type, Union

from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

from dynamic_network_architectures.architectures.unet import PlainConvUNet

from nnunet_archs.architectures.kiunet import DynamicKiUNet
from nnunet_archs.architectures.uiunet import DynamicUIUNet3D

# ResEnc presets (nnunetv2 2.8.1): GPU memory in GB, 3D and 2D reference values for that memory
RESENC_PRESETS: Dict[str, Tuple[float, float, float]] = {
    "M": (8, 680_000_000, 135_000_000),
    "L": (24, 2_100_000_000, 380_000_000),
    "XL": (40, 3_600_000_000, 560_000_000),
}

# architecture name -> (class, estimate per saved byte relative to ResidualEncoderUNet, measured). The U-Net
# row plans nnU-Net's PlainConvUNet on the same budgets, the baseline of a same-memory comparison.
ARCHITECTURES: Dict[str, Tuple[type, float]] = {
    "KiUNet": (DynamicKiUNet, 1.00),
    "UIUNet": (DynamicUIUNet3D, 1.08),
    "PlainConvUNet": (PlainConvUNet, 1.00),
}


class ArchitecturePresetPlanner(ExperimentPlanner):
    """nnU-Net's ExperimentPlanner planning for ``architecture`` with a ResEnc preset's memory references.

    Honours ``gpu_memory_target_in_gb`` (``-gpu_memory_target``) and ``plans_name`` (``-overwrite_plans_name``)
    as nnU-Net's presets do, and shares the default planner's preprocessed ``2d``/``3d_fullres`` data: spacing,
    normalisation and transposition are the default planner's.
    """

    architecture: type
    preset_gb: float
    reference_3d: float
    reference_2d: float
    default_plans_name: str

    def __init__(self, dataset_name_or_id: Union[str, int], gpu_memory_target_in_gb: Optional[float] = None,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: Optional[str] = None,
                 overwrite_target_spacing: Union[List[float], Tuple[float, ...]] = None,
                 suppress_transpose: bool = False):
        target = self.preset_gb if gpu_memory_target_in_gb is None else gpu_memory_target_in_gb
        super().__init__(dataset_name_or_id, target, preprocessor_name, plans_name or self.default_plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.UNet_class = self.architecture
        self.UNet_reference_val_corresp_GB = self.preset_gb
        self.UNet_reference_val_3d = self.reference_3d
        self.UNet_reference_val_2d = self.reference_2d
        self.max_dataset_covered = 1  # as the ResEnc presets: no 5 % batch cap

    def generate_data_identifier(self, configuration_name: str) -> str:
        if configuration_name in ("2d", "3d_fullres"):
            return "nnUNetPlans_" + configuration_name
        return self.plans_identifier + "_" + configuration_name


def _make_planner(architecture: str, preset: str) -> Type[ArchitecturePresetPlanner]:
    cls, estimate_per_byte = ARCHITECTURES[architecture]
    gb, reference_3d, reference_2d = RESENC_PRESETS[preset]
    name = f"nnUNetPlanner{architecture}{preset}"
    return type(name, (ArchitecturePresetPlanner,), {
        "__module__": __name__,
        "__doc__": f"{cls.__name__} planned for {gb:g} GB, like nnUNetPlannerResEnc{preset}.",
        "architecture": cls, "preset_gb": gb, "reference_3d": reference_3d * estimate_per_byte,
        "reference_2d": reference_2d * estimate_per_byte,
        "default_plans_name": f"nnUNet{architecture}{preset}Plans"})


PLANNERS: Dict[str, Type[ArchitecturePresetPlanner]] = {
    p.__name__: p for p in (_make_planner(a, s) for a in ARCHITECTURES for s in RESENC_PRESETS)}
globals().update(PLANNERS)  # importable by name, e.g. nnunet_archs.planning.planners.nnUNetPlannerKiUNetM
