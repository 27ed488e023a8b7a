"""Planner honesty: does each preset fill its GPU memory target the way nnU-Net's ResEnc preset does?

For each preset (M/L/XL) and planner (nnU-Net's ResEnc preset, nnU-Net's default planner at the same target,
our KiU-Net and UIU-Net presets), on an isotropic and an anisotropic dataset fingerprint, runs the real planner
and prints the planned 3d_fullres patch, batch and estimate, and the saved-activation bytes of one training
step at that patch and batch: the bytes of the tensors autograd keeps, counted on FakeTensors (shapes and
dtypes, no data), so the planned patch itself is counted exactly at no memory cost. ``--amp`` counts them under
bf16 autocast, the CPU stand-in for nnU-Net's fp16 autocast on CUDA (the same bytes per element; int64
max-pooling indices keep their size). Ratios are to the ResEnc preset's figures at the same target; the goal is
a memory/target ratio within +-15 % of ResEnc's. The checkpointing presets (``nnUNetPlanner*Checkpoint*``) keep
less than a step's peak in saved tensors (the checkpointed parts are recomputed in backward), so their rows count
the peak of a whole training step instead (``fake_peak_step_bytes``, also on FakeTensors), against the ResEnc
plan's peak counted the same way.

    python benchmarks/planners.py [--presets M L XL] [--fingerprints isotropic anisotropic] [--amp] [--zoo]

With --zoo it plans the networks users compare against instead (MedNeXt, SegResNet, SwinUNETR, each in its own
topology) beside the ResEnc and PlainConvUNet presets, for the 3d_fullres and 2d configurations, and adds each
row's estimate per counted byte relative to PlainConvUNet's, and relative to ResEnc's divided by the factor the
planner uses (``memory.ESTIMATE_PER_BYTE``, from the network's shipped calibration): 1 where the planner's memory
model is exact at the planned patch.

With --agreement it prints instead what nnU-Net's own planners and ``-pl nnUNetPlannerCustom`` plan for the same
network on the same fingerprints (2d and 3d_fullres patch and batch): ResidualEncoderUNet against the ResEnc
presets, PlainConvUNet against nnU-Net's default planner at the preset's memory. Networks for the estimates are
built on the meta device (the plans do not depend on weights).
"""
from __future__ import annotations

import argparse
import json
import os
import pydoc
import tempfile
import time
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="nnunet_archs_planner_benchmark_"))
for folder in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
    os.environ[folder] = str(WORK / folder)
    (WORK / folder).mkdir()
os.environ["nnUNet_n_proc_DA"] = "2"

import torch  # noqa: E402  (nnU-Net reads its folders from the environment at import)
from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprint_dataset,  # noqa: E402
                                                                  plan_experiment_dataset)
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans  # noqa: E402

from nnunet_archs.architectures.zoo import has_deep_supervision  # noqa: E402
from nnunet_archs.planning.lookup import find_planner  # noqa: E402
from nnunet_archs.datasets import write_synthetic_dataset  # noqa: E402
from nnunet_archs.planning.memory import RESENC_PRESETS  # noqa: E402
from nnunet_archs.profiling import fake_peak_step_bytes, fake_saved_activation_bytes  # noqa: E402

FINGERPRINTS = {"isotropic": ([256, 256, 256], [1.0, 1.0, 1.0]), "anisotropic": ([96, 384, 384], [2.5, 0.8, 0.8]),
                # the fingerprint gpu_validation.py plans on: the public ismaseptem/comp0251 plans' 3d_fullres patch
                # (a built-in configuration) as the median image, at its spacing
                "comp0251": ([40, 224, 224], [0.5, 0.140625, 0.140625])}


def make_dataset(dataset_id: int, shape, spacing) -> None:
    """A tiny real dataset whose fingerprint claims large images: planning reads only the fingerprint."""
    write_synthetic_dataset(WORK / "nnUNet_raw", dataset_id, f"Fingerprint{dataset_id}")
    fingerprint = extract_fingerprint_dataset(dataset_id, num_processes=1, verbose=False, show_progress_bar=False)
    fingerprint["shapes_after_crop"] = [shape] * len(fingerprint["shapes_after_crop"])
    fingerprint["spacings"] = [spacing] * len(fingerprint["spacings"])
    path = WORK / "nnUNet_preprocessed" / f"Dataset{dataset_id:03d}_Fingerprint{dataset_id}" / \
        "dataset_fingerprint.json"
    path.write_text(json.dumps(fingerprint))


