"""Measure a block of work: wall time, energy per device (with the method named), CO2, peak memory.

Usage::

    with Meter("cuda", country_iso_code="DNK") as meter:
        train(...)
    meter.result  # {"time_s": ..., "energy_kwh": ..., "energy_method": "gpu=nvml+cpu=rapl+ram=...", ...}

How each number is obtained (the method is written next to it in ``result``):

- GPU (``device="cuda[:N]"``): NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
  millijoules since the driver loaded; Volta and newer), read at entry and exit: "nvml". Where the
  counter is not supported, NVML power readings integrated over time (trapezoids, one reading per
  ``sample_interval_s``): "nvml-power-sampling". Where NVML cannot be used at all the GPU energy is
  ``None`` and the method says "unmeasured" (the total then covers CPU and RAM only). NVML measures the
  whole board, so one run per GPU is assumed, and checked: when NVML lists other compute processes on the
  GPU during the block, ``warnings`` says "GPU shared" (their energy is in the figure too).
- CPU: Intel/AMD RAPL package counters (``/sys/class/powercap/intel-rapl:N/energy_uj``, microjoules,
  wrapping at ``max_energy_range_uj``; sampled every ``sample_interval_s`` so a wrap is never missed):
  "rapl". RAPL measures the whole package, including other processes; with several runs on one machine
  pass ``cpu_method="estimate"``. RAPL is root-only on most kernels since 2020 and absent in most
  containers; then the estimate "estimate:cpu-tdp" = CPU time of this process and its children
  (user + system, all threads) x ``cpu_watts_per_core``. The default, ``DEFAULT_CPU_WATTS_PER_CORE`` =
  10 W per busy core, is a TDP-per-core between server parts (about 4-8 W per core, e.g. EPYC 7763
  280 W / 64 cores) and desktop/laptop parts (about 10-15 W per core), the Green Algorithms method
  (Lannelongue et al. 2021) with the measured core time in place of an assumed usage factor. Set your
  own with ``cpu_watts_per_core=`` or the ``PEPR_CPU_WATTS_PER_CORE`` environment variable.
- RAM: RAPL's DRAM zone when RAPL is used and the zone is readable ("rapl-dram"); otherwise
  "estimate:ram-rss" = the time integral of this process tree's resident memory (GB) x
  ``ram_watts_per_gb`` (default 0.375 W/GB, codecarbon's 3 W per 8 GB). Attributing by resident memory,
  not the machine's installed RAM, charges a run only for the memory it holds.
- ``energy_kwh`` = (cpu + gpu + ram) x ``pue`` (default 1.0: the energy at the plug of the computer;
  pass your data centre's PUE to include cooling; carbontracker's hidden 1.58 default is not copied).
- CO2: ``co2_g`` = ``energy_kwh`` x carbon intensity, from an offline table by ISO-3 country code
  (:mod:`pepr_utils.meter.carbon`) or an explicit ``carbon_intensity_g_per_kwh``. Nothing touches the network.
- Peak memory: on CUDA ``torch.cuda.max_memory_reserved`` after a reset at entry ("cuda_max_reserved");
  otherwise the peak resident set size of this process plus its children ("cpu_peak_rss"): sampled
  every ``sample_interval_s``, and for this process also ``getrusage``'s ``ru_maxrss`` when it rose
  during the block (it is a lifetime maximum, so it only counts when the block set a new one). GB are
  10**9 bytes.

Why our own counters and not codecarbon's ``OfflineEmissionsTracker`` (installed; we reuse only its
carbon-intensity data, frozen into :mod:`pepr_utils.meter.carbon`). Tried here (codecarbon 3.3.2, a 2-vCPU
container without RAPL): it falls back to a constant CPU power (8 W for "AMD EPYC") and, in its default
"machine" tracking mode, charges the block for the machine's whole RAM (20 W here, whoever uses it), so
several runs sharing a machine would each be charged for all of it; its process mode instead samples
psutil CPU load from a scheduler thread. It also reads ``.codecarbon.config`` files from the working and
home folders (hidden settings); with ``allow_multiple_runs=False`` it installs SIGINT/SIGTERM handlers
and a ``/tmp/.codecarbon.lock`` that a killed run leaves behind; and its import pulls in requests, pandas,
rich and pydantic. What it measures well (NVML energy counters, RAPL) is a few lines of reading counters,
done here with two reads per block (NVML) plus one cheap read per ``sample_interval_s`` (RAPL, resident
memory), so the overhead is negligible (``benchmarks/bench_meter.py`` prints it). zeus measures NVIDIA
GPUs well but needs the same CPU fallback; carbontracker defaults to PUE 1.58 and extrapolates from the
first epoch.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import resource  # POSIX only; without it the CPU peak comes from sampling alone
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

from ..errors import PeprError
from .carbon import carbon_intensity
from .energy import (
    BYTES_PER_GB,
    RAPL_ROOT,
    CpuTimeEstimate,
    NvmlEnergy,
    NvmlSharing,
    RamRssEstimate,
    RaplCounter,
    _nvml_shutdown,
    _process_cpu_s,
    _Rss,
    _Sampler,
    nvml_source,
    rapl_zones,
)

DEFAULT_CPU_WATTS_PER_CORE = 10.0
DEFAULT_RAM_WATTS_PER_GB = 0.375
J_PER_KWH = 3.6e6
CPU_METHODS = ("auto", "rapl", "estimate")


# ----------------------------------------------------------------------------------------------- Meter


# --------------------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class Energy:
    """One component's energy (kWh; None when it could not be measured) and how it was obtained."""

    kwh: float | None
    method: str  # "rapl", "rapl-dram", "nvml", "nvml-power-sampling", "estimate:...", "none", "unmeasured"

    @property
    def estimated(self) -> bool:
        return self.method.startswith("estimate")


