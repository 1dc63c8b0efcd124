"""CUDA-path faults the GPU device check is about that a CPU can reproduce (no GPU, no training)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

CUDA_ABSENT = pytest.mark.filterwarnings("ignore:.*CUDA is not available")  # autocast/GradScaler made on a CPU


@CUDA_ABSENT
@pytest.mark.parametrize("capability, dtype", [((7, 5), torch.float16), ((7, 0), torch.float16),
                                               ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_bf16_only_where_the_gpu_has_it(monkeypatch, capability, dtype):
    """A T4 (7.5, Colab's) or V100 (7.0) emulates bf16, and torch.cuda.is_bf16_supported() says yes to it by
    default: those GPUs must take fp16 autocast with a GradScaler, not emulated bf16."""
    from pepr_utils.train import loop

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.version, "hip", None)
    _, got = loop.autocast_for(torch.device("cuda:0"), amp=True)
    assert got == dtype
    scaler = loop.grad_scaler("cuda:0")
    assert (scaler is not None) == (dtype == torch.float16)


@CUDA_ABSENT
def test_bf16_is_decided_by_the_runs_own_gpu(monkeypatch):
    """cuda:1 on a machine whose current GPU (0) is an A100 and GPU 1 a T4: GPU 1 decides."""
    from pepr_utils.train import loop

    caps = {0: (8, 0), 1: (7, 5)}
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: caps[0 if device is None else device])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: caps[0][0] >= 8)
    monkeypatch.setattr(torch.version, "hip", None)
    assert loop.autocast_for(torch.device("cuda:1"), amp=True)[1] == torch.float16
    assert loop.autocast_for(torch.device("cuda"), amp=True)[1] == torch.bfloat16
    assert loop.autocast_for(torch.device("cuda:1"), amp=False)[1] is None


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


@pytest.fixture
def fake_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 1_000_000_000)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


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
