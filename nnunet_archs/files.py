"""Files written whole or not at all, JSON read with a clear error, and what nnU-Net prints sent to a file
(standard library only: every job process imports it).

A killed job, driver or command must never leave half a file that a later ``--resume`` or ``report`` would read:
everything is written to a temporary file beside its target and renamed over it, which readers see as the old
file or the new one.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Type

from nnunet_archs.errors import UserError


def write_text_atomically(path: Path, text: str) -> None:
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_json_atomically(path: Path, data) -> None:
    write_text_atomically(path, json.dumps(data, indent=1))


def read_json(path: Path, what: str, error: Type[UserError] = UserError):
    """The JSON in ``path``; a file that cannot be read or parsed is ``error``, naming ``what`` it should be."""
    try:
        return json.loads(Path(path).read_text())
    except OSError as problem:
        raise error(f"cannot read {what} {path}: {problem.strerror}") from None
    except json.JSONDecodeError as problem:
        raise error(f"{what} {path} is not valid JSON: {problem}") from None


@contextlib.contextmanager
def output_to(log: Path):
    """Everything written to stdout and stderr for the duration, by Python and by the processes nnU-Net starts
    (which inherit the file descriptors), appended to ``log``: nnU-Net prints as it works (plans dictionaries, its
    integrity check's banner), which would bury a command's own output."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "a") as file, contextlib.redirect_stdout(file), contextlib.redirect_stderr(file):
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        try:
            yield
        finally:
            file.flush()
            for descriptor, copy in zip((1, 2), saved):
                os.dup2(copy, descriptor)
                os.close(copy)
