"""What runs inside every job process, whichever executor started it: the command, its log, its markers.

The job writes its own markers, atomically, so the driver only reads files: ``running.json`` when it starts,
``done.json`` when the command succeeded (the done-marker ``--resume`` trusts), ``failed.json`` otherwise
(``killed`` when a signal ended it, e.g. a wall-time limit). A killed driver therefore loses nothing, and
concurrent jobs never write the same file. Standard library only: executors unpickle this in every job.
"""
from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

from nnunet_archs.files import write_json_atomically
from nnunet_archs.training.environment import thread_variables

DONE, FAILED, RUNNING = "done.json", "failed.json", "running.json"


def read_marker(job_dir: Path, name: str) -> Optional[dict]:
    try:
        return json.loads((job_dir / name).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def allocated_threads() -> Dict[str, str]:
    """Inside a SLURM allocation, thread counts for the CPUs SLURM gave the job: nnU-Net on CPU takes every core
    of the node otherwise, and jobs sharing a node then oversubscribe it (spinning OpenMP threads made each of two
    CPU trainings on a 2-core node 3-5x slower). Variables the job sets itself win."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE")
    return thread_variables(cpus) if cpus else {}


def run_job(job_dir: str, command: List[str], env: Dict[str, str], attempt: int) -> dict:
    """Run ``command`` with ``env`` added to the environment, append its output to ``log.txt`` and leave the
    done or failed marker. Returns the marker's content."""
    folder = Path(job_dir)
    host = socket.gethostname()
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    cluster_id = f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array else os.environ.get("SLURM_JOB_ID")
    write_json_atomically(folder / RUNNING, {"pid": os.getpid(), "host": host, "attempt": attempt,
                                             "slurm_job_id": cluster_id, "started": time.time()})
    start = time.time()
    with open(folder / "log.txt", "a") as log:
        log.write(f"=== attempt {attempt}, {time.strftime('%Y-%m-%d %H:%M:%S')} on {host}"
                  f"{f', SLURM job {cluster_id}' if cluster_id else ''}\n$ {shlex.join(command)}\n")
        log.flush()
        returncode = subprocess.run(command, env={**os.environ, **allocated_threads(), **env}, stdout=log,
                                    stderr=subprocess.STDOUT).returncode
        log.write(f"=== exit status {returncode} after {time.time() - start:.1f} s\n")
    result = {"returncode": returncode, "seconds": round(time.time() - start, 1), "attempt": attempt, "host": host,
              "slurm_job_id": cluster_id, "killed": returncode < 0, "log": str(folder / "log.txt")}
    write_json_atomically(folder / (DONE if returncode == 0 else FAILED), result)
    return result
