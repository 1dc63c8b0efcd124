"""Training and fine-tuning: the loop, MedMNIST's metrics, the experiment steps and their records.

Real data (PneumoniaMNIST 28 px) and the real ImageNet weights of tf_efficientnet_lite0 from ../shared;
small slices and one epoch keep the file short.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pepr_utils import records
from pepr_utils.analysis.results import load_predictions
from pepr_utils.devices import check_device, resolve_device
from pepr_utils.errors import PeprError
from pepr_utils.params import NAMES, RunParams
from pepr_utils.train import experiment as ex
from pepr_utils.train.loop import (
    classification_metrics,
    fit,
    freeze_frozen_norms,
    inference_time_ms,
    predict,
    trainable_parameters,
)
from pepr_utils.train.notebook_code import run_notebook_code

PNEUMONIA = dict(dataset="pneumoniamnist", size=28)
TINY = RunParams(model="tinynet", dataset="synthetic", epochs=1)  # fit reads epochs, lr, seed and device


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    return message


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("field, value", [
    ("lr", 0), ("lr", -1e-3), ("lr", "fast"), ("lr", float("nan")), ("lr", True),
    ("epochs", 0), ("epochs", 2.5), ("epochs", True), ("epochs", "ten"),
    ("batch_size", 0), ("batch_size", -32), ("batch_size", 1.5),
    ("device", "gpu"), ("device", "cuda:x"), ("device", 0),
])  # fmt: skip
def test_invalid_training_settings_give_one_line_naming_the_value(field, value):
    with pytest.raises(PeprError) as exc:
        RunParams.of(model="m", dataset="d", **{field: value}).valid()  # what fit checks
    assert field in one_line(exc) or "device" in str(exc.value)
    with pytest.raises(PeprError):
        ex.resolve_params(model="resnet18d", **PNEUMONIA, **{field: value})


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, "half", float("nan")])
def test_invalid_fraction_is_refused(fraction):
    with pytest.raises(PeprError) as exc:
        ex.resolve_params(model="resnet18d", **PNEUMONIA, fraction=fraction)
    assert "fraction" in one_line(exc)


def test_valid_settings_are_normalised():
    cfg = RunParams.of(model="m", dataset="d", epochs=10.0, batch_size="32", lr="5e-4", device="CPU").valid()
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.device) == (10, 32, 5e-4, "cpu")
    assert check_device("cuda:1") == "cuda:1" and check_device("auto") == "auto"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_but_absent_is_a_clear_error():
    with pytest.raises(PeprError, match="CUDA is not available") as exc:
        resolve_device("cuda")
    one_line(exc)


def test_params_follow_the_grid_form():
    p = ex.resolve_params(model="resnet18d", **PNEUMONIA)
    assert tuple(p) == NAMES
    assert (p["pretrained"], p["weights"], p["mode"], p["epochs"], p["batch_size"], p["lr"]) == \
        (False, None, "full", 10, 32, 5e-4)
    assert ex.resolve_params(model="resnet18d", **PNEUMONIA, weights="scratch") == p
    q = ex.resolve_params(model="resnet18d", **PNEUMONIA, weights="imagenet", mode="linear")
    assert (q["pretrained"], q["weights"], q["mode"]) == (True, "imagenet", "linear")
    with pytest.raises(PeprError, match="needs weights"):
        ex.resolve_params(model="resnet18d", **PNEUMONIA, mode="linear")
    with pytest.raises(PeprError, match="mode"):
        ex.resolve_params(model="resnet18d", **PNEUMONIA, weights="imagenet", mode="probe")
    with pytest.raises(PeprError, match="checkpoint"):
        ex.resolve_params(model="resnet18d", **PNEUMONIA, weights="/nonexistent/model.safetensors")


def test_unknown_model_suggests_close_names():
    with pytest.raises(PeprError) as exc:
        ex.resolve_params(model="resnet18x", **PNEUMONIA)
    assert "resnet18" in one_line(exc)


# --------------------------------------------------------------------------- metrics
def test_metrics_follow_medmnist_definitions():
    y = np.array([0, 0, 1, 1, 1])
    p1 = np.array([0.2, 0.6, 0.4, 0.8, 0.9])  # positive-class probability
    score = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(y, score, "binary-class")
    # predictions (p > 0.5): 0 1 0 1 1 -> 3/5 right; AUC on p1: 5 of 6 pairs ranked right
    assert m["acc"] == pytest.approx(0.6) and m["auc"] == pytest.approx(5 / 6)
    assert m["bal_acc"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["f1_macro"] == pytest.approx((1 / 2 + 2 / 3) / 2)  # F1 per class: 2/4, 4/6

    y3 = np.array([0, 1, 2, 2])
    s3 = np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3], [0.1, 0.5, 0.4], [0.2, 0.2, 0.6]])
    m3 = classification_metrics(y3, s3, "multi-class")
    from sklearn.metrics import roc_auc_score

    ovr = np.mean([roc_auc_score(y3 == k, s3[:, k]) for k in range(3)])
    assert m3["acc"] == pytest.approx(0.75) and m3["auc"] == pytest.approx(ovr)
    # an AUC undefined because one class is absent is NaN, not an exception
    assert np.isnan(classification_metrics(np.array([1, 1]), score[:2], "binary-class")["auc"])


# --------------------------------------------------------------------------- the loop
class TinyNet(nn.Module):
    """A small CNN with batch norm, fast enough to train many times in a test."""

    def __init__(self, in_chans=1, num_classes=2):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_chans, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def test_cpu_evaluation_in_channels_last_predicts_the_same_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = TinyNet(in_chans=3, num_classes=4)
    x = torch.randn(64, 3, 16, 16)
    batches = [(x[i:i + 32], torch.zeros(32, dtype=torch.long)) for i in (0, 32)]
    _, plain = predict(model, batches, channels_last=False)
    _, fast = predict(model, batches, channels_last=True)
    assert np.allclose(plain, fast, atol=1e-5) and (plain.argmax(1) == fast.argmax(1)).all()
    conv = model.features[0].weight
    assert conv.is_contiguous() and not conv.is_inference() and model.training
    model(x).sum().backward()  # still trainable: the weights are not inference tensors
    assert conv.grad is not None


def synthetic_batches(n=96, batch_size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 12, 12, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    x[y == 1] += 0.5
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)]


def test_train_one_epoch_applies_the_notebooks_augmentation():
    from pepr_utils.train.loop import classification_loss, train_one_epoch

    seen = []

    def augment(x):
        seen.append(x.shape[0])
        return x.flip(-1)

    model = TinyNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    out = train_one_epoch(model, synthetic_batches(), optimizer, classification_loss("binary-class"), device="cpu",
                          augment=augment, progress=False)
    assert seen == [32, 32, 32] and out["images"] == 96 and out["train_loss"] > 0


def test_fit_is_reproducible_and_keeps_history():
    def once():
        torch.manual_seed(0)
        model = TinyNet()
        result = fit(model, synthetic_batches(), val_batches=synthetic_batches(seed=1),
                     test_batches=synthetic_batches(seed=2), task="binary-class",
                     params=dataclasses.replace(TINY, epochs=3), progress=False)
        return result, torch.cat([p.flatten() for p in model.state_dict().values() if p.is_floating_point()])

    (a, wa), (b, wb) = once(), once()
    assert torch.equal(wa, wb)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert [h["epoch"] for h in a.history] == [1, 2, 3]
    assert set(records.HISTORY_FIELDS) <= set(a.history[0])
    assert a.history[-1]["train_loss"] < a.history[0]["train_loss"]
    for key in ("test_acc", "test_auc", "test_bal_acc", "test_f1_macro", "val_acc", "val_auc"):
        assert 0 <= a.metrics[key] <= 1
    assert a.metrics["test_acc"] == a.history[-1]["test_acc"]  # P: test accuracy after the last epoch
    assert a.train_images == 3 * 96 and a.train_time_s > 0


def test_fit_records_the_speed_options_it_used():
    from pepr_utils.data.batches import Batches
    from pepr_utils.data.datasets import Split

    g = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (40, 1, 12, 12), dtype=torch.uint8, generator=g),
                  torch.randint(0, 2, (40,), generator=g))
    torch.manual_seed(0)
    result = fit(TinyNet(), Batches(split, 16), val_batches=Batches(split, 64), task="binary-class",
                 params=TINY, progress=False)
    assert result.speed == {"channels_last": False, "eval_channels_last": True, "autocast": None, "compiled": False,
                            "eval_batch_size": 64,
                            "eval_grad_mode": "inference_mode", "torch_threads": torch.get_num_threads()}


def test_frozen_batch_norm_stays_in_eval_mode():
    model = TinyNet()
    for p in model.features.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, synthetic_batches(), task="binary-class", params=TINY, progress=False)
    after = model.state_dict()
    for k in before:
        changed = not torch.equal(before[k], after[k])
        assert changed == k.startswith("head."), k
    model.train()
    assert freeze_frozen_norms(model) == 1 and not model.features[1].training


def test_named_frozen_norms_stay_in_eval_mode_and_cpu_needs_no_grad_scaler():
    from pepr_utils.train.loop import grad_scaler

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, affine=False), nn.Linear(2, 2)).train()
    assert freeze_frozen_norms(model) == 0  # no parameters to tell it is frozen: only its name does
    assert freeze_frozen_norms(model, ("1",)) == 1 and not model[1].training and model[0].training
    assert grad_scaler("cpu") is None and grad_scaler("cpu", amp=False) is None  # CPU runs in float32


def test_inference_time_is_measured_in_eval_mode_and_restores_mode():
    model = TinyNet().train()
    ms = inference_time_ms(model, synthetic_batches(), warmup_batches=1)
    assert ms > 0 and model.training


# --------------------------------------------------------------------------- experiments on real data
@pytest.mark.slow
def test_linear_probe_leaves_the_pretrained_backbone_unchanged(data_dir, weights_dir, tmp_path):
    from pepr_utils.models.build import create_model

    ns = run_notebook_code("03_finetune", dict(model="tf_efficientnet_lite0", **PNEUMONIA, fraction=0.02, epochs=1,
                                               device="cpu", weights="imagenet", mode="linear", data_dir=str(data_dir),
                                               weights_dir=str(weights_dir), out_dir=str(tmp_path)))
    assert ns["model"] == "tf_efficientnet_lite0"  # the parameter keeps its value: every cell can be re-run
    model = ns["net"]
    assert ns["frozen_norms"]  # set_trainable named the backbone's batch norms, which stayed in eval mode
    head = model.get_classifier()
    head_keys = {f"classifier.{k}" for k in head.state_dict()}
    assert ns["model_info"]["trainable_params"] == sum(p.numel() for p in head.parameters())
    torch.manual_seed(0)
    before = create_model("tf_efficientnet_lite0", 2, 1, weights="imagenet", weights_dir=weights_dir).net.state_dict()
    after = model.state_dict()
    frozen_changed = [k for k in before if k not in head_keys and not torch.equal(before[k], after[k])]
    assert frozen_changed == []  # weights and batch-norm running statistics alike
    assert any(not torch.equal(before[k], after[k]) for k in head_keys)
    record = records.read_record(tmp_path)
    assert record["model_info"]["weights_source"].endswith("tf_efficientnet_lite0.safetensors")
    assert record["params"]["mode"] == "linear"


@pytest.mark.slow
def test_every_cell_of_the_notebook_can_be_run_again(data_dir, tmp_path):
    """The parameters keep their values (the network is ``net``, the torch device ``torch_device``), so
    re-running the cells after the parameters gives the same run."""
    from conftest import NOTEBOOKS

    from pepr_utils.train.notebook_code import notebook_cells

    ns = run_notebook_code("02_train", dict(model="test_resnet", **PNEUMONIA, fraction=0.02, epochs=1, device="cpu",
                                            data_dir=str(data_dir), out_dir=str(tmp_path / "first")))
    assert (ns["model"], ns["device"]) == ("test_resnet", "cpu") and ns["torch_device"] == torch.device("cpu")
    first = records.read_record(tmp_path / "first")
    ns["out_dir"] = str(tmp_path / "again")
    after = False
    for header, source in notebook_cells(NOTEBOOKS / "02_train.py"):
        if "[markdown]" not in header and after:
            exec(compile(source, "02_train.py", "exec"), ns)  # noqa: S102 - our own notebook
        after = after or "parameters" in header
    again = records.read_record(tmp_path / "again")
    assert again["run_id"] == first["run_id"] and again["params"] == first["params"]
    assert again["metrics"]["test_acc"] == first["metrics"]["test_acc"]


@pytest.mark.slow
def test_imagenet_fine_tuning_trains_and_records_resources(data_dir, weights_dir, tmp_path):
    from pepr_utils.models.build import create_model, set_trainable

    params = dict(model="tf_efficientnet_lite0", **PNEUMONIA, fraction=0.05, epochs=1, weights="imagenet")
    record = ex.run_experiment(params, tmp_path / "run", data_dir=data_dir, weights_dir=weights_dir)
    back = records.read_record(tmp_path / "run")
    assert back == record and back["status"] == "ok"
    assert back["params"]["pretrained"] is True and back["run_id"] == records.run_id(back["params"])
    r = back["resources"]
    assert r["energy_kwh"] > 0 and r["energy_method"] and r["co2_g"] > 0
    assert r["train_time_s"] >= r["train_steps_time_s"] > 0 and r["infer_time_ms_per_image"] > 0
    assert back["model_info"]["trainable_params"] == back["model_info"]["num_params"]
    assert back["env"]["data_official"] is False and back["env"]["data_sha256"]
    assert back["env"]["speed_eval_grad_mode"] == "inference_mode" and back["env"]["train_images"] > 0
    assert 0 <= back["metrics"]["test_acc"] <= 1 and len(back["metrics"]["history"]) == 1
    assert {"majority_acc", "chance_auc", "test_kappa", "test_kappa_p"} <= set(back["metrics"])
    assert (tmp_path / "run" / "history.csv").is_file()
    # per-image test predictions, from which the analysis bootstraps the test set: they give test_acc back
    with np.load(tmp_path / "run" / ex.PREDICTIONS_FILE, allow_pickle=False) as z:
        y_true, y_score = z["y_true"], z["y_score"]
    assert y_true.shape == (624,) and y_score.shape == (624, 2)  # PneumoniaMNIST's test split, 2 classes
    assert np.allclose(y_score.sum(axis=1), 1, atol=1e-5)
    assert np.mean(y_score.argmax(axis=1) == y_true) == pytest.approx(back["metrics"]["test_acc"])
    correct = load_predictions(pd.DataFrame({"run_id": ["r"], "run_dir": [str(tmp_path / "run")]}))["r"]
    assert correct.mean() == pytest.approx(back["metrics"]["test_acc"])

    # the trained weights seed a further run: 03's "checkpoint of an earlier run"
    ckpt = tmp_path / "run" / ex.CHECKPOINT_FILE
    probe, info = create_model("tf_efficientnet_lite0", 2, 1, weights=str(ckpt))
    assert info.source == str(ckpt) and not info.skipped_keys and not info.adapted_keys
    assert set_trainable(probe, "linear")  # the frozen backbone's batch norms
    assert sum(p.numel() for p in trainable_parameters(probe)) < sum(p.numel() for p in probe.parameters())
    assert ex.input_normalisation(probe, str(ckpt), 1) == (0.5, 0.5)  # pepr checkpoints saw 0.5/0.5 inputs
    pretrained, _ = create_model("tf_efficientnet_lite0", 2, 1, weights="imagenet", weights_dir=weights_dir)
    stem = "conv_stem.weight"
    assert not torch.equal(probe.state_dict()[stem], pretrained.state_dict()[stem])  # it trained


def test_model_needing_256_px_is_resized_on_the_fly(data_dir):
    from pepr_utils.data.datasets import load_dataset
    from pepr_utils.models.build import create_model, model_info
    from pepr_utils.models.input_plan import plan_input

    plan = plan_input("botnet26t_256", 28)
    assert (plan.status, plan.run_size) == ("resize", 256)
    data = load_dataset("pneumoniamnist", 28, data_dir=data_dir).with_train_fraction(0.01, 0)
    model, _ = create_model("botnet26t_256", data.n_classes, data.n_channels)
    assert model_info(model, plan.run_size, 1)["input_size"] == 256
    x, y = next(iter(ex.batches(data, "train", 2, device="cpu", run_size=plan.run_size)))
    assert tuple(x.shape) == (2, 1, 256, 256)
    with torch.no_grad():
        assert tuple(model.eval()(x).shape) == (2, 2)


def test_incompatible_model_is_recorded_not_raised(data_dir, tmp_path):
    record = ex.run_experiment(dict(model="gluon_xception65", **PNEUMONIA, epochs=1), tmp_path, data_dir=data_dir)
    assert record["status"] == "incompatible" and "removed from timm" in record["error"]
    assert records.read_record(tmp_path)["status"] == "incompatible"
    assert not (tmp_path / ex.CHECKPOINT_FILE).exists()


@pytest.mark.parametrize("bad, match", [
    (dict(model="resnet18x"), "close names"),
    (dict(lr=0), "lr"), (dict(epochs=0), "epochs"), (dict(batch_size=0), "batch_size"),
    (dict(fraction=1.5), "fraction"), (dict(device="gpu"), "device"),
    (dict(model="tf_efficientnet_lite0", weights="imagenet"), "tf_efficientnet_lite0.safetensors"),
])  # fmt: skip
def test_errors_leave_no_result_file(bad, match, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PEPR_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    params = {"model": "resnet18d", **PNEUMONIA, "epochs": 1, **bad}
    with pytest.raises(PeprError, match=match) as exc:
        ex.run_experiment(params, tmp_path / "out", data_dir=data_dir, weights_dir=tmp_path / "no-weights")
    one_line(exc)
    assert not (tmp_path / "out" / records.RESULT_FILE).exists()


def test_run_experiment_refuses_unknown_parameters(tmp_path):
    with pytest.raises(PeprError, match="unknown run parameter"):
        ex.run_experiment(dict(model="resnet18d", **PNEUMONIA, optimiser="sgd"), tmp_path)
