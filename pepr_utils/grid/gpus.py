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
    """The GPUs this process may use: the entries of ``CUDA_VISIBLE_DEVICES`` where it is set (indices or
    UUIDs, up to the first invalid one, as CUDA reads it), else every device NVML counts; [] without NVML
    or an NVIDIA driver. ``nvml`` is the pynvml module (injected by tests)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        out = []
        for entry in (e.strip() for e in listed.split(",")):
            if not entry or entry.startswith("-"):
                break  # CUDA ignores this entry and every one after it
            out.append(entry)
        return out
    try:
        if nvml is None:
            import pynvml as nvml  # nvidia-ml-py
        nvml.nvmlInit()
    except Exception:  # no driver, no library: no GPU to pin
        return []
    try:
        return [str(i) for i in range(int(nvml.nvmlDeviceGetCount()))]
    except Exception:
        return []
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


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
