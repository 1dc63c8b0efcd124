"""Energy sources: the counters and estimates a :class:`~pepr_utils.meter.meter.Meter` reads, one component each.

An energy source measures one component ("cpu", "gpu", "ram") between ``start()`` and ``stop()``
(joules); ``sample()`` is called from the sampler thread every ``sample_interval_s`` and must be cheap;
``partial()`` is what was measured so far, when a counter vanishes mid-run. How each one works, and why
these and not a library's, is in :mod:`pepr_utils.meter.meter`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

RAPL_ROOT = Path("/sys/class/powercap")
BYTES_PER_GB = 1e9

@dataclass(frozen=True)
class RaplZone:
    """One readable RAPL counter (a CPU package or a DRAM subzone)."""

    name: str
    energy_path: Path
    max_range_uj: int


def rapl_zones(root: str | os.PathLike = RAPL_ROOT) -> dict[str, list[RaplZone]]:
    """Readable RAPL zones under ``root``: ``{"cpu": [package zones], "ram": [dram subzones]}``.

    Only ``package-*`` top-level zones count as CPU (the ``psys`` platform zone contains them, so adding
    it would count twice); DRAM subzones count as RAM. Unreadable zones (the usual case without root)
    are left out, so an empty list means "use the estimate".
    """
    found: dict[str, list[RaplZone]] = {"cpu": [], "ram": []}
    root = Path(root)
    try:
        entries = sorted(root.glob("intel-rapl:*"))
    except OSError:
        return found
    seen: set[Path] = set()
    for zone_dir in entries:
        try:
            real = zone_dir.resolve()
            if real in seen:
                continue
            seen.add(real)
            name = (zone_dir / "name").read_text().strip()
            energy_path = zone_dir / "energy_uj"
            int(energy_path.read_text())  # readable?
            max_range = int((zone_dir / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            continue
        depth = zone_dir.name.count(":")
        if depth == 1 and name.startswith("package"):
            found["cpu"].append(RaplZone(name, energy_path, max_range))
        elif depth == 2 and name == "dram":
            found["ram"].append(RaplZone(name, energy_path, max_range))
    return found


class RaplCounter:
    """Energy from RAPL counters, summed over zones, with counter wrap handled."""

    def __init__(self, component: str, zones: Sequence[RaplZone], method: str = "rapl"):
        if not zones:
            raise ValueError("RaplCounter needs at least one zone")
        self.component = component
        self.method = method
        self.zones = list(zones)
        self._last: list[int] = []
        self._uj = 0

    @staticmethod
    def _read(zone: RaplZone) -> int:
        return int(zone.energy_path.read_text())

    def start(self) -> None:
        self._uj = 0
        self._last = [self._read(z) for z in self.zones]

    def sample(self) -> None:
        for i, zone in enumerate(self.zones):
            current = self._read(zone)
            delta = current - self._last[i]
            if delta < 0:  # the counter wrapped past max_energy_range_uj back to 0
                delta += zone.max_range_uj
            self._uj += delta
            self._last[i] = current

    def stop(self) -> float:
        self.sample()
        return self._uj / 1e6

    def partial(self) -> float:
        return self._uj / 1e6


def _process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CpuTimeEstimate:
    """CPU energy estimated as CPU time of this process tree x watts per busy core."""

    component = "cpu"
    method = "estimate:cpu-tdp"

    def __init__(self, watts_per_core: float, cpu_seconds: Callable[[], float] = _process_cpu_s):
        self.watts_per_core = watts_per_core
        self._cpu_seconds = cpu_seconds
        self._start = 0.0
        self.cpu_time_s = 0.0

    def start(self) -> None:
        self._start = self._cpu_seconds()
        self.cpu_time_s = 0.0

    def sample(self) -> None:
        pass

    def stop(self) -> float:
        self.cpu_time_s = max(0.0, self._cpu_seconds() - self._start)
        return self.cpu_time_s * self.watts_per_core

    def partial(self) -> float:
        return 0.0


class _Rss:
    """Resident memory of this process plus its children: peak and time integral (byte-seconds).

    The list of children is refreshed every ``children_every`` samples only: scanning /proc for them
    costs milliseconds, reading a known process's memory microseconds.
    """

    def __init__(
        self, pid: int | None = None, children_every: int = 10, clock: Callable[[], float] = time.perf_counter
    ):
        self._proc = psutil.Process(pid)
        self._children: list[psutil.Process] = []
        self._children_every = children_every
        self._clock = clock
        self._n = 0
        self.peak_bytes = 0
        self.byte_seconds = 0.0
        self._last_t = 0.0
        self._last_rss = 0

    def _read(self) -> int:
        if self._n % self._children_every == 0:
            try:
                self._children = self._proc.children(recursive=True)
            except psutil.Error:
                self._children = []
        self._n += 1
        total = self._proc.memory_info().rss
        for child in self._children:
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def start(self) -> None:
        self._n = 0
        self.byte_seconds = 0.0
        self._last_rss = self._read()
        self._last_t = self._clock()
        self.peak_bytes = self._last_rss

    def sample(self) -> None:
        rss = self._read()
        now = self._clock()
        self.byte_seconds += 0.5 * (rss + self._last_rss) * (now - self._last_t)
        self._last_t, self._last_rss = now, rss
        self.peak_bytes = max(self.peak_bytes, rss)


class RamRssEstimate:
    """RAM energy estimated as the integral of resident GB over time x watts per GB."""

    component = "ram"
    method = "estimate:ram-rss"

    def __init__(self, rss: _Rss, watts_per_gb: float):
        self.rss = rss
        self.watts_per_gb = watts_per_gb

    def start(self) -> None:  # the Meter starts and samples the shared _Rss itself
        pass

    def sample(self) -> None:
        pass

    def stop(self) -> float:
        return self.rss.byte_seconds / BYTES_PER_GB * self.watts_per_gb

    def partial(self) -> float:
        return self.stop()


class NvmlEnergy:
    """GPU energy from NVML's total-energy counter (millijoules since the driver loaded)."""

    component = "gpu"
    method = "nvml"

    def __init__(self, nvml: Any, handle: Any):
        self.nvml, self.handle = nvml, handle
        self._start_mj = 0
        self._last_mj = 0

    def _read(self) -> int:
        return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def start(self) -> None:
        self._start_mj = self._last_mj = self._read()

    def sample(self) -> None:
        pass

    def stop(self) -> float:
        self._last_mj = self._read()
        return max(0, self._last_mj - self._start_mj) / 1e3

    def partial(self) -> float:
        return max(0, self._last_mj - self._start_mj) / 1e3


