"""The analysis (pepr_utils.analysis.results, notebook 04, pepr report) on run records with known answers.

The synthetic study is written as real ``result.json`` files (records.write_record) and plants:
* a Pareto front: in ``dermamnist-28px-1-scratch`` models m0, m2, m5, m7 are on the accuracy-energy
  front, the others are dominated;
* a ranking: m2 is the top PePR-E model there while m7 is the most accurate;
* significant differences: every model gains accuracy from ImageNet pretraining and loses it on 10% data;
* three seeds in one experiment, one elsewhere; a single-model experiment (pneumoniamnist);
* two failed and one incompatible run; per-sample test predictions for the 10% experiment.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pepr_utils import analysis as an
from pepr_utils import records
from pepr_utils.errors import PeprError
from pepr_utils.score import pepr

MODELS = [f"m{i}" for i in range(8)]
PARAMS = [int(1e5 * 3 ** i) for i in range(8)]
ENERGY = [0.001 * 2 ** i for i in range(8)]  # kWh
ACC = [0.60, 0.58, 0.70, 0.66, 0.69, 0.78, 0.74, 0.80]
FRONT = {"m0", "m2", "m5", "m7"}
PRETRAIN_GAIN = [0.05, 0.04, 0.06, 0.03, 0.05, 0.02, 0.045, 0.01]
SMALL_LOSS = [0.10, 0.08, 0.12, 0.09, 0.11, 0.10, 0.13, 0.07]
SEED_NOISE = [-0.004, 0.0, 0.004]
N_TEST = 200
EXPERIMENT = "dermamnist-28px-1-scratch"
PRETRAINED = "dermamnist-28px-1-imagenet-full"
SMALL = "dermamnist-28px-0.1-scratch"
SINGLE = "pneumoniamnist-28px-1-scratch"


def _record(model: str, *, dataset="dermamnist", fraction=1.0, pretrained=False, seed=0, acc=0.5, energy=0.01,
            params=1_000_000, status="ok", error=None, history=True):
    p = {"model": model, "dataset": dataset, "size": 28, "fraction": fraction, "pretrained": pretrained,
         "weights": "imagenet" if pretrained else None, "mode": "full" if pretrained else None,
         "epochs": 3, "batch_size": 32, "lr": 5e-4, "seed": seed, "device": "cpu"}
    if status != "ok":
        return records.make_record(params=p, status=status, error=error)
    hist = [{"epoch": e, "train_loss": 1.0 / (e + 1), "train_acc": acc, "val_acc": acc, "val_auc": 0.8,
             "test_acc": acc + (0.05 if e % 2 else -0.05) * (e < 2), "test_auc": 0.8 + 0.005 * e,
             "epoch_time_s": 1.0} for e in range(3)] if history else None
    metrics = {"test_acc": acc, "test_auc": min(0.99, acc + 0.15), "test_bal_acc": acc - 0.1,
               "test_f1_macro": acc - 0.15, "val_acc": acc, "val_auc": 0.8, "history": hist}
    resources = {"energy_kwh": energy, "energy_method": "estimate:tdp", "cpu_energy_kwh": energy,
                 "gpu_energy_kwh": None, "ram_energy_kwh": None, "co2_g": energy * 150.0,
                 "carbon_intensity_g_per_kwh": 150.0, "country_iso_code": "DNK",
                 "train_time_s": energy * 36000 * (1.3 if model in ("m3", "m6") else 1.0),
                 "infer_time_ms_per_image": 0.1, "peak_mem_gb": 0.5 + np.log10(params) / 4, "mem_kind": "rss"}
    info = {"num_params": params, "trainable_params": params, "macs_per_image": params * 10.0, "input_size": 28}
    return records.make_record(params=p, status="ok", model_info=info, metrics=metrics, resources=resources,
                               env={"device_name": "test cpu"})


def write_study(root: Path, *, predictions: bool = True) -> Path:
    """The synthetic study of this module's docstring, as run folders under ``root/runs``."""
    runs = root / "runs"

    def write(rec, correct=None):
        d = runs / rec["run_id"]
        records.write_record(d, rec)
        if correct is not None:  # labels (N, 1) as MedMNIST gives them; class predictions or probabilities
            y = np.zeros((N_TEST, 1), dtype=np.int64)
            pred = np.where(correct, 0, 1)
            if int(rec["params"]["model"][1:]) % 2:
                np.savez(d / "predictions.npz", y_true=y, y_score=np.eye(2)[pred] * 0.8 + 0.1)
            else:
                np.savez(d / "predictions.npz", y_true=y, y_pred=pred)

    for i, m in enumerate(MODELS):
        for s, noise in enumerate(SEED_NOISE):
            write(_record(m, seed=s, acc=ACC[i] + noise, energy=ENERGY[i] * (1 + noise), params=PARAMS[i]))
        write(_record(m, pretrained=True, acc=ACC[i] + PRETRAIN_GAIN[i], energy=ENERGY[i] * 1.05, params=PARAMS[i]))
        k = int(round((ACC[i] - SMALL_LOSS[i]) * N_TEST))
        correct = np.arange(N_TEST) < k if predictions else None
        write(_record(m, fraction=0.1, acc=k / N_TEST, energy=ENERGY[i] / 10, params=PARAMS[i]), correct)
    write(_record("m0", dataset="pneumoniamnist", acc=0.85, energy=0.002, params=PARAMS[0]))
    write(_record("m8", status="failed", error="Traceback ...\nRuntimeError: out of memory"))
    write(_record("m9", status="failed", error="ValueError: bad things"))
    write(_record("vit_base_patch16_224", status="incompatible", error="needs 224 px input, data is 28 px"))
    return runs


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="module")
def scored(study):
    runs = an.load_results(study)
    ok, _ = an.split_runs(runs)
    return an.score_table(an.model_table(ok), reference=an.default_reference(ok))


