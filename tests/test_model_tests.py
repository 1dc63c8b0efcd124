"""Size claims tested over models within experiments (seeds as replicates), the power each verdict states,
and the paper beside us: planted trends are found, planted nulls are not, models at their floor are no
evidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pepr_utils.analysis import model_tests as mt
from pepr_utils.analysis import paper_compare as pc
from pepr_utils.analysis import verdicts as vd

RESOURCES = {"e": "energy_kwh"}
PARAMS = {f"m{i:02d}": 0.4e6 * 1.4 ** i for i in range(12)}  # 12 models, 0.4M to 16M parameters (40x)


def _study(*, size_effect: float, seeds=(0, 1), rng_seed=0, noise=0.01, energy_follows_size=True) -> pd.DataFrame:
    """12 models in 6 experiments x 2 seeds. Accuracy changes by ``size_effect`` per decade of parameters;
    energy grows with size (so PePR-E falls with size when accuracy does not rise fast enough), or is
    unrelated to it."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for e in range(6):
        for m, p in PARAMS.items():
            for s in seeds:
                energy = p * 1e-9 if energy_follows_size else rng.uniform(1e-3, 1e-2)
                rows.append({"run_id": f"{e}-{m}-{s}", "experiment": f"exp{e}", "dataset": "x", "size": 28,
                             "fraction": 1.0, "regime": "scratch", "model": m, "seed": s, "num_params": p,
                             "test_acc": 0.8 + size_effect * np.log10(p / 1e6) + rng.normal(0, noise),
                             "energy_kwh": energy * rng.uniform(0.9, 1.1), "above_floor": True})
    return pd.DataFrame(rows)


def _claim(v: pd.DataFrame, words: str) -> pd.Series:
    return v[v["claim"].str.contains(words)].iloc[0]


def test_a_planted_size_trend_is_found_with_a_p_far_below_a_thousandth():
    v = vd.verdict_table(_study(size_effect=0.0), resources=RESOURCES, by="pepr_e", n_boot=300)
    small = _claim(v, "Small models win")
    assert small["verdict"] == "supported" and small["survives_holm"]
    assert small["p"] < 0.001 and small["n"] == 72 and small["clusters"] == 6 and small["seeds"] == 2
    assert small["ci_hi"] < 0 and "permutation p" in small["why"]
    prefers = _claim(v, "prefers smaller")
    assert prefers["verdict"] == "supported" and prefers["p"] < 0.001  # PePR moves the small models up


def test_a_planted_null_is_not_found_and_says_what_the_design_could_detect():
    v = vd.verdict_table(_study(size_effect=0.0, energy_follows_size=False, noise=0.03), resources=RESOURCES,
                         by="pepr_e", n_boot=300)
    small = _claim(v, "Small models win")
    assert small["verdict"] in ("inconclusive", "contradicted") and not small["p"] < 0.05
    assert 0 < small["detectable"] < 0.6  # a mean rho the design finds with 80% power after Holm
    if small["verdict"] == "inconclusive":
        assert "the design detects effects of" in small["why"]


def test_models_at_their_floor_give_no_size_evidence():
    ok = _study(size_effect=0.0)
    ok["above_floor"] = False
    small = _claim(vd.verdict_table(ok, resources=RESOURCES, by="pepr_e", n_boot=100), "Small models win")
    assert small["verdict"] == vd.AT_FLOOR and "6 of 6 units left out" in small["why"]
    # two models learned in each experiment: still fewer than 3, still no evidence
    ok.loc[ok["model"].isin(["m00", "m11"]), "above_floor"] = True
    assert _claim(vd.verdict_table(ok, resources=RESOURCES, by="pepr_e", n_boot=100),
                  "Small models win")["verdict"] == vd.AT_FLOOR


def test_the_permutation_keeps_a_models_seeds_together():
    """Seeds replicate a model; they do not multiply it: two identical seeds give the same p as one."""
    one = mt.stratified_rank_correlation(_study(size_effect=-0.05, seeds=(0,)), x="num_params", y="test_acc",
                                         n_perm=2000, n_boot=100)
    two = _study(size_effect=-0.05, seeds=(0,))
    two = pd.concat([two, two.assign(seed=1)], ignore_index=True)
    both = mt.stratified_rank_correlation(two, x="num_params", y="test_acc", n_perm=2000, n_boot=100)
    assert both["estimate"] == pytest.approx(one["estimate"]) and both["p"] == pytest.approx(one["p"])
    assert both["replicates"] == 12 and one["replicates"] == 6


