"""Fit and evaluate a classifier: the paper's recipe, seeded, with MedMNIST's metrics.

The PePR paper trains every model the same way (Adam, lr 5e-4, batch 32, 10 epochs, cross-entropy)
and records the test accuracy after each epoch; P is the test accuracy after the last one. ``fit``
does exactly that over any re-iterable of ``(x, y)`` batches, so it knows nothing about datasets or
models. It keeps a per-epoch history, reports ACC and AUC as MedMNIST defines them (``medmnist``'s own
``getACC``/``getAUC``) plus balanced accuracy and macro-F1, and stays out of the way of the hot loop:
no host-device synchronisation per step, evaluation without autograd in large batches.

On CPU a seeded run is bit-reproducible; on CUDA it uses mixed precision
(bf16, or fp16 with a gradient scaler) and channels-last tensors, which is what fast means there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..devices import resolve_device
from ..errors import PeprError
from ..params import RunParams, RunSettings

EVAL_BATCH_SIZE = 256  # evaluation batches: no gradients, so larger than training ones
MULTI_LABEL = "multi-label, binary-class"
BINARY = "binary-class"


# --------------------------------------------------------------------------- metrics
def scores_to_labels(y_score: np.ndarray, task: str) -> np.ndarray:
    """Predicted labels exactly as MedMNIST's ``getACC`` derives them (threshold 0.5 or argmax)."""
    if task == MULTI_LABEL:
        return (y_score > 0.5).astype(np.int64)
    if task == BINARY:
        return (y_score[:, -1] > 0.5).astype(np.int64) if y_score.ndim == 2 else (y_score > 0.5).astype(np.int64)
    return np.argmax(y_score, axis=-1)


def classification_metrics(y_true: np.ndarray, y_score: np.ndarray, task: str) -> dict[str, float]:
    """acc and auc as MedMNIST computes them, plus balanced accuracy and macro-F1 (scikit-learn).

    ``y_score`` holds probabilities (softmax, or sigmoid for multi-label). Binary AUC uses the
    positive-class probability, multi-class AUC is the one-vs-rest average. An AUC that is undefined
    (a class absent from ``y_true``) is NaN rather than an exception.
    """
    import warnings

    from medmnist.evaluator import getACC, getAUC
    from sklearn.metrics import balanced_accuracy_score, f1_score

    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if len(y_true) == 0:
        raise PeprError("cannot compute metrics on an empty split")
    y_pred = scores_to_labels(y_score, task)
    acc = float(getACC(y_true, y_score, task))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            auc = float(getAUC(y_true, y_score, task))
    except ValueError:
        auc = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes absent from y_pred make sklearn warn; the number is right
        if task == MULTI_LABEL:
            bal_acc = float(np.mean([balanced_accuracy_score(y_true[:, k], y_pred[:, k])
                                     for k in range(y_true.shape[1])]))
        else:
            bal_acc = float(balanced_accuracy_score(y_true, y_pred))
        f1 = float(f1_score(y_true, y_pred, average="macro", zero_division=0))
    return {"acc": acc, "auc": auc, "bal_acc": bal_acc, "f1_macro": f1}


# --------------------------------------------------------------------------- device helpers
def autocast_for(device: torch.device, amp: bool) -> tuple[Any, torch.dtype | None]:
    """``(context, dtype)``: autocast on CUDA only, bf16 where the GPU has it, else fp16 (which needs
    a GradScaler); elsewhere a null context and None. On CPU, autocast would change the numbers and
    rarely the speed, so runs there stay in float32."""
    if not amp or device.type != "cuda":
        return nullcontext(), None
    dtype = torch.bfloat16 if native_bf16(device) else torch.float16
    return torch.autocast("cuda", dtype=dtype), dtype


def native_bf16(device: torch.device) -> bool:
    """Whether the CUDA GPU ``device`` computes in bf16 natively (compute capability 8.0 and newer: Ampere,
    Hopper, ...; ROCm GPUs too).

    Not ``torch.cuda.is_bf16_supported()``: it asks about the *current* GPU, not ``device``, and by default
    (``including_emulation=True``) answers yes on GPUs that only emulate bf16 (a T4, Colab's GPU, or a
    V100), where bf16 autocast runs without tensor cores; those GPUs take the fp16 + GradScaler path.
    """
    if torch.version.hip:
        return True
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.get_device_capability(index)[0] >= 8


