"""GPU memory the three ways it is quoted: what PyTorch's allocator handed out (``max_memory_allocated``, what
nnU-Net logs), what its caching allocator holds from the driver (``max_memory_reserved``, always at least that),
and what ``nvidia-smi`` shows, which papers quote (nnU-Net Revisited: "as reported by nvidia-smi"): the reserved
memory plus the CUDA context of the process (kernels, cuBLAS/cuDNN handles), which PyTorch does not see.

NVML (``nvidia-ml-py``, optional: ``pip install nnunet-archs[gpu]``) reports a process's current use, not a peak,
so the context is measured once, as NVML's current use minus PyTorch's current reservation, and the
nvidia-smi equivalent of a training is its reserved peak plus that context (MIC-DKFZ/nnUNet#2996: ResEnc L
21.5 GB allocated, 22.6 GB reserved, 23.5 GB in nvidia-smi). Nothing is ever estimated in place of a measurement:
on a CPU every field is None, and without NVML the context is None with the reason.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Union

import torch

NVML_MISSING = "nvidia-ml-py is not installed (pip install nnunet-archs[gpu])"


def allocator_peaks(device: torch.device) -> Dict[str, Optional[int]]:
    """The allocator's peaks since the last ``torch.cuda.reset_peak_memory_stats``; None off CUDA."""
    if device.type != "cuda":
        return {"max_memory_allocated_bytes": None, "max_memory_reserved_bytes": None}
    return {"max_memory_allocated_bytes": int(torch.cuda.max_memory_allocated(device)),
            "max_memory_reserved_bytes": int(torch.cuda.max_memory_reserved(device))}


def _nvml_handle(nvml, device: torch.device):
    """The NVML handle of the torch device (by UUID where torch reports it: CUDA_VISIBLE_DEVICES renumbers)."""
    uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
    if uuid is not None:
        text = str(uuid)
        return nvml.nvmlDeviceGetHandleByUUID(text if text.startswith("GPU-") else f"GPU-{text}")
    return nvml.nvmlDeviceGetHandleByIndex(device.index or 0)


def cuda_context(device: torch.device, nvml=None) -> Dict[str, Union[int, str, None]]:
    """NVML's current use by this process, and the CUDA context: that use minus PyTorch's current reservation.
    ``nvml``: the ``pynvml`` module (imported here when None)."""
    record: Dict[str, Union[int, str, None]] = {"nvml_process_bytes": None, "cuda_context_bytes": None,
                                                "nvml_note": None}
    if device.type != "cuda":
        return record
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            record["nvml_note"] = NVML_MISSING
            return record
    try:
        nvml.nvmlInit()
        processes = nvml.nvmlDeviceGetComputeRunningProcesses(_nvml_handle(nvml, device))
        reserved = int(torch.cuda.memory_reserved(device))
    except Exception as error:  # NVML fails in many ways (no driver access, containers): say which, measure nothing
        record["nvml_note"] = f"NVML: {type(error).__name__}: {error}"
        return record
    used = next((p.usedGpuMemory for p in processes if p.pid == os.getpid()), None)
    if used is None:
        record["nvml_note"] = "this process is not in NVML's list (a container's own process ids?)"
        return record
    record.update(nvml_process_bytes=int(used), cuda_context_bytes=int(used) - reserved)
    return record


def nvidia_smi_equivalent(reserved_peak: Optional[int], context: Optional[int]) -> Optional[int]:
    """What nvidia-smi would have shown at the reserved peak; None unless both were measured."""
    return None if reserved_peak is None or context is None else reserved_peak + context