def energy_components(energy_method: str) -> dict[str, str]:
    """``{component: "metered" | "estimated" | "not measured"}`` of a record's ``energy_method``
    (``"gpu=nvml+cpu=estimate:cpu-tdp"``, as :attr:`Measurement.energy_method` writes it; a bare ``"nvml"`` is
    the component ``"energy"``), so a report can say which part was metered and which estimated. A component
    whose method is ``none`` or ``unmeasured`` (NVML failed: its energy is left out) was not measured."""
    def state(method: str) -> str:
        if Energy(0.0, method).estimated:
            return "estimated"
        return "not measured" if method in ("none", "unmeasured") else "metered"

    parts = (part.rpartition("=") for part in str(energy_method).split("+"))  # "cpu=x" or just "x"
    return {(name or "energy"): state(method) for name, _, method in parts}


def estimated_method(energy_method: str) -> bool:
    """Whether a record's ``energy_method`` has an estimated component: :meth:`Measurement.estimated` for a
    run that is only a record now."""
    return "estimated" in energy_components(energy_method).values()


@dataclass(frozen=True)
class Measurement:
    """What a :class:`Meter` measured over its block; ``as_dict()`` is the run record's ``resources`` part.

    ``cpu``, ``gpu`` and ``ram`` are the components; :meth:`estimated` says whether any was estimated
    rather than read from a counter, so no caller parses ``energy_method``.
    """

    time_s: float
    cpu: Energy
    gpu: Energy
    ram: Energy
    pue: float
    carbon_intensity_g_per_kwh: float
    country_iso_code: str | None
    peak_mem_gb: float | None
    mem_kind: str
    cpu_time_s: float
    device: str
    warnings: str | None = None

    def components(self) -> dict[str, Energy]:
        """The components in the order ``energy_method`` names them (the GPU first when one was used)."""
        order = ("cpu", "ram") if self.gpu.method == "none" else ("gpu", "cpu", "ram")
        return {c: getattr(self, c) for c in order}

    def estimated(self) -> bool:
        return any(e.estimated for e in self.components().values())

    @property
    def energy_kwh(self) -> float:
        return sum(e.kwh for e in (self.cpu, self.gpu, self.ram) if e.kwh is not None) * self.pue

    @property
    def co2_g(self) -> float:
        return self.energy_kwh * self.carbon_intensity_g_per_kwh

    @property
    def energy_method(self) -> str:
        return "+".join(f"{c}={e.method}" for c, e in self.components().items())

    def as_dict(self) -> dict[str, Any]:
        return {"time_s": self.time_s, "energy_kwh": self.energy_kwh, "energy_method": self.energy_method,
                **{f"{c}_energy_kwh": getattr(self, c).kwh for c in ("cpu", "gpu", "ram")},
                "co2_g": self.co2_g, "carbon_intensity_g_per_kwh": self.carbon_intensity_g_per_kwh,
                "country_iso_code": self.country_iso_code, "peak_mem_gb": self.peak_mem_gb,
                "mem_kind": self.mem_kind, "pue": self.pue, "cpu_time_s": self.cpu_time_s,
                **{f"{c}_energy_method": getattr(self, c).method for c in ("cpu", "gpu", "ram")},
                "device": self.device, "warnings": self.warnings}


