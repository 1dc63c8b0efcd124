"""One GPU per local worker: the GPUs this machine shows, and which worker of a local cluster holds which.

A run's NVML energy is the whole board's, so it is that run's own only when no other run computes on the
same GPU at the time. A LocalCluster of N workers on one GPU would put N runs on it at once, each metering
the others' work too. The runner therefore starts a local cluster whose first workers hold one GPU each
(``CUDA_VISIBLE_DEVICES`` set to it, a Dask resource ``GPU=1``); the workers beyond the GPUs see none and
take only the CPU runs. Runs on ``cuda`` ask for ``GPU=1``, so Dask sends them to a GPU worker.
"""

from __future__ import annotations

import os
from typing import Any


def visible_gpus(nvml: Any = None) -> list[str]:
    """The GPUs this process may use, as CUDA names them: the entries of ``CUDA_VISIBLE_DEVICES`` where it is
    set, up to the first one CUDA would not accept (an index not on this machine, or neither an index nor a
    ``GPU-``/``MIG-`` UUID: CUDA then hides it and every later one), else every device NVML counts; [] without
    NVML or an NVIDIA driver. ``nvml`` is the pynvml module (injected by tests)."""
    count = _nvml_count(nvml)
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(count or 0)]
    out = []
    for entry in (e.strip() for e in listed.split(",")):
        index_ok = entry.isdigit() and (count is None or int(entry) < count)
        if not (index_ok or entry.startswith(("GPU-", "MIG-"))):
            break
        out.append(entry)
    return out


def _nvml_count(nvml: Any = None) -> int | None:
    """How many GPUs NVML sees; None without NVML or a driver."""
    try:
        if nvml is None:
            import pynvml as nvml  # nvidia-ml-py
        nvml.nvmlInit()
    except Exception:
        return None
    try:
        return int(nvml.nvmlDeviceGetCount())
    except Exception:
        return None
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def worker_env(gpu: str | None) -> dict[str, str]:
    """The environment a local worker starts with: only its GPU visible (none for a CPU worker), numbered
    in PCI bus order as NVML numbers them (CUDA's default order, fastest first, may differ), unless the
    user chose an order."""
    return {"CUDA_VISIBLE_DEVICES": gpu or "", "CUDA_DEVICE_ORDER": os.environ.get("CUDA_DEVICE_ORDER", "PCI_BUS_ID")}


def worker_gpus(workers: int, gpus: list[str]) -> list[str | None]:
    """The GPU each of ``workers`` local workers holds: one each while they last, None for the rest."""
    return [gpus[i] if i < len(gpus) else None for i in range(workers)]


def describe(held: list[str | None]) -> str:
    """One line for the grid's log: which worker holds which GPU, and what the others do."""
    gpus = [g for g in held if g is not None]
    line = f"{len(gpus)} of {len(held)} worker(s) hold one GPU each ({', '.join(gpus)}): one cuda run per GPU at a time"
    if len(held) > len(gpus):
        line += f"; the other {len(held) - len(gpus)} take the CPU runs only"
    return line
