"""Notebooks 02_train and 03_finetune executed with papermill on real data, as the grid runs them.

PneumoniaMNIST at 28 px from ../shared/data; 03 fine-tunes tf_efficientnet_lite0 from the ImageNet
weights in ../shared/weights. Small models, fractions and one or two epochs keep this short.
"""

from __future__ import annotations

import json

import nbformat
import papermill as pm
import pytest
from conftest import NOTEBOOKS

from pepr_utils import records

pytestmark = pytest.mark.slow

#: timm's own tiny test ResNet (0.37M parameters): on half of PneumoniaMNIST's training split at 28 px it
#: beats the majority class (0.625) after one epoch (0.81 here; 0.86 on all of it; a quarter is not enough).
SMALL_MODEL = "test_resnet"


def execute(name: str, tmp_path, **parameters) -> dict:
    """Run notebook ``name`` with papermill (cwd notebooks/, kernel python3); return its outputs."""
    out_dir = tmp_path / "out"
    pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                        parameters={"out_dir": str(out_dir), **parameters}, kernel_name="python3",
                        cwd=str(NOTEBOOKS), progress_bar=False)
    return {"out_dir": out_dir, "notebook": nbformat.read(tmp_path / f"{name}.ipynb", as_version=4)}


def test_02_train_writes_a_valid_record_that_beats_the_majority_class(data_dir, tmp_path):
    done = execute("02_train", tmp_path, model=SMALL_MODEL, dataset="pneumoniamnist", size=28, fraction=0.5,
                   epochs=1, device="cpu", data_dir=str(data_dir))
    record = records.read_record(done["out_dir"])
    assert record["status"] == "ok" and record["error"] is None
    assert record["params"] == {"model": SMALL_MODEL, "dataset": "pneumoniamnist", "size": 28, "fraction": 0.5,
                                "pretrained": False, "weights": None, "mode": "full", "epochs": 1,
                                "batch_size": 32, "lr": 5e-4, "seed": 0, "device": "cpu"}
    assert record["run_id"] == records.run_id(record["params"])
    assert record["metrics"]["test_acc"] > 0.625  # the majority class (pneumonia) of the test split
    assert len(record["metrics"]["history"]) == 1
    r = record["resources"]
    assert r["energy_kwh"] > 0 and r["energy_method"] and r["train_time_s"] > 0
    assert r["infer_time_ms_per_image"] > 0 and r["peak_mem_gb"] > 0
    assert (done["out_dir"] / "history.csv").is_file() and (done["out_dir"] / "model.safetensors").is_file()
    outputs = [o for c in done["notebook"].cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "learning curves not shown"


def test_03_finetune_from_imagenet_weights_linear_probe(data_dir, weights_dir, tmp_path):
    done = execute("03_finetune", tmp_path, model="tf_efficientnet_lite0", dataset="pneumoniamnist", size=28,
                   fraction=0.05, epochs=1, device="cpu", weights="imagenet", mode="linear",
                   data_dir=str(data_dir), weights_dir=str(weights_dir))
    record = records.read_record(done["out_dir"])
    assert record["status"] == "ok"
    assert (record["params"]["pretrained"], record["params"]["weights"], record["params"]["mode"]) == \
        (True, "imagenet", "linear")
    info = record["model_info"]
    assert info["weights_source"] == str(weights_dir / "tf_efficientnet_lite0.safetensors")
    assert 0 < info["trainable_params"] < info["num_params"] / 100  # the head only
    assert record["resources"]["energy_kwh"] > 0


@pytest.mark.parametrize("name, bad, words", [
    ("02_train", {"lr": 0}, "lr"),
    ("02_train", {"model": "resnet18x"}, "close names"),
    ("03_finetune", {"weights_dir": "__missing__"}, "tf_efficientnet_lite0.safetensors"),
])  # fmt: skip
def test_bad_parameters_stop_the_notebook_with_one_line_and_no_result(name, bad, words, data_dir, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache, offline
    parameters = {"model": "tf_efficientnet_lite0", "dataset": "pneumoniamnist", "epochs": 1, "device": "cpu",
                  "data_dir": str(data_dir), **bad}
    if parameters.get("weights_dir") == "__missing__":
        parameters["weights_dir"] = str(tmp_path / "no-weights")
    with pytest.raises(pm.PapermillExecutionError) as exc:
        execute(name, tmp_path, **parameters)
    assert exc.value.ename == "PeprError"
    message = str(exc.value.evalue)
    assert words in message and "\n" not in message.strip()
    assert not (tmp_path / "out" / "result.json").exists()
    json.dumps(message)  # a plain string the grid can record


def test_evaluating_the_last_epoch_only_gives_the_same_run(data_dir, tmp_path):
    """eval_every_epoch=False skips val/test before the last epoch: a cheaper run with the same P."""
    from pepr_utils.train.experiment import run_experiment

    params = dict(model=SMALL_MODEL, dataset="pneumoniamnist", fraction=0.1, epochs=2, device="cpu")
    every = run_experiment(params, tmp_path / "every", data_dir=data_dir)
    last = run_experiment(params, tmp_path / "last", data_dir=data_dir, eval_every_epoch=False)
    assert every["run_id"] == last["run_id"]  # not a result-deciding parameter
    assert last["metrics"]["test_acc"] == every["metrics"]["test_acc"]
    assert last["metrics"]["test_kappa"] == every["metrics"]["test_kappa"]
    first, final = last["metrics"]["history"]
    assert first["test_acc"] is None and final["test_acc"] == last["metrics"]["test_acc"]
    assert every["metrics"]["history"][0]["test_acc"] is not None
