"""The networks as nnunet-archs 0.1.0 built them, imported from git history, for side-by-side "before -> after"
measurements (benchmarks/architectures.py) and for the tests that hold each exact rewrite to the formulation
it replaced (tests/architectures/test_rewrites.py). Nothing here is part of the package."""
from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Dict

from nnunet_archs.registry import KIUNET, UIUNET

REVISION = "3217e49c32523fd1995b6ceeed328384f9611ef2"  # nnunet-archs 0.1.0
VERSION = "0.1.0"
PACKAGE = "nnunet_archs_0_1_0"
MODULES = ("config", "blocks", "kiunet", "uiunet")
REPOSITORY = Path(__file__).resolve().parent.parent


class PreviousVersionUnavailable(RuntimeError):
    pass


def previous_class_path(class_path: str) -> str:
    """The import path of ``class_path``'s network as of :data:`REVISION` (imported on first use), for nnU-Net's
    ``get_network_from_plans``."""
    previous = previous_classes()[class_path]
    return f"{previous.__module__}.{previous.__name__}"


@lru_cache(maxsize=None)
def previous_classes(revision: str = REVISION) -> Dict[str, type]:
    """``{class path today: that class as of revision}`` for KiU-Net and UIU-Net, imported from ``git show``
    under a package name of their own, so both versions live in one process."""
    folder = Path(tempfile.mkdtemp(prefix="nnunet_archs_previous_")) / PACKAGE / "architectures"
    folder.mkdir(parents=True)
    (folder.parent / "__init__.py").write_text("")
    (folder / "__init__.py").write_text("")
    for module in MODULES:
        try:
            source = subprocess.run(["git", "show", f"{revision}:nnunet_archs/architectures/{module}.py"],
                                    cwd=REPOSITORY, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as error:
            raise PreviousVersionUnavailable(f"cannot read revision {revision} from git in {REPOSITORY}: "
                                             f"{getattr(error, 'stderr', error)}") from error
        (folder / f"{module}.py").write_text(source.replace("nnunet_archs.architectures", f"{PACKAGE}.architectures"))
    sys.path.insert(0, str(folder.parent.parent))
    kiunet = importlib.import_module(f"{PACKAGE}.architectures.kiunet")
    uiunet = importlib.import_module(f"{PACKAGE}.architectures.uiunet")
    return {KIUNET: kiunet.DynamicKiUNet, UIUNET: uiunet.DynamicUIUNet3D}