def test_detectable_effect_shrinks_with_the_spread_and_grows_with_holm():
    assert mt.detectable_effect(0.1, 0.05) == pytest.approx((1.959964 + 0.841621) * 0.1, rel=1e-4)
    assert mt.detectable_effect(0.1, 0.05 / 6) > mt.detectable_effect(0.1, 0.05) > mt.detectable_effect(0.05, 0.05)
    assert np.isnan(mt.detectable_effect(np.nan, 0.05))
    se = mt.signed_rank_standard_error([0.1, 0.2, 0.3, 0.4])
    assert se == pytest.approx(np.std([0.1, 0.2, 0.3, 0.4], ddof=1) / np.sqrt(4 * 3 / np.pi))


def test_an_inconclusive_verdict_says_whether_the_paper_effect_was_within_reach():
    v = pd.DataFrame({"claim": ["a", "b", "c"], "verdict": ["inconclusive", "inconclusive", "supported"],
                      "detectable": [0.05, 0.05, 0.01], "why": ["p = 0.3", "p = 0.4", "p = 0.001"]})
    effects = pd.DataFrame({"claim": ["a", "b", "c"], "paper_effect": [0.08, 0.02, 0.1], "paper_units": [9, 9, 9]})
    out = pc.with_paper_effects(v, effects).set_index("claim")
    assert "it would have seen it" in out.loc["a", "why"] and "could not have seen it" in out.loc["b", "why"]
    assert out.loc["c", "why"] == "p = 0.001" and out.loc["c", "paper_effect"] == 0.1


def test_the_papers_own_effects_and_our_ranks_beside_its_pneumonia_rows(reference_dir):
    from pepr_utils.paper import load_model_rows

    rows = load_model_rows(reference_dir=reference_dir)
    effects = pc.paper_effects(rows, resources=RESOURCES, by="pepr_e", n_boot=100).set_index("claim")["paper_effect"]
    assert effects.filter(like="Small models win").item() < -0.3  # the paper's headline trend
    assert effects.filter(like="pretraining raises").item() > 0 and np.isnan(effects.filter(like="compute").item())
    # our runs: the paper's pneumonia accuracies and energies, shuffled for half the models
    pneu = rows[rows["experiment"] == "pneumonia"].head(12)
    ok = pd.DataFrame({"experiment": "p-1", "dataset": "pneumoniamnist", "fraction": 1.0, "regime": "scratch",
                       "model": pneu["model"], "seed": 0, "num_params": pneu["num_params"],
                       "test_acc": pneu["test_acc"], "energy_kwh": pneu["energy_kwh"]})
    beside = pc.ranks_beside_paper(ok, rows)
    assert len(beside) == 12 and (beside["rank_acc"] == beside["paper_rank_acc"]).all()
    agree = pc.rank_agreement_with_paper(beside, n_boot=200)
    assert set(agree["measure"]) == {"accuracy", "PePR-E"} and np.allclose(agree["tau"], 1.0)
    flipped = ok.assign(test_acc=ok["test_acc"].to_numpy()[::-1])
    tau = pc.rank_agreement_with_paper(pc.ranks_beside_paper(flipped, rows), n_boot=200)
    assert tau.set_index("measure").loc["accuracy", "tau"] < 0
    fig = pc.paper_beside_plot(beside, agree)
    assert len(fig.axes) == 2 and "tau = 1.00" in fig.axes[0].get_title()


def test_the_report_says_the_agreement_with_the_paper_and_the_reach_of_an_inconclusive_verdict():
    from pepr_utils.report import document, first_screen

    agree = pd.DataFrame({"experiment": ["p-1"], "paper_experiment": ["pneumonia"], "measure": ["accuracy"],
                          "models": [9], "tau": [0.5], "ci_lo": [0.1], "ci_hi": [0.8], "p": [0.06]})
    said = document.say_beside_paper(agree, "")
    assert "Kendall's τ = 0.5 [0.1, 0.8]" in said and "9 models in both" in said and "rankings agree" in said
    assert "not available" in document.say_beside_paper(None, "the rows are not available here", available=False)
    assert "shares two or more models" in document.say_beside_paper(None, "", available=True)
    row = {"verdict": "inconclusive", "detectable": 0.031, "paper_effect": 0.0617,  # as with_paper_effects writes it
           "why": "p = 0.3; the paper's own effect, +0.0617, is within what the design detects: it would have seen it"}
    plain = first_screen.plain_why(row)
    assert "detects effects of 0.031 or more" in plain and "could have seen the paper's (+0.0617)" in plain
