"""GPU memory as papers report it, checked without a GPU: the CUDA context from a stand-in for NVML with known
answers, the reasons it stays unmeasured, and the nvidia-smi equivalent."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

from nnunet_archs.training import gpu_memory

GB = 2 ** 30


class FakeNVML:
    """pynvml's calls that cuda_context makes, answering with this process at ``used`` bytes."""

    def __init__(self, used: int, pid: int = os.getpid(), fail: bool = False):
        self.used, self.pid, self.fail = used, pid, fail

    def nvmlInit(self):
        if self.fail:
            raise RuntimeError("Driver Not Loaded")

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return uuid

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=self.pid + 1, usedGpuMemory=GB), SimpleNamespace(pid=self.pid,
                                                                                     usedGpuMemory=self.used)]


@pytest.fixture
def on_a_gpu(monkeypatch):
    """torch's view of a device holding 22.6 GB reserved, as in nnU-Net#2996 (ResEnc L)."""
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: int(22.6 * GB))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(uuid="1234-abcd"))
    return torch.device("cuda", 0)


def test_the_context_is_nvmls_use_minus_the_reservation(on_a_gpu):
    record = gpu_memory.cuda_context(on_a_gpu, FakeNVML(int(23.5 * GB)))
    assert record["nvml_process_bytes"] == int(23.5 * GB) and record["nvml_note"] is None
    assert record["cuda_context_bytes"] == int(23.5 * GB) - int(22.6 * GB)
    assert gpu_memory.nvidia_smi_equivalent(int(22.6 * GB), record["cuda_context_bytes"]) == int(23.5 * GB)


@pytest.mark.parametrize("nvml, reason", [(FakeNVML(GB, fail=True), "NVML: RuntimeError: Driver Not Loaded"),
                                          (FakeNVML(GB, pid=1), "not in NVML's list")])
def test_an_unmeasured_context_says_why(on_a_gpu, nvml, reason):
    record = gpu_memory.cuda_context(on_a_gpu, nvml)
    assert record["cuda_context_bytes"] is None and reason in record["nvml_note"]
    assert gpu_memory.nvidia_smi_equivalent(GB, record["cuda_context_bytes"]) is None


def test_without_nvidia_ml_py_the_note_says_how_to_install_it(on_a_gpu, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)  # import pynvml then raises ImportError
    assert gpu_memory.cuda_context(on_a_gpu)["nvml_note"] == gpu_memory.NVML_MISSING


def test_a_cpu_measures_nothing():
    cpu = torch.device("cpu")
    assert set(gpu_memory.allocator_peaks(cpu).values()) == {None}
    assert set(gpu_memory.cuda_context(cpu, FakeNVML(GB)).values()) == {None}