class NvmlPowerSampling:
    """GPU energy integrated from NVML power readings (milliwatts), for boards without the counter."""

    component = "gpu"
    method = "nvml-power-sampling"

    def __init__(self, nvml: Any, handle: Any, clock: Callable[[], float] = time.perf_counter):
        self.nvml, self.handle = nvml, handle
        self._clock = clock
        self._joules = 0.0
        self._last_t = 0.0
        self._last_w = 0.0

    def _read_w(self) -> float:
        return float(self.nvml.nvmlDeviceGetPowerUsage(self.handle)) / 1e3

    def start(self) -> None:
        self._joules = 0.0
        self._last_w = self._read_w()
        self._last_t = self._clock()

    def sample(self) -> None:
        watts = self._read_w()
        now = self._clock()
        self._joules += 0.5 * (watts + self._last_w) * (now - self._last_t)
        self._last_t, self._last_w = now, watts

    def stop(self) -> float:
        self.sample()
        return self._joules

    def partial(self) -> float:
        return self._joules


class NvmlSharing:
    """Whether other processes computed on the GPU during a block: NVML's energy (counter or power) is the
    whole board's, so a run sharing its GPU (several grid workers on one GPU, say) is charged for theirs.

    ``others`` is the most other compute processes seen at once (None where NVML cannot list them). Where
    this process is not in NVML's list (a container's PIDs are not the host's), one of the processes
    listed is taken to be this one, which holds a CUDA context while it is metered.
    """

    def __init__(self, nvml: Any, handle: Any, pid: int | None = None):
        self.nvml, self.handle = nvml, handle
        self.pid = os.getpid() if pid is None else pid
        self.others: int | None = None

    def sample(self) -> None:
        try:
            procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except Exception:  # not supported, or no pynvml function: unknown, not an error
            return
        pids = {int(getattr(p, "pid", 0) or 0) for p in procs or ()}
        n = len(pids - {self.pid}) if self.pid in pids else max(0, len(pids) - 1)
        self.others = n if self.others is None else max(self.others, n)


def _import_nvml() -> Any:
    import pynvml  # nvidia-ml-py

    return pynvml


def _nvml_handle(nvml: Any, cuda_index: int) -> Any:
    """The NVML handle of CUDA device ``cuda_index`` (CUDA and NVML number devices differently).

    Tries, in order: the device's UUID as torch reports it; ``CUDA_VISIBLE_DEVICES`` (indices or
    UUIDs); the bare index.
    """
    try:
        import torch

        uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
        return nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
    except Exception:
        pass
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if cuda_index < len(visible):
        entry = visible[cuda_index]
        if entry.isdigit():
            return nvml.nvmlDeviceGetHandleByIndex(int(entry))
        return nvml.nvmlDeviceGetHandleByUUID(entry)
    return nvml.nvmlDeviceGetHandleByIndex(cuda_index)


def nvml_source(
    cuda_index: int, nvml: Any = None
) -> tuple[NvmlEnergy | NvmlPowerSampling | None, str | None]:
    """The best NVML energy source for a CUDA device, or ``(None, why)`` where NVML cannot be used.

    ``nvml`` is the pynvml module (injected by tests); the caller owns ``nvmlShutdown``.
    """
    try:
        nvml = nvml if nvml is not None else _import_nvml()
        nvml.nvmlInit()
    except Exception as exc:  # no driver, no library: degrade, do not fail the run
        return None, f"NVML unavailable ({type(exc).__name__}: {exc})"
    try:
        handle = _nvml_handle(nvml, cuda_index)
    except Exception as exc:
        _nvml_shutdown(nvml)
        return None, f"no NVML handle for cuda:{cuda_index} ({type(exc).__name__}: {exc})"
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        return NvmlEnergy(nvml, handle), None
    except Exception:
        pass
    try:
        nvml.nvmlDeviceGetPowerUsage(handle)
        return NvmlPowerSampling(nvml, handle), None
    except Exception as exc:
        _nvml_shutdown(nvml)
        return None, f"NVML gives neither energy nor power for cuda:{cuda_index} ({type(exc).__name__})"


def _nvml_shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:
        pass


class _Sampler(threading.Thread):
    """One daemon thread calling cheap readers every ``interval`` seconds until stopped."""

    def __init__(self, interval: float, readers: Sequence[Callable[[], None]]):
        super().__init__(name="pepr-meter", daemon=True)
        self.interval = interval
        self.readers = list(readers)
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            for read in self.readers:
                try:
                    read()
                except Exception as exc:
                    if len(self.errors) < 5:
                        self.errors.append(f"{type(exc).__name__}: {exc}")

    def halt(self) -> None:
        self._halt.set()
        self.join()


