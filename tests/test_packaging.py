"""The package installs beside the torch of an existing nnU-Net environment: its requirements are ranges that accept
every torch nnunetv2 accepts (read from both packages' installed metadata), and pip's resolver finds a complete
installation of this repository against a constraint that pins another supported torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPOSITORY = Path(__file__).resolve().parents[1]
# the oldest torch nnunetv2 accepts, three later releases (2.14.1 is the tested one), and the excluded 2.9 series
TORCH_VERSIONS = ["2.1.2", "2.5.1", "2.8.0", "2.9.0", "2.9.1", "2.14.1"]
OTHER_TORCH = "2.5.1"
INDEX = "https://pypi.org/simple"


def runtime_requirements(distribution: str) -> dict:
    """name -> Requirement, without extras' requirements."""
    found = {}
    for text in requires(distribution) or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            found[canonicalize_name(requirement.name)] = requirement
    return found


def test_no_exact_torch_pins_and_the_same_torch_versions_as_nnunetv2():
    ours, theirs = runtime_requirements("nnunet-archs"), runtime_requirements("nnunetv2")
    for name in ("torch", "torchvision"):
        if name in ours:
            assert not any(s.operator in ("==", "===") for s in ours[name].specifier), str(ours[name])
    for version in TORCH_VERSIONS:
        assert ours["torch"].specifier.contains(version) == theirs["torch"].specifier.contains(version), \
            f"torch {version}: ours {ours['torch'].specifier}, nnunetv2's {theirs['torch'].specifier}"
    assert ours["torch"].specifier.contains("2.1.2") and not ours["torch"].specifier.contains("2.9.1")


def pypi_reachable() -> bool:
    try:
        with urllib.request.urlopen(f"{INDEX}/pip/", timeout=10):
            return True
    except OSError:
        return False


@pytest.mark.slow(40)
def test_pip_resolves_the_repository_against_another_supported_torch(tmp_path):
    """A dry run reads only metadata: ``fast-deps`` fetches each wheel's METADATA by HTTP range requests (PyPI's
    index here serves no separate metadata files, and without it pip downloads every wheel, torch's 900 MB
    included). The machine's pip configuration (local wheel folders, constraints) is ignored."""
    if not pypi_reachable():
        pytest.skip(f"{INDEX} is not reachable: pip's resolver needs the package index")
    (tmp_path / "constraints.txt").write_text(f"torch=={OTHER_TORCH}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--use-feature=fast-deps",
               "--no-build-isolation", "--progress-bar", "off", "--index-url", INDEX,
               "-c", str(tmp_path / "constraints.txt"), "--report", str(tmp_path / "report.json"), str(REPOSITORY)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = {canonicalize_name(item["metadata"]["name"]): Version(item["metadata"]["version"])
                for item in json.loads((tmp_path / "report.json").read_text())["install"]}
    assert resolved["torch"] == Version(OTHER_TORCH)
    assert {"nnunet-archs", "nnunetv2", "dynamic-network-architectures", "monai", "submitit"} <= resolved.keys()
    assert resolved["monai"] < Version("1.6")  # monai 1.6 needs torch >= 2.8; our range allows an older one
    assert f"Obtaining dependency information from torch {OTHER_TORCH}" in result.stdout  # metadata only
    assert "Downloading torch-" not in result.stdout


def test_the_zoo_extra_asks_for_the_monai_the_zoo_networks_need():
    """The [zoo] extra's floor is the release below which MedNeXt and SwinUNETR refuse to build (zoo.MONAI_MINIMUM),
    while the base requirement stays at the MONAI that accepts nnU-Net's oldest torch."""
    import tomllib

    from nnunet_archs.architectures.zoo import MONAI_MINIMUM
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    zoo, = project["optional-dependencies"]["zoo"]
    assert Requirement(zoo).specifier == SpecifierSet(f">={'.'.join(map(str, MONAI_MINIMUM))}")
    base = next(Requirement(r) for r in project["dependencies"] if canonicalize_name(Requirement(r).name) == "monai")
    assert base.specifier.contains("1.3.2")
