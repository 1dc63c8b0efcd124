"""The GPU device check's Python half: what to carry, the grid sample, the AMP probe and the checker.

``tools/device_check.sh`` is the entry point (``bash tools/device_check.sh --help``); it calls the
subcommands here:

    python tools/device_check.py packages                 # name==version of what the device image lacks
    python tools/device_check.py grid --device cuda -o G  # the paper-grid sample as a grid YAML
    python tools/device_check.py warm --size 256          # decode/resize the datasets once, before timing
    python tools/device_check.py amp --device cuda        # bf16 and fp16+GradScaler steps on the GPU
    python tools/device_check.py check --device cuda RUN_DIR... --out DIR   # the checks and the cost table

The checker reads run records (``result.json``, and ``grid_run.json`` where a grid wrote one) and says,
per run and overall: energy measured by NVML or estimated (a CPU run must never pass as NVML), AMP on,
GPU peak memory, epoch times, test accuracy against the majority-class floor; then fits seconds per
image against parameters (log-log) and extrapolates to the paper grid (``paper.yaml``: 131 models x 8
experiments, 10 epochs, 256 px) in hours and kWh on one such device. Importable (tests/test_device_check.py).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Python packages the device image ("cuda", nvidia-h100-x1 and nvidia-h200) already has, as the workplace's
#: KINDS.md listed them on 2026-11-17 (canonical names; huggingface-hub from its pip list). Everything else the
#: project needs travels as wheels.
DEVICE_PACKAGES = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib
jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite
lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())
#: Never carried: the project itself (it travels as the working tree), the CUDA stack the image has, and what
#: no run imports (ipykernel's optional debugger, the widgets' browser extensions): 8 MB of the 64 MiB carry.
NEVER_CARRY = ("pepr-utils", "nvidia-", "cuda-", "torch", "triton", "debugpy", "widgetsnbextension",
               "jupyterlab-widgets")
#: pip download's platform tags for the device (x86-64, CPython 3.12; README of the device tool).
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                   "manylinux2014_x86_64", "manylinux1_x86_64")
DEVICE_PYTHON = "3.12"

#: The paper-grid sample: 10 of paper131's models across its size range (1.97M to 133M ImageNet parameters),
#: CNNs and transformers, two that exist only at 256 px. Ordered so that any first few span the range (a run
#: cut short by its time budget still has small and large models).
SAMPLE_MODELS = ("mobilenetv2_050", "vgg13", "resnet18d", "swinv2_base_window8_256", "efficientnet_b0",
                 "resnet152d", "densenet121", "convnext_tiny_hnf", "botnet26t_256", "resnet34d")
#: On CPU (this script's own test) the sample is two small ones at 28 px.
CPU_SAMPLE_MODELS = ("mobilenetv2_050", "resnet18d")
PAPER_SIZE = 256
NVML_METHODS = ("nvml", "nvml-power-sampling")
AMP_DTYPES = ("bfloat16", "float16")


# =========================================================================== what travels
def canonical(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(root: str = "pepr-utils", stop: Iterable[str] = ()) -> dict[str, str]:
    """``{canonical name: installed version}`` of ``root`` and everything it needs (no extras), read from
    this environment's metadata (the versions the lock installed). Packages in ``stop`` are listed but not
    followed: where the device has them, its own versions bring their own requirements."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    stop = {canonical(n) for n in stop}

    def walk(name: str, extras: Sequence[str] = ()) -> None:
        key = canonical(name)
        if key in found:
            return
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            return
        found[key] = dist.version
        if key in stop:
            return
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
                walk(req.name, tuple(req.extras))

    walk(root)
    return found


def missing_on_device(closure: dict[str, str], device: Iterable[str] = DEVICE_PACKAGES) -> dict[str, str]:
    """The part of ``closure`` the device image lacks, less what never travels (the project, CUDA, torch)."""
    have = {canonical(n) for n in device}
    return {n: v for n, v in sorted(closure.items())
            if n not in have and not any(n == p or (p.endswith("-") and n.startswith(p)) for p in NEVER_CARRY)}


