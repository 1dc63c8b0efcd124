"""tools/device_check.sh and .py: the GPU device check explains itself, and its checker classifies records
right (NVML vs estimate, AMP, memory, the floor) and extrapolates correctly; plus the CUDA-path faults it
led to that a CPU can reproduce (bf16 on GPUs that only emulate it; a GPU shared during a metered block).
Fast: no training, no GPU."""

from __future__ import annotations

import json
import math
import subprocess

import pytest
import torch
from conftest import ROOT, load_tool

dc = load_tool("device_check")


# ----------------------------------------------------------------------------------------------- the script
def test_help_explains_the_check():
    out = subprocess.run(["bash", str(ROOT / "tools" / "device_check.sh"), "--help"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    for words in ("prepare", "run", "--device cpu", "NVML", "GradScaler", "GPU=1", "256 px", "$OUT", "64 MiB",
                  "kWh", "carry="):
        assert words in out.stdout, words


def test_unknown_command_and_device_are_refused():
    script = str(ROOT / "tools" / "device_check.sh")
    bad = subprocess.run(["bash", script, "frobnicate"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "unknown command" in bad.stderr
    bad = subprocess.run(["bash", script, "run", "--device", "tpu"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--device" in bad.stderr


def test_wheels_cover_what_the_device_lacks_and_nothing_it_has():
    closure = {"pepr-utils": "0.1", "papermill": "2.7.0", "torch": "2.14", "nvidia-cublas": "13", "numpy": "2.4",
               "dask": "2026.8.0", "debugpy": "1.8", "pyzmq": "27.3.0"}
    missing = dc.missing_on_device(closure)
    assert missing == {"dask": "2026.8.0", "papermill": "2.7.0", "pyzmq": "27.3.0"}
    args = dc.pip_download_args(missing, ".whl")
    assert args[0] == "--no-deps" and "download" not in args  # the verb is the caller's
    assert ["--python-version", "3.12"] == args[args.index("--python-version"):args.index("--python-version") + 2]
    assert "papermill==2.7.0" in args and "manylinux_2_28_x86_64" in args


def test_the_device_lacks_the_grid_and_notebook_stack():
    """What the issue names: the image has torch, timm, pandas, seaborn, not papermill, jupyter, medmnist, dask."""
    for has in ("torch", "timm", "pandas", "seaborn", "nvidia-ml-py", "safetensors"):
        assert has in dc.DEVICE_PACKAGES
    for lacks in ("papermill", "medmnist", "dask", "distributed", "ipykernel", "jupyter-client"):
        assert lacks not in dc.DEVICE_PACKAGES


def test_the_grid_sample_spans_the_paper_catalogue_at_its_size(tmp_path):
    from pepr_utils.models.catalogue import load_catalogue

    cat = load_catalogue("paper131").set_index("model")["paper_num_params"]
    assert len(dc.SAMPLE_MODELS) == 10 and set(dc.SAMPLE_MODELS) <= set(cat.index)
    params = [int(cat[m]) for m in dc.SAMPLE_MODELS]
    assert max(params) / min(params) > 50
    assert min(params[:2]) < 3e6 and max(params[:2]) > 1e8  # any first two span the range (a cut-short grid)
    gpu = valid_grid(dc.sample_grid_yaml(device="cuda"), tmp_path)
    assert gpu["defaults"]["size"] == 256 and gpu["defaults"]["device"] == "cuda"
    assert gpu["axes"]["model"] == list(dc.SAMPLE_MODELS)
    cpu = valid_grid(dc.sample_grid_yaml(device="cpu"), tmp_path)
    assert cpu["defaults"]["size"] == 28 and cpu["axes"]["model"] == list(dc.CPU_SAMPLE_MODELS)


def valid_grid(text, folder):
    """The grid file as data, after checking that the project's own loader accepts it."""
    import yaml

    from pepr_utils.grid.spec import load_grid

    path = folder / "device_check.yaml"
    path.write_text(text)
    assert len(load_grid(path).runs) >= 2
    return yaml.safe_load(text)


# ----------------------------------------------------------------------------------------------- the checker
def record(*, device="cuda", gpu_method="nvml", amp="bfloat16", mem_kind="cuda_max_reserved", peak=2.5,
           acc=0.85, floor=0.625, epochs=(3.0, 1.0, 1.0), params=11_000_000, model="resnet18d", status="ok",
           energy=0.002, metered=10.0, wall=None, warnings=None, weights=None):
    methods = f"gpu={gpu_method}+cpu=estimate:cpu-tdp+ram=estimate:ram-rss" if gpu_method != "none" \
        else "cpu=estimate:cpu-tdp+ram=estimate:ram-rss"
    rec = {"run_id": f"r-{model}", "status": status, "error": None if status == "ok" else "RuntimeError: boom",
           "params": {"model": model, "dataset": "pneumoniamnist", "size": 256, "fraction": 1.0, "device": device,
                      "epochs": len(epochs), "weights": weights},
           "model_info": {"num_params": params, "input_plan": "ok", "input_size": 256},
           "metrics": {"test_acc": acc, "majority_acc": floor,
                       "history": [{"epoch": i + 1, "epoch_time_s": t} for i, t in enumerate(epochs)]},
           "resources": {"energy_kwh": energy, "energy_method": methods, "gpu_energy_method": gpu_method,
                         "peak_mem_gb": peak, "mem_kind": mem_kind, "train_time_s": metered, "warnings": warnings},
           "env": {"amp_dtype": amp, "device_name": "NVIDIA H100" if device != "cpu" else "cpu",
                   "train_images": 4708}}
    if wall is not None:
        rec["_grid"] = {"wall_s": wall, "notebook": "02_train"}
    return rec


def rows_of(*records):
    return [dc.run_row(r) for r in records]


def verdicts(rows, device):
    return {c["check"]: c["ok"] for c in dc.checks(rows, device)}


def test_a_good_gpu_run_passes_every_check():
    v = verdicts(rows_of(record(), record(model="vgg13", params=133_000_000, weights="imagenet")), "cuda")
    assert v["energy measured by NVML"] and v["AMP on"] and v["GPU peak memory"] and v["epoch times"]
    assert v["notebook runs beat the majority floor"] and v["runs finished"] and v["GPU not shared during a run"]


@pytest.mark.parametrize("change, failed", [
    ({"gpu_method": "unmeasured"}, "energy measured by NVML"),
    ({"gpu_method": "none", "device": "cpu"}, "energy measured by NVML"),
    ({"amp": None}, "AMP on"),
    ({"mem_kind": "cpu_peak_rss"}, "GPU peak memory"),
    ({"peak": None}, "GPU peak memory"),
    ({"acc": 0.6}, "notebook runs beat the majority floor"),
    ({"acc": 0.625}, "notebook runs beat the majority floor"),  # at the floor is not above it
    ({"epochs": ()}, "epoch times"),
    ({"status": "failed"}, "runs finished"),
    ({"warnings": "GPU shared: up to 1 other process(es) computed on cuda:0"}, "GPU not shared during a run"),
])
def test_a_gpu_run_that_falls_short_fails_the_right_check(change, failed):
    v = verdicts(rows_of(record(), record(model="x", **change)), "cuda")
    assert v[failed] is False
    assert all(ok is not False for name, ok in v.items() if name not in (failed, "runs finished", "epoch times"))


def test_the_reports_energy_wording_is_reported_with_the_measured_share():
    rows = rows_of(record(energy=0.002))
    rows[0]["gpu_energy_kwh"] = 0.0015
    c = {c["check"]: c for c in dc.checks(rows, "cuda")}["report's energy wording (reported)"]
    assert c["ok"] is None and "1 of 1 NVML runs count as estimated" in c["detail"] and "75%" in c["detail"]


def test_power_sampling_counts_as_nvml_and_an_old_record_is_read_from_energy_method():
    assert dc.energy_kind({"gpu_energy_method": "nvml-power-sampling"}) == "nvml"
    assert dc.energy_kind({"energy_method": "gpu=nvml+cpu=rapl+ram=rapl-dram"}) == "nvml"
    assert dc.energy_kind({"energy_method": "cpu=estimate:cpu-tdp+ram=estimate:ram-rss"}) == "estimate"
    assert dc.energy_kind({"energy_method": "gpu=unmeasured+cpu=rapl"}) == "unmeasured"


def test_a_cpu_result_never_passes_as_nvml():
    cpu = dict(device="cpu", gpu_method="none", amp=None, mem_kind="cpu_peak_rss", acc=0.5)
    v = verdicts(rows_of(record(**cpu)), "cpu")
    assert v["energy says it is an estimate (CPU)"] is True and v["AMP off on CPU"] is True
    assert v["GPU peak memory"] is None and v["notebook runs beat the majority floor (reported)"] is None
    assert "energy measured by NVML" not in v
    planted = verdicts(rows_of(record(**{**cpu, "gpu_method": "nvml"})), "cpu")  # a CPU run claiming NVML
    assert planted["energy says it is an estimate (CPU)"] is False
    # and records from a CPU checked as a GPU run fail
    assert verdicts(rows_of(record(**cpu)), "cuda")["energy measured by NVML"] is False


def test_the_grid_sample_floor_is_reported_not_required():
    rows = rows_of(record(), record(model="big", acc=0.5))
    rows[1]["_sample"] = True
    v = {c["check"]: c for c in dc.checks(rows, "cuda")}
    assert v["grid sample above the floor (reported)"]["ok"] is None
    assert "0 of 1" in v["grid sample above the floor (reported)"]["detail"]
    assert v["notebook runs beat the majority floor"]["ok"] is True


def test_run_row_takes_steady_epochs_eval_share_and_overhead():
    row = dc.run_row(record(epochs=(5.0, 2.0, 2.2), metered=12.0, wall=20.0, energy=0.001))
    assert row["epoch1_s"] == 5.0 and row["epoch_s"] == pytest.approx(2.1)  # the first epoch left out
    assert row["s_per_train_image"] == pytest.approx(2.1 / 4708)
    assert row["eval_images"] == 524 + 624  # PneumoniaMNIST's val + test
    assert row["eval_s_per_epoch"] == pytest.approx((12.0 - 9.2) / 3)
    assert row["overhead_s"] == pytest.approx(8.0) and row["mean_power_w"] == pytest.approx(300.0)
    assert row["above_floor"] is True


# ----------------------------------------------------------------------------------------------- extrapolation
def test_loglog_fit_recovers_a_power_law():
    xs = [1e6, 1e7, 1e8]
    a, b = dc.loglog_fit(xs, [2e-5 * (x / 1e6) ** 0.5 for x in xs])
    assert b == pytest.approx(0.5) and dc.predict((a, b), 1e6) == pytest.approx(2e-5)
    assert dc.loglog_fit([5e6, 5e6], [1.0, 100.0]) == pytest.approx((1.0, 0.0))  # one x: the geometric mean
    assert dc.loglog_fit([], []) is None


def test_extrapolation_arithmetic():
    """Two sample runs on a power law; a two-run workload whose hours and kWh are worked out by hand."""
    def planted(params, s_img, eval_img, power_w):
        train_imgs, eval_imgs = 4708, 1148
        epoch = s_img * train_imgs  # steady epochs; the first is 3x slower (warm-up) and does not count
        metered = 3 * epoch + epoch + 2 * eval_img * eval_imgs
        r = record(params=params, epochs=(epoch * 3, epoch), metered=metered, wall=metered + 10.0,
                   energy=power_w * metered / 3.6e6)
        return dc.run_row(r)

    rows = [planted(1e6, 1e-4, 5e-5, 100.0), planted(1e8, 1e-2, 5e-3, 400.0)]  # s/img = 1e-4 x (p/1e6)^1
    workload = [{"model": "a", "params": 1e7, "train_images": 1000, "eval_images": 500, "epochs": 10},
                {"model": "b", "params": None, "train_images": 1, "eval_images": 1, "epochs": 1}]
    cost = dc.extrapolate(rows, workload)
    assert cost["ok"] and cost["runs"] == 1 and cost["skipped"] == 1
    assert cost["train_fit"][1] == pytest.approx(1.0) and cost["overhead_s"] == pytest.approx(10.0)
    metered = 10 * (1000 * 1e-3 + 500 * 5e-4)  # 12.5 s at 10M parameters
    assert cost["metered_hours"] == pytest.approx(metered / 3600)
    assert cost["hours"] == pytest.approx((metered + 10.0) / 3600)
    power = 100.0 * 10 ** (math.log10(4) / 2)  # log-log midway between 100 W and 400 W: 200 W
    assert cost["kwh"] == pytest.approx(metered * power / 3.6e6)


def test_the_paper_workload_is_the_paper_grid():
    work = dc.paper_workload()
    assert len(work) == 1048 and all(w["params"] for w in work) and {w["epochs"] for w in work} == {10}
    derma = sorted({w["train_images"] for w in work if w["eval_images"] == 1003 + 2005})
    assert derma == [70, 701, 7007]  # derma_smallest, derma_small, derma (and derma_pt)


def test_summary_files_say_what_a_cpu_run_is(tmp_path):
    """The check subcommand end to end on planted records: files written, a CPU run labelled as one."""
    folder = tmp_path / "runs" / "r1"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(record(device="cpu", gpu_method="none", amp=None,
                                                          mem_kind="cpu_peak_rss")))
    (folder / "grid_run.json").write_text(json.dumps({"wall_s": 30.0, "notebook": "02_train"}))
    steps = tmp_path / "steps.tsv"
    steps.write_text("step\tseconds\trc\nnb02\t12.5\t0\n")
    rc = dc.main(["check", "--sample", str(tmp_path / "runs"), "--device", "cpu", "--steps", str(steps),
                  "--out", str(tmp_path / "out")])
    assert rc == 0
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "NOT GPU numbers" in text and "energy says it is an estimate (CPU) | PASS" in text and "nb02" in text
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["passed"] and summary["paper_grid_cost"]["ok"]
    assert (tmp_path / "out" / "runs.csv").read_text().startswith("run,")


def test_dask_gpu_resource_is_required_on_cuda():
    def verdict(workers, device="cuda"):
        s = dc.summary(rows_of(record()), device, workers=workers)
        return next(c["ok"] for c in s["checks"] if c["check"] == "Dask worker declares a GPU resource")

    assert verdict({"gpu-worker": {"GPU": 1.0}}) is True
    assert verdict({"w": {}}) is False and verdict({}) is False
    assert verdict({"w": {}}, device="cpu") is None


def test_amp_probe_is_skipped_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "no CUDA" in dc.amp_probe("cuda")["skipped"]
    s = dc.summary(rows_of(record()), "cuda", amp_probe={"modes": {"float16": {"finite": False, "ms_per_step": 1.0,
                                                                               "loss_first": 2.0, "loss_last": math.nan}}})
    assert not s["passed"]


# ----------------------------------------------------------------------------------------------- CUDA faults, on CPU
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