# ------------------------------------------------------------------------------------- analysis
def test_load_and_split_lists_failed_and_incompatible(study, tmp_path):
    runs = an.load_results(study)
    assert len(runs) == 8 * 5 + 1 + 3
    ok, excluded = an.split_runs(runs)
    assert len(ok) == 41
    assert sorted(excluded["status"]) == ["failed", "failed", "incompatible"]
    assert "RuntimeError: out of memory" in set(excluded["reason"])
    assert set(ok["experiment"]) == {EXPERIMENT, PRETRAINED, SMALL, SINGLE}
    # a results.csv (pepr grid collect) gives the same scores as the run folders, and finds them beside it
    csv = study.parent / "results.csv"
    records.collect(study).to_csv(csv, index=False)
    again = an.load_results(csv)
    ok2, _ = an.split_runs(again)
    assert len(an.load_predictions(ok2)) == 8 and len(an.load_histories(ok2)) == 41 * 3
    a = an.score_table(an.model_table(ok)).sort_values(["experiment", "model"])
    b = an.score_table(an.model_table(ok2)).sort_values(["experiment", "model"])
    np.testing.assert_allclose(a["pepr_e"], b["pepr_e"])


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(PeprError, match="not found"):
        an.load_results(tmp_path / "nothing.csv")
    with pytest.raises(PeprError, match="no run records"):
        an.load_results(tmp_path)
    with pytest.raises(PeprError, match="unknown budget resource 'gpus'"):
        an.parse_budget({"gpus": 2})
    with pytest.raises(PeprError, match="positive number"):
        an.parse_budget({"energy": -1})
    assert an.parse_budget({"e": 1, "train_time_s": 60, "memory": 4}) == {
        "energy_kwh": 1.0, "train_time_s": 60.0, "peak_mem_gb": 4.0}


def test_unlike_runs_are_never_ranked_together():
    """Epochs that vary within an experiment split it; a resource nobody recorded is not scored."""
    rows = [{"run_id": f"r{i}", "status": "ok", "model": m, "dataset": "dermamnist", "size": 28, "fraction": 1.0,
             "pretrained": p, "weights": "imagenet" if p else None, "mode": "full" if p else None, "epochs": e,
             "seed": 0, "test_acc": 0.5 + 0.01 * i, "energy_kwh": 0.01 * (i + 1), "peak_mem_gb": np.nan}
            for i, (m, p, e) in enumerate([("a", False, 1), ("b", False, 1), ("a", False, 10), ("b", False, 10),
                                           ("a", True, 10), ("b", True, 10)])]
    runs = an.prepare_runs(pd.DataFrame(rows))
    assert sorted(runs["experiment"].unique()) == ["dermamnist-28px-1-imagenet-full-e10", "dermamnist-28px-1-scratch-e1",
                                                   "dermamnist-28px-1-scratch-e10"]
    ok, _ = an.split_runs(runs)
    assert an.available_resources(ok) == {"e": "energy_kwh"}
    scored = an.score_table(an.model_table(ok), resources=an.available_resources(ok))
    assert "pepr_m" not in scored.columns and scored.groupby("experiment").size().eq(2).all()
    comps = an.find_comparisons(scored)  # pretrained e10 pairs with scratch e10 only
    assert list(zip(comps["a"], comps["b"], strict=True)) == [("dermamnist-28px-1-imagenet-full-e10",
                                                               "dermamnist-28px-1-scratch-e10")]