def pip_download_args(pins: dict[str, str], dest: str) -> list[str]:
    """``pip download``'s arguments (after the verb) for the device's Python and platform: binary wheels only,
    no dependencies (every package is named)."""
    args = ["--no-deps", "--only-binary=:all:", "--python-version", DEVICE_PYTHON,
            "--implementation", "cp", "-d", dest]
    for tag in WHEEL_PLATFORMS:
        args += ["--platform", tag]
    return args + [f"{n}=={v}" for n, v in pins.items()]


# =========================================================================== the grid sample
def sample_grid_yaml(*, device: str, name: str = "device_check", models: Sequence[str] | None = None,
                     dataset: str = "pneumoniamnist", size: int | None = None, fraction: float | None = None,
                     epochs: int | None = None) -> str:
    """A grid YAML of the paper-grid sample: its models on one dataset at the paper's size (cuda) or at
    28 px with two small models (cpu: this check's own test)."""
    gpu = device.startswith("cuda")
    models = list(models or (SAMPLE_MODELS if gpu else CPU_SAMPLE_MODELS))
    size = size or (PAPER_SIZE if gpu else 28)
    fraction = fraction or (0.25 if gpu else 0.05)
    epochs = epochs or (2 if gpu else 1)
    lines = [
        "# written by tools/device_check.py: a sample of the paper grid (paper.yaml) for the device check",
        f"name: {name}",
        f"description: {len(models)} paper131 models on {dataset} at {size} px, {fraction:g} of the training split, "
        f"{epochs} epochs, on {device}",
        "defaults:",
        f"  dataset: {dataset}", f"  size: {size}", f"  fraction: {fraction}", f"  epochs: {epochs}",
        "  batch_size: 32", "  lr: 5.0e-4", "  seed: 0", f"  device: {device}",
        "axes:",
        "  model: [" + ", ".join(models) + "]",
    ]
    return "\n".join(lines) + "\n"


# =========================================================================== reading records
def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def find_records(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``result.json`` under ``paths`` (folders searched recursively, files taken as they are)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(p.rglob("result.json")))
    return sorted(set(found))


def load_run(result: Path) -> dict[str, Any]:
    """A record plus, as ``_grid``, its ``grid_run.json`` (the worker's wall time) when one lies beside it."""
    record = json.loads(result.read_text(encoding="utf-8"))
    grid_file = result.parent / "grid_run.json"
    if grid_file.is_file():
        try:
            record["_grid"] = json.loads(grid_file.read_text(encoding="utf-8"))
        except ValueError:
            pass
    record["_path"] = str(result.parent)
    return record


def energy_kind(resources: dict[str, Any]) -> str:
    """``nvml`` (the GPU's energy read from NVML), ``estimate`` (no GPU counter: CPU time x TDP and the like),
    or ``unmeasured`` (a GPU run whose energy could not be read)."""
    gpu = str(resources.get("gpu_energy_method") or "")
    if not gpu:  # an older record: read the combined method ("gpu=nvml+cpu=...")
        parts = dict(p.partition("=")[::2] for p in str(resources.get("energy_method") or "").split("+"))
        gpu = parts.get("gpu", "")
    if gpu in NVML_METHODS:
        return "nvml"
    if gpu == "unmeasured":
        return "unmeasured"
    return "estimate"