def _parse_device(device: Any) -> tuple[str, int | None]:
    from ..devices import parse_device

    parsed = parse_device(str(device))
    if parsed is None:
        raise PeprError(
            f"device {device!r} is not supported by the meter: use 'cpu', 'cuda', 'cuda:N' or 'mps'"
        )
    return parsed


def _positive(name: str, value: Any, minimum: float = 0.0, strict: bool = True) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    ok = number > minimum if strict else number >= minimum
    if isinstance(value, bool) or not ok or number == float("inf"):
        relation = ">" if strict else ">="
        raise PeprError(f"{name}={value!r} is invalid: expected a finite number {relation} {minimum:g}")
    return number


def _maxrss_bytes() -> int:
    """This process's lifetime peak RSS (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    if resource is None:
        return 0
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value) if sys.platform == "darwin" else int(value) * 1024


class Meter:
    """Context manager measuring the work inside it; ``.result`` holds the figures after exit.

    Arguments: ``device`` ("cpu", "cuda", "cuda:N", "mps"; a torch.device works too);
    ``country_iso_code`` (ISO-3, looked up offline) or ``carbon_intensity_g_per_kwh`` (wins when
    given); ``pue`` (>= 1, multiplies the energy); ``cpu_watts_per_core`` and ``ram_watts_per_gb`` for
    the estimates; ``cpu_method`` ("auto": RAPL when readable else estimate, "rapl", "estimate");
    ``sample_interval_s`` for the sampler thread; ``rapl_root`` and ``nvml`` to point the meter at other
    counters (tests). Invalid arguments and unknown countries raise :class:`PeprError` at construction,
    before any work is done.

    ``result`` keys: time_s, energy_kwh, energy_method, cpu_energy_kwh, gpu_energy_kwh, ram_energy_kwh,
    co2_g, carbon_intensity_g_per_kwh, country_iso_code, peak_mem_gb, mem_kind, plus pue, cpu_time_s,
    cpu_energy_method, gpu_energy_method, ram_energy_method, device and warnings (str or None).
    ``gpu_energy_kwh`` is 0.0 on a CPU and None when a GPU was used but could not be measured.
    """

    def __init__(
        self,
        device: Any = "cpu",
        *,
        country_iso_code: str | None = "DNK",
        carbon_intensity_g_per_kwh: float | None = None,
        pue: float = 1.0,
        cpu_watts_per_core: float | None = None,
        ram_watts_per_gb: float = DEFAULT_RAM_WATTS_PER_GB,
        cpu_method: str = "auto",
        sample_interval_s: float = 1.0,
        rapl_root: str | os.PathLike = RAPL_ROOT,
        nvml: Any = None,
    ):
        self.device_kind, self.device_index = _parse_device(device)
        self.device = str(device)
        if carbon_intensity_g_per_kwh is not None:
            self.carbon_intensity_g_per_kwh = _positive(
                "carbon_intensity_g_per_kwh", carbon_intensity_g_per_kwh, strict=False
            )
            self.country_iso_code = str(country_iso_code).strip().upper() if country_iso_code else None
        else:
            if not country_iso_code:
                raise PeprError(
                    "no carbon intensity: pass country_iso_code=<ISO-3 code, e.g. 'DNK'> or "
                    "carbon_intensity_g_per_kwh=<grams CO2 per kWh>"
                )
            self.carbon_intensity_g_per_kwh = carbon_intensity(country_iso_code)
            self.country_iso_code = str(country_iso_code).strip().upper()
        self.pue = _positive("pue", pue, minimum=1.0, strict=False)
        if cpu_watts_per_core is None:
            cpu_watts_per_core = os.environ.get("PEPR_CPU_WATTS_PER_CORE") or DEFAULT_CPU_WATTS_PER_CORE
        self.cpu_watts_per_core = _positive("cpu_watts_per_core", cpu_watts_per_core)
        self.ram_watts_per_gb = _positive("ram_watts_per_gb", ram_watts_per_gb, strict=False)
        if cpu_method not in CPU_METHODS:
            raise PeprError(f"cpu_method={cpu_method!r} is invalid: expected one of {', '.join(CPU_METHODS)}")
        self.cpu_method = cpu_method
        self.sample_interval_s = _positive("sample_interval_s", sample_interval_s)
        self.rapl_root = Path(rapl_root)
        self._nvml_module = nvml
        self._cuda = self._cuda_index() if self.device_kind == "cuda" else None
        self.result: dict[str, Any] | None = None
        self.measurement: Measurement | None = None
        self._sampler: _Sampler | None = None

    # -- setup -------------------------------------------------------------------------------------
    def _cuda_index(self) -> int:
        import torch

        if not torch.cuda.is_available():
            raise PeprError(f"device {self.device!r} asked for, but CUDA is not available: use device='cpu'")
        return self.device_index if self.device_index is not None else torch.cuda.current_device()

    def _cuda_sync(self) -> None:
        if self.device_kind == "cuda":
            import torch

            torch.cuda.synchronize(self._cuda)

    def _build_sources(self) -> list[Any]:
        notes: list[str] = []
        sources: list[Any] = []
        self._gpu_unmeasured = False
        self._nvml_in_use = None
        self._sharing: NvmlSharing | None = None
        zones = rapl_zones(self.rapl_root) if self.cpu_method != "estimate" else {"cpu": [], "ram": []}
        if zones["cpu"]:
            sources.append(RaplCounter("cpu", zones["cpu"]))
        elif self.cpu_method == "rapl":
            raise PeprError(
                f"cpu_method='rapl' but no readable RAPL counter under {self.rapl_root}: "
                "use cpu_method='auto' or 'estimate'"
            )
        else:
            sources.append(CpuTimeEstimate(self.cpu_watts_per_core))
        if zones["cpu"] and zones["ram"]:
            sources.append(RaplCounter("ram", zones["ram"], method="rapl-dram"))
        else:
            sources.append(RamRssEstimate(self._rss, self.ram_watts_per_gb))
        if self.device_kind == "cuda":
            gpu, why = nvml_source(self._cuda, self._nvml_module)
            if gpu is None:
                self._gpu_unmeasured = True
                notes.append(why or "GPU energy unmeasured")
            else:
                self._nvml_in_use = gpu.nvml
                self._sharing = NvmlSharing(gpu.nvml, gpu.handle)
                sources.insert(0, gpu)
        elif self.device_kind == "mps":
            self._gpu_unmeasured = True
            notes.append("no energy counter for MPS; GPU energy unmeasured")
        self._notes = notes
        return sources

    # -- context manager ---------------------------------------------------------------------------
    def __enter__(self) -> Meter:
        self.result = self.measurement = None
        if self.device_kind == "cuda":
            import torch

            torch.cuda.synchronize(self._cuda)
            torch.cuda.reset_peak_memory_stats(self._cuda)
        self._rss = _Rss()
        self._sources = self._build_sources()
        self._cpu_time_start = _process_cpu_s()
        self._maxrss_start = _maxrss_bytes()
        self._rss.start()
        for source in self._sources:
            source.start()
        self._t0 = time.perf_counter()
        readers = [self._rss.sample] + [s.sample for s in self._sources if not isinstance(s, NvmlEnergy)]
        if self._sharing is not None:
            self._sharing.sample()
            readers.append(self._sharing.sample)
        self._sampler = _Sampler(self.sample_interval_s, readers)
        self._sampler.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        notes = list(self._notes)
        try:
            self._cuda_sync()
        except Exception as err:
            notes.append(f"cuda synchronize failed ({type(err).__name__})")
        time_s = time.perf_counter() - self._t0
        if self._sampler is not None:
            self._sampler.halt()
            notes.extend(f"sampler: {e}" for e in self._sampler.errors)
        try:
            self._rss.sample()
        except Exception as err:
            notes.append(f"rss: {type(err).__name__}")
        joules: dict[str, float | None] = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
        methods: dict[str, str] = {}
        for source in self._sources:
            try:
                value = source.stop()
            except Exception as err:  # a counter that vanished mid-run: keep what was measured
                value = source.partial()
                notes.append(f"{source.component} {source.method} incomplete ({type(err).__name__}: {err})")
            joules[source.component] = value
            methods[source.component] = source.method
        if self._sharing is not None:
            self._sharing.sample()
            if self._sharing.others:
                notes.append(f"GPU shared: up to {self._sharing.others} other process(es) computed on cuda:{self._cuda} "
                             "during the block; NVML measures the whole GPU, so the GPU energy includes theirs")
        if self._nvml_in_use is not None:
            _nvml_shutdown(self._nvml_in_use)
        if self.device_kind == "cpu":
            methods["gpu"] = "none"
        elif self._gpu_unmeasured:
            joules["gpu"] = None
            methods["gpu"] = "unmeasured"
        peak_gb, mem_kind = self._peak_memory(notes)
        energy = {c: Energy(joules[c] / J_PER_KWH if joules[c] is not None else None, methods[c])
                  for c in ("cpu", "gpu", "ram")}
        self.measurement = Measurement(
            time_s=time_s, cpu=energy["cpu"], gpu=energy["gpu"], ram=energy["ram"], pue=self.pue,
            carbon_intensity_g_per_kwh=self.carbon_intensity_g_per_kwh, country_iso_code=self.country_iso_code,
            peak_mem_gb=peak_gb, mem_kind=mem_kind, cpu_time_s=max(0.0, _process_cpu_s() - self._cpu_time_start),
            device=self.device, warnings="; ".join(notes) or None)
        self.result = self.measurement.as_dict()
        return False

    def _peak_memory(self, notes: list[str]) -> tuple[float | None, str]:
        if self.device_kind == "cuda":
            try:
                import torch

                return torch.cuda.max_memory_reserved(self._cuda) / BYTES_PER_GB, "cuda_max_reserved"
            except Exception as err:
                notes.append(f"cuda memory unreadable ({type(err).__name__})")
                return None, "cuda_max_reserved"
        peak = self._rss.peak_bytes
        maxrss_end = _maxrss_bytes()
        if maxrss_end > self._maxrss_start:  # a new lifetime peak was set inside the block
            peak = max(peak, maxrss_end)
        return peak / BYTES_PER_GB, "cpu_peak_rss"
