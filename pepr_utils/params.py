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

Also here: :class:`RunSettings`, the notebook settings outside the run id (where files are, the country for
CO2, per-epoch evaluation), and the one function for each name derived from the parameters,
:func:`regime` and :func:`experiment_name`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .devices import parse_device
from .errors import PeprError
from .models.build import CHECKPOINT_SUFFIXES, NO_WEIGHTS, TRAINABLE_MODES, no_weights
from .settings import shipped

DEFAULTS_FILE = shipped("parameters", "defaults.yaml")  # package data: a checkout or an installed wheel


@functools.cache
def _read_defaults() -> dict[str, Any]:
    import yaml

    try:
        return dict(yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8")) or {})
    except (OSError, yaml.YAMLError) as exc:
        raise PeprError(f"cannot read the run defaults {str(DEFAULTS_FILE)!r}: {exc}") from exc


def defaults() -> dict[str, Any]:
    """``parameters/defaults.yaml``: the value of every parameter a grid or notebook may leave out
    (:data:`DEFAULT_NAMES`: the run parameters but model, dataset and pretrained, and the run settings)."""
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
        params = self.valid()
        from .data.datasets import dataset_info
        from .devices import resolve_device
        from .models.catalogue import resolve_model

        resolve_model(params.model)  # unknown -> PeprError with close names, before any data is loaded
        dataset_info(params.dataset)  # unknown -> PeprError listing the valid ones
        resolve_device(params.device)  # CUDA asked for but absent -> PeprError
        if params.weights not in (None, "imagenet") and not Path(params.weights).expanduser().is_file():
            raise PeprError(f"weights {params.weights!r} is neither 'imagenet' nor an existing checkpoint file "
                            "(.safetensors, .pt or .pth, e.g. the model.safetensors of an earlier run)")
        return params

    def valid(self) -> RunParams:
        """These parameters (``device="auto"`` resolved), or one PeprError naming every bad value: the rules
        of :meth:`problems` only, nothing about models, datasets or files (what :func:`~pepr_utils.train.loop.fit`
        needs)."""
        params = self
        if self.device == "auto":
            from .devices import resolve_device

            params = dataclasses.replace(self, device=resolve_device("auto").type)
        problems = [message for _key, message in params.problems()]
        if problems:
            raise PeprError("; ".join(problems))
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
        if not is_whole(self.size, 1):
            bad("size", "must be an integer >= 1")
        elif self.size not in SIZES:
            bad("size", f"is not supported (accepted: {', '.join(map(str, SIZES))})")
        if not _is_number(self.fraction) or not 0 < self.fraction <= 1:
            bad("fraction", "is outside (0, 1]: use e.g. 1.0, 0.1 or 0.01")
        for key, minimum in (("epochs", 1), ("batch_size", 1), ("seed", 0)):
            if not is_whole(getattr(self, key), minimum):
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


#: The run parameters, in the record's order: the one list (the record's ``params``, the runs table's columns,
#: a grid run's identity, the notebooks' parameters).
NAMES = tuple(f.name for f in dataclasses.fields(RunParams))
#: The numeric run parameters (a runs table read from CSV holds them as numbers).
NUMERIC_NAMES = tuple(f.name for f in dataclasses.fields(RunParams) if f.type in ("int", "float"))


@dataclass(frozen=True)
class RunSettings:
    """The notebook settings that do not change a run's result (where files are, how CO2 is counted, whether
    val and test are evaluated every epoch): not hashed into the run id, not in the record's ``params``.
    Defaults from ``parameters/defaults.yaml``; :meth:`problems` is their one set of rules."""

    country_iso_code: str = _default("country_iso_code")
    data_dir: str | None = _default("data_dir")
    weights_dir: str | None = _default("weights_dir")
    eval_every_epoch: bool = _default("eval_every_epoch")

    @classmethod
    def of(cls, **values: Any) -> RunSettings:
        """Settings from loose values (paths as ``os.PathLike``); unknown names raise, bad values stay for
        :meth:`problems` to name."""
        unknown = sorted(set(values) - set(SETTING_NAMES))
        if unknown:
            raise PeprError(f"unknown run setting(s) {', '.join(unknown)}; accepted: {', '.join(SETTING_NAMES)}")
        v = {k: os.fspath(x) if isinstance(x, os.PathLike) else x for k, x in values.items()}
        return cls(**v)

    def problems(self) -> list[tuple[str, str]]:
        """Every bad value as ``(setting, message)``."""
        out: list[tuple[str, str]] = []
        country = self.country_iso_code
        if not isinstance(country, str) or not re.fullmatch(r"[A-Z]{3}", country):
            out.append(("country_iso_code", f"country_iso_code {country!r} must be a 3-letter ISO code such as DNK"))
        for key in ("data_dir", "weights_dir"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), str):
                out.append((key, f"{key} {getattr(self, key)!r} must be a path"))
        if self.eval_every_epoch not in (True, False):
            out.append(("eval_every_epoch", f"eval_every_epoch {self.eval_every_epoch!r} must be true or false"))
        return out

    def valid(self) -> RunSettings:
        """These settings, or one PeprError naming every bad value."""
        problems = [message for _key, message in self.problems()]
        if problems:
            raise PeprError("; ".join(problems))
        return self

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The run settings (outside the run id), in the order a grid run carries them.
SETTING_NAMES = tuple(f.name for f in dataclasses.fields(RunSettings))
#: Parameters with a default (parameters/defaults.yaml): the run parameters but the two every run names and
#: the derived ``pretrained``, then the run settings.
DEFAULT_NAMES = tuple(n for n in NAMES if n not in ("model", "dataset", "pretrained")) + SETTING_NAMES


