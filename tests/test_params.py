"""RunParams: one declaration of the run parameters, their defaults (defaults.yaml) and one validator."""

from __future__ import annotations

import dataclasses

import pytest

from pepr_utils.grid import spec as grid_spec
from pepr_utils import records
from pepr_utils.errors import PeprError
from pepr_utils.params import NAMES, RunParams, defaults


def test_fields_are_the_record_params_and_defaults_come_from_the_yaml():
    assert NAMES == records.PARAM_FIELDS == grid_spec.RECORD_PARAMS
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
    assert (q.weights, q.pretrained, q.start) == ("imagenet", True, "imagenet-full")


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
    spec = {"name": "g", "defaults": {"dataset": "pneumoniamnist", **values}, "axes": {"model": ["resnet18d"]}}
    if key not in ("mode", "pretrained"):  # a grid folds its axes: mode "full" and pretrained=False win for scratch
        with pytest.raises(PeprError, match=key):
            grid_spec.expand_grid(spec, check_names=False)


def test_check_resolves_auto_and_refuses_unknown_names():
    assert RunParams.of(model="resnet18d", dataset="pneumoniamnist", device="auto").check().device in \
        ("cpu", "cuda", "mps")
    with pytest.raises(PeprError, match="unknown run parameter"):
        RunParams.of(model="resnet18d", dataset="pneumoniamnist", optimiser="sgd")
    with pytest.raises(PeprError, match="close names"):
        RunParams.of(model="resnet18x", dataset="pneumoniamnist").check()
