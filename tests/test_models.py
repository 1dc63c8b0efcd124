"""pepr_utils.models: the paper's catalogue, the timm factory, weights, the input-size policy, the check."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from pepr_utils import models
from pepr_utils.cli.command import main
from pepr_utils.errors import PeprError
from pepr_utils.models.build import WeightsInfo
from pepr_utils.models.input_plan import _Prober
from pepr_utils.train.loop import freeze_frozen_norms

LITE0 = "tf_efficientnet_lite0"


# --------------------------------------------------------------------------- catalogue
def test_catalogue_matches_the_papers_model_list(reference_dir):
    cat = models.load_catalogue("paper131")
    paper = pd.read_csv(reference_dir / "model_names.csv")
    assert len(cat) == 131 and cat["model"].is_unique
    assert models.catalogue_models() == cat["model"].tolist()
    merged = paper.merge(cat, on="model", how="outer", validate="one_to_one", indicator=True)
    assert (merged["_merge"] == "both").all()
    assert (merged["type_x"] == merged["type_y"]).all()
    assert (merged["efficient_x"].astype(bool) == merged["efficient_y"]).all()
    assert (merged["num_param"] == merged["paper_num_params"]).all()
    assert set(cat["type"]) == {"CNN", "Other"}


def test_models_beyond_the_paper_are_catalogued_too():
    """Every model a shipped grid names is in a catalogue, so reports label it (CNN/Other, efficient)."""
    import yaml

    from pepr_utils.analysis.results import add_model_type

    assert models.catalogue_names() == ["beyond_paper", "paper131"]
    extra = models.load_catalogue("beyond_paper")
    assert not set(extra["model"]) & set(models.catalogue_models())  # no model in two catalogues
    listed = {m for name in models.catalogue_names() for m in models.catalogue_models(name)}
    quick = yaml.safe_load((models.CATALOGUE_DIR.parent / "grids" / "quick.yaml").read_text())
    assert set(quick["axes"]["model"]) <= listed
    typed = add_model_type(pd.DataFrame({"model": ["tf_efficientnet_lite0", "resnet18d", "not_a_model"]}))
    assert typed["type"].tolist() == ["CNN", "CNN", "unlisted"]
    assert typed["efficient"].tolist()[:2] == [True, False]
    lite0 = extra.set_index("model").loc["tf_efficientnet_lite0"]
    imagenet_config, _ = models.create_model("tf_efficientnet_lite0", 1000, 3)
    assert lite0["paper_num_params"] == sum(p.numel() for p in imagenet_config.parameters())


def test_unknown_catalogue_names_the_available_ones():
    with pytest.raises(PeprError, match="paper131"):
        models.load_catalogue("paper999")


def test_renamed_and_removed_models_resolve():
    renamed = models.resolve_model("gluon_resnet34_v1b")
    assert renamed.exists and renamed.timm_name == "resnet34.gluon_in1k"
    removed = models.resolve_model("gluon_xception65")
    assert not removed.exists and "removed from timm" in removed.note
    plan = models.plan_input("gluon_xception65", 28)
    assert (plan.status, plan.run_size) == ("incompatible", None) and "removed from timm" in plan.reason
    with pytest.raises(PeprError, match="removed from timm"):
        models.create_model("gluon_xception65", 2, 3)


def test_unknown_model_suggests_close_names():
    with pytest.raises(PeprError, match=r"unknown model 'resnet18dd'.*close names:.*resnet18d") as info:
        models.create_model("resnet18dd", num_classes=2, in_chans=1)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- weights
@pytest.fixture
def lite0_file(weights_dir):
    return load_file(str(weights_dir / f"{LITE0}.safetensors"))


@pytest.mark.parametrize("in_chans", [1, 3])
def test_imagenet_weights_come_from_the_weights_dir(weights_dir, lite0_file, in_chans):
    model, info = models.create_model(LITE0, num_classes=2, in_chans=in_chans, weights="imagenet",
                                      weights_dir=weights_dir, offline=True)
    stem = lite0_file["conv_stem.weight"]
    expected = stem.sum(dim=1, keepdim=True) if in_chans == 1 else stem
    assert torch.equal(model.conv_stem.weight.detach(), expected)
    # the backbone is the file's, the classifier is new and sized for the dataset
    assert torch.equal(model.blocks[3][0].conv_pw.weight.detach(), lite0_file["blocks.3.0.conv_pw.weight"])
    assert model.classifier.weight.shape == (2, lite0_file["classifier.weight"].shape[1])
    assert info == WeightsInfo(weights="imagenet", source=str(weights_dir / f"{LITE0}.safetensors"))


def test_imagenet_weights_with_imagenet_head_keep_the_classifier(weights_dir, lite0_file):
    model, _ = models.create_model(LITE0, num_classes=1000, in_chans=3, weights="imagenet", weights_dir=weights_dir)
    assert torch.equal(model.classifier.weight.detach(), lite0_file["classifier.weight"])


def test_missing_weights_offline_names_the_file(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(PeprError, match="offline") as info:
        models.create_model(LITE0, 2, 1, weights="imagenet", weights_dir=tmp_path, offline=True)
    assert str(tmp_path / f"{LITE0}.safetensors") in str(info.value)
    assert "\n" not in str(info.value)


def test_checkpoint_with_another_head_loads_backbone_and_skips_head(tmp_path):
    torch.manual_seed(0)
    source, info = models.create_model("test_resnet", num_classes=3, in_chans=1)
    assert info == WeightsInfo()  # random weights: nothing loaded
    sd = source.state_dict()
    torch.save({"state_dict": sd, "epoch": 10}, tmp_path / "run.pt")  # a pepr-style checkpoint
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "run.safetensors"))
    for path in (tmp_path / "run.pt", tmp_path / "run.safetensors"):
        with pytest.warns(UserWarning, match="skipped the classifier"):
            model, info = models.create_model("test_resnet", num_classes=5, in_chans=1, weights=path)
        own = model.state_dict()
        assert all(torch.equal(own[k], v) for k, v in sd.items() if not k.startswith("fc."))
        assert model.fc.weight.shape[0] == 5
        assert sorted(info.skipped_keys) == ["fc.bias", "fc.weight"] and info.source == str(path)
    # a 1-channel checkpoint into a 3-channel model: the stem is adapted, not refused
    model, info = models.create_model("test_resnet", num_classes=3, in_chans=3, weights=tmp_path / "run.pt")
    assert info.adapted_keys and model.conv1[0].weight.shape[1] == 3


def test_checkpoint_of_another_model_is_refused(tmp_path):
    torch.save(models.create_model("test_efficientnet", 2, 3).net.state_dict(), tmp_path / "other.pth")
    with pytest.raises(PeprError, match="does not fit 'test_resnet'"):
        models.create_model("test_resnet", 2, 3, weights=tmp_path / "other.pth")
    with pytest.raises(PeprError, match="not found"):
        models.create_model("test_resnet", 2, 3, weights=tmp_path / "nope.pt")
    with pytest.raises(PeprError, match="'imagenet' or a checkpoint file"):
        models.create_model("test_resnet", 2, 3, weights="imagenet21k")


# --------------------------------------------------------------------------- trainable and info
def test_linear_mode_trains_only_the_head_and_keeps_batch_norm_frozen():
    torch.manual_seed(0)
    model, _ = models.create_model("test_resnet", num_classes=4, in_chans=1)
    frozen_norms = models.set_trainable(model, "linear")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}
    assert frozen_norms and all(isinstance(model.get_submodule(n), torch.nn.BatchNorm2d) for n in frozen_norms)
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    model.train()
    assert freeze_frozen_norms(model, frozen_norms) == len(frozen_norms)  # what each training epoch does
    assert model.training and model.fc.training
    model(torch.randn(4, 1, 32, 32))  # a training-mode forward must not move the running statistics
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert models.set_trainable(model, "full") == ()
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(PeprError, match="full, linear"):
        models.set_trainable(model, "partial")


def test_model_info_counts_parameters_and_macs():
    model, _ = models.create_model("resnet18", num_classes=1000, in_chans=3)
    info = models.model_info(model, 224, 3)
    assert info["num_params"] == 11_689_512 == info["trainable_params"]  # resnet18's well-known count
    assert 1.75e9 < info["macs_per_image"] < 1.9e9  # ~1.82 GMACs at 224 px
    assert info["input_size"] == 224
    small, _ = models.create_model("test_resnet", num_classes=2, in_chans=1)
    models.set_trainable(small, "linear")
    a, b = models.model_info(small, 32, 1), models.model_info(small, 64, 1)
    assert a["trainable_params"] == sum(p.numel() for p in small.fc.parameters())
    assert 3.5 < b["macs_per_image"] / a["macs_per_image"] < 4.1  # convolutions scale with the pixel count
    assert small.training  # the mode is restored


# --------------------------------------------------------------------------- input-size policy
def test_plan_input_resizes_fixed_and_minimum_size_models(tmp_path, monkeypatch):
    fixed = models.plan_input("botnet26t_256", 28, cache_dir=tmp_path)
    assert (fixed.status, fixed.run_size, fixed.reason) == ("resize", 256, "needs exactly 256 px")
    assert models.plan_input("botnet26t_256", 256, cache_dir=tmp_path).status == "ok"
    minimum = models.plan_input("pvt_v2_b0", 28, cache_dir=tmp_path)
    assert minimum.status == "resize" and minimum.reason == f"needs at least {minimum.run_size} px"
    assert 28 < minimum.run_size <= 64
    assert models.plan_input("pvt_v2_b0", 64, cache_dir=tmp_path).status == "ok"
    # every answer is cached: planning again builds and runs nothing
    monkeypatch.setattr(_Prober, "run", lambda self, size: pytest.fail("probed again"))
    assert models.plan_input("botnet26t_256", 28, cache_dir=tmp_path) == fixed
    assert models.plan_input("pvt_v2_b0", 28, cache_dir=tmp_path) == minimum


def test_plan_input_leaves_the_global_random_state_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    models.plan_input("test_resnet", 40, cache_dir=tmp_path)
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(PeprError, match="data size 0"):
        models.plan_input("test_resnet", 0, cache_dir=tmp_path)


# --------------------------------------------------------------------------- check and CLI
def test_check_models_reports_each_model(tmp_path):
    df = models.check_models(["mobilenetv2_050", "test_vit", "gluon_xception65"], 28, progress=False,
                             cache_dir=tmp_path)
    rows = df.set_index("model")
    assert rows.loc["mobilenetv2_050", "status"] == "ok" and bool(rows.loc["mobilenetv2_050", "params_match_paper"])
    assert rows.loc["mobilenetv2_050", "num_params_imagenet"] == 1_968_680  # the paper's count
    assert rows.loc["mobilenetv2_050", "num_params"] < 1_968_680  # as built: a 2-class head
    assert rows.loc["test_vit", "status"] == "resize" and rows.loc["test_vit", "run_size"] == 32
    assert "divisible by patch size" in rows.loc["test_vit", "error"]
    assert not rows.loc["gluon_xception65", "exists"]
    assert rows.loc["gluon_xception65", "status"] == "incompatible"


def test_cli_models_check_writes_the_table(tmp_path, capsys):
    out = tmp_path / "check.csv"
    assert main(["models", "check", "--models", "test_resnet", "--size", "32", "-o", str(out), "--no-progress"]) == 0
    df = pd.read_csv(out)
    assert df["model"].tolist() == ["test_resnet"] and df["status"].tolist() == ["ok"]
    assert "1 of 1 models run at 32 px" in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (["--models", "resnet18dd"], "close names"),
    (["--size", "abc"], "--size 'abc'"),
    (["--size", "0"], "--size '0'"),
    (["--catalogue", "nope"], "paper131"),
])
def test_cli_models_check_bad_input_is_one_line(tmp_path, capsys, args, needle):
    out = tmp_path / "check.csv"
    assert main(["models", "check", *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()
