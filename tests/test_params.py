"""RunParams: one declaration of the run parameters, their defaults (defaults.yaml) and one validator."""

from __future__ import annotations

import dataclasses

import pytest

from pepr_utils import records
from pepr_utils.errors import PeprError
from pepr_utils.grid import spec
from pepr_utils.params import NAMES, SETTING_NAMES, RunParams, RunSettings, defaults, experiment_name, regime


def test_fields_are_the_record_params_and_defaults_come_from_the_yaml():
    assert NAMES == tuple(RunParams(model="m", dataset="d").as_dict())  # the one list; no aliases elsewhere
    assert not hasattr(records, "PARAM_FIELDS")
    assert not hasattr(spec, "RECORD_PARAMS")
    p = RunParams(model="resnet18d", dataset="pneumoniamnist")
    d = defaults()
    assert (p.epochs, p.batch_size, p.lr, p.size, p.fraction, p.seed, p.device, p.mode) == \
        (d["epochs"], d["batch_size"], d["lr"], d["size"], d["fraction"], d["seed"], d["device"], d["mode"])
    assert p.weights is None and p.pretrained is False and p.problems() == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.lr = 1.0  # type: ignore[misc]


def test_loose_values_are_read_and_no_weights_has_one_spelling():
    base = RunParams(model="resnet18d", dataset="pneumoniamnist")
    for spelling in (None, "scratch", "none", "None", ""):
        assert RunParams.of(model="resnet18d", dataset="pneumoniamnist", weights=spelling) == base
    assert RunParams.of(model="resnet18d", dataset="pneumoniamnist", epochs="10", lr="5e-4", size=28.0) == base
    q = RunParams.of(model="resnet18d", dataset="pneumoniamnist", pretrained=True)
    assert (q.weights, q.pretrained, regime(q)) == ("imagenet", True, "imagenet-full")


@pytest.mark.parametrize("values, key", [
    (dict(lr=0), "lr"), (dict(lr=12), "lr"), (dict(lr="fast"), "lr"), (dict(epochs=2.5), "epochs"),
    (dict(size=30), "size"), (dict(fraction=1.5), "fraction"), (dict(device="gpu"), "device"),
    (dict(mode="linear"), "mode"), (dict(weights="foo.bin"), "weights"),
    (dict(weights="imagenet", pretrained=False), "pretrained"),
])  # fmt: skip
def test_one_validator_for_notebooks_and_grids(values, key):
    run = RunParams.of(model="resnet18d", dataset="pneumoniamnist", **values)
    assert [k for k, _ in run.problems()] == [key]
    with pytest.raises(PeprError, match=key):
        run.check()  # what a notebook calls
    grid = {"name": "g", "defaults": {"dataset": "pneumoniamnist", **values}, "axes": {"model": ["resnet18d"]}}
    if key not in ("mode", "pretrained"):  # a grid folds its axes: mode "full" and pretrained=False win for scratch
        with pytest.raises(PeprError, match=key):
            spec.expand_grid(grid, check_names=False)


def test_check_resolves_auto_and_refuses_unknown_names():
    assert RunParams.of(model="resnet18d", dataset="pneumoniamnist", device="auto").check().device in \
        ("cpu", "cuda", "mps")
    with pytest.raises(PeprError, match="unknown run parameter"):
        RunParams.of(model="resnet18d", dataset="pneumoniamnist", optimiser="sgd")
    with pytest.raises(PeprError, match="close names"):
        RunParams.of(model="resnet18x", dataset="pneumoniamnist").check()


def test_run_id_of_fixed_parameters_never_changes():
    """The literal ids were computed before RunParams became the one run-parameter type (issue 18): the same
    parameters must keep filing their results under the same run_id."""
    scratch = RunParams(model="resnet18d", dataset="pneumoniamnist")
    tuned = RunParams.of(model="tf_efficientnet_lite0", dataset="bloodmnist", size=64, fraction=0.1,
                         weights="imagenet", mode="linear", epochs=3, lr=1e-3, seed=2, device="cuda")
    checkpoint = RunParams.of(model="resnet18d", dataset="pneumoniamnist", weights="/tmp/x/model.safetensors",
                              mode="full", fraction=0.01, size=128)
    assert records.run_id(scratch.as_dict()) == "eff7ad1fa200"
    assert records.run_id(tuned.as_dict()) == "219dbee23f69"
    assert records.run_id(checkpoint.as_dict()) == "61832489c7a8"
    grid = spec.expand_grid({"name": "g", "defaults": {"dataset": "pneumoniamnist"},
                                  "axes": {"model": ["resnet18d"], "weights": ["scratch", "imagenet"]}},
                                 check_names=False)
    assert [r.run_id for r in grid.runs] == ["eff7ad1fa200", "69055e7bdd54"]
    assert grid.runs[0].params == scratch


def test_one_function_per_derived_name():
    import math

    tuned = RunParams.of(model="m", dataset="bloodmnist", size=64, fraction=0.1, weights="imagenet", mode="linear")
    assert regime(RunParams(model="m", dataset="d")) == "scratch"
    assert regime(tuned) == regime(tuned.as_dict()) == "imagenet-linear"
    assert regime({"weights": "/x/model.pt", "mode": float("nan")}) == "checkpoint-full"
    assert regime({"pretrained": "True", "weights": float("nan")}) == "imagenet-full"  # a CSV's spelling
    assert experiment_name(tuned) == experiment_name(tuned.as_dict()) == "bloodmnist-64px-0.1-imagenet-linear"
    assert experiment_name({**tuned.as_dict(), "epochs": 3.0}, vary=["epochs", "lr"]) == \
        "bloodmnist-64px-0.1-imagenet-linear-e3-lr0.0005"
    assert experiment_name({"dataset": "d", "size": "big", "fraction": math.nan}) == "d-bigpx-nan-scratch"


def test_run_settings_come_from_the_yaml_and_are_checked_once():
    d = defaults()
    assert RunSettings().as_dict() == {k: d[k] for k in SETTING_NAMES}
    assert RunSettings.of(data_dir=__import__("pathlib").Path("/data")).data_dir == "/data"
    assert [k for k, _ in RunSettings(country_iso_code="dk", eval_every_epoch="yes").problems()] == \
        ["country_iso_code", "eval_every_epoch"]
    with pytest.raises(PeprError, match="unknown run setting"):
        RunSettings.of(out_dir="/x")
    with pytest.raises(PeprError, match="country_iso_code"):
        spec.expand_grid({"name": "g", "defaults": {"dataset": "pneumoniamnist", "country_iso_code": "dk"},
                               "axes": {"model": ["resnet18d"]}}, check_names=False)
