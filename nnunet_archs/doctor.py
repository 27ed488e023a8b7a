"""``nnunet-archs doctor``: the environment a user will train in, checked before the first training finds out.

One line per check, each with what to do, on one scale of severity that says what depends on it:

- FAIL: broken; nothing trains until it is fixed (exit status 1). ``compare`` and ``demo`` run the fast checks
  (``fast_checks``) before they start anything and stop on a FAIL.
- NEEDED: a setting the commands it names need, not made yet (the README's quick start needs every one).
- WARN: works, within the limit it names.

Nothing here changes what it checks.

The failure this exists for: a torch and a torchvision built for each other are a pair; one from a local wheel
folder and the other from the package index (common on clusters) install without complaint, ``nnunet-archs
--help`` runs, and the first ``nnUNetv2_train`` dies with ``operator torchvision::nms does not exist`` (nnU-Net's
trainer lookup imports timm, which imports torchvision; dynamic-network-architectures depends on timm).
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from enum import Enum
from importlib import metadata
from pathlib import Path
from typing import Callable, List, Optional

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
# the packages we build on, whose versions our requirements bound
BUILT_ON = ("nnunetv2", "dynamic-network-architectures", "torch")


class Status(Enum):
    PASS = "PASS"
    WARN = "WARN"  # works, within the limit the line names
    NEEDED = "NEEDED"  # a setting the commands the line names need
    FAIL = "FAIL"  # broken: nothing trains until it is fixed


LEGEND = ("FAIL: broken, nothing trains until it is fixed; NEEDED: the commands named need it (the quick start needs "
          "every NEEDED line); WARN: works, within the limit named")


@dataclass
class Finding:
    status: Status
    name: str
    message: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status.value:<6} {self.name:<34} {self.message}" + (f" -> {self.fix}" if self.fix else "")


def torchvision_pair(torch_version: str) -> str:
    """The torchvision release built for a torch release (torchvision 0.N+15 for torch 2.N)."""
    major, minor = (int(part) for part in torch_version.split("+")[0].split(".")[:2])
    return f"0.{minor + 15}" if major == 2 else "the one listed for your torch at pytorch.org/get-started"


def check_torchvision(importer: Callable[[str], object] = importlib.import_module) -> Finding:
    """torch and torchvision import together (nnU-Net's trainer lookup needs both)."""
    import torch
    name = "torch and torchvision"
    try:
        torchvision = importer("torchvision")
    except (ImportError, RuntimeError, OSError) as error:
        pair = torchvision_pair(torch.__version__)
        index = " --index-url https://download.pytorch.org/whl/cpu" if "+cpu" in torch.__version__ else ""
        cause = ("torchvision is not built for this torch" if "torchvision::nms" in str(error) or
                 isinstance(error, (RuntimeError, OSError)) else "torchvision is missing")
        return Finding(Status.FAIL, name, f"torch {torch.__version__}: importing torchvision failed ({cause}: "
                       f"{type(error).__name__}: {str(error).splitlines()[0][:120]}); nnUNetv2_train would fail the "
                       f"same way at its first trainer lookup",
                       f"install the matching pair from one index: pip install "
                       f"\"torch=={torch.__version__.split('+')[0]}\" \"torchvision=={pair}.*\"{index}")
    return Finding(Status.PASS, name, f"torch {torch.__version__}, torchvision {torchvision.__version__}")


def check_versions() -> List[Finding]:
    """nnunetv2, dynamic-network-architectures and torch in the ranges this package supports."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    try:
        ours = {canonicalize_name(r.name): r for r in map(Requirement, metadata.requires("nnunet-archs") or [])
                if r.marker is None}
    except metadata.PackageNotFoundError:
        return [Finding(Status.FAIL, "nnunet-archs installed", "the package's metadata is missing",
                        "install it: make, or pip install . in the repository")]
    findings = []
    for name in BUILT_ON:
        requirement = ours.get(canonicalize_name(name))
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            findings.append(Finding(Status.FAIL, name, "not installed", f"pip install \"{requirement}\""))
            continue
        if requirement is not None and not requirement.specifier.contains(installed, prereleases=True):
            findings.append(Finding(Status.FAIL, name, f"{installed} is outside the supported {requirement.specifier}",
                                    f"pip install \"{requirement}\""))
        else:
            findings.append(Finding(Status.PASS, name, f"{installed}"))
    return findings


def check_folder(variable: str) -> Finding:
    """An nnU-Net folder variable: unset is needed (with the line to add); set but not writable a failure."""
    value = os.environ.get(variable)
    if not value:
        return Finding(Status.NEEDED, variable, "not set: nnU-Net's commands and ours that plan, train, predict or "
                       "compare need it (demo sets its own)",
                       f"add to your shell profile: export {variable}=/path/to/{variable}")
    path = Path(value)
    existing = path if path.exists() else next((p for p in path.parents if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK) or (path.exists() and not path.is_dir()):
        return Finding(Status.FAIL, variable, f"{value} is not a writable folder",
                       f"point {variable} at a folder you can write to")
    return Finding(Status.PASS, variable, value if path.exists() else f"{value} (created when first used)")


def check_ext_trainer() -> Finding:
    from nnunet_archs.training.environment import ext_trainers_path
    ours = ext_trainers_path()
    value = os.environ.get("nnUNet_extTrainer", "")
    if ours in value.split(os.pathsep):
        return Finding(Status.PASS, "nnUNet_extTrainer", value)
    return Finding(Status.NEEDED, "nnUNet_extTrainer", "our folder is not in it: nnUNetv2_train and nnUNetv2_predict "
                   "need it for our trainers (-tr nnUNetTrainerBudget_seed0 of the quick start, kiunet_minimal, ...); "
                   "compare and demo set it for their jobs, and plans of our planners train with the stock "
                   "nnUNetTrainer without it", f"export nnUNet_extTrainer={ours}")


def check_cuda() -> Finding:
    import torch
    if not torch.cuda.is_available():
        return Finding(Status.WARN, "CUDA devices", "none: training runs on the CPU, enough for the quick start and "
                       "the demo; a real dataset at nnU-Net's schedule takes days per training (compare refuses it "
                       "without --yes)")
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return Finding(Status.PASS, "CUDA devices", f"{len(names)}: {', '.join(names)}")


def check_compile() -> Finding:
    """torch.compile of a tiny network (nnU-Net compiles on CUDA by default)."""
    import torch
    try:
        net = torch.compile(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.LeakyReLU()))
        net(torch.randn(1, 1, 8, 8)).sum().backward()
    except Exception as error:  # the compiler's failures take many forms; report the first line
        return Finding(Status.FAIL, "torch.compile", f"{type(error).__name__}: {str(error).splitlines()[0][:160]}",
                       "train with nnUNet_compile=f (or compare --no-compile), or fix the compiler toolchain")
    return Finding(Status.PASS, "torch.compile", "a tiny network compiled, ran forward and backward")


def check_slurm() -> Finding:
    if shutil.which("sinfo") is None:
        return Finding(Status.FAIL, "SLURM", "sinfo is not on PATH", "run on a login node of the cluster, or use "
                       "compare --executor local")
    result = subprocess.run(["sinfo", "-h", "-o", "%P %D %T"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0 or not result.stdout.strip():
        return Finding(Status.FAIL, "SLURM", f"sinfo did not answer ({result.stderr.strip()[:120]})",
                       "check the cluster (slurmctld) or use compare --executor local")
    return Finding(Status.PASS, "SLURM", result.stdout.strip().splitlines()[0])


def fast_checks(importer: Callable[[str], object] = importlib.import_module) -> List[Finding]:
    """What ``compare`` and ``demo`` check before they start (a second or two)."""
    return [check_torchvision(importer), *check_versions()]


def run_checks(compile: bool = False, slurm: bool = False,
               importer: Callable[[str], object] = importlib.import_module) -> List[Finding]:
    findings = fast_checks(importer) + [check_folder(v) for v in NNUNET_FOLDERS] + [check_ext_trainer(),
                                                                                     check_cuda()]
    if compile:
        findings.append(check_compile())
    if slurm:
        findings.append(check_slurm())
    return findings


def first_failure(findings: List[Finding]) -> Optional[Finding]:
    return next((f for f in findings if f.status is Status.FAIL), None)


def verdict(findings: List[Finding]) -> str:
    """The last line of ``doctor``: what the findings mean together."""
    needed = [f.name for f in findings if f.status is Status.NEEDED]
    if first_failure(findings):
        return "Not ready: fix the FAIL line(s) first; nothing trains until then."
    if needed:
        return (f"Installed and working; set {', '.join(needed)} before the commands named (the quick start needs "
                f"them; nnunet-archs demo needs none).")
    return "Ready."