def test_comparisons_in_several_contexts_are_also_pooled():
    """One pretrained model per dataset cannot be tested per dataset; pooled over datasets (the paper's
    violins pool its experiments) each model-in-a-dataset is one pair: 6 of 6 up gives p = 2 / 2**6."""
    rows = [{"run_id": f"{d}{m}{p}", "status": "ok", "model": m, "dataset": d, "size": 28, "fraction": 1.0,
             "pretrained": p, "weights": "imagenet" if p else None, "mode": "full" if p else None, "seed": 0,
             "test_acc": 0.5 + 0.05 * k + 0.1 * p + 0.01 * i, "energy_kwh": 0.01 * (k + 1)}
            for i, d in enumerate(["dermamnist", "pneumoniamnist", "lidc", "bloodmnist", "breastmnist", "octmnist"])
            for k, m in enumerate(["a", "b"]) for p in (False, True) if p is False or m == "a"]
    ok, _ = an.split_runs(an.prepare_runs(pd.DataFrame(rows)))
    scored = an.score_table(an.model_table(ok), resources=an.available_resources(ok))
    comps = an.find_comparisons(scored)
    assert len(comps) == 7 and comps["pooled"].sum() == 1 and comps["n_pairs"].iloc[:6].eq(1).all()
    pooled = comps[comps["pooled"]].iloc[0]
    assert pooled["n_pairs"] == 6 and pooled["comparison"].startswith("imagenet-full vs scratch (pooled")
    pairs = an.paired_values(scored, pooled["a"], pooled["b"], "test_acc")
    assert len(pairs) == 6 and pairs["model"].str.startswith("a @ ").all()
    assert pairs["diff"].to_numpy() == pytest.approx(np.full(6, 0.1))
    tests = an.paired_tests(scored, comps, values=("test_acc",)).set_index("comparison")
    t = tests.loc[pooled["comparison"]]
    assert t["wilcoxon_p"] == pytest.approx(stats.wilcoxon(pairs["a"], pairs["b"]).pvalue) == pytest.approx(2 / 2**6)
    assert (tests["n_pairs"] == 1).sum() == 6 and tests.loc[~tests["pooled"], "wilcoxon_p"].isna().all()
    questions = an.paper_questions(scored, tests.reset_index())
    row = questions[questions["where"] == pooled["comparison"]].iloc[0]
    assert row["answer"] == "yes" and "6 model-experiment pairs" in row["evidence"]
    violins = an.paired_violin_inputs(scored, comps, "test_acc", tests.reset_index())
    assert len(violins["pairs"]) == 1 and violins["wide"].shape == (6, 2)  # one-pair comparisons get no panel
    assert len(an.paired_violin_inputs(scored, comps, "test_acc", min_pairs=1)["pairs"]) == 7


def test_planted_ranking_matches_hand_computed_pepr(scored):
    g = scored[scored["experiment"] == EXPERIMENT].set_index("model").loc[MODELS]
    energy = np.array(ENERGY)  # seed noise averages out exactly
    e_n = (energy - energy.min()) / (energy.max() - energy.min())
    hand = np.array(ACC) / (1 + e_n)
    np.testing.assert_allclose(g["pepr_e"], hand, rtol=1e-9)
    assert g["pepr_e"].idxmax() == "m2" and g["test_acc"].idxmax() == "m7"
    top = an.top_k(scored, "pepr_e", 3)
    top = top[top["experiment"] == EXPERIMENT]
    order = np.argsort(-hand)[:3]
    assert list(top["model"]) == [MODELS[i] for i in order] == ["m2", "m5", "m3"]
    assert set(top["best_acc_model"]) == {"m7"}
    np.testing.assert_allclose(top["acc_given_up"], [ACC[7] - ACC[i] for i in order], atol=1e-12)
    # single-model experiment: min-max PePR is undefined (not P); the fixed reference still scores it
    single = scored[scored["experiment"] == SINGLE]
    assert len(single) == 1 and np.isnan(single["pepr_e"].iloc[0]) and np.isnan(single["e_n"].iloc[0])


