"""One GPU per local worker: a cuda run's NVML energy is its own only when no other run shares its GPU.

No GPU is needed: the GPUs are named by CUDA_VISIBLE_DEVICES or a stand-in NVML, and the cluster's workers
are checked for what they see and declare.
"""

from __future__ import annotations

import os

import pytest

from pepr_utils.grid import gpus, runner
from pepr_utils.grid.spec import expand_grid


class FakeNVML:
    def __init__(self, count: int | None):
        self.count, self.shut = count, False

    def nvmlInit(self):
        if self.count is None:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlShutdown(self):
        self.shut = True


@pytest.mark.parametrize("listed, count, seen", [
    ("1,GPU-3f2a", 8, ["1", "GPU-3f2a"]), ("0,-1,2", 8, ["0"]), ("", 8, []), (" 2 ", 8, ["2"]),
    ("0,1", 1, ["0"]),  # CUDA hides an index this machine lacks, and every one after it
    ("NoDevFiles", 8, []),  # what Slurm sets when a job has no GPU
    ("3,MIG-9a1b", None, ["3", "MIG-9a1b"]),  # without NVML the indices cannot be checked
])
def test_cuda_visible_devices_names_the_gpus_as_cuda_reads_it(monkeypatch, listed, count, seen):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    assert gpus.visible_gpus(FakeNVML(count)) == seen


def test_a_worker_sees_its_gpu_in_nvml_order_unless_the_user_chose_one(monkeypatch):
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    assert gpus.worker_env("1") == {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert gpus.worker_env(None)["CUDA_VISIBLE_DEVICES"] == ""  # a CPU worker sees no GPU
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    assert gpus.worker_env("1")["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"


def test_without_cuda_visible_devices_nvml_counts_them(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    nvml = FakeNVML(2)
    assert gpus.visible_gpus(nvml) == ["0", "1"] and nvml.shut
    assert gpus.visible_gpus(FakeNVML(None)) == []  # no driver: nothing to pin


def test_each_worker_holds_one_gpu_while_they_last():
    assert gpus.worker_gpus(3, ["0"]) == ["0", None, None]
    assert gpus.worker_gpus(2, ["0", "1", "2"]) == ["0", "1"]
    line = gpus.describe(["0", None, None])
    assert "1 of 3 worker(s) hold one GPU each (0)" in line and "other 2 take the CPU runs only" in line


def _grid(device: str):
    return expand_grid({"name": "g", "defaults": {"dataset": "pneumoniamnist", "device": device, "epochs": 1},
                        "axes": {"model": ["resnet18d"]}})


def test_only_a_grid_with_cuda_runs_pins_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert runner._local_gpus(_grid("cuda").runs, 2) == ["0", None]
    assert runner._local_gpus(_grid("cpu").runs, 2) == []
    assert runner._local_gpus(_grid("cuda:0").runs, 2) == []  # a run that names its GPU keeps it
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert runner._local_gpus(_grid("cuda").runs, 2) == []  # no GPU: a plain LocalCluster


def test_an_all_cuda_grid_gives_the_cores_to_the_gpu_workers_alone():
    cuda, cpu = _grid("cuda").runs, _grid("cpu").runs
    assert runner.local_threads_per_run(cuda, 4, ["0", None, None, None], 16) == 16  # one run at a time
    assert runner.local_threads_per_run(cuda + cpu, 4, ["0", None, None, None], 16) == 4  # all four busy
    assert runner.local_threads_per_run(cpu, 4, [], 16) == 4
    assert runner.local_threads_per_run(cpu, 4, [], 2) == 1


def test_the_local_cluster_gives_each_worker_its_gpu_and_sends_gpu_tasks_only_there():
    client, close = runner._client(2, None, ["7", None])
    try:
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        assert sorted(seen.values()) == ["", "7"]
        declared = {a: w.get("resources") or {} for a, w in client.scheduler_info()["workers"].items()}
        holder = next(a for a, v in seen.items() if v == "7")
        assert declared[holder] == {"GPU": 1} and all(not r for a, r in declared.items() if a != holder)
        assert runner._workers_have(client, "GPU")
        futures = [client.submit(lambda i: os.environ.get("CUDA_VISIBLE_DEVICES"), i, resources={"GPU": 1}, pure=False)
                   for i in range(4)]
        assert client.gather(futures) == ["7"] * 4  # every GPU task ran on the worker that holds the GPU
        info = client.scheduler_info()["workers"].values()
        assert {w["nthreads"] for w in info} == {1}
        from distributed.system import MEMORY_LIMIT  # each worker: LocalCluster's share, not Nanny's 1/cores

        assert all(abs(w["memory_limit"] - MEMORY_LIMIT / 2) < 2**20 for w in info)
    finally:
        close()
