"""The steps of one run, as building blocks the notebooks ``02_train`` and ``03_finetune`` call.

The notebooks carry the method: parameters -> :class:`~pepr_utils.params.RunParams` check -> load the
data (the functions ``01_data_prep`` uses) -> plan the input size and build the model -> an optimiser
and a loss defined in the notebook -> ``with Meter(...)`` around an explicit epoch loop
(:func:`train_one_epoch`, :func:`evaluate`) -> :func:`make_record` -> :func:`save_run`. This module
holds those steps and nothing that calls them in order, except :func:`run_experiment`, which executes
the notebook's own code in this process (benchmarks and tests; no kernel, no copy of the method).

A model that cannot take the data (the input-size policy says ``incompatible``) gets a record with
that status and the reason, written like any other; any other problem raises, and then no
``result.json`` is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PeprError
from ..params import RunParams, RunSettings
from .loop import Evaluation

if TYPE_CHECKING:
    from ..models.build import WeightsInfo

CHECKPOINT_FILE = "model.safetensors"
PREDICTIONS_FILE = "predictions.npz"  # test labels and scores after the last epoch (the analysis' bootstrap)


def resolve_params(**values: Any) -> dict[str, Any]:
    """The record's ``params`` from loose values: ``RunParams.of(**values).check().as_dict()``."""
    return RunParams.of(**values).check().as_dict()


# --------------------------------------------------------------------------- data and model
def input_normalisation(model: Any, weights: str | None, in_chans: int) -> tuple[Any, Any]:
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


def model_summary(plan: Any, model: Any, data: Any, weights_info: WeightsInfo | None = None) -> dict[str, Any]:
    """The record's ``model_info``: size, MACs per image at the size it runs at, the input plan, and where
    the weights came from (``weights_info``, what :func:`~pepr_utils.models.build.create_model` returned)."""
    from ..models.build import model_info

    info = model_info(model, plan.run_size, data.n_channels) if model is not None else {}
    info.update(data_size=plan.data_size, input_plan=plan.status, input_plan_reason=plan.reason or None,
                weights_source=weights_info.source if weights_info is not None else None)
    return info