def run_row(record: dict[str, Any]) -> dict[str, Any]:
    """One record as the checker's row: what was run, how it was measured, and its timings."""
    p = record.get("params") or {}
    r = record.get("resources") or {}
    m = record.get("metrics") or {}
    i = record.get("model_info") or {}
    env = record.get("env") or {}
    grid = record.get("_grid") or {}
    history = m.get("history") or []
    epoch_times = [t for t in (_num(h.get("epoch_time_s")) for h in history) if t is not None]
    steady = epoch_times[1:] or epoch_times  # epoch 1 pays for cuDNN autotuning and the allocator's growth
    epochs = len(history) or p.get("epochs")
    metered = _num(r.get("train_time_s"))
    steps = sum(epoch_times) if epoch_times else None
    train_images = env.get("train_images")
    eval_images = _eval_images(p.get("dataset"))
    eval_s = (metered - steps) / epochs if metered is not None and steps is not None and epochs else None
    energy = _num(r.get("energy_kwh"))
    wall = _num(grid.get("wall_s"))
    acc, floor = _num(m.get("test_acc")), _num(m.get("majority_acc"))
    row = {
        "run": Path(record.get("_path", "")).name or record.get("run_id"),
        "notebook": grid.get("notebook") or ("03_finetune" if p.get("weights") else "02_train"),
        "status": record.get("status"), "model": p.get("model"), "dataset": p.get("dataset"), "size": p.get("size"),
        "fraction": p.get("fraction"), "weights": p.get("weights"), "device": p.get("device"),
        "device_name": env.get("device_name"), "num_params": i.get("num_params"),
        "input_plan": i.get("input_plan"), "input_size": i.get("input_size"),
        "energy_kind": energy_kind(r), "energy_method": r.get("energy_method"),
        "gpu_energy_kwh": _num(r.get("gpu_energy_kwh")), "energy_kwh": energy,
        "mean_power_w": energy * 3.6e6 / metered if energy is not None and metered else None,
        "amp_dtype": env.get("amp_dtype"), "peak_mem_gb": _num(r.get("peak_mem_gb")), "mem_kind": r.get("mem_kind"),
        "epochs": epochs, "epoch1_s": epoch_times[0] if epoch_times else None,
        "epoch_s": statistics.median(steady) if steady else None,
        "train_images": train_images, "eval_images": eval_images,
        "s_per_train_image": (statistics.median(steady) / train_images) if steady and train_images else None,
        "eval_s_per_epoch": eval_s,
        "s_per_eval_image": eval_s / eval_images if eval_s is not None and eval_images else None,
        "metered_s": metered, "wall_s": wall,
        "overhead_s": wall - metered if wall is not None and metered is not None else None,
        "test_acc": acc, "majority_acc": floor,
        "above_floor": (acc > floor) if acc is not None and floor is not None else None,
        "warnings": r.get("warnings"), "error": next(iter(str(record.get("error") or "").splitlines()), "")[:160] or None,
    }
    return row


def _eval_images(dataset: Any) -> int | None:
    """Validation plus test images of ``dataset`` (evaluated after every epoch by the paper's protocol)."""
    if not dataset:
        return None
    try:
        from pepr_utils.data.datasets import dataset_info

        n = dataset_info(str(dataset)).n_samples or {}
        return int(n["val"]) + int(n["test"])
    except Exception:  # noqa: BLE001 - an unknown dataset: no eval share
        return None