# -- derived names: one function each ------------------------------------------------------------------
def regime(params: RunParams | Mapping[str, Any]) -> str:
    """How a run starts: ``scratch``, ``imagenet-<mode>`` or ``checkpoint-<mode>``, from its ``pretrained``,
    ``weights`` and ``mode``; ``params`` is a :class:`RunParams`, a record's ``params`` or a runs-table row
    (values read from a CSV: ``"True"``, NaN for none; a missing mode is ``full``)."""
    get = _getter(params)
    weights = None if is_missing(get("weights")) else str(get("weights"))
    if no_weights(weights) or weights.lower() == "false":
        if not is_true(get("pretrained")):
            return "scratch"
        weights = "imagenet"
    kind = "imagenet" if weights.lower() == "imagenet" else "checkpoint"
    mode = get("mode")
    return f"{kind}-{'full' if is_missing(mode) else str(mode)}"


#: the short names of the training hyper-parameters in an experiment's name (``-e3``, ``-bs64``, ``-lr0.001``)
HYPER_SHORT = {"epochs": "e", "batch_size": "bs", "lr": "lr"}


def experiment_name(params: RunParams | Mapping[str, Any], vary: Sequence[str] = ()) -> str:
    """An experiment's name: ``<dataset>-<size>px-<fraction>-<regime>`` (values that are not numbers, as a
    failed run's bad parameters may be, are written as they are), then ``-e<epochs>``, ``-bs<batch_size>``,
    ``-lr<lr>`` for the hyper-parameters in ``vary`` (those that differ between runs of one experiment in
    a runs table). ``params`` as for :func:`regime`; a table row that carries its ``regime`` column (made
    by :func:`regime`; a model table keeps no weights) is named by it."""
    get = _getter(params)
    start = get("regime") if isinstance(params, Mapping) and not is_missing(params.get("regime")) else regime(params)
    size, fraction = get("size"), get("fraction")
    try:
        size_text = "" if is_missing(size) else str(int(size))
        fraction_text = "nan" if is_missing(fraction) else f"{float(fraction):g}"
    except (TypeError, ValueError):
        size_text, fraction_text = str(size), str(fraction)
    name = f"{get('dataset')}-{size_text}px-{fraction_text}-{start}"
    return name + "".join(f"-{HYPER_SHORT[h]}{get(h):g}" for h in vary)


def _getter(params: RunParams | Mapping[str, Any]):
    if isinstance(params, RunParams):
        return functools.partial(getattr, params)
    return params.get


def is_missing(value: Any) -> bool:
    """None, NaN, pandas' NA or the empty string: no value (as a runs table or a CSV holds it)."""
    if value is None or type(value).__name__ == "NAType":
        return True
    return (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and value == "")


def is_true(value: Any) -> bool:
    """True, 1, "true", "yes" (as a runs table or a CSV holds a flag); a missing value is not true."""
    if is_missing(value):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


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


def is_whole(value: Any, minimum: int) -> bool:
    """An int (not a bool) >= ``minimum``: the rule for counts, sizes and seeds."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
