"""Jobs as processes on this machine (submitit's local backend): at most ``max_parallel`` at once, each given its
GPUs and CPU threads by the driver."""
from __future__ import annotations

from pathlib import Path
from typing import List

from nnunet_archs.study.executors.base import Executor

TIMEOUT_MIN = 60 * 24 * 365  # submitit's local default is 2 minutes; a training takes days


class LocalExecutor(Executor):
    name = cluster = "local"
    assigns_devices = True

    def parameters(self, gpus: int) -> dict:
        # submitit's local backend gives every job the same first GPUs; the scheduler assigns them instead
        return {"timeout_min": TIMEOUT_MIN}

    def free_slots(self, ready: int, running: int) -> int:
        return self.max_parallel - running

    def alive(self, job_id: str) -> bool:
        handle = self.handles.get(job_id)
        if handle is not None:
            return not handle.done()  # polls, and so reaps, our own child
        return self.job_alive(job_id, self.warnings)

    @classmethod
    def job_alive(cls, job_id: str, warnings: List[str]) -> bool:
        """A live, non-zombie process (a job started by an earlier driver that was killed)."""
        try:
            state = Path(f"/proc/{int(job_id)}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError, ProcessLookupError):
            return False
        return state not in ("Z", "X")