# =========================================================================== the checks
def checks(rows: list[dict[str, Any]], device: str) -> list[dict[str, Any]]:
    """``[{check, ok, detail}]``: ``ok`` True/False, or None where a check does not apply (a CPU run).

    On ``cuda`` every ok run must have NVML energy, AMP on (bf16 or fp16), a CUDA peak memory and finite
    epoch times; on ``cpu`` the energy must say it is an estimate (a CPU result never passes as NVML).
    Accuracy above the majority-class floor is required of the notebook runs (several epochs on the whole
    split); for the grid sample (few epochs, a fraction of the data) it is reported.
    """
    ok_rows = [r for r in rows if r["status"] == "ok"]
    gpu = device.startswith("cuda")
    out: list[dict[str, Any]] = []

    def add(name: str, ok: bool | None, detail: str) -> None:
        out.append({"check": name, "ok": ok, "detail": detail})

    def names(rs: Iterable[dict[str, Any]]) -> str:
        return ", ".join(f"{r['model']}" for r in rs) or "none"

    add("runs finished", bool(ok_rows) and all(r["status"] in ("ok", "incompatible") for r in rows),
        f"{len(ok_rows)} ok, {sum(r['status'] == 'incompatible' for r in rows)} incompatible, "
        f"{sum(r['status'] not in ('ok', 'incompatible') for r in rows)} failed of {len(rows)}"
        + "".join(f"; {r['model']}: {r['error']}" for r in rows if r["status"] == "failed"))
    nvml = [r for r in ok_rows if r["energy_kind"] == "nvml"]
    if gpu:
        bad = [r for r in ok_rows if r["energy_kind"] != "nvml"]
        add("energy measured by NVML", bool(ok_rows) and not bad,
            f"{len(nvml)} of {len(ok_rows)} runs read the GPU's energy from NVML"
            + (f"; not: {names(bad)} ({', '.join(sorted({str(r['energy_method']) for r in bad}))})" if bad else ""))
    else:
        add("energy says it is an estimate (CPU)", bool(ok_rows) and not nvml,
            f"{len(ok_rows) - len(nvml)} of {len(ok_rows)} runs estimated"
            + (f"; NVML on a CPU run: {names(nvml)}" if nvml else ""))
    if gpu:
        no_amp = [r for r in ok_rows if r["amp_dtype"] not in AMP_DTYPES]
        add("AMP on", bool(ok_rows) and not no_amp,
            ", ".join(sorted({str(r['amp_dtype']) for r in ok_rows})) + (f"; off: {names(no_amp)}" if no_amp else ""))
        no_mem = [r for r in ok_rows if r["mem_kind"] != "cuda_max_reserved" or not (r["peak_mem_gb"] or 0) > 0]
        mems = [r["peak_mem_gb"] for r in ok_rows if r["peak_mem_gb"]]
        add("GPU peak memory", bool(ok_rows) and not no_mem,
            (f"{min(mems):.2f}-{max(mems):.2f} GB ({', '.join(sorted({str(r['mem_kind']) for r in ok_rows}))})"
             if mems else "none")
            + (f"; missing: {names(no_mem)}" if no_mem else ""))
    else:
        amp = [r for r in ok_rows if r["amp_dtype"]]
        add("AMP off on CPU", not amp, "float32" if not amp else f"autocast on CPU: {names(amp)}")
        add("GPU peak memory", None, "n/a on cpu: " + ", ".join(sorted({str(r['mem_kind']) for r in ok_rows})))
    bad_t = [r for r in ok_rows if not (r["epoch_s"] or 0) > 0]
    times = [r["epoch_s"] for r in ok_rows if r["epoch_s"]]
    add("epoch times", bool(ok_rows) and not bad_t,
        (f"{min(times):.2f}-{max(times):.2f} s per epoch (after the first)" if times else "none")
        + (f"; missing: {names(bad_t)}" if bad_t else ""))
    notebooks = [r for r in ok_rows if r["notebook"] in ("02_train", "03_finetune") and not r.get("_sample")]
    sample = [r for r in ok_rows if r.get("_sample")]
    below = [r for r in notebooks if r["above_floor"] is not True]
    # required on the GPU (several epochs on the whole split); the CPU self-test trains one epoch on a sliver
    add("notebook runs beat the majority floor" + ("" if gpu else " (reported)"),
        (not below) if notebooks and gpu else None,
        "; ".join(f"{r['model']} {r['dataset']}: {r['test_acc']:.3f} vs {r['majority_acc']:.3f}"
                  for r in notebooks if r["test_acc"] is not None) or "no notebook runs")
    if sample:
        above = [r for r in sample if r["above_floor"]]
        add("grid sample above the floor (reported)", None,
            f"{len(above)} of {len(sample)}" + (f"; at or below: {names(r for r in sample if not r['above_floor'])}"
                                                if len(above) < len(sample) else ""))
    if gpu and nvml:  # what the report will say of these records (report.document words it by estimated_method)
        from pepr_utils.meter.meter import estimated_method

        flagged = [r for r in nvml if estimated_method(r["energy_method"])]
        total = sum(r["energy_kwh"] or 0 for r in nvml)
        share = sum(r["gpu_energy_kwh"] or 0 for r in nvml) / total if total else float("nan")
        add("report's energy wording (reported)", None,
            f"{len(flagged)} of {len(nvml)} NVML runs count as estimated (meter.estimated_method: a CPU or RAM "
            f"part is), so the report says 'estimated, not measured'; NVML measured {share:.0%} of their energy")
    shared = [r for r in ok_rows if "shared" in str(r.get("warnings") or "")]
    if gpu:
        add("GPU not shared during a run", not shared, "no other process on the GPU" if not shared
            else f"shared: {names(shared)} (NVML energy covers every process on the GPU)")
    return out


