"""Run records: the schema of ``result.json``, its atomic writing, validation and collection.

A run record is what the analysis relies on, so it is checked on the way in (``make_record``,
``write_record``) and on the way out (``read_record``, ``collect``): a missing or mistyped field is a
:class:`PeprError` naming it, never a silent NaN in a results table. ``result.json`` is written last and
atomically, so its presence means the run's outputs are complete (the grid runner relies on this to
resume). Non-finite floats (an undefined AUC) are stored as ``null`` so the files are strict JSON.

Layout of a record (``SCHEMA_VERSION`` 1)::

    schema_version, run_id, status, error, started_at, finished_at,
    params{params.NAMES + extras}, model_info{MODEL_INFO_FIELDS}, metrics{METRIC_FIELDS, history[...]},
    resources{RESOURCE_FIELDS + extras}, env{ENV_FIELDS + extras}
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import PeprError
from .fileio import atomic_write_text
from .params import NAMES, RunParams, experiment_name
from .resources import RESOURCES

SCHEMA_VERSION = 1
RESULT_FILE = "result.json"
HISTORY_FILE = "history.csv"

STATUSES = ("ok", "failed", "incompatible")
MODEL_INFO_FIELDS = ("num_params", "trainable_params", "macs_per_image", "input_size")
METRIC_FIELDS = ("test_acc", "test_auc", "test_bal_acc", "test_f1_macro", "val_acc", "val_auc",
                 "majority_acc", "chance_auc", "test_kappa", "test_kappa_p")
#: The floor a useful model must beat: test accuracy of always predicting the training split's most frequent
#: class, the AUC of guessing, and the model's agreement beyond chance (Cohen's kappa, its one-sided p).
#: Optional, so records written before they existed still read.
FLOOR_FIELDS = ("majority_acc", "chance_auc", "test_kappa", "test_kappa_p")
HISTORY_FIELDS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_acc",
    "val_auc",
    "test_acc",
    "test_auc",
    "epoch_time_s",
)
ENV_FIELDS = (
    "device_name", "cpu", "python", "torch", "timm", "pepr_utils", "platform", "git_commit",
    "data_sha256", "data_official",
)  # fmt: skip
TOP_FIELDS = ("schema_version", "run_id", "status", "error", "started_at", "finished_at")



@dataclass(frozen=True)
class Kind:
    """What a record field may hold: a value of ``types`` (numbers finite, bools only where asked for),
    or null when ``optional``."""

    words: str
    types: tuple[type, ...]
    optional: bool = False

    def ok(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool):
            return bool in self.types
        return isinstance(value, self.types) and (not isinstance(value, float) or math.isfinite(value))

    def or_null(self) -> Kind:
        return dataclasses.replace(self, optional=True)

    def __str__(self) -> str:
        return self.words + (" or null" if self.optional else "")


STR, INT, NUM, BOOL = (Kind("a string", (str,)), Kind("an integer", (int,)), Kind("a finite number", (int, float)),
                       Kind("true or false", (bool,)))
#: The run parameters' kinds, from the RunParams annotations.
_PARAM_TYPES = {f.name: {"str": STR, "int": INT, "float": NUM, "bool": BOOL, "str | None": STR.or_null()}[f.type]
                for f in dataclasses.fields(RunParams)}
_MODEL_INFO_TYPES = {"num_params": INT, "trainable_params": INT, "macs_per_image": NUM.or_null(),
                     "input_size": INT.or_null()}
_METRIC_TYPES = {name: (NUM if name == "test_acc" else NUM.or_null()) for name in METRIC_FIELDS
                 if name not in FLOOR_FIELDS}
_FLOOR_TYPES = {name: NUM.or_null() for name in FLOOR_FIELDS}
_HISTORY_TYPES = {name: (INT if name == "epoch" else NUM.or_null()) for name in HISTORY_FIELDS}
#: The resources (pepr_utils.resources: a number, null allowed where not required), then how they were obtained.
_RESOURCE_TYPES = {
    **{r.column: NUM if r.required else NUM.or_null() for r in RESOURCES},
    "energy_method": STR, "cpu_energy_kwh": NUM.or_null(), "gpu_energy_kwh": NUM.or_null(),
    "ram_energy_kwh": NUM.or_null(), "carbon_intensity_g_per_kwh": NUM, "country_iso_code": STR.or_null(),
    "infer_time_ms_per_image": NUM.or_null(), "mem_kind": STR.or_null(),
}  # fmt: skip
RESOURCE_FIELDS = tuple(_RESOURCE_TYPES)


# ------------------------------------------------------------------------------------------- run_id


def _canonical(value: Any) -> Any:
    """A JSON-ready, order-free form of ``value`` in which equal numbers look the same.

    1, 1.0 and numpy's 1.0 all become 1; 0.1 and 0.10 (the same float) become 0.1; tuples are lists;
    paths are strings; dict keys are sorted by json.dumps.
    """
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        value = value.item()  # numpy / torch scalars
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PeprError(f"parameter value {value!r} cannot be hashed: expected a finite number")
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return float(repr(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    raise PeprError(
        f"parameter value {value!r} of type {type(value).__name__} cannot be hashed: use str, number, bool, list or dict"
    )


def run_id(params: Mapping[str, Any]) -> str:
    """Stable 12-hex-digit id of a run's resolved parameters (sha256 of their canonical JSON).

    Independent of key order and of how equal numbers are spelled (1 == 1.0); parameters whose value
    is None are left out, so adding an optional parameter later does not change existing ids.
    """
    if not isinstance(params, Mapping):
        raise PeprError(f"params must be a dict of run parameters, got {type(params).__name__}")
    text = json.dumps(_canonical(params), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# -------------------------------------------------------------------------------------- environment


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_info(device: str, data_source: Mapping[str, Any] | None = None, *,
                     device_requested: str | None = None) -> dict[str, Any]:
    """Where and with what a run ran: device and CPU names, library versions, the package's own version
    and commit (:mod:`pepr_utils.provenance`), data file.

    ``data_source`` is a dataset's ``source`` dict (path, sha256, official, origin, resized_from).
    ``device_requested`` is the device as asked for (``auto`` resolves to ``device`` on this machine), so
    the record says when the run chose its device. ``git_commit`` is pepr's own commit ("-dirty" when pepr_utils
    has uncommitted changes) or None where it cannot be known (see ``pepr_source``).
    """
    from .provenance import package_provenance

    device = str(device)
    cpu = _cpu_name()
    device_name = cpu
    if device.startswith("cuda"):
        try:
            import torch

            device_name = torch.cuda.get_device_name(torch.device(device))
        except Exception:
            device_name = device
    elif device.startswith("mps"):
        device_name = f"Apple MPS ({platform.machine()})"
    source = dict(data_source or {})
    return {
        "device": device,
        "device_name": device_name,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "timm": _version("timm"),
        "numpy": _version("numpy"),
        "platform": platform.platform(),
        **package_provenance(),  # pepr_utils (version), git_commit, pepr_source
        "device_requested": device_requested,
        "data_sha256": source.get("sha256"),
        "data_official": source.get("official"),
        "data_origin": source.get("origin"),
        "data_resized_from": source.get("resized_from"),
    }


# ----------------------------------------------------------------------------------- make / validate


def now() -> str:
    """The current UTC time as a record writes it (``started_at``, ``finished_at``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 (py3.10)


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy/torch scalars to Python, non-finite floats to None, tuples to lists."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # numpy arrays
        return _plain(value.tolist())
    return value


def make_record(
    *,
    params: Mapping[str, Any],
    status: str,
    error: str | None = None,
    model_info: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    resources: Mapping[str, Any] | None = None,
    env: Mapping[str, Any] | None = None,
    started_at: str | _dt.datetime | None = None,
    finished_at: str | _dt.datetime | None = None,
) -> dict[str, Any]:
    """A validated run record; ``run_id`` is computed from ``params``, ``finished_at`` defaults to now."""
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id(params),
        "status": status,
        "error": error,
        "started_at": started_at,
        "finished_at": finished_at if finished_at is not None else now(),
        "params": params,
        "model_info": model_info,
        "metrics": metrics,
        "resources": resources,
        "env": env if env is not None else {},
    }
    return validate_record(_plain(record))


