"""One run of the study, as steps: resolve the parameters, prepare, train (metered), record, save.

Notebooks ``02_train`` and ``03_finetune`` are the same run from two starting points (random weights,
or pretrained ones), so both call these steps and neither repeats logic::

    params = resolve_params(model="resnet18d", dataset="pneumoniamnist", epochs=10)
    run = prepare(params, data_dir=..., country_iso_code="DNK")   # data, input plan, model
    run.train()                                                 # fit inside a Meter
    record = run.save(out_dir)                                  # result.json, history.csv, model.safetensors

:func:`run_experiment` does all of it in one call (benchmarks, the grid's overhead comparison). A model
that cannot take the data (the input-size policy says ``incompatible``) gives a record with that
status and the reason, written like any other, and no exception; any other problem raises, and then
no ``result.json`` is written.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PeprError
from .params import NAMES, RunParams
from .train import FitResult, TrainConfig, resolve_device

PARAM_NAMES = NAMES  # the run parameters, in the record's order (pepr_utils.params)
CHECKPOINT_FILE = "model.safetensors"
PREDICTIONS_FILE = "predictions.npz"  # test labels and scores after the last epoch (the analysis' bootstrap)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 (py3.10)


# --------------------------------------------------------------------------- parameters
def resolve_params(**values: Any) -> dict[str, Any]:
    """The record's ``params`` from loose values: :meth:`RunParams.of(...).check() <pepr_utils.params.RunParams.check>`.

    ``weights`` None for a model from scratch ("scratch"/"none" accepted), else "imagenet" or a checkpoint
    path as given; ``pretrained`` follows from ``weights``; ``device="auto"`` becomes this machine's device.
    Missing values take the defaults of ``parameters/defaults.yaml``; a bad one is a one-line PeprError.
    """
    return RunParams.of(**values).check().as_dict()


# --------------------------------------------------------------------------- the run
@dataclass
class Experiment:
    """A prepared run: its parameters, data, input plan and model; ``train`` and ``save`` finish it."""

    params: dict[str, Any]
    dataset: Any  # datasets.MedicalDataset (train split already cut to the fraction)
    plan: Any  # models.InputPlan
    model: Any = None  # torch.nn.Module, None when the plan is incompatible
    model_info: dict[str, Any] | None = None
    country_iso_code: str = "DNK"
    carbon_intensity_g_per_kwh: float | None = None
    progress: bool = True
    started_at: str = field(default_factory=_now)
    mean: Any = 0.5
    std: Any = 0.5
    fit_result: FitResult | None = None
    meter_result: dict[str, Any] | None = None
    infer_time_ms_per_image: float | None = None

    # -- facts ----------------------------------------------------------------------------------
    @property
    def compatible(self) -> bool:
        return self.plan.status != "incompatible"

    @property
    def device(self) -> str:
        return str(resolve_device(self.params["device"]))

    @property
    def run_size(self) -> int | None:
        return self.plan.run_size

    def config(self) -> TrainConfig:
        p = self.params
        return TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], seed=p["seed"],
                           device=p["device"], progress=self.progress)

    def data_summary(self):
        """Images per split and per class (a DataFrame), the first thing to look at in a run."""
        import numpy as np
        import pandas as pd

        info = self.dataset.info
        rows = {}
        for name, split in self.dataset.splits.items():
            labels = split.labels.numpy()
            row = {"images": len(split)}
            if labels.ndim == 1:
                counts = np.bincount(labels, minlength=info.n_classes)
                row.update({f"{k}: {v}": int(counts[int(k)]) for k, v in info.labels.items()})
            rows[name] = row
        table = pd.DataFrame(rows).T
        table.index.name = f"{self.dataset.name} {self.dataset.size}px (train fraction {self.params['fraction']:g})"
        return table

    def model_summary(self):
        """Model size, MACs and how it sees the data (the input plan), as a one-column DataFrame."""
        import pandas as pd

        rows = {"model": self.params["model"], "weights": self.params["weights"] or "scratch",
                "mode": self.params["mode"], "input plan": self.plan.status,
                "data size (px)": self.plan.data_size, "run size (px)": self.plan.run_size,
                "plan reason": self.plan.reason or "", "normalisation": f"mean {self.mean}, std {self.std}"}
        rows.update(self.model_info or {})
        return pd.DataFrame({"value": pd.Series(rows, dtype=object)})

    # -- work -----------------------------------------------------------------------------------
    def batches(self, split: str, batch_size: int, shuffle: bool = False):
        from .datasets import Batches

        device = resolve_device(self.params["device"])
        return Batches(self.dataset.splits[split], batch_size, shuffle=shuffle, seed=self.params["seed"],
                       device=device, out_size=self.run_size, mean=self.mean, std=self.std,
                       channels_last=device.type == "cuda")

    def train(self) -> FitResult | None:
        """Fit inside a Meter (energy, CO2, time, peak memory of all epochs), then time inference.

        An incompatible run does nothing and returns None, so a notebook reads the same either way.
        """
        if not self.compatible:
            print(f"not trained: {self.params['model']} is incompatible with {self.plan.data_size} px data "
                  f"({self.plan.reason})")
            return None
        if self.fit_result is not None:
            raise PeprError("this run is already trained; prepare a new one to train again")
        from .meter import Meter
        from .train import fit, inference_time_ms

        config = self.config()
        task = self.dataset.info.task
        train = self.batches("train", config.batch_size, shuffle=True)
        val = self.batches("val", config.eval_batch_size)
        test = self.batches("test", config.eval_batch_size)
        meter = Meter(self.device, country_iso_code=self.country_iso_code,
                      carbon_intensity_g_per_kwh=self.carbon_intensity_g_per_kwh)
        with meter:
            self.fit_result = fit(self.model, train, val_batches=val, test_batches=test, task=task,
                                  config=config)
        self.meter_result = dict(meter.result)
        self.infer_time_ms_per_image = inference_time_ms(
            self.model, self.batches("test", config.batch_size), device=self.device, amp=config.amp,
            channels_last=config.channels_last)
        return self.fit_result

    def chance_floor(self) -> dict[str, float]:
        """What a model that learned nothing scores on the test split (``majority_acc``, ``chance_auc``),
        and how far this one is above chance (``test_kappa``, ``test_kappa_p``)."""
        floor = majority_floor(self.dataset.splits["train"].labels.numpy(), self.dataset.splits["test"].labels.numpy())
        if self.fit_result is not None and self.fit_result.test_predictions is not None:
            floor.update(agreement_beyond_chance(*self.fit_result.test_predictions, task=self.dataset.info.task))
        return floor

    def metrics_table(self):
        """Final test and validation metrics (after the last epoch) as a one-column DataFrame."""
        import pandas as pd

        if self.fit_result is None:
            return pd.DataFrame({"value": pd.Series(dtype=float)})
        return pd.DataFrame({"value": pd.Series(self.fit_result.metrics)})

    def record(self) -> dict[str, Any]:
        """The run record (validated by :func:`~pepr_utils.records.make_record`)."""
        from . import records

        env = records.environment_info(self.device if self.compatible else self.params["device"],
                                       self.dataset.source)
        env.update(self._run_env())
        if not self.compatible:
            return records.make_record(params=self.params, status="incompatible", error=self.plan.reason,
                                       env=env, started_at=self.started_at)
        if self.fit_result is None:
            raise PeprError("this run has not been trained yet; call train() before record()")
        metrics = {**self.fit_result.metrics, **self.chance_floor(), "history": self.fit_result.history}
        resources = records.make_resources(self.meter_result, train_time_s=self.meter_result["time_s"],
                                           infer_time_ms_per_image=self.infer_time_ms_per_image)
        resources["train_steps_time_s"] = self.fit_result.train_time_s  # training steps only, no evaluation
        return records.make_record(params=self.params, status="ok", model_info=self._record_model_info(),
                                   metrics=metrics, resources=resources, env=env, started_at=self.started_at)

    def _record_model_info(self) -> dict[str, Any]:
        info = dict(self.model_info or {})
        info.update(data_size=self.plan.data_size, input_plan=self.plan.status,
                    input_plan_reason=self.plan.reason or None,
                    weights_source=(getattr(self.model, "pepr_weights_info", None) or {}).get("source"))
        return info

    def _run_env(self) -> dict[str, Any]:
        import torch

        env: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "task": self.dataset.info.task,
                               "train_images": len(self.dataset.splits["train"]),
                               "input_mean": _plain_list(self.mean), "input_std": _plain_list(self.std)}
        if self.fit_result is not None:
            env.update(amp_dtype=self.fit_result.amp_dtype)
            env.update({f"speed_{k}": v for k, v in self.fit_result.speed.items()})  # what made it fast
        return env

    def save(self, out_dir: str | os.PathLike | None = None, *, checkpoint: bool = True) -> dict[str, Any]:
        """Write the trained weights (``model.safetensors``), the test predictions (``predictions.npz``),
        then ``history.csv`` and ``result.json``.

        ``result.json`` comes last (atomically), so its presence means the run is complete. Returns the
        record. ``out_dir`` None means ``<output dir>/runs/<run_id>``.
        """
        from .records import write_record

        record = self.record()
        out = Path(out_dir) if out_dir not in (None, "") else default_out_dir(record["run_id"])
        if checkpoint and self.fit_result is not None:
            save_checkpoint(self.model, out / CHECKPOINT_FILE,
                            {"model": self.params["model"], "dataset": self.params["dataset"],
                             "num_classes": str(self.dataset.n_classes), "in_chans": str(self.dataset.n_channels),
                             "run_id": record["run_id"], "input_size": str(self.run_size)})
        if self.fit_result is not None and self.fit_result.test_predictions is not None:
            save_predictions(out / PREDICTIONS_FILE, *self.fit_result.test_predictions)
        path = write_record(out, record)
        print(f"wrote {path}")
        return record


def majority_floor(train_labels: Any, test_labels: Any) -> dict[str, float]:
    """The floor a useful model must beat: the test accuracy of always predicting the training split's most
    frequent class (per label for multi-label tasks, averaged as MedMNIST's ACC averages), and chance AUC 0.5.

    The training split decides the guess (a model sees nothing else), so the floor can lie below the test
    split's own majority share; ties go to the lowest class index, as ``argmax`` does.
    """
    import numpy as np

    train = np.asarray(train_labels)
    test = np.asarray(test_labels)
    if train.ndim == 2 and train.shape[1] > 1:  # multi-label: one majority guess per label
        guess = (train.mean(axis=0) > 0.5).astype(test.dtype)
        acc = float((test == guess).mean())
    else:
        train, test = train.reshape(-1), test.reshape(-1)
        guess = int(np.argmax(np.bincount(train.astype(np.int64))))
        acc = float((test == guess).mean())
    return {"majority_acc": acc, "chance_auc": 0.5}


def agreement_beyond_chance(y_true: Any, y_score: Any, task: str) -> dict[str, float]:
    """Cohen's kappa of the test predictions and the one-sided p-value that it exceeds 0.

    Kappa is accuracy corrected for the agreement expected from the label and prediction shares alone:
    0 for a constant guess or a coin flip whatever the class balance, 1 for perfect predictions. The
    p-value uses the large-sample standard error under no agreement, ``sqrt(p_e / (n (1 - p_e)))``
    (Cohen 1960). Multi-label tasks average kappa over labels and use the total number of decisions.
    """
    import numpy as np
    from scipy.stats import norm

    from .train import scores_to_labels

    y_true = np.asarray(y_true)
    y_pred = scores_to_labels(np.asarray(y_score), task)
    if y_true.ndim == 2 and y_true.shape[1] > 1:
        pairs = [(y_true[:, k], y_pred[:, k]) for k in range(y_true.shape[1])]
    else:
        pairs = [(y_true.reshape(-1), y_pred.reshape(-1))]
    kappas, z_parts, n_total = [], [], 0
    for t, p in pairs:
        n = len(t)
        classes = np.union1d(t, p)
        p_o = float(np.mean(t == p))
        p_e = float(sum(np.mean(t == c) * np.mean(p == c) for c in classes))
        kappa = 0.0 if p_e >= 1 else (p_o - p_e) / (1 - p_e)
        se0 = np.sqrt(p_e / (n * (1 - p_e))) if 0 < p_e < 1 else np.inf
        kappas.append(kappa)
        z_parts.append(kappa / se0 if np.isfinite(se0) else 0.0)
        n_total += n
    kappa = float(np.mean(kappas))
    z = float(np.sum(z_parts) / np.sqrt(len(z_parts)))  # Stouffer's combination over labels
    return {"test_kappa": kappa, "test_kappa_p": float(norm.sf(z))}


def _plain_list(value: Any) -> Any:
    return [float(v) for v in value] if isinstance(value, list | tuple) else float(value)


def default_out_dir(run_id: str) -> Path:
    """``<PEPR_OUTPUT_DIR or the checkout's outputs/>/runs/<run_id>`` (independent of the notebook's cwd)."""
    from .settings import output_dir

    root = output_dir()
    if not os.environ.get("PEPR_OUTPUT_DIR") and not root.is_absolute():
        checkout = Path(__file__).resolve().parents[1]
        if (checkout / "pyproject.toml").is_file():
            root = checkout / root
    return root / "runs" / run_id


def save_checkpoint(model: Any, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """The model's state dict as safetensors (written atomically), loadable by ``create_model(weights=path)``."""
    from safetensors.torch import save_file

    from .fileio import atomic_path

    # clone: safetensors refuses tensors that share memory; contiguous: it needs dense tensors
    tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
    return Path(path)