# =========================================================================== cost of the paper grid
def loglog_fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float] | None:
    """``(a, b)`` of ``log10 y = a + b log10 x`` by least squares; a constant (b = 0, the mean of log y)
    with one distinct x; None without points."""
    pts = [(math.log10(u), math.log10(v)) for u, v in zip(x, y, strict=True) if u and v and u > 0 and v > 0]
    if not pts:
        return None
    xs, ys = zip(*pts, strict=True)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((u - mx) ** 2 for u in xs)
    if sxx == 0:
        return my, 0.0
    b = sum((u - mx) * (v - my) for u, v in zip(xs, ys, strict=True)) / sxx
    return my - b * mx, b


def predict(fit: tuple[float, float], x: float) -> float:
    a, b = fit
    return 10 ** (a + b * math.log10(x))


def paper_workload(grid: str = "paper") -> list[dict[str, Any]]:
    """Each run of the paper grid as ``{model, params, train_images, eval_images, epochs}``: parameters from
    the catalogue (the paper's ImageNet counts), images from the dataset catalogue's split sizes."""
    from pepr_utils.data.datasets import dataset_info
    from pepr_utils.grid.spec import load_grid
    from pepr_utils.models.catalogue import load_catalogue

    cat = load_catalogue("paper131").set_index("model")["paper_num_params"]
    out = []
    for run in load_grid(grid).runs:
        p = run.params
        n = dataset_info(p.dataset).n_samples or {}
        out.append({"model": p.model, "params": int(cat[p.model]) if p.model in cat.index else None,
                    "train_images": max(1, round(int(n["train"]) * p.fraction)),
                    "eval_images": int(n["val"]) + int(n["test"]), "epochs": p.epochs})
    return out


def extrapolate(rows: list[dict[str, Any]], workload: list[dict[str, Any]]) -> dict[str, Any]:
    """Hours and kWh of ``workload`` on the device the ``rows`` ran on.

    Per run: ``epochs x (train images x s/train image + eval images x s/eval image)`` from log-log fits of the
    sample's steady epochs against parameters, plus the sample's median per-run overhead (notebook, kernel,
    data, input plan; ``grid_run.json``'s wall time less the metered block). Energy: the metered hours at the
    mean power fitted against parameters (log-log), so the overhead, which no record meters, is left out of it.
    """
    ok = [r for r in rows if r["status"] == "ok" and r["num_params"]]
    train_fit = loglog_fit([r["num_params"] for r in ok if r["s_per_train_image"]],
                           [r["s_per_train_image"] for r in ok if r["s_per_train_image"]])
    eval_fit = loglog_fit([r["num_params"] for r in ok if r["s_per_eval_image"]],
                          [r["s_per_eval_image"] for r in ok if r["s_per_eval_image"]])
    power_fit = loglog_fit([r["num_params"] for r in ok if r["mean_power_w"]],
                           [r["mean_power_w"] for r in ok if r["mean_power_w"]])
    overheads = [r["overhead_s"] for r in ok if r["overhead_s"] is not None and r["overhead_s"] >= 0]
    overhead = statistics.median(overheads) if overheads else 0.0
    if train_fit is None:
        return {"ok": False, "why": "no run with a steady epoch time and parameters"}
    metered = total = kwh = 0.0
    skipped = 0
    for w in workload:
        if not w.get("params"):
            skipped += 1
            continue
        t = w["epochs"] * (w["train_images"] * predict(train_fit, w["params"])
                           + (w["eval_images"] * predict(eval_fit, w["params"]) if eval_fit else 0.0))
        metered += t
        total += t + overhead
        if power_fit is not None:
            kwh += t * predict(power_fit, w["params"]) / 3.6e6
    return {"ok": True, "runs": len(workload) - skipped, "skipped": skipped,
            "train_fit": train_fit, "eval_fit": eval_fit, "power_fit": power_fit, "overhead_s": overhead,
            "metered_hours": metered / 3600, "hours": total / 3600, "kwh": kwh if power_fit else None}


