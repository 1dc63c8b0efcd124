"""Which device a run uses: the one reading of device names and the one check that it is there.

Run parameters, training and the meter all name devices the same way (``cpu``, ``cuda``, ``cuda:N``,
``mps``, and ``auto`` where the machine decides); torch is imported only to ask what is available.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .errors import PeprError

if TYPE_CHECKING:
    import torch

_DEVICE = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


def parse_device(device: Any, *, auto: bool = False) -> tuple[str, int | None] | None:
    """``(kind, index)`` of a device name (``cpu``, ``cuda``, ``cuda:N``, ``mps``; ``auto`` when allowed),
    or None when it is not one: the one reading of device names (params, training, the meter)."""
    name = device.strip().lower() if isinstance(device, str) else None
    if name == "auto" and auto:
        return "auto", None
    m = _DEVICE.fullmatch(name) if name is not None else None
    if m is None or (m[2] is not None and m[1] != "cuda"):
        return None
    return m[1], int(m[2]) if m[2] is not None else None


def check_device(device: Any) -> str:
    """Normalise a device name; accepted: cpu, cuda, cuda:N, mps, auto. Availability is checked later."""
    if parse_device(device, auto=True) is None:
        raise PeprError(f"device must be one of cpu, cuda, cuda:N, mps, auto; got {device!r}")
    return device.strip().lower()


def resolve_device(device: str) -> torch.device:
    """The torch device to run on; ``auto`` picks CUDA, then MPS, then CPU. Unavailable -> PeprError."""
    import torch

    name = check_device(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PeprError(f"device {device!r} asked for, but CUDA is not available on this machine; "
                            "use device='cpu' or 'auto'")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise PeprError(f"device {device!r} asked for, but this machine has {torch.cuda.device_count()} "
                            f"CUDA device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return torch.device(name)
    if name == "mps" and not _mps_available():
        raise PeprError("device 'mps' asked for, but Apple MPS is not available; use device='cpu' or 'auto'")
    return torch.device(name)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