def place(model: Any, device: str) -> Any:
    """Move ``model`` to ``device`` and return the torch device: channels-last and cuDNN autotuning on
    CUDA; on CPU freed memory is kept for reuse (:mod:`pepr_utils.train.allocator`)."""
    import torch

    from ..devices import resolve_device
    from .allocator import keep_freed_memory

    dev = resolve_device(device)
    if dev.type == "cpu":
        keep_freed_memory()
    model.to(dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model.to(memory_format=torch.channels_last)
    return dev


def batches(data: Any, split: str, batch_size: int, *, device: Any, run_size: int | None, mean: Any = 0.5,
            std: Any = 0.5, shuffle: bool = False, seed: int = 0):
    """``(x, y)`` batches of one split, normalised, resized to ``run_size`` on the fly, reshuffled each pass."""
    import torch

    from ..data.batches import Batches

    device = torch.device(device)
    return Batches(data.splits[split], batch_size, shuffle=shuffle, seed=seed, device=device, out_size=run_size,
                   mean=mean, std=std, channels_last=device.type == "cuda")


# --------------------------------------------------------------------------- the epoch loop
# train_one_epoch, evaluate and classification_loss live in pepr_utils.train.loop (fit uses them too).
def history_entry(epoch: int, trained: dict[str, float], val: Evaluation | None = None,
                  test: Evaluation | None = None) -> dict[str, Any]:
    """One row of the history (``history.csv``): train loss and ACC, val and test ACC and AUC (NaN for an
    epoch that was not evaluated), epoch time."""
    def metric(e: Evaluation | None, name: str) -> float:
        return e.metrics[name] if e is not None else float("nan")

    return {"epoch": epoch, "train_loss": trained["train_loss"], "train_acc": trained["train_acc"],
            "val_acc": metric(val, "acc"), "val_auc": metric(val, "auc"), "test_acc": metric(test, "acc"),
            "test_auc": metric(test, "auc"), "epoch_time_s": trained["epoch_time_s"]}


def final_metrics(data: Any, val: Evaluation, test: Evaluation) -> dict[str, float]:
    """The metrics after the last epoch (P = ``test_acc``), the chance floor and the agreement beyond it."""
    metrics = {f"{split}_{k}": v for split, e in (("test", test), ("val", val)) for k, v in e.metrics.items()}
    metrics.update(majority_floor(data.splits["train"].labels.numpy(), data.splits["test"].labels.numpy()))
    metrics.update(agreement_beyond_chance(test.y_true, test.y_score, task=data.info.task))
    return metrics


def make_record(params: RunParams, *, data: Any, plan: Any, started_at: str, model_info: dict | None = None,
                history: list | None = None, val: Evaluation | None = None, test: Evaluation | None = None,
                measurement: Any = None, infer_ms_per_image: float | None = None,
                mean: Any = 0.5, std: Any = 0.5, speed: dict | None = None,
                device_requested: str | None = None) -> dict[str, Any]:
    """The run record (validated by :func:`pepr_utils.records.make_record`).

    With an incompatible input plan it records that status and the reason (nothing else is needed);
    otherwise the history, the last evaluations, the meter's :class:`~pepr_utils.meter.meter.Measurement`
    and the inference time. ``device_requested``: the notebook's ``device`` parameter as given (``auto``
    resolves to ``params.device``), kept in ``env`` so the record says the device was chosen on the machine.
    """
    import torch

    from .. import records

    requested = device_requested.strip().lower() if isinstance(device_requested, str) else None
    env = records.environment_info(params.device, data.source, device_requested=requested)
    env.update(torch_threads=torch.get_num_threads(), task=data.info.task, train_images=len(data.splits["train"]),
               input_mean=_plain_list(mean), input_std=_plain_list(std))
    if plan.status == "incompatible":
        return records.make_record(params=params.as_dict(), status="incompatible", error=plan.reason, env=env,
                                   started_at=started_at)
    if not history or val is None or test is None or measurement is None:
        raise PeprError("this run has not been trained yet: a record needs its history, evaluations and measurement")
    speed = speed or {}
    env.update(amp_dtype=speed.get("autocast"), **{f"speed_{k}": v for k, v in speed.items()})
    metrics = {**final_metrics(data, val, test), "history": history}
    resources = records.make_resources(measurement.as_dict(), train_time_s=measurement.time_s,
                                       infer_time_ms_per_image=infer_ms_per_image)
    resources["train_steps_time_s"] = float(sum(h["epoch_time_s"] for h in history))  # no evaluation
    return records.make_record(params=params.as_dict(), status="ok", model_info=model_info, metrics=metrics,
                               resources=resources, env=env, started_at=started_at)


def save_run(out_dir: str | os.PathLike | None, record: dict[str, Any], *, model: Any = None, data: Any = None,
             test: Evaluation | None = None) -> Path:
    """Write the trained weights (``model.safetensors``), the test predictions (``predictions.npz``),
    then ``history.csv`` and ``result.json`` (last and atomically: its presence means the run is complete).

    ``out_dir`` None means ``<output dir>/runs/<run_id>``. Returns the run folder.
    """
    from ..records import write_record

    out = Path(out_dir) if out_dir not in (None, "") else default_out_dir(record["run_id"])
    if model is not None:
        meta = {"model": record["params"]["model"], "dataset": record["params"]["dataset"],
                "run_id": record["run_id"], "input_size": (record.get("model_info") or {}).get("input_size")}
        if data is not None:
            meta.update(num_classes=data.n_classes, in_chans=data.n_channels)
        save_checkpoint(model, out / CHECKPOINT_FILE, meta)
    if test is not None:
        save_predictions(out / PREDICTIONS_FILE, test.y_true, test.y_score)
    print(f"wrote {write_record(out, record)}")
    return out


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

    from .loop import scores_to_labels

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
    from ..settings import output_dir

    return output_dir() / "runs" / run_id


def save_checkpoint(model: Any, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """The model's state dict as safetensors (written atomically), loadable by ``create_model(weights=path)``."""
    from safetensors.torch import save_file

    from ..fileio import atomic_path

    # clone: safetensors refuses tensors that share memory; contiguous: it needs dense tensors
    tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
    return Path(path)


def save_predictions(path: str | os.PathLike, y_true: Any, y_score: Any) -> Path:
    """Per-image test labels and class probabilities, written atomically (plain arrays: no pickle)."""
    import numpy as np

    from ..fileio import atomic_path

    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, y_true=np.asarray(y_true), y_score=np.asarray(y_score, dtype=np.float32))
    return Path(path)


def run_experiment(params: dict[str, Any], out_dir: str | os.PathLike | None = None, *,
                   data_dir: str | os.PathLike | None = None, weights_dir: str | os.PathLike | None = None,
                   country_iso_code: str | None = None, eval_every_epoch: bool | None = None) -> dict[str, Any]:
    """Execute the notebook's own code (``02_train``, or ``03_finetune`` for pretrained weights) in this
    process, without a kernel; return the record it wrote to ``out_dir`` (None: a temporary folder).

    ``params`` are the run parameters (:data:`pepr_utils.params.NAMES`; missing ones take the defaults), the
    keywords the run settings (:class:`~pepr_utils.params.RunSettings`; None: its default). Used by the
    benchmarks (the grid's fixed cost is papermill and the kernel, measured against this) and the tests.
    """
    import tempfile

    from ..records import read_record
    from .notebook_code import run_notebook_code

    if not isinstance(params, dict):
        raise PeprError(f"params must be a dict of run parameters, got {type(params).__name__}")
    run = RunParams.of(**params)  # unknown names -> PeprError
    given = {k: v for k, v in params.items() if k not in ("pretrained", "weights", "mode")}
    chosen = {"country_iso_code": country_iso_code, "eval_every_epoch": eval_every_epoch}
    settings = RunSettings.of(data_dir=data_dir, weights_dir=weights_dir,
                              **{k: v for k, v in chosen.items() if v is not None}).valid().as_dict()
    if run.weights is not None:
        given.update(weights=run.weights, mode=run.mode)
    else:
        del settings["weights_dir"]  # 02_train has no weights_dir parameter
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(out_dir) if out_dir not in (None, "") else Path(tmp) / "run"
        run_notebook_code("03_finetune" if run.weights is not None else "02_train",
                          {**given, **settings, "out_dir": str(out)})
        return read_record(out)


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