# =========================================================================== the report
COLUMNS = ("source", "model", "notebook", "dataset", "size", "input_plan", "input_size", "num_params", "energy_kind",
           "amp_dtype", "peak_mem_gb", "epochs", "epoch1_s", "epoch_s", "s_per_train_image", "eval_s_per_epoch",
           "metered_s", "overhead_s", "energy_kwh", "mean_power_w", "test_acc", "majority_acc", "status")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 1e4:
        return f"{v / 1e6:.1f}M"
    return str(v)


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]], device: str, steps: list[dict[str, Any]] | None = None,
            amp_probe: dict[str, Any] | None = None, workload: list[dict[str, Any]] | None = None,
            workers: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Everything the check concluded: the checks, the rows, the AMP probe, the Dask workers' resources
    (``{worker: {resource: amount}}``), the cost extrapolation."""
    result = checks(rows, device)
    if workers is not None:
        gpus = {name: res.get("GPU") for name, res in workers.items() if res.get("GPU")}
        result.append({"check": "Dask worker declares a GPU resource",
                       "ok": bool(gpus) if device.startswith("cuda") else None,
                       "detail": ", ".join(f"{n}: {r}" for n, r in workers.items()) or "no worker joined"})
    if amp_probe is not None:
        if amp_probe.get("skipped"):
            result.append({"check": "AMP probe (bf16, fp16 + GradScaler)", "ok": None, "detail": amp_probe["skipped"]})
        else:
            bad = [k for k, v in amp_probe.get("modes", {}).items() if not v.get("finite")]
            result.append({"check": "AMP probe (bf16, fp16 + GradScaler)", "ok": not bad and bool(amp_probe.get("modes")),
                           "detail": "; ".join(f"{k}: {v.get('ms_per_step', float('nan')):.1f} ms/step, loss "
                                               f"{v.get('loss_first', float('nan')):.3f}->{v.get('loss_last', float('nan')):.3f}"
                                               + (f", scale {v['scale']:g}" if v.get("scale") else "")
                                               for k, v in amp_probe.get("modes", {}).items())})
    cost = extrapolate([r for r in rows if r.get("_sample")] or rows, workload) if workload else None
    return {"device": device, "device_names": sorted({str(r["device_name"]) for r in rows if r["device_name"]}),
            "passed": all(c["ok"] is not False for c in result), "checks": result, "runs": rows,
            "amp_probe": amp_probe, "steps": steps or [], "paper_grid_cost": cost}


def summary_markdown(s: dict[str, Any]) -> str:
    mark = {True: "PASS", False: "FAIL", None: "n/a"}
    out = [f"# Device check on {s['device']} ({', '.join(s['device_names']) or 'unknown device'})", "",
           f"Overall: **{'PASS' if s['passed'] else 'FAIL'}**", "", "## Checks", "",
           markdown_table([{"check": c["check"], "result": mark[c["ok"]], "detail": c["detail"]} for c in s["checks"]],
                          ("check", "result", "detail")), ""]
    if s["steps"]:
        out += ["## Steps (wall seconds)", "", markdown_table(s["steps"], ("step", "seconds", "rc")), ""]
    out += ["## Runs", "", markdown_table(s["runs"], COLUMNS), ""]
    cost = s.get("paper_grid_cost")
    if cost:
        out += ["## The paper grid on one such device (extrapolated from the sample)", ""]
        if cost.get("ok"):
            a, b = cost["train_fit"]
            out += [f"- seconds per training image = 10^{a:.2f} x params^{b:.2f} (log-log fit over the sample's "
                    "steady epochs)",
                    f"- {cost['runs']} runs: {cost['metered_hours']:.1f} h of metered training and evaluation, "
                    f"{cost['hours']:.1f} h with the sample's median overhead of {cost['overhead_s']:.0f} s per run",
                    f"- energy of the metered part: {cost['kwh']:.2f} kWh" if cost.get("kwh") is not None
                    else "- energy: no power figures in the sample",
                    f"- measured on {s['device']}; " + ("GPU numbers" if s["device"].startswith("cuda")
                                                       else "CPU numbers at the check's tiny settings, NOT GPU numbers")]
            sizes = sorted({r["size"] for r in s["runs"] if r.get("_sample") and r["size"]})
            if sizes and sizes != [PAPER_SIZE]:
                out.append(f"- the sample ran at {', '.join(map(str, sizes))} px, the paper grid at {PAPER_SIZE} px: "
                           "only the arithmetic is checked, not the figure")
        else:
            out.append(f"not extrapolated: {cost.get('why')}")
        out.append("")
    if s.get("amp_probe") and not s["amp_probe"].get("skipped"):
        out += ["## AMP probe", "", "```", json.dumps(s["amp_probe"], indent=2), "```", ""]
    return "\n".join(out)


def read_steps(path: Path | None) -> list[dict[str, Any]]:
    """The shell script's step table (``step<TAB>seconds<TAB>rc`` lines)."""
    if path is None or not path.is_file():
        return []
    steps = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] != "step":
            steps.append({"step": parts[0], "seconds": _num(parts[1]), "rc": parts[2]})
    return steps