def test_fixed_reference_is_r_over_r_ref(scored):
    ref = {"e": 0.01}
    again = an.score_table(scored.drop(columns=[c for c in scored.columns if c.startswith(("pepr_ref", "rank_"))]),
                           reference=ref)
    np.testing.assert_allclose(again["pepr_ref_e"], again["test_acc"] / (1 + again["energy_kwh"] / 0.01))
    # AUC as P uses the same normalisation
    np.testing.assert_allclose(again["pepr_auc_e"], again["test_auc"] / (1 + again["e_n"]))


def test_planted_pareto_front(scored):
    on = an.pareto_front(scored, "test_acc", "energy_kwh")
    front = set(scored.loc[on & (scored["experiment"] == EXPERIMENT), "model"])
    assert front == FRONT
    # ties: identical points are both on the front; a NaN is never on it
    df = pd.DataFrame({"experiment": "x", "test_acc": [0.5, 0.5, 0.4, np.nan], "energy_kwh": [1.0, 1.0, 2.0, 0.1]})
    assert list(an.pareto_front(df)) == [True, True, False, False]
    # the top PePR model is always on the front
    top = scored.loc[scored.dropna(subset=["pepr_e"]).groupby("experiment")["pepr_e"].idxmax()]
    assert an.pareto_front(scored).loc[top.index].all()