def save_predictions(path: str | os.PathLike, y_true: Any, y_score: Any) -> Path:
    """Per-image test labels and class probabilities, written atomically (plain arrays: no pickle)."""
    import numpy as np

    from .fileio import atomic_path

    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, y_true=np.asarray(y_true), y_score=np.asarray(y_score, dtype=np.float32))
    return Path(path)


def _normalisation(model: Any, weights: str | None, in_chans: int) -> tuple[Any, Any]:
    """Input mean/std: the pretrained weights' own for ImageNet weights, else MedMNIST's 0.5/0.5.

    With one input channel timm sums the RGB stem filters, i.e. treats grey as R=G=B, so the channel
    means of the ImageNet statistics are used.
    """
    if weights != "imagenet":
        return 0.5, 0.5
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if not mean or not std:
        return 0.5, 0.5
    if in_chans == 1 or len(mean) != in_chans:
        return float(sum(mean) / len(mean)), float(sum(std) / len(std))
    return [float(m) for m in mean], [float(s) for s in std]


def prepare(
    params: dict[str, Any],
    *,
    data_dir: str | os.PathLike | None = None,
    weights_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    country_iso_code: str | None = "DNK",
    carbon_intensity_g_per_kwh: float | None = None,
    progress: bool = True,
) -> Experiment:
    """Load the data (train fraction applied), plan the input size, build the model (weights, mode).

    ``params`` must come from :func:`resolve_params`. Cheap checks come first (device, carbon
    intensity, the model's input plan), so a bad setting fails before any data is read.
    """
    import torch

    from .allocator import keep_freed_memory
    from .carbon import carbon_intensity
    from .datasets import load_dataset
    from .models import create_model, model_info, plan_input, set_trainable

    params = resolve_params(**params)
    if resolve_device(params["device"]).type == "cpu":  # CUDA asked for but absent -> PeprError now
        keep_freed_memory()  # CPU training: fewer page faults (see pepr_utils.allocator)
    if carbon_intensity_g_per_kwh is None:
        carbon_intensity(country_iso_code)  # unknown country -> PeprError now, not after training
    started_at = _now()
    plan = plan_input(params["model"], params["size"], cache_dir=cache_dir)
    data = load_dataset(params["dataset"], params["size"], data_dir=data_dir, cache_dir=cache_dir,
                        offline=offline, progress=progress)
    if params["fraction"] < 1.0:
        data = data.with_train_fraction(params["fraction"], params["seed"])
    run = Experiment(params=params, dataset=data, plan=plan, country_iso_code=country_iso_code,
                     carbon_intensity_g_per_kwh=carbon_intensity_g_per_kwh, progress=progress,
                     started_at=started_at)
    if plan.status == "incompatible":
        return run
    torch.manual_seed(params["seed"])  # the initial weights are part of the run
    run.model = create_model(params["model"], data.n_classes, data.n_channels, weights=params["weights"],
                             weights_dir=weights_dir, offline=offline)
    set_trainable(run.model, params["mode"])
    run.model_info = model_info(run.model, plan.run_size, data.n_channels)
    run.mean, run.std = _normalisation(run.model, params["weights"], data.n_channels)
    return run