# =========================================================================== the AMP probe (needs CUDA)
def amp_probe(device: str = "cuda", steps: int = 30, model: str = "resnet18d", size: int = 64) -> dict[str, Any]:
    """Train ``model`` for ``steps`` steps with bf16 autocast and with fp16 autocast + GradScaler (the path a
    GPU without bf16 takes, forced here), through ``train.loop.train_one_epoch``: both losses must stay finite."""
    import torch

    from pepr_utils.train import loop

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return {"skipped": f"no CUDA here (device {device!r}): the AMP paths run only on a GPU"}
    dev = torch.device(device)
    torch.manual_seed(0)
    x = torch.randn(steps * 32, 3, size, size)
    y = torch.randint(0, 7, (steps * 32,))
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, len(x), 32)]
    out: dict[str, Any] = {"device_name": torch.cuda.get_device_name(dev),
                           "capability": list(torch.cuda.get_device_capability(dev)),
                           "native_dtype": str(loop.autocast_for(dev, True)[1]).replace("torch.", ""), "modes": {}}
    for mode in ("bfloat16", "float16"):
        import timm

        torch.manual_seed(0)
        net = timm.create_model(model, num_classes=7).to(dev).to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(net.parameters(), lr=5e-4)
        original = loop.autocast_for
        forced = torch.bfloat16 if mode == "bfloat16" else torch.float16
        loop.autocast_for = lambda d, amp, _f=forced: (torch.autocast("cuda", dtype=_f), _f)  # type: ignore[assignment]
        try:
            scaler = torch.amp.GradScaler("cuda") if forced == torch.float16 else None
            losses = []
            torch.cuda.synchronize(dev)
            t0 = __import__("time").perf_counter()
            for xb, yb in batches:
                r = loop.train_one_epoch(net, [(xb, yb)], opt, torch.nn.CrossEntropyLoss(), device=dev,
                                         scaler=scaler, progress=False)
                losses.append(r["train_loss"])
            torch.cuda.synchronize(dev)
            elapsed = __import__("time").perf_counter() - t0
        finally:
            loop.autocast_for = original  # type: ignore[assignment]
        out["modes"][mode] = {"finite": all(math.isfinite(v) for v in losses), "loss_first": losses[0],
                              "loss_last": losses[-1], "ms_per_step": 1000 * elapsed / len(batches),
                              "scale": float(scaler.get_scale()) if scaler is not None else None,
                              "max_allocated_gb": torch.cuda.max_memory_allocated(dev) / 1e9,
                              "max_reserved_gb": torch.cuda.max_memory_reserved(dev) / 1e9}
        del net, opt
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    return out


# =========================================================================== command line
def _cmd_packages(args: argparse.Namespace) -> int:
    pins = missing_on_device(dependency_closure(stop=DEVICE_PACKAGES))
    if args.pip_args:
        print(" ".join(pip_download_args(pins, args.dest)))
    else:
        print("\n".join(f"{n}=={v}" for n, v in pins.items()))
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    text = sample_grid_yaml(device=args.device, models=args.models, size=args.size, fraction=args.fraction,
                            epochs=args.epochs)
    Path(args.output).write_text(text, encoding="utf-8")
    print(text, end="")
    return 0


