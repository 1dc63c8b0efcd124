"""The paper reproduction: reference loading, the audit, the shared plots, and notebook 00 end to end."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import NOTEBOOKS
from scipy import stats

from pepr_utils.analysis import plots
from pepr_utils.errors import PeprError
from pepr_utils.paper import reference
from pepr_utils.paper import reproduction as paper

# --------------------------------------------------------------------------------------- reference


def test_load_results_from_reference_dir(reference_dir, tmp_path):
    results = reference.load_results(reference_dir, cache_dir=tmp_path, offline=True)
    assert len(results) == 1048
    assert set(results["experiment"]) == set(reference.EXPERIMENTS)
    assert (results["experiment"] == results["dataset"]).all()
    assert results.groupby("experiment").size().eq(131).all()
    scores = reference.load_published_scores(reference_dir, cache_dir=tmp_path, offline=True)
    assert {"pepr_e", "pepr_c", "pepr_t", "pepr_m", "experiment"} <= set(scores.columns)
    assert len(reference.load_models(reference_dir, cache_dir=tmp_path, offline=True)) == 131


def test_reference_dir_from_environment(reference_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PEPR_REFERENCE_DIR", str(reference_dir))
    assert reference.reference_file("model_names.csv", cache_dir=tmp_path, offline=True) == \
        reference_dir / "model_names.csv"


def test_checksum_mismatch_in_reference_dir_is_refused(tmp_path):
    (tmp_path / "all_results.csv").write_text("model,energy\nx,1\n")
    with pytest.raises(PeprError, match="checksum mismatch.*all_results.csv"):
        reference.load_results(tmp_path, cache_dir=tmp_path / "cache", offline=True)


def test_offline_and_missing_names_file_and_places(tmp_path, monkeypatch):
    monkeypatch.delenv("PEPR_REFERENCE_DIR", raising=False)
    local, cache = tmp_path / "ref", tmp_path / "cache"
    local.mkdir()
    with pytest.raises(PeprError) as err:
        reference.load_results(local, cache_dir=cache, offline=True)
    message = str(err.value)
    assert "all_results.csv" in message and str(local) in message and str(cache / "reference") in message
    assert "offline" in message and "\n" not in message


def test_verified_cache_is_used_offline(reference_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("PEPR_REFERENCE_DIR", raising=False)
    (tmp_path / "reference").mkdir()
    shutil.copy(reference_dir / "model_names.csv", tmp_path / "reference" / "model_names.csv")
    models = reference.load_models(None, cache_dir=tmp_path, offline=True)
    assert len(models) == 131


def test_download_goes_to_pinned_commit_with_checksum(tmp_path, monkeypatch, reference_dir):
    monkeypatch.delenv("PEPR_REFERENCE_DIR", raising=False)
    calls = []

    def fake_fetch(url, dest, *, sha256=None, md5=None, offline=None):
        calls.append((url, dest, sha256))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(reference_dir / "model_names.csv", dest)
        return dest

    monkeypatch.setattr(reference, "fetch", fake_fetch)
    reference.load_models(None, cache_dir=tmp_path, offline=False)
    url, dest, sha = calls[0]
    assert url == f"https://raw.githubusercontent.com/saintslab/PePR/{reference.COMMIT}/data/model_names.csv"
    assert dest == tmp_path / "reference" / "model_names.csv"
    assert sha == reference.FILES["model_names.csv"]


def _register(monkeypatch, path, name):
    """Make a crafted file pass the checksum check, to test what comes after it."""
    monkeypatch.setitem(reference.FILES, name, hashlib.sha256(path.read_bytes()).hexdigest())


def test_missing_columns_are_named(tmp_path, monkeypatch):
    path = tmp_path / "model_names.csv"
    path.write_text("model,num_param\nx,1\n")
    _register(monkeypatch, path, "model_names.csv")
    with pytest.raises(PeprError, match=r"lacks column\(s\) \['type', 'efficient'\]"):
        reference.load_models(tmp_path, offline=True)


def test_unknown_experiment_is_refused(tmp_path, monkeypatch):
    cols = reference.REQUIRED_COLUMNS["all_results.csv"]
    row = {c: 1 for c in cols} | {"model": "m", "type": "CNN", "dataset": "derma_huge"}
    path = tmp_path / "all_results.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    _register(monkeypatch, path, "all_results.csv")
    with pytest.raises(PeprError, match="derma_huge"):
        reference.load_results(tmp_path, offline=True)


def test_unknown_reference_file():
    with pytest.raises(PeprError, match="unknown reference file"):
        reference.reference_file("nope.csv")


# --------------------------------------------------------------------------------- synthetic frames


def synthetic() -> pd.DataFrame:
    """3 experiments x 4 models with known duplicates.

    m1: same energy/co2 in a and b. m2: same energy/co2 in a, b and c. m3: identical accuracy, energy
    and time in b and c. m4: all distinct. Accuracies are multiples of 1/8 except m3 (1/5 grid).
    """
    rows = []
    energy = {"m1": {"a": 1.0, "b": 1.0, "c": 1.5}, "m2": {"a": 2.0, "b": 2.0, "c": 2.0},
              "m3": {"a": 3.0, "b": 3.5, "c": 3.5}, "m4": {"a": 4.0, "b": 4.1, "c": 4.2}}
    time = {"a": 100.0, "b": 10.0, "c": 10.0}
    for m_i, model in enumerate(["m1", "m2", "m3", "m4"]):
        for g in "abc":
            acc = 0.2 if (model == "m3" and g in "bc") else (m_i + 1) / 8 + {"a": 0, "b": 1 / 8, "c": 2 / 8}[g]
            t = 7.0 if (model == "m3" and g in "bc") else time[g] + m_i
            rows.append({"model": model, "experiment": g, "energy": energy[model][g],
                         "co2": energy[model][g] * 100, "train_time": t,
                         **{c: acc for c in reference.TEST_COLUMNS},
                         "num_param": (m_i + 1) * 1e6, "type": "CNN", "efficient": m_i % 2})
    return pd.DataFrame(rows)


def test_pair_counts_and_identical_rows():
    df = synthetic()
    pairs = paper.pair_counts(df).set_index(["group_a", "group_b"])
    assert pairs.loc[("a", "b"), "same_energy"] == 2  # m1, m2
    assert pairs.loc[("a", "c"), "same_energy"] == 1  # m2
    assert pairs.loc[("b", "c"), "same_energy"] == 2  # m2, m3
    assert (pairs["same_energy"] == pairs["same_co2"]).all()
    assert pairs.loc[("b", "c"), "identical_rows"] == 1
    assert pairs["identical_rows"].sum() == 1
    ident = paper.identical_rows(df)
    assert ident[["model", "group_a", "group_b"]].values.tolist() == [["m3", "b", "c"]]
    matrix = paper.pair_matrix(pairs.reset_index(), "same_energy")
    assert matrix.loc["b", "a"] == matrix.loc["a", "b"] == 2 and np.isnan(matrix.loc["a", "a"])


def test_shared_values_lists_groups():
    shared = paper.shared_values(synthetic(), "energy")
    assert shared.iloc[0].to_dict() == {"model": "m2", "value": 2.0, "n_groups": 3, "groups": "a, b, c"}
    assert set(shared["model"]) == {"m1", "m2", "m3"}


def test_pair_counts_refuses_duplicated_rows():
    df = synthetic()
    with pytest.raises(PeprError, match="duplicated"):
        paper.pair_counts(pd.concat([df, df.head(1)]))


def test_implied_power():
    df = pd.DataFrame({"energy": [0.05], "train_time": [30.0]})
    assert paper.implied_power_kw(df).iloc[0] == pytest.approx(0.05 * 3600 / 300)


def test_flag_suspects_on_synthetic():
    flags = paper.flag_suspects(synthetic(), grids={"a": 8, "b": 8, "c": 8}).set_index(["model", "experiment"])
    assert flags["shared_energy"].sum() == 7  # m1 a,b; m2 a,b,c; m3 b,c
    assert flags.loc[("m1", "a"), "energy_shared_with"] == "b"
    assert flags.loc[("m4", "a"), "energy_shared_with"] == ""
    # m3 in b and c: accuracy 0.2 is off the 1/8 grid and on no other grid given -> not "misplaced"
    assert not flags["accuracy_misplaced"].any()
    # the power bound comes from unshared rows: b's only unshared row is m4 (4.1 kWh over 10 x 13 s)
    assert flags.loc[("m2", "b"), "power_implausible"] == (flags.loc[("m2", "b"), "implied_power_kw"] >
                                                           flags.loc[("m4", "b"), "implied_power_kw"])
    assert flags["suspect"].sum() == 7
    summary = paper.suspect_summary(flags.reset_index())
    assert summary.set_index("experiment").loc["all", "rows"] == 12


def test_accuracy_grid_names_the_other_grid():
    df = synthetic()
    grid = paper.accuracy_grid_check(df, {"a": 8, "b": 5, "c": 8})
    # m3 in c has 0.2 = 1/5: not on c's 1/8 grid, entirely on b's 1/5 grid
    m3c = grid[(df["model"] == "m3") & (df["experiment"] == "c")].iloc[0]
    assert m3c["epochs_on_own_grid"] == 0 and m3c["fits_other"] == "1/5"
    assert (grid.loc[df["experiment"] == "a", "fits_other"] == "").all()
    with pytest.raises(PeprError, match="no accuracy grid"):
        paper.accuracy_grid_check(df, {"a": 8})


def test_top_k_with_best_accuracy_and_ties():
    df = pd.DataFrame({"experiment": ["x"] * 4, "model": ["d", "c", "b", "a"],
                       "pepr_e": [0.5, 0.9, 0.9, 0.1], "test_09": [0.6, 0.9, 0.9, 0.95]})
    top = paper.top_k(df, "pepr_e", k=2)
    assert top["model"].tolist() == ["b", "c", "a"]  # tie on score broken by name, then best accuracy
    assert top["role"].tolist() == ["top-2", "top-2", "best accuracy"]
    assert top["rank"].tolist() == [1, 2, 4]
    with pytest.raises(PeprError, match="k must be"):
        paper.top_k(df, k=0)


def test_score_differences_detects_changes_and_missing_rows():
    df = synthetic()
    ours = paper.recompute_scores(df, resources={"e": "energy", "c": "co2", "t": "train_time"})
    published = ours.rename(columns={"e_n": "E_n", "c_n": "C_n", "t_n": "T_n"})
    diffs = paper.score_differences(ours, published, names=("e", "c", "t"))
    assert diffs["max_abs_diff"].eq(0).all() and diffs["max_abs_diff_normalised_resource"].eq(0).all()
    assert diffs["rows"].eq(12).all()
    changed = published.copy()
    changed.loc[0, "pepr_e"] += 1e-6
    diffs = paper.score_differences(ours, changed, names=("e",))
    assert diffs.loc[0, "max_abs_diff"] == pytest.approx(1e-6)
    with pytest.raises(PeprError, match="only on one side"):
        paper.score_differences(ours, published.iloc[1:], names=("e",))


def test_condition_table_needs_every_group_and_tests_match_scipy():
    rng = np.random.default_rng(0)
    models = [f"m{i}" for i in range(30)]
    base = rng.uniform(0.5, 0.7, size=30)
    rows = [{"model": m, "experiment": e, "test_09": b + shift + rng.normal(0, 0.01)}
            for m, b in zip(models, base, strict=True) for e, shift in (("p", 0.1), ("q", 0.1), ("s", 0.0))]
    df = pd.DataFrame(rows)
    df = df[~((df["model"] == "m0") & (df["experiment"] == "q"))]  # m0 lacks one group of "pre"
    wide = paper.condition_table(df, {"pre": ["p", "q"], "scratch": ["s"]})
    assert np.isnan(wide.loc["m0", "pre"]) and wide["scratch"].notna().all()
    result = paper.compare_conditions(wide, "pre", "scratch")
    part = wide.dropna()
    assert result["n_models"] == 29
    assert result["p_ttest_ind"] == pytest.approx(stats.ttest_ind(part["pre"], part["scratch"]).pvalue)
    assert result["p_wilcoxon"] == pytest.approx(stats.wilcoxon(part["pre"], part["scratch"]).pvalue)
    assert result["mean_diff"] == pytest.approx(0.1, abs=0.01) and result["share_a_better"] == 1.0


def test_paper_tests_and_headlines_on_published_data(reference_dir, tmp_path):
    ours = paper.recompute_scores(reference.load_results(reference_dir, cache_dir=tmp_path, offline=True))
    tests = paper.paper_tests(ours)
    assert (tests["n_models"] == 131).all() and (tests["p_ttest_ind"] < 1e-3).all()  # the paper's p < 0.001
    flags = paper.flag_suspects(ours)
    assert flags["accuracy_misplaced"].sum() == 6 and flags["likely_copy"].sum() == 312
    heads = paper.headline_checks(flags).set_index(["scenario", "score"])
    assert len(heads) == 6
    assert heads.loc[("without likely copies", "pepr_e"), "pretrain_gain"] > \
        heads.loc[("published", "pepr_e"), "pretrain_gain"]
    with pytest.raises(PeprError, match="unknown scenario"):
        paper.scenario_rows(flags, "nope")


# ------------------------------------------------------------------------------------------- plots


def _assert_figure_files(paths):
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert all(p.stat().st_size > 1000 for p in paths)


def test_plots_write_non_empty_files(tmp_path):
    df = synthetic().rename(columns={"num_param": "num_params", "test_09": "test_acc", "energy": "energy_kwh"})
    df["pepr_e"] = df["test_acc"] / 1.5
    figures = {
        "profile": plots.pepr_profile(),
        "scatter": plots.scatter_vs_params(df, "energy_kwh", hue="type", facet="experiment", logy=True, trend=True),
        "metrics": plots.metrics_vs_params(df, ["pepr_e", "test_acc"], hue="efficient"),
        "violins": plots.paired_violins(pd.DataFrame({"a": [0.1, 0.2, 0.3], "b": [0.3, 0.4, 0.6]}), [("a", "b")],
                                        pvalues=[0.01]),
        "strip": plots.distribution_by_group(df, "energy_kwh", "experiment", hue="type", logy=True),
        "heatmap": plots.count_heatmap(pd.DataFrame([[np.nan, 2], [2, np.nan]], index=["a", "b"],
                                                    columns=["a", "b"])),
    }
    for name, fig in figures.items():
        _assert_figure_files(plots.save_figure(fig, tmp_path / "figs", name))
    csv, md = plots.save_table(df.head(3), tmp_path / "tables", "t")
    assert pd.read_csv(csv).shape == (3, df.shape[1])
    assert md.read_text().startswith("| model")
    assert not list(tmp_path.rglob("*.tmp"))  # nothing half-written left behind


def test_plots_name_missing_columns():
    with pytest.raises(PeprError, match="pepr_x"):
        plots.scatter_vs_params(synthetic(), "pepr_x", x="num_param")


def test_format_p():
    from pepr_utils.analysis.formatting import (  # one wording of p-values, in the report's text and on its figures
        fmt_p,
    )

    assert fmt_p(1e-9) == "p < 0.001" and fmt_p(0.0123) == "p = 0.012"
    assert fmt_p(float("nan")) == "p = n/a"


# --------------------------------------------------------------------------------------- notebook


@pytest.mark.slow
def test_notebook_00_reproduces_the_paper(reference_dir, tmp_path):
    import papermill as pm

    out = tmp_path / "paper"
    pm.execute_notebook(str(NOTEBOOKS / "00_paper_results.ipynb"), str(tmp_path / "00.ipynb"),
                        parameters={"reference_dir": str(reference_dir), "out_dir": str(out)},
                        kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False)
    checks = json.loads((out / "checks.json").read_text())
    assert checks["rows"] == 1048
    assert set(checks["max_abs_diff"]) == {"pepr_e", "pepr_c", "pepr_t", "pepr_m"}
    assert max(checks["max_abs_diff"].values()) < 1e-9
    audit = checks["audit"]
    assert audit["pairs"]["derma_small|derma_smallest"]["same_energy"] == 72
    assert audit["pairs"]["derma_pt|lidc"]["identical_rows"] == 6
    assert len(audit["identical_rows"]) == 6
    names = set(checks["files"])
    for stem in ("fig_pepr_profile", "fig_energy_vs_params", "fig_test_acc_vs_params", "fig_pepr_e_vs_params",
                 "fig_pepr_cmt_vs_params", "fig_violins", "fig_audit_shared_energy"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    for stem in ("table_top5_pepr_e", "table_tests", "table_audit_pair_counts", "table_audit_rankings",
                 "table_audit_headlines"):
        assert {f"{stem}.csv", f"{stem}.md"} <= names
    written = {p.name: p for p in out.rglob("*") if p.is_file()}  # figures/ and tables/, as 04_analysis
    for name in names:
        assert written[name].stat().st_size > 0, name