def test_paired_tests_match_scipy(scored):
    comps = an.find_comparisons(scored)
    assert set(comps["kind"]) == {"pretraining", "data"}
    assert set(zip(comps["a"], comps["b"], strict=True)) == {(PRETRAINED, EXPERIMENT), (EXPERIMENT, SMALL)}
    tests = an.paired_tests(scored, comps)
    for _, t in tests.iterrows():
        pairs = an.paired_values(scored, t["a"], t["b"], t["value"])
        w = stats.wilcoxon(pairs["a"], pairs["b"])
        tt = stats.ttest_rel(pairs["a"], pairs["b"])
        assert t["n_pairs"] == 8
        assert t["wilcoxon_p"] == pytest.approx(w.pvalue) and t["wilcoxon_stat"] == pytest.approx(w.statistic)
        assert t["ttest_p"] == pytest.approx(tt.pvalue) and t["ttest_stat"] == pytest.approx(tt.statistic)
        d = pairs["diff"].to_numpy()
        assert t["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
        ranks = stats.rankdata(np.abs(d[d != 0]))
        w_plus = ranks[d[d != 0] > 0].sum()
        assert t["rank_biserial"] == pytest.approx((2 * w_plus - ranks.sum()) / ranks.sum())
    acc = tests[tests["value"] == "test_acc"].set_index("a")
    # planted: every model better pretrained and with all data -> exact Wilcoxon p = 2 / 2**8
    for a in (PRETRAINED, EXPERIMENT):
        assert acc.loc[a, "wilcoxon_p"] == pytest.approx(2 / 2 ** 8)
        assert acc.loc[a, "rank_biserial"] == 1.0 and acc.loc[a, "a_better"] == 8


def test_paired_test_small_and_degenerate_samples():
    one = an.paired_test([0.5], [0.4])
    assert one["n_pairs"] == 1 and np.isnan(one["wilcoxon_p"]) and "no test" in one["note"]
    zeros = an.paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert np.isnan(zeros["wilcoxon_p"]) and "all differences are zero" in zeros["note"]
    few = an.paired_test([0.5, 0.6, 0.7, 0.8], [0.4, 0.45, 0.69, 0.7])
    assert few["wilcoxon_p"] == pytest.approx(stats.wilcoxon([0.5, 0.6, 0.7, 0.8], [0.4, 0.45, 0.69, 0.7]).pvalue)
    assert "cannot reach p < 0.05" in few["note"]


def test_rank_agreement_matches_scipy(scored):
    agree = an.rank_agreement(scored, ("test_acc", "pepr_e", "pepr_t"))
    g = scored[scored["experiment"] == EXPERIMENT]
    for _, row in agree[agree["experiment"] == EXPERIMENT].iterrows():
        res = stats.kendalltau(g[row["x"]], g[row["y"]])
        assert row["tau"] == pytest.approx(res.statistic) and row["p"] == pytest.approx(res.pvalue)
    assert agree.loc[agree["experiment"] == SINGLE, "tau"].isna().all()  # one model: no ranking


def test_seed_intervals_and_top_rank_stability(study):
    runs = an.load_results(study)
    ok, _ = an.split_runs(runs)
    per_seed = an.per_seed_scores(ok)
    summary = an.seed_summary(per_seed).set_index(["experiment", "model"])
    row = summary.loc[(EXPERIMENT, "m3")]
    x = ACC[3] + np.array(SEED_NOISE)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert row["n_seeds"] == 3
    assert row["test_acc_lo"] == pytest.approx(lo) and row["test_acc_hi"] == pytest.approx(hi)
    assert np.isnan(summary.loc[(PRETRAINED, "m3"), "test_acc_lo"])  # one seed: no interval
    preds = an.load_predictions(ok)
    assert len(preds) == 8 and all(len(v) == N_TEST for v in preds.values())
    stab = an.top_rank_stability(ok, "pepr_e", n_boot=200, predictions=preds).set_index("experiment")
    assert stab.loc[EXPERIMENT, "top_model"] == "m2" and stab.loc[EXPERIMENT, "p_stays_top"] == 1.0
    assert stab.loc[EXPERIMENT, "resampled"] == "seeds"
    assert stab.loc[SMALL, "resampled"] == "test set" and 0 < stab.loc[SMALL, "p_stays_top"] <= 1
    assert np.isnan(stab.loc[PRETRAINED, "p_stays_top"])  # one seed, no predictions
    assert "one model" in stab.loc[SINGLE, "note"]
    # the bootstrap's PePR is the score module's: a replicate that draws every seed once reproduces it
    observed = an.score_table(an.model_table(ok[ok["experiment"] == EXPERIMENT]))
    expected = pepr(an.model_table(ok[ok["experiment"] == EXPERIMENT]), "test_acc", {"e": "energy_kwh"},
                    group="experiment")
    np.testing.assert_allclose(observed["pepr_e"], expected["pepr_e"])


def test_recommendation_respects_the_budget(scored):
    rec = an.recommend(scored, {"energy_kwh": 0.01}).set_index("dataset")
    # within 0.01 kWh the most accurate dermamnist run is m2 pretrained (0.76) ahead of m3 pretrained (0.69)
    assert rec.loc["dermamnist", "model"] == "m2" and rec.loc["dermamnist", "experiment"] == PRETRAINED
    assert rec.loc["dermamnist", "energy_kwh"] <= 0.01
    assert rec.loc["pneumoniamnist", "model"] == "m0"
    none = an.recommend(scored, {"energy_kwh": 1e-6}).set_index("dataset")
    assert none.loc["dermamnist", "within_budget"] == 0 and "nothing fits" in none.loc["dermamnist", "note"]


def test_epoch_swing_from_histories(study):
    runs = an.load_results(study)
    swing = an.epoch_swing(an.load_histories(runs[runs["status"] == "ok"])).set_index("dataset")
    # planted: accuracy moves by 0.1 then 0.05 between epochs, AUC by 0.005
    assert swing.loc["dermamnist", "median_test_acc_swing"] == pytest.approx(0.075)
    assert swing.loc["dermamnist", "median_test_auc_swing"] == pytest.approx(0.005)


# ----------------------------------------------------------------------------- notebook / report
EXPECTED_FIGURES = {"headline", "test_acc_vs_params", "energy_kwh_vs_params", "pepr_e_vs_params", "pepr_all_vs_params",
                    "pepr_profile", "paired_test_acc", "pareto_front", "pepr_minmax_vs_reference",
                    "seed_intervals", "rank_agreement"}
EXPECTED_TABLES = {"overview", "excluded_runs", "pepr_scores", "pepr_scores_short", "top5_pepr_e", "top5_pepr_c",
                   "top5_pepr_t", "top5_pepr_m", "best_per_experiment", "paired_tests", "pareto_front",
                   "pepr_fixed_reference", "epoch_swing", "pepr_auc", "seed_intervals", "top_rank_stability",
                   "rank_agreement", "recommendations", "paper_questions", "verdicts", "verdicts_by_seed",
                   "verdicts_summary"}


def _check_report(out: Path, figures: set[str], tables: set[str]) -> str:
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {e["path"] for e in manifest["files"]}
    for name in figures:
        for ext in ("png", "pdf"):
            f = out / "figures" / f"{name}.{ext}"
            assert f.is_file() and f.stat().st_size > 1000, f
            assert f"figures/{name}.{ext}" in listed
    for name in tables:
        csv = out / "tables" / f"{name}.csv"
        assert csv.is_file() and (out / "tables" / f"{name}.md").stat().st_size > 0, csv
        assert len(pd.read_csv(csv)) > 0, f"{name}.csv is empty"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") >= len(figures)
    assert "Traceback" not in html and "PeprError" not in html
    assert '<script src="http' not in html  # opens offline, without a server
    assert (out / "04_analysis.ipynb").is_file()
    return (out / "summary.md").read_text()


def test_report_on_the_synthetic_study(synthetic_report):
    out, stderr, elapsed = synthetic_report  # conftest: built once, from write_study below
    assert "TCP" not in stderr  # the kernel runs over IPC: no "running over TCP" warning
    summary = _check_report(out, EXPECTED_FIGURES, EXPECTED_TABLES)
    assert "2 failed and 1 incompatible" in summary
    assert "min-max PePR is undefined" in summary and SINGLE in summary
    assert "estimated" in summary  # the energy method is said
    assert "energy × 150 g CO2e/kWh" in summary  # one carbon intensity: PePR-C is PePR-E
    assert "**m2** stays on top in 100% of bootstrap replicates" in summary
    assert "significant at 0.05" in summary
    assert "energy_kwh ≤ 0.01 kWh" in summary
    tests = pd.read_csv(out / "tables" / "paired_tests.csv")
    scores = pd.read_csv(out / "tables" / "pepr_scores.csv")
    for _, t in tests.iterrows():  # the written statistics are scipy's on the written numbers
        pairs = an.paired_values(scores, t["a"], t["b"], t["value"])
        assert t["wilcoxon_p"] == pytest.approx(stats.wilcoxon(pairs["a"], pairs["b"]).pvalue)
        assert t["ttest_p"] == pytest.approx(stats.ttest_rel(pairs["a"], pairs["b"]).pvalue)
    front = pd.read_csv(out / "tables" / "pareto_front.csv")
    assert set(front.loc[front["experiment"] == EXPERIMENT, "model"]) == FRONT
    print(f"report on the synthetic study built in {elapsed:.1f} s")


@pytest.mark.slow
def test_report_on_the_smoke_grid(tmp_path, data_dir, monkeypatch):
    """Real records (the smoke grid: notebook 02, two tiny models, one seed), collected into a
    results.csv, reported together with a one-model experiment and an incompatible run."""
    from conftest import ROOT

    from pepr_utils.grid import collect_grid, load_grid, run_grid
    from pepr_utils.report.build import build_report

    if not (ROOT / "notebooks" / "02_train.ipynb").exists():
        pytest.skip("notebooks/02_train.ipynb not there yet")
    monkeypatch.setenv("PEPR_DATA_DIR", str(data_dir))
    grid = load_grid(ROOT / "parameters" / "grids" / "smoke.yaml")
    ran = run_grid(grid, workers=2, output_dir=tmp_path, progress=False, log=lambda *_: None)
    assert ran.counts == {"ok": len(grid)}
    results, n = collect_grid(grid, tmp_path)
    extra = tmp_path / "extra"
    records.write_record(extra / "a", _record("m0", dataset="dermamnist", acc=0.7, energy=0.003, history=False))
    records.write_record(extra / "b", _record("m1", status="incompatible", error="input too small"))
    start = time.perf_counter()
    out = build_report([results, extra], tmp_path / "report", n_boot=50)
    elapsed = time.perf_counter() - start
    summary = _check_report(out, {"test_acc_vs_params", "energy_kwh_vs_params", "pepr_profile", "pareto_front"},
                            {"overview", "excluded_runs", "pepr_scores", "top5_pepr_e", "recommendations",
                             "paper_questions"})
    scores = pd.read_csv(out / "tables" / "pepr_scores.csv")
    smoke = scores[scores["dataset"] == "pneumoniamnist"]
    assert sorted(smoke["model"]) == sorted(r.params.model for r in grid.runs)
    assert smoke["energy_kwh"].gt(0).all() and smoke["pepr_e"].between(0, 1).all()
    assert f"{n + 2} run records" in summary and "1 incompatible" in summary
    assert "a single seed" in summary and "min-max PePR is undefined" in summary
    assert "No paired comparison is possible" in summary
    assert "Figure `paired_test_acc` skipped" in summary
    assert "single epoch" in summary  # the smoke runs train one epoch: no swing to measure
    from test_report_layout import check_structure

    check_structure((out / "report.html").read_text(encoding="utf-8"))  # the answer first, on real records too
    # one seed, but the runs saved their test predictions: the bootstrap resamples the test set
    stability = pd.read_csv(out / "tables" / "top_rank_stability.csv")
    smoke_stab = stability[stability["experiment"].str.contains("pneumoniamnist")]
    assert smoke_stab["p_stays_top"].between(0, 1).all() and "stays on top" in summary
    print(f"report on the smoke grid built in {elapsed:.1f} s")


def test_cli_errors_are_one_line(tmp_path, capsys):
    from pepr_utils.cli.command import main

    missing = subprocess.run([sys.executable, "-m", "pepr_utils.cli", "report", str(tmp_path / "none.csv")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "not found" in missing.stderr
    runs = tmp_path / "runs"
    records.write_record(runs / "a", _record("m0", status="failed", error="boom"))
    assert main(["report", str(runs), "-o", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert "nothing to score" in err and "boom" in err and len(err.strip().splitlines()) == 1
    records.write_record(runs / "b", _record("m1", acc=0.6, energy=0.01))
    assert main(["report", str(runs), "-o", str(tmp_path / "report"), "--budget", "gpus=2"]) == 2
    assert "unknown budget resource 'gpus'" in capsys.readouterr().err
    assert main(["report", str(runs), "-o", str(tmp_path / "report"), "--budget", "energy"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_default_report_dir(tmp_path, monkeypatch):
    from pepr_utils.report.build import default_report_dir

    monkeypatch.setenv("PEPR_OUTPUT_DIR", str(tmp_path / "outputs"))
    (tmp_path / "quick" / "runs").mkdir(parents=True)
    (tmp_path / "quick" / "results.csv").write_text("x\n")
    assert default_report_dir(tmp_path / "quick" / "results.csv") == tmp_path / "outputs" / "quick" / "report"
    assert default_report_dir(tmp_path / "quick" / "runs") == tmp_path / "outputs" / "quick" / "report"
    assert default_report_dir(tmp_path / "later" / "results.csv") == tmp_path / "outputs" / "later" / "report"


def test_report_with_energy_and_co2_unrecorded(study, tmp_path):
    """A results table whose energy and CO2 columns are all empty (a GPU run where energy was not measured):
    the report falls back to the resources that were recorded instead of failing."""
    from pepr_utils.report.build import build_report

    table = records.collect(study)
    table[["energy_kwh", "co2_g", "cpu_energy_kwh"]] = np.nan
    csv = tmp_path / "results.csv"
    table.to_csv(csv, index=False)
    out = build_report(csv, tmp_path / "report", n_boot=50)
    summary = (out / "summary.md").read_text()
    assert "PePR-T" in summary and "Not recorded, so not scored: PePR-E, PePR-C" in summary
    assert "energy not recorded" in summary.splitlines()[2]  # the study line says so
    from test_report_layout import check_structure

    check_structure((out / "report.html").read_text(encoding="utf-8"))
    agree = pd.read_csv(out / "tables" / "rank_agreement.csv")
    assert set(agree["x"]) | set(agree["y"]) == {"test_acc", "pepr_t"}  # the fallback headline is not repeated