def make_resources(
    meter_result: Mapping[str, Any],
    *,
    train_time_s: float | None = None,
    infer_time_ms_per_image: float | None = None,
) -> dict[str, Any]:
    """The record's ``resources`` from a :class:`~pepr_utils.meter.meter.Meter` result (all its keys kept).

    ``train_time_s`` defaults to the meter's ``time_s`` (the metered block is the training).
    """
    resources = dict(meter_result)
    resources["train_time_s"] = train_time_s if train_time_s is not None else meter_result.get("time_s")
    resources["infer_time_ms_per_image"] = infer_time_ms_per_image
    return resources


def _check_fields(section: str, values: Any, types: Mapping[str, Kind], *, require: bool = True) -> None:
    if not isinstance(values, Mapping):
        raise PeprError(
            f"record field {section!r} is {type(values).__name__}: expected an object with {', '.join(types)}"
        )
    for name, kind in types.items():
        if name not in values:
            if require:
                raise PeprError(f"record field {section}.{name} is missing")
            continue
        if not kind.ok(values[name]):
            raise PeprError(f"record field {section}.{name} = {values[name]!r} is invalid: expected {kind}")


def _check_timestamp(name: str, value: Any) -> None:
    if value is None:
        return
    try:
        _dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise PeprError(
            f"record field {name} = {value!r} is invalid: expected an ISO 8601 timestamp or null"
        ) from None


def validate_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``record`` (as a dict) if it follows the schema, else raise PeprError naming the field.

    Every status needs params (every ``params.NAMES`` key, typed, for ok/incompatible; a failed run
    may have failed because of a bad parameter, so its params are kept as given). "ok" needs
    metrics (every ``METRIC_FIELDS`` key, test_acc a number, history entries typed) and resources
    (every ``RESOURCE_FIELDS`` key; energy, CO2, intensity and train time numbers). "failed" needs an
    error message. Extra keys are allowed everywhere.
    """
    if not isinstance(record, Mapping):
        raise PeprError(f"a run record must be a JSON object, got {type(record).__name__}")
    for name in TOP_FIELDS + ("params",):
        if name not in record:
            raise PeprError(f"record field {name} is missing")
    version = record["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
        raise PeprError(
            f"record field schema_version = {version!r} is not supported: this pepr reads 1..{SCHEMA_VERSION}"
        )
    if not isinstance(record["run_id"], str) or not record["run_id"]:
        raise PeprError(f"record field run_id = {record['run_id']!r} is invalid: expected a non-empty string")
    status = record["status"]
    if status not in STATUSES:
        raise PeprError(f"record field status = {status!r} is invalid: expected one of {', '.join(STATUSES)}")
    error = record["error"]
    if error is not None and not isinstance(error, str):
        raise PeprError(f"record field error = {error!r} is invalid: expected a message or null")
    if status == "failed" and not (error and error.strip()):
        raise PeprError("record field error is missing: a failed run must say why it failed")
    _check_timestamp("started_at", record["started_at"])
    _check_timestamp("finished_at", record["finished_at"])

    params = record["params"]
    if status == "failed":
        if not isinstance(params, Mapping):
            raise PeprError(f"record field params is {type(params).__name__}: expected an object")
    else:
        _check_fields("params", params, _PARAM_TYPES)

    if record.get("model_info") is not None:
        _check_fields("model_info", record["model_info"], _MODEL_INFO_TYPES, require=status == "ok")
    for section in ("metrics", "resources", "env"):
        if record.get(section) is not None and not isinstance(record[section], Mapping):
            raise PeprError(
                f"record field {section} is {type(record[section]).__name__}: expected an object or null"
            )
    metrics = record.get("metrics")
    resources = record.get("resources")
    if status == "ok":
        if not metrics:
            raise PeprError("record field metrics is missing: an ok run must have its metrics")
        if not resources:
            raise PeprError("record field resources is missing: an ok run must have its resources")
    if metrics:
        _check_fields("metrics", metrics, _METRIC_TYPES, require=status == "ok")
        _check_fields("metrics", metrics, _FLOOR_TYPES, require=False)
        history = metrics.get("history")
        if history is not None:
            if not isinstance(history, list):
                raise PeprError(
                    f"record field metrics.history is {type(history).__name__}: expected a list of epochs"
                )
            for i, entry in enumerate(history):
                _check_fields(f"metrics.history[{i}]", entry, _HISTORY_TYPES, require=False)
                if "epoch" not in entry:
                    raise PeprError(f"record field metrics.history[{i}].epoch is missing")
    if resources:
        _check_fields("resources", resources, _RESOURCE_TYPES, require=status == "ok")
        for name in (r.column for r in RESOURCES):
            value = resources.get(name)
            if isinstance(value, int | float) and value < 0:
                raise PeprError(f"record field resources.{name} = {value!r} is invalid: expected >= 0")
    return dict(record)


# ---------------------------------------------------------------------------------------- write / read


def _history_csv(history: list[Mapping[str, Any]]) -> str:
    columns = list(HISTORY_FIELDS)
    for entry in history:
        columns.extend(k for k in entry if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for entry in history:
        writer.writerow({k: ("" if entry.get(k) is None else entry.get(k)) for k in columns})
    return buffer.getvalue()


def write_record(out_dir: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Validate and write ``out_dir/result.json`` atomically (plus ``history.csv`` first, if any).

    ``result.json`` is written last, so when it exists everything else of the run is complete; a record
    that fails validation or a write that fails leaves no ``result.json`` behind.
    """
    record = validate_record(_plain(record))
    text = json.dumps(record, indent=2, allow_nan=False) + "\n"
    out = Path(out_dir)
    history = (record.get("metrics") or {}).get("history")
    if history:
        atomic_write_text(out / HISTORY_FILE, _history_csv(history))
    return atomic_write_text(out / RESULT_FILE, text)


def _result_path(path_or_dir: str | os.PathLike) -> Path:
    path = Path(path_or_dir)
    return path / RESULT_FILE if path.is_dir() else path


def read_record(path_or_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a ``result.json`` (or the one inside a run folder)."""
    path = _result_path(path_or_dir)
    from .fileio import read_text

    try:
        text = read_text(path, "run record")  # stray bytes: one line naming the file
    except FileNotFoundError:
        raise PeprError(
            f"no run record at {path}: expected a result.json or a run folder holding one"
        ) from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PeprError(f"run record {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return validate_record(record)
    except PeprError as exc:
        raise PeprError(f"{path}: {exc}") from None


# ------------------------------------------------------------------------------------------- collect


def _find_results(paths: Iterable[str | os.PathLike]) -> list[Path]:
    found: dict[Path, None] = {}
    for item in paths:
        path = Path(item)
        if path.is_file():
            found[path.resolve()] = None
        elif path.is_dir():
            for result in sorted(path.rglob(RESULT_FILE)):
                found[result.resolve()] = None
        else:
            raise PeprError(
                f"{path} does not exist: expected a result.json, a run folder or a folder of runs"
            )
    return list(found)


def _flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        name: record.get(name) for name in ("run_id", "status", "error", "started_at", "finished_at")
    }
    row["experiment"] = experiment_name(record.get("params") or {})  # pepr_utils.params
    standard = {*row, *NAMES, *MODEL_INFO_FIELDS, *METRIC_FIELDS, *RESOURCE_FIELDS}
    for section, fields in (
        ("params", NAMES),
        ("model_info", MODEL_INFO_FIELDS),
        ("metrics", METRIC_FIELDS),
        ("resources", RESOURCE_FIELDS),
    ):
        values = record.get(section) or {}
        for name in fields:
            row[name] = values.get(name)
        for name, value in values.items():
            if name in fields or name == "history" or isinstance(value, Mapping | list):
                continue
            column = name if name not in standard and name not in row else f"{section}_{name}"
            row[column] = value
    for name, value in (record.get("env") or {}).items():
        if not isinstance(value, Mapping | list):
            row[f"env_{name}"] = value
    return row


def collect(paths_or_dirs: str | os.PathLike | Iterable[str | os.PathLike], *, on_error: str = "raise"):
    """One row per run record found under ``paths_or_dirs`` (files, run folders, or folders of runs).

    Columns: run_id, status, error, started_at, finished_at, experiment, the params, model_info, metrics
    (not history) and resources fields, extra keys of those sections (prefixed ``<section>_`` where
    they would clash with a standard column), ``record_dir`` (the run folder, where ``history.csv`` is),
    and env fields prefixed ``env_``. ``on_error="skip"``
    warns about and leaves out invalid records instead of raising.
    """
    import pandas as pd

    if on_error not in ("raise", "skip"):
        raise PeprError(f"on_error={on_error!r} is invalid: expected 'raise' or 'skip'")
    if isinstance(paths_or_dirs, str | os.PathLike):
        paths_or_dirs = [paths_or_dirs]
    rows = []
    for path in _find_results(paths_or_dirs):
        try:
            rows.append({**_flatten(read_record(path)), "record_dir": str(path.parent)})
        except PeprError as exc:
            if on_error == "raise":
                raise
            warnings.warn(f"skipped invalid run record: {exc}", stacklevel=2)
    columns = ["run_id", "status", "error", "started_at", "finished_at", "experiment",
               *NAMES, *MODEL_INFO_FIELDS, *METRIC_FIELDS, *RESOURCE_FIELDS, "record_dir"]  # fmt: skip
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in columns]
    return frame.reindex(columns=columns + extra)
