"""The run parameters, as data: one frozen :class:`RunParams`, its defaults and its one validator.

A run is a pure function of its parameters; they are hashed into its ``run_id`` and stored as the
record's ``params``. They are declared once, here: the dataclass fields give the names and their order
(the record's ``params``, the grid's run identity, the notebooks' parameters), their defaults come from
``parameters/defaults.yaml`` (the paper's recipe, shipped with the package), and :meth:`RunParams.problems`
is the one set of rules that notebooks (through :meth:`RunParams.check`) and grid files
(:mod:`pepr_utils.grid.spec`) apply. Adding a parameter means a field here, a default in
``defaults.yaml`` and its use in the notebook.

"No weights" has one spelling, ``None``; ``"scratch"``, ``"none"`` and ``""`` are read as it, and
``pretrained=True`` without weights means ``"imagenet"``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .devices import parse_device
from .errors import PeprError
from .models.build import CHECKPOINT_SUFFIXES, NO_WEIGHTS, TRAINABLE_MODES, no_weights
from .settings import shipped

DEFAULTS_FILE = shipped("parameters", "defaults.yaml")  # package data: a checkout or an installed wheel
#: Notebook settings that do not change a run's result (where files are, how CO2 is counted): not hashed.
EXTRA_NAMES = ("country_iso_code", "data_dir", "weights_dir", "eval_every_epoch")


@functools.cache
def _read_defaults() -> dict[str, Any]:
    import yaml

    try:
        return dict(yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8")) or {})
    except (OSError, yaml.YAMLError) as exc:
        raise PeprError(f"cannot read the run defaults {str(DEFAULTS_FILE)!r}: {exc}") from exc


def defaults() -> dict[str, Any]:
    """``parameters/defaults.yaml``: the value of every parameter a grid or notebook may leave out
    (:data:`DEFAULT_NAMES`: the run parameters but model, dataset and pretrained, and the extras)."""
    values = _read_defaults()
    expected = set(DEFAULT_NAMES)
    if set(values) != expected:
        raise PeprError(f"{DEFAULTS_FILE}: expected exactly the keys {', '.join(DEFAULT_NAMES)}; "
                        f"missing {sorted(expected - set(values))}, unknown {sorted(set(values) - expected)}")
    return dict(values)


def _default(name: str) -> Any:
    value = _read_defaults()[name]
    return None if name == "weights" and str(value).lower() in NO_WEIGHTS else value


@dataclass(frozen=True)
class RunParams:
    """Everything that decides a run's result, in the record's order (``pretrained`` follows ``weights``)."""

    model: str
    dataset: str
    size: int = _default("size")
    fraction: float = _default("fraction")
    pretrained: bool = False
    weights: str | None = _default("weights")
    mode: str | None = _default("mode")  # records written by hand may leave it null for a run from scratch
    epochs: int = _default("epochs")
    batch_size: int = _default("batch_size")
    lr: float = _default("lr")
    seed: int = _default("seed")
    device: str = _default("device")

    # -- building --------------------------------------------------------------------------------
    @classmethod
    def of(cls, **values: Any) -> RunParams:
        """Parameters from loose values (numeric strings, 10.0 for 10, weights' spellings, ``pretrained``).

        Nothing is refused here: a value that cannot be read stays as given, for :meth:`problems` to name.
        """
        unknown = sorted(set(values) - set(NAMES))
        if unknown:
            raise PeprError(f"unknown run parameter(s) {', '.join(unknown)}; accepted: {', '.join(NAMES)}")
        v = {k: values[k] for k in NAMES if k in values}
        for key in ("size", "epochs", "batch_size", "seed"):
            if key in v:
                v[key] = _as_int(v[key])
        for key in ("fraction", "lr"):
            if key in v:
                v[key] = _as_float(v[key])
        if isinstance(v.get("device"), str):
            v["device"] = v["device"].strip().lower()
        if isinstance(v.get("model"), str):
            v["model"] = v["model"].strip()
        weights = v.get("weights", _default("weights"))
        if isinstance(weights, os.PathLike):
            weights = os.fspath(weights)
        if no_weights(weights):
            weights = None
        if isinstance(weights, str) and weights.strip().lower() == "imagenet":
            weights = "imagenet"
        pretrained = v.get("pretrained")
        if weights is None and pretrained is True:
            weights = "imagenet"  # pretrained=True without weights: timm's default ImageNet weights
        v["weights"] = weights
        if pretrained is None or (pretrained is True and weights is not None):
            v["pretrained"] = weights is not None
        return cls(**v)

    def check(self) -> RunParams:
        """These parameters, ready to run here, or one PeprError naming every bad value.

        ``device="auto"`` becomes the device this machine has (CUDA, then MPS, then CPU); on top of
        :meth:`problems` it checks what only this machine can tell: that the device is there, the
        checkpoint file exists, the model and dataset names are known (unknown ones get close names).
        """
        params = self
        if self.device == "auto":
            from .devices import resolve_device

            params = dataclasses.replace(self, device=resolve_device("auto").type)
        problems = [message for _key, message in params.problems()]
        if problems:
            raise PeprError("; ".join(problems))
        from .data.datasets import dataset_info
        from .models.catalogue import resolve_model
        from .devices import resolve_device

        resolve_model(params.model)  # unknown -> PeprError with close names, before any data is loaded
        dataset_info(params.dataset)  # unknown -> PeprError listing the valid ones
        resolve_device(params.device)  # CUDA asked for but absent -> PeprError
        if params.weights not in (None, "imagenet") and not Path(params.weights).expanduser().is_file():
            raise PeprError(f"weights {params.weights!r} is neither 'imagenet' nor an existing checkpoint file "
                            "(.safetensors, .pt or .pth, e.g. the model.safetensors of an earlier run)")
        return params

    # -- the one validator -----------------------------------------------------------------------
    def problems(self) -> list[tuple[str, str]]:
        """Every bad value as ``(parameter, message)``; empty when the values can make a run."""
        from .data.datasets import SIZES

        out: list[tuple[str, str]] = []

        def bad(key: str, rule: str) -> None:
            out.append((key, f"{key} {getattr(self, key)!r} {rule}"))

        for key in ("model", "dataset"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                bad(key, f"must be a {'timm model' if key == 'model' else 'dataset'} name")
        if not _is_int(self.size, 1):
            bad("size", "must be an integer >= 1")
        elif self.size not in SIZES:
            bad("size", f"is not supported (accepted: {', '.join(map(str, SIZES))})")
        if not _is_number(self.fraction) or not 0 < self.fraction <= 1:
            bad("fraction", "is outside (0, 1]: use e.g. 1.0, 0.1 or 0.01")
        for key, minimum in (("epochs", 1), ("batch_size", 1), ("seed", 0)):
            if not _is_int(getattr(self, key), minimum):
                bad(key, f"must be an integer >= {minimum}")
        if not _is_number(self.lr) or not 0 < self.lr < 10:
            bad("lr", "must be a positive learning rate below 10 (the paper used 5e-4)")
        if parse_device(self.device) is None or self.device != self.device.strip().lower():
            bad("device", "must be cpu, cuda, cuda:N or mps (auto: resolve it with check())")
        if self.pretrained not in (True, False):
            bad("pretrained", "must be true or false")
        elif self.pretrained != (self.weights is not None):
            bad("pretrained", f"contradicts weights={self.weights!r}; drop one of them")
        if self.weights is not None and (not isinstance(self.weights, str) or (
                self.weights != "imagenet" and not self.weights.lower().endswith(CHECKPOINT_SUFFIXES))):
            bad("weights", f"must be scratch, imagenet or a checkpoint path ending in {', '.join(CHECKPOINT_SUFFIXES)}")
        if self.mode not in TRAINABLE_MODES:
            bad("mode", "must be full (all layers train) or linear (frozen backbone, trained head)")
        elif self.mode == "linear" and self.weights is None:
            bad("mode", "trains only the head on a frozen backbone and needs weights ('imagenet' or a "
                        "checkpoint path); got weights=None")
        return out

    # -- views -----------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """The record's ``params`` (the run's identity; :func:`pepr_utils.records.run_id` hashes them)."""
        return dataclasses.asdict(self)

    @property
    def start(self) -> str:
        """How the run starts: ``scratch``, ``imagenet-<mode>`` or ``checkpoint-<mode>``."""
        if self.weights is None:
            return "scratch"
        return f"{'imagenet' if self.weights == 'imagenet' else 'checkpoint'}-{self.mode}"


def check_param(name: str, value: Any) -> Any:
    """One run parameter (e.g. ``seed`` of ``pepr data prepare`` or notebook 01) read and checked by the one
    validator, :meth:`RunParams.problems`, so a step that takes only a seed refuses what a grid refuses."""
    if name not in NAMES or name in ("model", "dataset"):
        raise PeprError(f"unknown run parameter {name!r}; accepted: {', '.join(NAMES[2:])}")
    params = RunParams.of(model="-", dataset="-", **{name: value})
    problems = [message for key, message in params.problems() if key == name]
    if problems:
        raise PeprError(problems[0])
    return getattr(params, name)


#: The run parameters, in the record's order.
NAMES = tuple(f.name for f in dataclasses.fields(RunParams))
#: Parameters with a default (parameters/defaults.yaml): the run parameters but the two every run names and
#: the derived ``pretrained``, then the notebook settings outside the run id.
DEFAULT_NAMES = tuple(n for n in NAMES if n not in ("model", "dataset", "pretrained")) + EXTRA_NAMES


def _as_int(value: Any) -> Any:
    if isinstance(value, str):
        value = _as_float(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _as_float(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    try:
        return float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, AttributeError):
        return value


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
