"""The meter: energy with its method on this CPU, CO2 arithmetic, RAPL wrap and NVML via fakes."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pepr_utils.errors import PeprError
from pepr_utils.meter import carbon, meter
from pepr_utils.meter.energy import NvmlEnergy, NvmlPowerSampling, RaplCounter, nvml_source, rapl_zones
from pepr_utils.meter.meter import Meter


def busy(seconds: float) -> int:
    """Burn CPU in this process for about ``seconds`` of CPU time."""
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += sum(range(1000))
    return x


# ------------------------------------------------------------------------------------------- on this CPU


def test_cpu_meter_measures_energy_with_method_named():
    with Meter("cpu", cpu_method="estimate", sample_interval_s=0.05) as m:
        busy(0.3)
        block = bytearray(50_000_000)  # keep 50 MB resident during the block
        time.sleep(0.15)
    del block
    r = m.result
    assert r["energy_kwh"] > 0
    assert r["energy_method"] == "cpu=estimate:cpu-tdp+ram=estimate:ram-rss"
    assert r["cpu_time_s"] >= 0.25
    # CPU energy is CPU time x watts per core, exactly
    assert r["cpu_energy_kwh"] == pytest.approx(
        r["cpu_time_s"] * meter.DEFAULT_CPU_WATTS_PER_CORE / 3.6e6, rel=0.05
    )
    assert r["gpu_energy_kwh"] == 0.0 and r["gpu_energy_method"] == "none"
    assert r["ram_energy_kwh"] > 0
    assert r["energy_kwh"] == pytest.approx(r["cpu_energy_kwh"] + r["ram_energy_kwh"])
    assert r["time_s"] >= 0.15
    assert r["mem_kind"] == "cpu_peak_rss"
    assert r["peak_mem_gb"] > 0.05  # the process holds at least the 50 MB block
    assert r["warnings"] is None


def test_result_is_none_until_exit_and_exceptions_propagate():
    m = Meter()
    assert m.result is None
    with pytest.raises(ZeroDivisionError):
        with m:
            busy(0.02)
            1 / 0  # noqa: B018
    assert m.result is not None and m.result["energy_kwh"] > 0  # still measured


def test_co2_is_energy_times_country_intensity():
    with Meter(country_iso_code="ind") as m:
        busy(0.05)
    r = m.result
    assert r["country_iso_code"] == "IND"
    assert r["carbon_intensity_g_per_kwh"] == carbon.carbon_intensity("IND") == pytest.approx(713.441)
    assert r["co2_g"] == pytest.approx(r["energy_kwh"] * 713.441)


def test_explicit_intensity_wins_and_pue_scales_energy():
    with Meter(country_iso_code=None, carbon_intensity_g_per_kwh=100.0, pue=1.5) as m:
        busy(0.05)
    r = m.result
    assert r["carbon_intensity_g_per_kwh"] == 100.0 and r["country_iso_code"] is None
    assert r["energy_kwh"] == pytest.approx(1.5 * (r["cpu_energy_kwh"] + r["ram_energy_kwh"]))
    assert r["co2_g"] == pytest.approx(r["energy_kwh"] * 100.0)


def test_cpu_watts_per_core_from_environment(monkeypatch):
    monkeypatch.setenv("PEPR_CPU_WATTS_PER_CORE", "4")
    m = Meter()
    assert m.cpu_watts_per_core == 4.0


def test_unknown_country_says_how_to_pass_intensity():
    with pytest.raises(PeprError, match=r"'XYZ'.*carbon_intensity_g_per_kwh"):
        Meter(country_iso_code="XYZ")
    with pytest.raises(PeprError, match="carbon_intensity_g_per_kwh"):
        carbon.carbon_intensity("Denmark")


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"device": "tpu"}, "device"),
        ({"device": "cpu:1"}, "device"),
        ({"pue": 0.9}, "pue"),
        ({"carbon_intensity_g_per_kwh": -1}, "carbon_intensity_g_per_kwh"),
        ({"cpu_watts_per_core": 0}, "cpu_watts_per_core"),
        ({"cpu_method": "guess"}, "cpu_method"),
        ({"sample_interval_s": float("nan")}, "sample_interval_s"),
    ],
)
def test_invalid_arguments_are_one_line_errors(kwargs, word):
    with pytest.raises(PeprError, match=word) as info:
        Meter(**kwargs)
    assert "\n" not in str(info.value)


def test_cuda_without_cuda_is_a_clear_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PeprError, match="CUDA is not available"):
        Meter("cuda:0")


def test_rapl_required_but_absent_is_an_error(tmp_path):
    with pytest.raises(PeprError, match="RAPL"):
        with Meter(cpu_method="rapl", rapl_root=tmp_path):
            pass


def test_no_lock_or_temp_files_left(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    with Meter():
        busy(0.02)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ fake RAPL


def make_rapl(root: Path, zones: dict[str, tuple[str, int, int]]) -> dict[str, Path]:
    """Fake powercap tree: {dir name: (zone name, energy_uj, max_energy_range_uj)}."""
    files = {}
    for dirname, (name, energy, max_range) in zones.items():
        d = root / dirname
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{energy}\n")
        (d / "max_energy_range_uj").write_text(f"{max_range}\n")
        files[dirname] = d / "energy_uj"
    return files


def test_rapl_zones_pick_packages_and_dram_only(tmp_path):
    make_rapl(
        tmp_path,
        {
            "intel-rapl:0": ("package-0", 10, 1000),
            "intel-rapl:1": ("package-1", 20, 1000),
            "intel-rapl:0:0": ("core", 5, 1000),
            "intel-rapl:0:1": ("dram", 7, 1000),
            "intel-rapl:2": ("psys", 99, 1000),
        },
    )
    zones = rapl_zones(tmp_path)
    assert [z.name for z in zones["cpu"]] == ["package-0", "package-1"]
    assert [z.name for z in zones["ram"]] == ["dram"]
    assert rapl_zones(tmp_path / "absent") == {"cpu": [], "ram": []}


def test_rapl_counter_handles_wrap(tmp_path):
    files = make_rapl(tmp_path, {"intel-rapl:0": ("package-0", 900, 1000)})
    counter = RaplCounter("cpu", rapl_zones(tmp_path)["cpu"])
    counter.start()
    files["intel-rapl:0"].write_text("950\n")
    counter.sample()  # +50
    files["intel-rapl:0"].write_text("30\n")  # wrapped: 950 -> 1000 -> 30
    counter.sample()  # +80
    files["intel-rapl:0"].write_text("130\n")
    assert counter.stop() == pytest.approx((50 + 80 + 100) / 1e6)


def test_meter_uses_readable_rapl_for_cpu_and_dram(tmp_path):
    files = make_rapl(
        tmp_path,
        {"intel-rapl:0": ("package-0", 0, 2**32), "intel-rapl:0:0": ("dram", 0, 2**32)},
    )
    with Meter(rapl_root=tmp_path, sample_interval_s=10) as m:
        files["intel-rapl:0"].write_text(f"{int(36e6)}\n")  # 36 J
        files["intel-rapl:0:0"].write_text(f"{int(3.6e6)}\n")  # 3.6 J
    r = m.result
    assert r["energy_method"] == "cpu=rapl+ram=rapl-dram"
    assert r["cpu_energy_kwh"] == pytest.approx(36 / 3.6e6)
    assert r["ram_energy_kwh"] == pytest.approx(3.6 / 3.6e6)
    # asking for the estimate ignores RAPL (several runs sharing one package)
    with Meter(rapl_root=tmp_path, cpu_method="estimate") as m2:
        pass
    assert m2.result["energy_method"].startswith("cpu=estimate:cpu-tdp")


# ------------------------------------------------------------------------------------------ fake NVML


class FakeNvml:
    """The part of pynvml the meter uses; energy in mJ, power in mW."""

    class NVMLError(Exception):
        pass

    def __init__(self, energy_supported=True, power_supported=True, init_fails=False):
        self.energy_mj = 1_000_000
        self.power_mw = 250_000
        self.energy_supported = energy_supported
        self.power_supported = power_supported
        self.init_fails = init_fails
        self.inits = 0
        self.shutdowns = 0
        self.handles: list[tuple[str, object]] = []

    def nvmlInit(self):
        if self.init_fails:
            raise self.NVMLError("Driver Not Loaded")
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self.handles.append(("uuid", uuid))
        return f"handle-{uuid}"

    def nvmlDeviceGetHandleByIndex(self, index):
        self.handles.append(("index", index))
        return f"handle-{index}"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.energy_supported:
            raise self.NVMLError("Not Supported")
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle):
        if not self.power_supported:
            raise self.NVMLError("Not Supported")
        return self.power_mw


def test_nvml_energy_counter_is_preferred(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNvml()
    source, why = nvml_source(1, fake)
    assert isinstance(source, NvmlEnergy) and why is None
    assert fake.handles[-1] == ("index", 1)
    source.start()
    fake.energy_mj += 7_200_000  # 7200 J
    assert source.stop() == pytest.approx(7200.0)


def test_nvml_maps_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    fake = FakeNvml()
    nvml_source(1, fake)
    assert fake.handles[-1] == ("index", 1)
    nvml_source(0, fake)
    assert fake.handles[-1] == ("index", 3)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc")
    nvml_source(0, fake)
    assert fake.handles[-1] == ("uuid", "GPU-abc")


def test_nvml_falls_back_to_power_sampling():
    fake = FakeNvml(energy_supported=False)
    source, _ = nvml_source(0, fake)
    assert isinstance(source, NvmlPowerSampling)
    clock = iter([0.0, 1.0, 3.0])
    source._clock = lambda: next(clock)
    source.start()  # 250 W at t=0
    fake.power_mw = 350_000
    source.sample()  # 350 W at t=1: (250 + 350) / 2 * 1 = 300 J
    assert source.stop() == pytest.approx(300 + 350 * 2)  # constant 350 W to t=3


def test_nvml_unusable_degrades_with_reason():
    source, why = nvml_source(0, FakeNvml(init_fails=True))
    assert source is None and "NVML unavailable" in why
    fake = FakeNvml(energy_supported=False, power_supported=False)
    source, why = nvml_source(0, fake)
    assert source is None and "neither energy nor power" in why
    assert fake.shutdowns == fake.inits


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda as seen on a one-GPU machine, without a GPU."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 3_000_000_000)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_meter_on_fake_gpu_uses_nvml_and_cuda_memory(fake_cuda, tmp_path):
    fake = FakeNvml()
    with Meter("cuda", nvml=fake, rapl_root=tmp_path) as m:
        fake.energy_mj += 36_000_000  # 36 kJ = 0.01 kWh
    r = m.result
    assert r["energy_method"] == "gpu=nvml+cpu=estimate:cpu-tdp+ram=estimate:ram-rss"
    assert r["gpu_energy_kwh"] == pytest.approx(0.01)
    assert r["energy_kwh"] >= 0.01
    assert r["mem_kind"] == "cuda_max_reserved" and r["peak_mem_gb"] == pytest.approx(3.0)
    assert fake.inits == fake.shutdowns == 1


def test_meter_on_gpu_without_nvml_says_unmeasured(fake_cuda, tmp_path):
    with Meter("cuda:0", nvml=FakeNvml(init_fails=True), rapl_root=tmp_path) as m:
        busy(0.02)
    r = m.result
    assert r["gpu_energy_kwh"] is None
    assert r["energy_method"].startswith("gpu=unmeasured+")
    assert r["energy_kwh"] > 0
    assert "NVML unavailable" in r["warnings"]


def test_carbon_table_is_offline_and_complete():
    assert len(carbon.country_codes()) > 200
    assert carbon.country_name("dnk") == "Denmark"
    assert all(len(c) == 3 and c.isupper() for c in carbon.country_codes())
    assert all(0 <= carbon.carbon_intensity(c) < 2000 for c in carbon.country_codes())


def test_a_record_the_real_meter_wrote_is_reported_as_estimated(tmp_path):
    """The meter's own method string ("cpu=estimate:cpu-tdp+ram=estimate:ram-rss") reaches the report."""
    from pepr_utils import records
    from pepr_utils.analysis.results import load_results, split_runs, study_facts
    from pepr_utils.params import RunParams
    from pepr_utils.report.document import say_study

    with Meter("cpu", cpu_method="estimate", sample_interval_s=0.05) as m:
        busy(0.05)
    assert m.measurement.estimated() and m.measurement.cpu.estimated and not m.measurement.gpu.estimated
    params = RunParams(model="resnet18d", dataset="pneumoniamnist", epochs=1).as_dict()
    record = records.make_record(
        params=params, status="ok", model_info={"num_params": 10, "trainable_params": 10, "macs_per_image": 1,
                                                "input_size": 28},
        metrics={"test_acc": 0.8, "test_auc": 0.9, "test_bal_acc": 0.8, "test_f1_macro": 0.8, "val_acc": 0.8,
                 "val_auc": 0.9, "history": []},
        resources=records.make_resources(m.result, infer_time_ms_per_image=1.0), env={"device": "cpu"})
    records.write_record(tmp_path / record["run_id"], record)
    runs = load_results(tmp_path)
    ok, _ = split_runs(runs)
    facts = study_facts(runs, ok)
    assert facts["energy_estimated"] and facts["energy_methods"] == [m.measurement.energy_method]
    assert "estimated" in say_study(facts, {"e": "energy_kwh"})


def test_a_record_says_whether_its_energy_was_estimated():
    """The one rule (meter.Energy.estimated) read back from a record's energy_method, in either spelling."""
    from pepr_utils.meter.meter import estimated_method

    assert estimated_method("cpu=estimate:cpu-tdp+ram=estimate:ram-rss")
    assert estimated_method("gpu=nvml+cpu=rapl+ram=estimate:ram-rss")
    assert estimated_method("estimate:tdp")
    assert not estimated_method("cpu=rapl+ram=rapl-dram")
    assert not estimated_method("nvml")


def test_a_study_metered_on_the_gpu_and_estimated_on_the_cpu_says_which_part_is_which():
    """gpu=nvml+cpu=estimate is neither "measured" nor wholly "estimated": the report names the parts."""
    import pandas as pd

    from pepr_utils.analysis.results import study_facts
    from pepr_utils.meter.meter import energy_components
    from pepr_utils.report.document import say_study
    from pepr_utils.report.first_screen import say_study_line

    assert energy_components("gpu=nvml+cpu=estimate:cpu-tdp+ram=estimate:ram-rss") == {
        "gpu": "metered", "cpu": "estimated", "ram": "estimated"}
    assert energy_components("nvml") == {"energy": "metered"}
    assert energy_components("gpu=unmeasured+cpu=rapl") == {"gpu": "not measured", "cpu": "metered"}
    ok = pd.DataFrame({"experiment": "e", "model": ["a", "b"], "seed": 0, "status": "ok", "dataset": "d",
                       "energy_method": ["gpu=nvml+cpu=estimate:cpu-tdp+ram=estimate:ram-rss",
                                         "gpu=nvml+cpu=rapl+ram=estimate:ram-rss"]})
    facts = study_facts(ok, ok)
    assert facts["energy_metered_parts"] == ["gpu"] and facts["energy_estimated_parts"] == ["cpu", "ram"]
    line, text = say_study_line(facts, {"e": "energy_kwh"}), say_study(facts, {"e": "energy_kwh"})
    assert "partly estimated** (GPU metered; CPU, RAM estimated)" in line and "not metered" not in line
    assert "partly estimated** (GPU metered; CPU, RAM estimated" in text
    failed = ok.assign(energy_method=["gpu=unmeasured+cpu=estimate:cpu-tdp+ram=estimate:ram-rss"] * 2)
    facts = study_facts(failed, failed)  # NVML failed: the GPU was not metered, and nothing is "metered"
    assert facts["energy_metered_parts"] == [] and "GPU metered" not in say_study_line(facts, {"e": "energy_kwh"})
    metered = study_facts(ok.assign(energy_method="gpu=nvml+cpu=rapl"), ok.assign(energy_method="gpu=nvml+cpu=rapl"))
    assert "energy **measured**" in say_study_line(metered, {"e": "energy_kwh"})
    estimated = ok.assign(energy_method="cpu=estimate:cpu-tdp")
    assert "energy **estimated**, not metered" in say_study_line(study_facts(estimated, estimated), {"e": "energy_kwh"})


# ------------------------------------------------------------------------------------------ a shared GPU
class SharedNvml:
    """NVML on a GPU that other processes use too (the meter's part of pynvml, plus the process list)."""

    def __init__(self, pids):
        self.pids = pids
        self.energy_mj = 1_000_000

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return "h"

    def nvmlDeviceGetHandleByIndex(self, index):
        return "h"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self.energy_mj

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=p, usedGpuMemory=0) for p in self.pids]


@pytest.mark.parametrize("pids, shared", [
    (lambda me: [me], False),  # only this process
    (lambda me: [], False),  # NVML lists nobody (some containers)
    (lambda me: [me, me + 1], True),  # another grid worker on the same GPU
    (lambda me: [4242], False),  # a container: the host's PID for this process
    (lambda me: [4242, 4243], True),  # a container, and someone else
])
def test_meter_warns_when_the_gpu_is_shared(fake_cuda, tmp_path, pids, shared):
    """NVML's energy is the whole GPU's: two runs on one GPU would each be charged for both, silently."""
    import os

    from pepr_utils.meter.meter import Meter

    fake = SharedNvml(pids(os.getpid()))
    with Meter("cuda", nvml=fake, rapl_root=tmp_path) as m:
        fake.energy_mj += 3_600_000
    assert m.result["gpu_energy_method"] == "nvml"
    assert ("GPU shared" in (m.result["warnings"] or "")) == shared
    if shared:
        assert "cuda:0" in m.result["warnings"]


def test_meter_without_a_process_list_says_nothing(fake_cuda, tmp_path):
    from pepr_utils.meter.energy import NvmlSharing
    from pepr_utils.meter.meter import Meter

    class NoList(SharedNvml):
        def nvmlDeviceGetComputeRunningProcesses(self, handle):
            raise RuntimeError("Not Supported")

    with Meter("cuda", nvml=NoList([]), rapl_root=tmp_path) as m:
        pass
    assert m.result["warnings"] is None
    sharing = NvmlSharing(SharedNvml([1, 2, 3]), "h", pid=2)
    sharing.sample()
    assert sharing.others == 2