def run_experiment(
    params: dict[str, Any],
    out_dir: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    weights_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    country_iso_code: str | None = "DNK",
    carbon_intensity_g_per_kwh: float | None = None,
    progress: bool = True,
    checkpoint: bool = True,
) -> dict[str, Any]:
    """Resolve, prepare, train and save one run; return its record (also written to ``out_dir``).

    ``params`` holds the run's parameters (``PARAM_NAMES``; missing ones take the paper's defaults).
    Incompatible runs return and write a record with status "incompatible"; errors raise, and then
    nothing is written.
    """
    if not isinstance(params, dict):
        raise PeprError(f"params must be a dict of run parameters, got {type(params).__name__}")
    unknown = sorted(set(params) - set(PARAM_NAMES))
    if unknown:
        raise PeprError(f"unknown run parameter(s) {', '.join(unknown)}; accepted: {', '.join(PARAM_NAMES)}")
    run = prepare(resolve_params(**params), data_dir=data_dir, weights_dir=weights_dir, cache_dir=cache_dir,
                  offline=offline, country_iso_code=country_iso_code,
                  carbon_intensity_g_per_kwh=carbon_intensity_g_per_kwh, progress=progress)
    run.train()
    return run.save(out_dir, checkpoint=checkpoint)


def record_summary(record: dict[str, Any]):
    """The figures of a record worth reading at a glance (a one-column DataFrame)."""
    import pandas as pd

    m, r, i = record.get("metrics") or {}, record.get("resources") or {}, record.get("model_info") or {}
    rows = {
        "run_id": record["run_id"], "status": record["status"], "error": record.get("error"),
        "test_acc": m.get("test_acc"), "test_auc": m.get("test_auc"), "test_bal_acc": m.get("test_bal_acc"),
        "test_f1_macro": m.get("test_f1_macro"), "val_acc": m.get("val_acc"), "val_auc": m.get("val_auc"),
        "num_params": i.get("num_params"), "trainable_params": i.get("trainable_params"),
        "macs_per_image": i.get("macs_per_image"), "input_size": i.get("input_size"),
        "train_time_s": r.get("train_time_s"), "infer_time_ms_per_image": r.get("infer_time_ms_per_image"),
        "energy_kwh": r.get("energy_kwh"), "energy_method": r.get("energy_method"), "co2_g": r.get("co2_g"),
        "peak_mem_gb": r.get("peak_mem_gb"), "mem_kind": r.get("mem_kind"),
    }
    return pd.DataFrame({"value": pd.Series(rows, dtype=object)})
