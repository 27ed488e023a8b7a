"""The memory estimate nnU-Net's planner sizes patch and batch with: ``compute_conv_feature_map_size`` must exist
and be proportional to the activation memory the network really holds, so that one factor (what ``nnunet-archs
calibrate`` fits) maps it onto ResidualEncoderUNet's scale at every configuration and patch. Measured as
``calibrate`` measures: saved tensors of one sample in nnU-Net's training precision, against ResidualEncoderUNet
at the same configurations and patches."""
from __future__ import annotations

from nnunet_archs.calibration import calibrate
from nnunet_archs.contract.base import CheckResult, Status, Subject

NAME = "memory estimate proportional to memory"
TOLERANCE = 0.25  # largest |predicted / measured - 1| at one point after fitting the factor
BOTTLENECKS = (2, 4)


def check_memory_estimate(subject: Subject) -> CheckResult:
    if not hasattr(subject.meta_network(subject.cases[0]), "compute_conv_feature_map_size"):
        return CheckResult(NAME, Status.WARN, "no compute_conv_feature_map_size: nnU-Net's own planners cannot size "
                           "this network", "add compute_conv_feature_map_size(input_size) counting the elements of "
                           "the feature maps forward keeps (DNA's blocks each have one), or plan with -pl "
                           "nnUNetPlannerCustom after nnunet-archs calibrate, which fits a model of the topology")
    fix = ("count every feature map forward keeps for backward in compute_conv_feature_map_size (DNA's blocks each "
           "report theirs), so that the count grows with the patch and the widths as the memory does")
    try:
        calibration = calibrate(subject.variant, subject.memory_records, BOTTLENECKS)
    except Exception as error:  # the user's estimate or forward may fail in any way
        return CheckResult(NAME, Status.FAIL, f"measuring failed: {type(error).__name__}: "
                           f"{str(error).splitlines()[0][:200]}", fix)
    worst_point = max(zip(calibration.residuals, calibration.points), key=lambda rp: abs(rp[0]))
    spread = f"{len(calibration.points)} points ({len(subject.memory_records)} configurations x patches with " \
             f"bottleneck {' and '.join(map(str, BOTTLENECKS))})"
    if calibration.max_abs_residual <= TOLERANCE:
        return CheckResult(NAME, Status.PASS, f"estimate per measured byte within {calibration.max_abs_residual:.0%}"
                           f" of one factor over {spread}; {calibration.estimate_per_byte:.2f}x "
                           f"ResidualEncoderUNet's (nnunet-archs calibrate records it for the planner)")
    residual, point = worst_point
    return CheckResult(NAME, Status.FAIL, f"estimate per measured byte is off by {residual:+.0%} at {point.configuration}"
                       f" patch {'x'.join(map(str, point.patch))} after fitting one factor over {spread} (at most "
                       f"{TOLERANCE:.0%}): the planner would mis-size the patch", fix)