def _cmd_warm(args: argparse.Namespace) -> int:
    from pepr_utils.data.datasets import load_dataset

    for name in args.datasets:
        data = load_dataset(name, args.size, progress=False)
        print(f"{name} at {args.size} px: {sum(len(s) for s in data.splits.values())} images "
              f"(resized from {data.source.get('resized_from')})")
    return 0


def _cmd_workers(args: argparse.Namespace) -> int:
    """The Dask workers' declared resources (waits for the first worker), as JSON."""
    from distributed import Client

    with Client(args.address, timeout="30s") as client:
        client.wait_for_workers(1, timeout=60)
        workers = {w.get("name") or addr: w.get("resources") or {}
                   for addr, w in client.scheduler_info().get("workers", {}).items()}
    Path(args.output).write_text(json.dumps(workers) + "\n", encoding="utf-8")
    print(f"Dask workers and their resources: {workers}")
    return 0


def _cmd_amp(args: argparse.Namespace) -> int:
    result = amp_probe(args.device)
    text = json.dumps(result, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    rows = []
    sample_dirs = {Path(p).resolve() for p in args.sample or []}
    for path in find_records([*args.runs, *(args.sample or [])]):
        row = run_row(load_run(path))
        row["_sample"] = any(parent in sample_dirs for parent in path.resolve().parents)
        row["source"] = "grid sample" if row["_sample"] else "notebook"
        rows.append(row)
    amp = json.loads(Path(args.amp).read_text(encoding="utf-8")) if args.amp and Path(args.amp).is_file() else None
    workers = json.loads(Path(args.workers).read_text(encoding="utf-8")) \
        if args.workers and Path(args.workers).is_file() else None
    workload = paper_workload() if args.extrapolate else None
    s = summary(rows, args.device, read_steps(Path(args.steps) if args.steps else None), amp, workload, workers)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(s, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(s) + "\n", encoding="utf-8")
    import csv

    with open(out / "runs.csv", "w", newline="", encoding="utf-8") as f:
        fields = list(rows[0]) if rows else list(COLUMNS)
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(summary_markdown(s))
    return 0 if s["passed"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="device_check.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("packages", help="name==version of the project's packages the device image lacks")
    p.add_argument("--pip-args", action="store_true", help="print pip download's arguments instead")
    p.add_argument("--dest", default=".whl")
    p.set_defaults(func=_cmd_packages)
    p = sub.add_parser("grid", help="write the paper-grid sample as a grid YAML")
    p.add_argument("--device", default="cuda")
    p.add_argument("--models", nargs="+")
    p.add_argument("--size", type=int)
    p.add_argument("--fraction", type=float)
    p.add_argument("--epochs", type=int)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=_cmd_grid)
    p = sub.add_parser("warm", help="load (and resize, cache) datasets once, before anything is timed")
    p.add_argument("--size", type=int, default=PAPER_SIZE)
    p.add_argument("--datasets", nargs="+", default=["pneumoniamnist"])
    p.set_defaults(func=_cmd_warm)
    p = sub.add_parser("workers", help="write the Dask workers' resources (JSON) once one has joined")
    p.add_argument("address")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=_cmd_workers)
    p = sub.add_parser("amp", help="bf16 and fp16+GradScaler training steps on the GPU (skipped without CUDA)")
    p.add_argument("--device", default="cuda")
    p.add_argument("-o", "--output")
    p.set_defaults(func=_cmd_amp)
    p = sub.add_parser("check", help="check run records; write summary.md, summary.json, runs.csv")
    p.add_argument("runs", nargs="*", help="run folders or result.json files (notebook runs)")
    p.add_argument("--sample", nargs="*", help="the grid sample's run folders (used for the extrapolation)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", help="the shell script's step table (TSV)")
    p.add_argument("--amp", help="the AMP probe's JSON")
    p.add_argument("--workers", help="the Dask workers' resources (JSON, from the workers subcommand)")
    p.add_argument("--no-extrapolate", dest="extrapolate", action="store_false")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_check)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
