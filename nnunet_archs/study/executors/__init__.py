"""The executors a study can run on, registered in one table: the command line's ``--executor`` choices read it,
and the driver and scheduler ask the chosen backend instead of branching on its name. A new backend (LSF, PBS, a
cloud queue: submitit or its plugins cover them) is one module with an ``Executor`` subclass, added here."""
from __future__ import annotations

from typing import Dict, Type

from nnunet_archs.errors import UserError
from nnunet_archs.study.executors.base import Executor
from nnunet_archs.study.executors.local import LocalExecutor
from nnunet_archs.study.executors.slurm import SlurmExecutor

EXECUTORS: Dict[str, Type[Executor]] = {backend.name: backend for backend in (LocalExecutor, SlurmExecutor)}
DEFAULT_EXECUTOR = LocalExecutor.name


def executor_class(name: str) -> Type[Executor]:
    if name not in EXECUTORS:
        raise UserError(f"--executor must be one of {list(EXECUTORS)}, got {name!r}")
    return EXECUTORS[name]