def _to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device, channels_last: bool):
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextmanager
def _reproducibility(device: torch.device, deterministic: bool | None) -> Iterator[None]:
    """Seeded runs are reproducible on CPU as they are; ``deterministic=True`` forces it everywhere.

    Measured here: PyTorch's CPU kernels (oneDNN convolutions included) give bit-identical training
    for a fixed seed and thread count, while ``torch.use_deterministic_algorithms(True)`` swaps in
    slow reference convolutions (about 10x slower on CPU). So ``None`` (the default) seeds and keeps
    the fast kernels (plus cuDNN autotuning on CUDA); ``True`` also turns on PyTorch's deterministic
    algorithms (what a bit-reproducible CUDA run needs, at a cost); the settings are restored afterwards.
    """
    prev = (torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = prev[2], prev[3]


def freeze_frozen_norms(model: nn.Module, frozen_norms: Iterable[str] = ()) -> int:
    """Put frozen normalisation layers into eval mode (call after ``model.train()``); return how many.

    In a linear probe the backbone must not change at all, but BatchNorm updates its running
    statistics in train mode even when no gradient reaches its weights. Frozen layers are those
    named in ``frozen_norms`` (what :func:`pepr_utils.models.build.set_trainable` returns) and any
    normalisation layer whose affine parameters all have ``requires_grad=False``.
    """
    frozen = {id(model.get_submodule(name)) for name in frozen_norms}
    count = 0
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        generic = (isinstance(module, nn.modules.batchnorm._NormBase) and params
                   and not any(p.requires_grad for p in params))
        if id(module) in frozen or generic:
            module.eval()
            count += 1
    return count


def _is_multilabel(y: torch.Tensor) -> bool:
    return y.dim() == 2


# --------------------------------------------------------------------------- evaluation
def speed_options(device: str | torch.device, eval_batch_size: int | None = EVAL_BATCH_SIZE, amp: bool = True,
                  channels_last: bool = True) -> dict[str, Any]:
    """What made the run fast (the record's ``env.speed_*``): layouts, autocast, compile, evaluation, threads."""
    device = torch.device(device)
    _, dtype = autocast_for(device, amp)
    return {"channels_last": channels_last and device.type == "cuda",
            "eval_channels_last": _eval_channels_last(device, channels_last),
            "autocast": str(dtype).replace("torch.", "") if dtype else None, "compiled": False,
            "eval_batch_size": eval_batch_size, "eval_grad_mode": "inference_mode",
            "torch_threads": torch.get_num_threads()}


def _eval_channels_last(device: torch.device, channels_last: bool) -> bool:
    return channels_last and device.type in ("cuda", "cpu")


@contextmanager
def _inference(model: nn.Module, device: torch.device, amp: bool, channels_last: bool):
    """Eval mode, autocast where it applies, and the layout inference runs in; all restored afterwards.

    Channels-last is used for inference on CPU too (on CUDA the model already is, see ``place``): oneDNN's
    inference kernels are 2-3.5x faster in that layout at 28 px (CPU ms per image, batch 256, one thread:
    tf_efficientnet_lite0 4.0 -> 1.1, lite2 5.6 -> 1.6, resnet18d 2.3 -> 1.3, mobilenetv2_050 0.7 -> 0.4),
    while its training kernels are not consistently faster (resnet18d 1.2x slower), so training on CPU
    keeps the default layout and the model is converted back after the evaluation. Yields
    ``(channels_last, autocast)``.
    """
    use_cl = _eval_channels_last(device, channels_last)
    convert = use_cl and device.type == "cpu"
    was_training = model.training
    model.eval()
    if convert:
        with torch.inference_mode(False):  # the weights stay normal tensors, to be trained again
            model.to(memory_format=torch.channels_last)
    autocast, _ = autocast_for(device, amp)
    try:
        yield use_cl, autocast
    finally:
        if convert:
            with torch.inference_mode(False):
                model.to(memory_format=torch.contiguous_format)
        model.train(was_training)


@torch.inference_mode()
def predict(model: nn.Module, batches: Iterable, *, device: str | torch.device = "cpu", amp: bool = True,
            channels_last: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_score)`` over all batches: probabilities (softmax, or sigmoid for multi-label)."""
    device = torch.device(device) if not isinstance(device, torch.device) else device
    scores, labels = [], []
    with _inference(model, device, amp, channels_last) as (use_cl, autocast):
        for x, y in batches:
            x, y = _to_device(x, y, device, use_cl)
            with autocast:
                logits = model(x)
            logits = logits.float()
            scores.append(torch.sigmoid(logits) if _is_multilabel(y) else torch.softmax(logits, dim=1))
            labels.append(y)
    if not scores:
        raise PeprError("cannot evaluate on an empty split (no batches)")
    return torch.cat(labels).cpu().numpy(), torch.cat(scores).cpu().numpy()


@torch.inference_mode()
def inference_time_ms(model: nn.Module, batches: Iterable, *, device: str | torch.device = "cpu",
                      amp: bool = True, channels_last: bool = True, warmup_batches: int = 2,
                      max_images: int = 1024) -> float:
    """Milliseconds per image of a forward pass in eval mode (batches prepared as in training).

    The first ``warmup_batches`` batches are run and not timed (allocator, cuDNN autotuning, caches);
    then up to ``max_images`` images are timed, with the device synchronised at both ends.
    """
    device = torch.device(device) if not isinstance(device, torch.device) else device
    with _inference(model, device, amp, channels_last) as (use_cl, autocast):
        it = iter(batches)
        first = next(it, None)
        if first is None:
            raise PeprError("cannot time inference on an empty split (no batches)")
        x, _ = _to_device(*first, device, use_cl)
        with autocast:
            for _ in range(max(1, warmup_batches)):
                model(x)
        _sync(device)
        n = 0
        start = time.perf_counter()
        for xb, yb in _chain_first(first, it):
            xb, _ = _to_device(xb, yb, device, use_cl)
            with autocast:
                model(xb)
            n += xb.shape[0]
            if n >= max_images:
                break
        _sync(device)
        elapsed = time.perf_counter() - start
    return 1000.0 * elapsed / n


def _chain_first(first, rest: Iterator):
    yield first
    yield from rest


# --------------------------------------------------------------------------- training
@dataclass
class FitResult:
    """What ``fit`` returns: the per-epoch history and the final metrics (after the last epoch)."""

    history: list[dict] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    train_images: int = 0
    device: str = "cpu"
    amp_dtype: str | None = None
    #: ``(y_true, y_score)`` on the test split after the last epoch: per-image evidence that lets the
    #: analysis bootstrap the test set (how sure a ranking is), not only the seeds.
    test_predictions: tuple[np.ndarray, np.ndarray] | None = None
    #: The speed options this fit used (a run record's ``env`` takes them): memory layout, autocast,
    #: compilation, evaluation batch size and grad mode, torch threads. Measured on a 2-core CPU at
    #: 28 px (benchmarks/bench_options.py): channels-last there is 0.67x and changes the numbers, larger
    #: evaluation batches do not pay (1024: 0.78x of 256, scores identical), so CPU runs keep the defaults.
    speed: dict[str, Any] = field(default_factory=dict)

    @property
    def train_time_s(self) -> float:
        """Time spent in training steps over all epochs (evaluation excluded)."""
        return float(sum(h["epoch_time_s"] for h in self.history))


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimiser should update (all of them, or the head of a linear probe)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise PeprError("the model has no trainable parameters; check the fine-tuning mode")
    return params


def classification_loss(task: str):
    """The paper's loss: cross-entropy; binary cross-entropy per label for multi-label tasks."""
    if task != MULTI_LABEL:
        return nn.CrossEntropyLoss()
    bce = nn.BCEWithLogitsLoss()
    return lambda logits, y: bce(logits, y.float())


def train_one_epoch(model: nn.Module, batches: Iterable, optimizer: torch.optim.Optimizer, loss_fn, *,
                    device: str | torch.device, amp: bool = True, channels_last: bool = True,
                    scaler: torch.amp.GradScaler | None = None, frozen_norms: Iterable[str] = (),
                    augment=None, progress: bool = True, desc: str = "epoch") -> dict[str, float]:
    """One pass over ``batches``: ``train_loss``, ``train_acc`` (running means), ``images``, ``epoch_time_s``.

    Frozen normalisation layers (``frozen_norms``, as :func:`pepr_utils.models.build.set_trainable` returns
    them, and any whose parameters are all frozen) stay in eval mode: a linear probe leaves the backbone
    bit-identical. On CUDA the forward pass runs under autocast on channels-last tensors: bf16, or fp16
    with ``scaler``, the run's :func:`grad_scaler` (one for all epochs: it carries the loss scale);
    nothing synchronises the device per step. A non-finite loss raises (the run diverged).
    ``augment`` (a function of a batch of images on the device) is applied to each training batch.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    use_cl = channels_last and device.type == "cuda"
    autocast, dtype = autocast_for(device, amp)
    if dtype == torch.float16 and scaler is None:
        raise PeprError("fp16 autocast needs a gradient scaler for the whole run: create it once with "
                        "grad_scaler(device) and pass scaler= to every epoch")
    scaler = scaler if dtype == torch.float16 else None  # bf16 and float32 need no loss scaling
    model.train()
    freeze_frozen_norms(model, frozen_norms)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)  # float32: exact counts to 2**24, and MPS has no float64
    seen = 0
    bar = tqdm(total=_safe_len(batches), desc=desc, unit="batch", disable=not progress, leave=True,
               dynamic_ncols=True)
    _sync(device)
    start = time.perf_counter()
    for x, y in batches:
        x, y = _to_device(x, y, device, use_cl)
        if augment is not None:
            x = augment(x)
        with autocast:
            logits = model(x)
            loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            loss_sum += loss.detach().float() * y.shape[0]
            if _is_multilabel(y):  # the share of labels right
                correct += ((logits.detach() > 0) == y.bool()).float().mean(dim=1).sum()
            else:
                correct += (logits.detach().argmax(dim=1) == y).sum()
        seen += y.shape[0]
        bar.update(1)
    _sync(device)
    elapsed = time.perf_counter() - start
    if seen == 0:
        bar.close()
        raise PeprError("the training split produced no batches; check the fraction and batch size")
    out = {"train_loss": loss_sum.item() / seen, "train_acc": correct.item() / seen, "images": seen,
           "epoch_time_s": elapsed}
    bar.set_postfix(loss=f"{out['train_loss']:.4f}", acc=f"{out['train_acc']:.3f}")
    bar.close()
    if not math.isfinite(out["train_loss"]):
        raise PeprError(f"training diverged ({desc}: loss {out['train_loss']}); "
                        f"try a smaller lr than {optimizer.param_groups[0].get('lr')}")
    return out


def grad_scaler(device: str | torch.device, amp: bool = True) -> torch.amp.GradScaler | None:
    """A run's gradient scaler, for :func:`train_one_epoch`'s ``scaler``: fp16 autocast (a CUDA GPU without
    bf16) needs one that lives as long as the optimiser; bf16 and float32 do not (None)."""
    _, dtype = autocast_for(torch.device(device), amp)
    return torch.amp.GradScaler("cuda") if dtype == torch.float16 else None


@dataclass(frozen=True)
class Evaluation:
    """A model's predictions on one split and their metrics (``acc``, ``auc``, ``bal_acc``, ``f1_macro``)."""

    y_true: np.ndarray
    y_score: np.ndarray
    metrics: dict[str, float]


def evaluate(model: nn.Module, batches: Iterable, task: str, *, device: str | torch.device = "cpu",
             amp: bool = True, channels_last: bool = True) -> Evaluation:
    """Predict ``batches`` in eval mode without gradients; ACC and AUC as MedMNIST defines them."""
    y_true, y_score = predict(model, batches, device=device, amp=amp, channels_last=channels_last)
    return Evaluation(y_true, y_score, classification_metrics(y_true, y_score, task))


def fit(
    model: nn.Module,
    train_batches: Iterable,
    *,
    val_batches: Iterable | None = None,
    test_batches: Iterable | None = None,
    task: str = "multi-class",
    params: RunParams,
    amp: bool = True,
    channels_last: bool = True,
    deterministic: bool | None = None,
    progress: bool = True,
    eval_every_epoch: bool | None = None,
) -> FitResult:
    """The notebooks' epoch loop in one call (benchmarks, tests): Adam + :func:`classification_loss`,
    :func:`train_one_epoch` and :func:`evaluate` of val/test after each epoch (or the last one only).

    ``train_batches`` is iterated once per epoch (a :class:`~pepr_utils.data.batches.Batches` reshuffles
    itself per epoch). Final ``metrics``: ``test_acc, test_auc, test_bal_acc, test_f1_macro, val_acc,
    val_auc, ...`` from the evaluation after the last epoch (the paper's P is ``test_acc``).

    ``params`` gives the recipe (``epochs``, ``lr``, ``seed``, ``device``; checked by
    :meth:`RunParams.problems <pepr_utils.params.RunParams.problems>`, ``device="auto"`` resolved). The rest
    are run settings, not run parameters: ``amp`` and ``channels_last`` act on CUDA only;
    ``deterministic=None`` means seeded and fast (bit-reproducible on CPU, cuDNN autotuning on CUDA),
    ``True`` forces PyTorch's deterministic algorithms everywhere (about 10x slower on CPU);
    ``eval_every_epoch`` (None: :class:`~pepr_utils.params.RunSettings`' default, the paper's protocol)
    evaluates val and test after each epoch, kept out of ``epoch_time_s``, else after the last one only.
    """
    params = params.valid()
    if eval_every_epoch is None:
        eval_every_epoch = RunSettings().eval_every_epoch
    device = resolve_device(params.device)
    trainable = trainable_parameters(model)
    use_cl = channels_last and device.type == "cuda"
    _, amp_dtype = autocast_for(device, amp)
    result = FitResult(device=str(device), amp_dtype=str(amp_dtype).replace("torch.", "") if amp_dtype else None)
    result.speed = speed_options(device, getattr(val_batches if val_batches is not None else test_batches,
                                                 "batch_size", None), amp=amp,
                                 channels_last=channels_last)
    with _reproducibility(device, deterministic):
        torch.manual_seed(params.seed)
        model.to(device)
        if use_cl:
            model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(trainable, lr=params.lr)
        scaler = grad_scaler(device, amp)
        loss_fn = classification_loss(task)
        for epoch in range(1, params.epochs + 1):
            trained = train_one_epoch(model, train_batches, optimizer, loss_fn, device=device, amp=amp,
                                      channels_last=channels_last, scaler=scaler, progress=progress,
                                      desc=f"epoch {epoch}/{params.epochs}")
            entry = {"epoch": epoch, "train_loss": trained["train_loss"], "train_acc": trained["train_acc"]}
            for split, batches in (("val", val_batches), ("test", test_batches)):
                entry[f"{split}_acc"] = entry[f"{split}_auc"] = float("nan")
                if batches is not None and (eval_every_epoch or epoch == params.epochs):
                    ev = evaluate(model, batches, task, device=device, amp=amp,
                                  channels_last=channels_last)
                    entry[f"{split}_acc"], entry[f"{split}_auc"] = ev.metrics["acc"], ev.metrics["auc"]
                    if epoch == params.epochs:
                        result.metrics.update({f"{split}_{k}": v for k, v in ev.metrics.items()})
                        if split == "test":
                            result.test_predictions = (ev.y_true, ev.y_score)
            entry["epoch_time_s"] = trained["epoch_time_s"]
            result.history.append(entry)
            result.train_images += trained["images"]
    return result


def _safe_len(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None


# --------------------------------------------------------------------------- plots
def plot_history(history: list[dict] | Any, title: str | None = None):
    """Learning curves: train loss, and accuracy / AUC on train, val and test per epoch."""
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(list(history) if not isinstance(history, pd.DataFrame) else history)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
    if df.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "no epochs", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
    else:
        axes[0].plot(df["epoch"], df["train_loss"], marker="o")
        axes[0].set(xlabel="epoch", ylabel="cross-entropy", title="train loss")
        for col, label in (("train_acc", "train"), ("val_acc", "val"), ("test_acc", "test")):
            if col in df and df[col].notna().any():
                axes[1].plot(df["epoch"], df[col], marker="o", label=label)
        axes[1].set(xlabel="epoch", ylabel="accuracy", title="ACC")
        for col, label in (("val_auc", "val"), ("test_auc", "test")):
            if col in df and df[col].notna().any():
                axes[2].plot(df["epoch"], df[col], marker="o", label=label)
        axes[2].set(xlabel="epoch", ylabel="AUC", title="AUC")
        for ax in axes[1:]:
            ax.legend()
            ax.grid(alpha=0.3)
        axes[0].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig
