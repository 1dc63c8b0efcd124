"""Run records: schema, run_id, atomic writes, validation on read, collection into a table."""

from __future__ import annotations

import copy
import csv
import json
import math

import numpy as np
import pytest

from pepr_utils import fileio, records
from pepr_utils.errors import PeprError
from pepr_utils.meter.meter import Meter
from pepr_utils.params import NAMES

PARAMS = {
    "model": "resnet18d",
    "dataset": "pneumoniamnist",
    "size": 28,
    "fraction": 1.0,
    "pretrained": False,
    "weights": None,
    "mode": "full",
    "epochs": 10,
    "batch_size": 32,
    "lr": 0.0005,
    "seed": 0,
    "device": "cpu",
}
HISTORY = [
    {"epoch": e, "train_loss": 0.5 / e, "train_acc": 0.8, "val_acc": 0.85, "val_auc": 0.9,
     "test_acc": 0.84, "test_auc": 0.91, "epoch_time_s": 12.5}
    for e in (1, 2)
]  # fmt: skip
METRICS = {
    "test_acc": 0.84, "test_auc": 0.91, "test_bal_acc": 0.8, "test_f1_macro": 0.82,
    "val_acc": 0.85, "val_auc": 0.9, "history": HISTORY,
}  # fmt: skip
RESOURCES = {
    "energy_kwh": 0.002, "energy_method": "cpu=estimate:cpu-tdp+ram=estimate:ram-rss",
    "cpu_energy_kwh": 0.0019, "gpu_energy_kwh": 0.0, "ram_energy_kwh": 0.0001, "co2_g": 0.3033,
    "carbon_intensity_g_per_kwh": 151.65, "country_iso_code": "DNK", "train_time_s": 25.0,
    "infer_time_ms_per_image": 0.4, "peak_mem_gb": 0.7, "mem_kind": "cpu_peak_rss",
}  # fmt: skip
MODEL_INFO = {
    "num_params": 11_000_000,
    "trainable_params": 11_000_000,
    "macs_per_image": 1.8e7,
    "input_size": 28,
}


def ok_record(**changes):
    fields = {
        "status": "ok",
        "model_info": MODEL_INFO,
        "metrics": METRICS,
        "resources": RESOURCES,
        "env": records.environment_info("cpu", {"sha256": "ab" * 32, "official": True, "origin": "data_dir"}),
        "started_at": "2025-01-01T10:00:00+00:00",
    }
    params = {**PARAMS, **changes.pop("params", {})}
    return records.make_record(params=params, **{**fields, **changes})


# ------------------------------------------------------------------------------------------- run_id


def test_run_id_is_stable_short_and_order_independent():
    rid = records.run_id(PARAMS)
    assert len(rid) == 12 and all(c in "0123456789abcdef" for c in rid)
    assert records.run_id(dict(reversed(list(PARAMS.items())))) == rid
    assert rid == records.run_id(json.loads(json.dumps(PARAMS)))  # survives a JSON round trip


def test_run_id_normalises_numbers_and_ignores_none():
    base = records.run_id(PARAMS)
    assert records.run_id({**PARAMS, "fraction": 1}) == base
    assert records.run_id({**PARAMS, "lr": float("5e-4"), "epochs": 10.0}) == base
    assert records.run_id({**PARAMS, "lr": np.float64(0.0005), "size": np.int64(28)}) == base
    assert records.run_id({**PARAMS, "extra_optional": None}) == base
    assert records.run_id({"a": 0.1}) == records.run_id({"a": 0.10})
    assert records.run_id({**PARAMS, "lr": 0.001}) != base
    assert records.run_id({**PARAMS, "seed": 1}) != base
    assert records.run_id({**PARAMS, "pretrained": True}) != base


def test_run_id_rejects_unhashable_values():
    with pytest.raises(PeprError, match="cannot be hashed"):
        records.run_id({**PARAMS, "lr": float("nan")})
    with pytest.raises(PeprError, match="cannot be hashed"):
        records.run_id({**PARAMS, "model": object()})


# ------------------------------------------------------------------------------------- round trip


def test_make_write_read_round_trip(tmp_path):
    record = ok_record(metrics={**METRICS, "test_acc": np.float32(0.75)})
    assert record["run_id"] == records.run_id(PARAMS)
    assert record["schema_version"] == records.SCHEMA_VERSION
    assert record["finished_at"]  # filled with now
    assert isinstance(record["metrics"]["test_acc"], float)  # numpy scalar made plain
    path = records.write_record(tmp_path / "run", record)
    assert path == tmp_path / "run" / "result.json"
    back = records.read_record(tmp_path / "run")
    assert back == json.loads(json.dumps(record))
    assert records.read_record(path) == back
    with open(tmp_path / "run" / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert list(rows[0]) == list(records.HISTORY_FIELDS)
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == []


def test_non_finite_metrics_are_stored_as_null(tmp_path):
    record = ok_record(metrics={**METRICS, "test_auc": float("nan")})
    assert record["metrics"]["test_auc"] is None
    records.write_record(tmp_path, record)
    text = (tmp_path / "result.json").read_text()
    assert "NaN" not in text
    assert records.read_record(tmp_path)["metrics"]["test_auc"] is None


def test_resources_from_a_real_meter_make_a_valid_record(tmp_path):
    with Meter("cpu") as m:
        sum(range(200_000))
    resources = records.make_resources(m.result, infer_time_ms_per_image=0.5)
    assert resources["train_time_s"] == m.result["time_s"]
    record = ok_record(resources=resources)
    assert record["resources"]["energy_kwh"] > 0
    records.write_record(tmp_path, record)
    assert records.read_record(tmp_path)["resources"]["energy_method"] == m.result["energy_method"]


def test_environment_info_names_versions_and_data():
    env = records.environment_info("cpu", {"sha256": "ff" * 32, "official": False})
    for key in records.ENV_FIELDS:
        assert key in env
    assert env["torch"] and env["python"] and env["pepr_utils"]
    assert env["data_sha256"] == "ff" * 32 and env["data_official"] is False
    assert env["git_commit"] is None or len(env["git_commit"].split("-")[0]) == 40


# ------------------------------------------------------------------------------------- validation


def test_failed_and_incompatible_records():
    failed = records.make_record(params={**PARAMS, "lr": "oops"}, status="failed", error="lr must be > 0")
    assert failed["metrics"] is None and failed["env"] == {}
    incompatible = records.make_record(params=PARAMS, status="incompatible", error="needs 224 px")
    assert incompatible["status"] == "incompatible"
    with pytest.raises(PeprError, match="error is missing"):
        records.make_record(params=PARAMS, status="failed")


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.pop("status"), "status"),
        (lambda r: r.update(status="done"), "status"),
        (lambda r: r.update(run_id=""), "run_id"),
        (lambda r: r.update(schema_version=99), "schema_version"),
        (lambda r: r.update(metrics=None), "metrics"),
        (lambda r: r.update(resources=None), "resources"),
        (lambda r: r["params"].pop("model"), "params.model"),
        (lambda r: r["params"].update(size="28"), "params.size"),
        (lambda r: r["params"].update(epochs=True), "params.epochs"),
        (lambda r: r["params"].update(pretrained="no"), "params.pretrained"),
        (lambda r: r["metrics"].update(test_acc=None), "metrics.test_acc"),
        (lambda r: r["metrics"].pop("val_auc"), "metrics.val_auc"),
        (lambda r: r["metrics"]["history"][1].update(train_loss="x"), r"metrics.history\[1\].train_loss"),
        (lambda r: r["metrics"].update(history={"epoch": 1}), "metrics.history"),
        (lambda r: r["resources"].pop("energy_method"), "resources.energy_method"),
        (lambda r: r["resources"].update(energy_kwh=-1.0), "resources.energy_kwh"),
        (lambda r: r["resources"].update(co2_g="1 g"), "resources.co2_g"),
        (lambda r: r["model_info"].update(num_params=1.5), "model_info.num_params"),
        (lambda r: r.update(started_at="yesterday"), "started_at"),
    ],
)
def test_validation_names_the_bad_field(mutate, field):
    record = copy.deepcopy(ok_record())
    mutate(record)
    with pytest.raises(PeprError, match=field) as info:
        records.validate_record(record)
    assert "\n" not in str(info.value)


def test_read_rejects_corrupt_or_invalid_files(tmp_path):
    with pytest.raises(PeprError, match="no run record"):
        records.read_record(tmp_path)
    (tmp_path / "result.json").write_text("{not json")
    with pytest.raises(PeprError, match="not valid JSON"):
        records.read_record(tmp_path)
    bad = json.loads(json.dumps(ok_record()))
    bad["resources"].pop("co2_g")
    (tmp_path / "result.json").write_text(json.dumps(bad))
    with pytest.raises(PeprError, match="resources.co2_g"):
        records.read_record(tmp_path)


# -------------------------------------------------------------------------------------- atomicity


def test_invalid_record_writes_nothing(tmp_path):
    record = ok_record()
    record["metrics"] = None
    with pytest.raises(PeprError):
        records.write_record(tmp_path / "run", record)
    assert not (tmp_path / "run" / "result.json").exists()
    assert not (tmp_path / "run" / "history.csv").exists()


def test_failing_write_leaves_no_result_and_no_temp_files(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_replace = fileio.os.replace

    def crash_on_result(src, dst):
        if str(dst).endswith("result.json"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", crash_on_result)
    with pytest.raises(OSError, match="disk full"):
        records.write_record(out, ok_record())
    assert not (out / "result.json").exists()
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


def test_rewrite_replaces_whole_file(tmp_path):
    records.write_record(tmp_path, ok_record())
    records.write_record(tmp_path, ok_record(metrics={**METRICS, "test_acc": 0.5}))
    assert records.read_record(tmp_path)["metrics"]["test_acc"] == 0.5


# ---------------------------------------------------------------------------------------- collect


def test_collect_over_several_dirs(tmp_path):
    study_a, study_b = tmp_path / "a" / "runs", tmp_path / "b"
    r1 = ok_record()
    r2 = ok_record(params={"seed": 1, "country_iso_code": "DNK", "run_size": 28})
    r3 = ok_record(params={"weights": "imagenet", "pretrained": True, "mode": "linear", "fraction": 0.1})
    failed = records.make_record(params={**PARAMS, "seed": 2}, status="failed", error="CUDA out of memory")
    for rec, folder in ((r1, study_a), (r2, study_a), (failed, study_a), (r3, study_b)):
        records.write_record(folder / rec["run_id"], rec)
    (study_a / "not-a-run").mkdir()

    df = records.collect([study_a, study_b / r3["run_id"] / "result.json", study_a / r1["run_id"]])
    assert len(df) == 4  # r1 given twice, counted once
    assert set(df["run_id"]) == {r1["run_id"], r2["run_id"], r3["run_id"], failed["run_id"]}
    head = ["run_id", "status", "error", "started_at", "finished_at", "experiment"]
    assert list(df.columns[: len(head)]) == head
    for col in (
        *NAMES,
        *records.MODEL_INFO_FIELDS,
        *records.METRIC_FIELDS,
        *records.RESOURCE_FIELDS,
    ):
        assert col in df.columns
    assert "history" not in df.columns
    assert "env_torch" in df.columns and "env_data_sha256" in df.columns
    # an extra param that clashes with a resource field keeps both, the param one prefixed
    assert "params_country_iso_code" in df.columns and "run_size" in df.columns
    by_id = df.set_index("run_id")
    assert by_id.loc[r1["run_id"], "experiment"] == "pneumoniamnist-28px-1-scratch"
    assert by_id.loc[r3["run_id"], "experiment"] == "pneumoniamnist-28px-0.1-imagenet-linear"
    assert by_id.loc[failed["run_id"], "status"] == "failed"
    assert math.isnan(by_id.loc[failed["run_id"], "test_acc"])
    assert by_id.loc[r1["run_id"], "energy_kwh"] == pytest.approx(0.002)
    assert by_id.loc[r3["run_id"], "record_dir"] == str((study_b / r3["run_id"]).resolve())


def test_collect_empty_folder_and_missing_path(tmp_path):
    df = records.collect(tmp_path)
    assert len(df) == 0 and "energy_kwh" in df.columns
    with pytest.raises(PeprError, match="does not exist"):
        records.collect(tmp_path / "nope")


def test_collect_raises_or_skips_invalid_records(tmp_path):
    records.write_record(tmp_path / "good", ok_record())
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "result.json").write_text("{}")
    with pytest.raises(PeprError, match="bad"):
        records.collect(tmp_path)
    with pytest.warns(UserWarning, match="skipped invalid run record"):
        df = records.collect(tmp_path, on_error="skip")
    assert len(df) == 1