def activation_bytes_per_sample(architecture: dict, patch, autocast_dtype, peak: bool = False) -> tuple:
    """(saved-activation bytes of one sample at ``patch``, or with ``peak`` a training step's peak bytes, the
    network's estimate)"""
    deep_supervision = has_deep_supervision(pydoc.locate(architecture["network_class_name"]))  # as it trains

    def build():
        return get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                      architecture["_kw_requires_import"], 1, 3, allow_init=False,
                                      deep_supervision=deep_supervision)
    with torch.device("meta"):
        estimate = float(build().compute_conv_feature_map_size(patch))
    count = fake_peak_step_bytes if peak else fake_saved_activation_bytes
    return count(build, [1, 1, *patch], autocast_dtype), estimate


def planned(dataset_id: int, planner, target: float, name: str) -> dict:
    """configuration -> "patch, batch" for 2d and 3d_fullres."""
    with torch.device("meta"):
        plans, _ = plan_experiment_dataset(dataset_id, planner, target, overwrite_plans_name=name)
    return {c: f"{'x'.join(map(str, plans['configurations'][c]['patch_size']))}, "
               f"{plans['configurations'][c]['batch_size']}" for c in ("3d_fullres", "2d")}


def agreement(presets, fingerprints) -> None:
    from nnunet_archs.planning.custom import custom_planner
    print(f"# {time.strftime('%Y-%m-%d')}, nnU-Net's planner vs -pl nnUNetPlannerCustom (patch, batch)\n")
    print("| fingerprint | preset | network | nnU-Net's planner | 3d_fullres | custom 3d_fullres | 2d | custom 2d "
          "| same |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dataset_id, fingerprint in enumerate(fingerprints, start=601):
        make_dataset(dataset_id, *FINGERPRINTS[fingerprint])
        for preset in presets:
            gb = RESENC_PRESETS[preset][0]
            for network, nnunet_planner in (("ResEncUNet", f"nnUNetPlannerResEnc{preset}"),
                                            ("PlainConvUNet", "ExperimentPlanner")):
                theirs = planned(dataset_id, find_planner(nnunet_planner), gb, f"agree_{nnunet_planner}_{preset}")
                ours = planned(dataset_id, custom_planner(network, preset=preset), gb, f"agree_{network}_{preset}")
                print(f"| {fingerprint} | {preset} ({gb} GB) | {network} | {nnunet_planner} | {theirs['3d_fullres']} "
                      f"| {ours['3d_fullres']} | {theirs['2d']} | {ours['2d']} | "
                      f"{'yes' if theirs == ours else 'no'} |", flush=True)


ZOO_PLANNERS = ("nnUNetPlannerResEnc", "nnUNetPlannerPlainConvUNet", "nnUNetPlannerMedNeXt", "nnUNetPlannerSegResNet",
                "nnUNetPlannerSwinUNETR")


def zoo(presets, fingerprints, autocast_dtype) -> None:
    """The zoo networks' planned configurations: memory against the target and ResEnc's, and the estimate per
    counted byte against PlainConvUNet's next to the calibrated factor's."""
    from nnunet_archs.planning.memory import ESTIMATE_PER_BYTE
    print("| fingerprint | preset | configuration | planner | patch | batch | estimate/sample (M) | activations (GB) "
          "| activations/target | vs ResEnc | estimate/byte vs PlainConvUNet | vs ResEnc / planner's factor |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for dataset_id, fingerprint in enumerate(fingerprints, start=601):
        make_dataset(dataset_id, *FINGERPRINTS[fingerprint])
        for preset in presets:
            gb = RESENC_PRESETS[preset][0]
            plans = {}
            for stem in ZOO_PLANNERS:
                with torch.device("meta"):
                    plans[stem], _ = plan_experiment_dataset(dataset_id, find_planner(stem + preset), gb,
                                                             overwrite_plans_name=f"zoo_{stem}_{preset}")
            for name in ("3d_fullres", "2d"):
                reference = {}  # "ResEnc" -> (activations/target, estimate per byte), "plain" -> estimate per byte
                for stem in ZOO_PLANNERS:
                    configuration = plans[stem]["configurations"][name]
                    patch, batch = list(configuration["patch_size"]), configuration["batch_size"]
                    per_sample, estimate = activation_bytes_per_sample(configuration["architecture"], patch,
                                                                       autocast_dtype)
                    ratio, per_byte = per_sample * batch / (gb * 2 ** 30), estimate / per_sample
                    reference.setdefault("ResEnc", (ratio, per_byte))
                    if stem == "nnUNetPlannerPlainConvUNet":
                        reference["plain"] = per_byte
                    vs_plain = f"{per_byte / reference['plain']:.2f}" if "plain" in reference else "-"
                    factor = ESTIMATE_PER_BYTE[configuration["architecture"]["network_class_name"]]
                    print(f"| {fingerprint} | {preset} ({gb} GB) | {name} | {stem}{preset} | "
                          f"{'x'.join(map(str, patch))} | {batch} | {estimate / 1e6:.0f} "
                          f"| {per_sample * batch / 2 ** 30:.1f} | {ratio:.2f} | {ratio / reference['ResEnc'][0]:.2f} "
                          f"| {vs_plain} | {per_byte / reference['ResEnc'][1] / factor:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(RESENC_PRESETS), choices=list(RESENC_PRESETS))
    parser.add_argument("--fingerprints", nargs="+", default=["isotropic", "anisotropic"], choices=list(FINGERPRINTS))
    parser.add_argument("--amp", action="store_true", help="count under bf16 autocast (nnU-Net trains under fp16 "
                                                           "autocast on CUDA)")
    parser.add_argument("--agreement", action="store_true", help="compare nnU-Net's planners with nnUNetPlannerCustom")
    parser.add_argument("--zoo", action="store_true", help="the MONAI networks' planners (MedNeXt, SegResNet, "
                        "SwinUNETR) beside ResEnc's and PlainConvUNet's, 3d_fullres and 2d")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.agreement:
        agreement(args.presets, args.fingerprints)
        return
    autocast_dtype = torch.bfloat16 if args.amp else None
    print(f"# {time.strftime('%Y-%m-%d')}, torch {torch.__version__}, saved-activation bytes counted on FakeTensors, "
          f"{'bf16 autocast' if args.amp else 'fp32'}\n")
    if args.zoo:
        zoo(args.presets, args.fingerprints, autocast_dtype)
        return
    print("| fingerprint | preset | planner | patch | batch | estimate/sample (M) | counted | activations (GB) "
          "| activations/target | vs ResEnc |")
    print("|---|---|---|---|---:|---:|---|---:|---:|---:|")
    for dataset_id, fingerprint in enumerate(args.fingerprints, start=601):
        make_dataset(dataset_id, *FINGERPRINTS[fingerprint])
        for preset in args.presets:
            gb = RESENC_PRESETS[preset][0]
            resenc = f"nnUNetPlannerResEnc{preset}"
            reference = {}  # counted -> ResEnc's activations/target
            configurations = {}  # planner -> its 3d_fullres configuration (ResEnc's is counted both ways)
            for planner_name, peak in ((resenc, False), ("ExperimentPlanner", False),
                                       (f"nnUNetPlannerKiUNet{preset}", False), (f"nnUNetPlannerUIUNet{preset}", False),
                                       (resenc, True), (f"nnUNetPlannerKiUNetCheckpoint{preset}", True),
                                       (f"nnUNetPlannerUIUNetCheckpoint{preset}", True)):
                if planner_name not in configurations:
                    with torch.device("meta"):  # the planners' networks only count feature maps
                        plans, _ = plan_experiment_dataset(dataset_id, find_planner(planner_name), gb,
                                                           overwrite_plans_name=f"bench_{planner_name}_{preset}")
                    configurations[planner_name] = plans["configurations"]["3d_fullres"]
                configuration = configurations[planner_name]
                patch, batch = list(configuration["patch_size"]), configuration["batch_size"]
                per_sample, estimate = activation_bytes_per_sample(configuration["architecture"], patch,
                                                                   autocast_dtype, peak)
                ratio = per_sample * batch / (gb * 2 ** 30)
                reference.setdefault(peak, ratio)
                print(f"| {fingerprint} | {preset} ({gb} GB) | {planner_name} | {'x'.join(map(str, patch))} | {batch} "
                      f"| {estimate / 1e6:.0f} | {'step peak' if peak else 'saved'} | {per_sample * batch / 2 ** 30:.1f} "
                      f"| {ratio:.2f} | {ratio / reference[peak]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
