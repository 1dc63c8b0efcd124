"""Chance-aware scoring, one normalisation per comparison, and the verdict table, on planted answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pepr_utils import analysis as an
from pepr_utils.analysis import claim_units as cu
from pepr_utils.analysis import cost_to_target as ct
from pepr_utils.analysis import data_curve as de
from pepr_utils.analysis import verdicts as vd
from pepr_utils.report import document as rp
from pepr_utils.train.experiment import agreement_beyond_chance, majority_floor

SIZES = {"a": 1e6, "b": 3e6, "c": 5e6, "d": 8e6, "e": 11e6}


def _runs(*, pretrain_gain=0.0, data_gain=0.1, seeds=(0, 1), pretrained=("b", "c", "d"), noise=0.01,
          pretrained_energy=1.0, rng_seed=1, fractions=(1.0, 0.1), acc_of=None) -> pd.DataFrame:
    """A study table: 5 scratch models and 3 pretrained ones on 3 datasets x 2 fractions x seeds.

    Accuracy does not depend on the model (so PePR falls with size through the energy only); energy
    grows with size and with the data fraction."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for ds in ("x", "y", "z"):
        for frac in fractions:
            for regime in ("scratch", "imagenet"):
                models = SIZES if regime == "scratch" else {m: SIZES[m] for m in pretrained}
                for m, p in models.items():
                    for seed in seeds:
                        acc = (acc_of(frac, regime) if acc_of else 0.6 + data_gain * (frac == 1.0)
                               + pretrain_gain * (regime == "imagenet")) + rng.normal(0, noise)
                        energy = p * 1e-9 * frac * (pretrained_energy if regime == "imagenet" else 1.0)
                        rows.append({
                            "run_id": f"{ds}-{frac}-{regime}-{m}-{seed}", "status": "ok", "model": m, "dataset": ds,
                            "size": 28, "fraction": frac, "pretrained": regime != "scratch",
                            "weights": "imagenet" if regime != "scratch" else None, "mode": "full", "seed": seed,
                            "epochs": 3, "batch_size": 32, "lr": 5e-4, "test_acc": acc, "test_auc": acc,
                            "num_params": p, "energy_kwh": energy, "train_time_s": energy * 1e4,
                            "majority_acc": 0.5, "test_kappa": 2 * (acc - 0.5), "test_kappa_p": 1e-6})
    ok, _ = an.split_runs(an.prepare_runs(pd.DataFrame(rows)))
    return ok


RESOURCES = {"e": "energy_kwh", "t": "train_time_s"}


# ----------------------------------------------------------------------------------------- the floor
def test_majority_floor_uses_the_training_split():
    train = np.array([1] * 51 + [0] * 49)  # the training split's majority is 1...
    test = np.array([1] * 44 + [0] * 56)  # ...which is the test split's minority
    assert majority_floor(train, test) == {"majority_acc": pytest.approx(0.44), "chance_auc": 0.5}
    multi = majority_floor(np.array([[1, 0], [1, 0], [0, 0]]), np.array([[1, 1], [0, 0]]))
    assert multi["majority_acc"] == pytest.approx(0.5)  # per label: 1/2 and 1/2


def test_kappa_is_zero_for_a_constant_guess_and_a_coin_flip():
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.44).astype(int)
    constant = np.tile([0.0, 1.0], (len(y), 1))
    assert agreement_beyond_chance(y, constant, "binary-class")["test_kappa"] == 0.0
    coin = rng.random((len(y), 2))
    flip = agreement_beyond_chance(y, coin / coin.sum(1, keepdims=True), "binary-class")
    assert abs(flip["test_kappa"]) < 0.05 and flip["test_kappa_p"] > 0.05
    perfect = agreement_beyond_chance(y, np.eye(2)[y], "binary-class")
    assert perfect["test_kappa"] == pytest.approx(1.0) and perfect["test_kappa_p"] < 1e-6


def test_a_coin_flip_is_below_its_floor_and_never_recommended():
    ok = _runs()
    coin = (ok["model"] == "a") & (ok["dataset"] == "z")
    ok.loc[coin, ["test_acc", "test_kappa", "test_kappa_p"]] = [0.65, 0.0, 0.5]  # beats 0.5, no skill
    ok = an.add_floor(ok)
    assert (ok.loc[coin, "above_floor"] == 0).all() and (ok.loc[~coin, "above_floor"] == 1).all()
    scored = an.score_table(an.model_table(ok), resources=RESOURCES)
    assert scored.loc[(scored["model"] == "a") & (scored["dataset"] == "z"), "pepr_kappa_e"].max() == 0.0
    rec = an.recommend(scored, {"energy_kwh": 1.0})
    assert rec.set_index("dataset").loc["z", "model"] != "a"
    text = rp.say_floor(scored)
    assert "do not" in text and "`z-28px-1-scratch`: a" in text
    top = an.top_k(scored, "pepr_e", 1)
    assert top.set_index("experiment").loc["z-28px-1-scratch", "above_floor"] == 0  # the cheapest wins, flagged
    best = an.best_per_experiment(scored, ["pepr_e"]).set_index("experiment")
    assert "⚠" in rp.say_best(best.reset_index(), scored, by="pepr_e")


def test_records_without_a_floor_are_not_flagged():
    ok = _runs().drop(columns=["majority_acc", "test_kappa", "test_kappa_p", "above_floor", "kappa_pos"])
    ok = an.add_floor(ok)
    assert ok["above_floor"].isna().all()
    assert "no majority-class floor" in rp.say_floor(an.model_table(ok))


# ------------------------------------------------------------------------------- one normalisation
def test_a_lone_pretrained_model_is_not_significant_by_construction():
    """One pretrained model vs the same model in a five-model scratch group, identical in accuracy and
    energy: per-experiment min-max would give it PePR = P against P / (1 + R_n) and a 'significant' gain."""
    ok = _runs(pretrain_gain=0.0, noise=0.0, pretrained=("c",))
    scored = an.score_table(an.model_table(ok), resources=RESOURCES)
    assert scored.loc[scored["regime"] == "imagenet-full", "pepr_e"].isna().all()  # one model: undefined
    comps = an.find_comparisons(scored)
    pooled = comps[(comps["kind"] == "pretraining") & comps["pooled"]]
    assert len(pooled) == 1 and pooled["n_pairs"].iloc[0] == 6
    tests = an.paired_tests(scored, pooled, values=("test_acc", "pepr_e"))
    pe = tests[tests["value"] == "pepr_e"].iloc[0]
    assert pe["mean_diff"] == pytest.approx(0.0) and not pe["wilcoxon_p"] < 0.05
    # the common scale is min-max over the union: the pair gets identical values
    both = an.common_scale(scored, ("x-28px-1-imagenet-full", "x-28px-1-scratch"), "pepr_e", RESOURCES)
    assert both.groupby("model")["pepr_e"].nunique().max() == 1


# ------------------------------------------------------------------------------------- verdict table
def _verdicts(ok, **kw):
    return vd.verdict_table(ok, resources=RESOURCES, by="pepr_e", n_boot=500, n_perm=2000, **kw).set_index("claim")


def test_planted_claims_get_their_verdicts():
    v = _verdicts(_runs(pretrain_gain=0.08, data_gain=0.1, pretrained_energy=1.0))
    verdict = v["verdict"]
    assert verdict.filter(like="Small models win").item() == "supported"
    assert verdict.filter(like="pretraining raises accuracy").item() == "supported"
    assert verdict.filter(like="More training data").item() == "supported"
    assert verdict.filter(like="prefers smaller").item() == "supported"
    # pretrained on 10% is 0.02 below scratch on 100%: on the 0.02 margin, so non-inferiority is not shown
    cuts = v[v.index.str.contains("cuts the data")].iloc[0]
    assert cuts["verdict"] == "inconclusive" and "non-inferiority at margin 0.02 not shown" in cuts["why"]
    assert "energy x0.1 [0.1, 0.1] beside it" in cuts["why"]  # the energy ratio beside it
    assert v["survives_holm"].filter(like="pretraining raises accuracy").item()
    row = v.filter(like="pretraining raises accuracy", axis=0).iloc[0]
    assert row["n"] == 18 and row["seeds"] == 2 and row["ci_lo"] < 0.08 < row["ci_hi"] and row["clusters"] == 6


def test_a_pretraining_gain_that_covers_the_data_loss_supports_the_third_claim():
    v = _verdicts(_runs(pretrain_gain=0.12, data_gain=0.1))
    assert v[v.index.str.contains("cuts the data")]["verdict"].item() == "supported"


def test_no_effect_is_contradicted_and_reversal_is_reversed():
    v = _verdicts(_runs(pretrain_gain=0.0, data_gain=-0.1))
    assert v.filter(like="pretraining raises accuracy", axis=0)["verdict"].item() == "contradicted"
    assert v.filter(like="More training data", axis=0)["verdict"].item() == "reversed"


def test_too_few_units_are_not_testable_and_said_once():
    ok = _runs(pretrained=("c",))
    ok = ok[ok["dataset"] == "x"]  # 2 pretrained pairs: a Wilcoxon test cannot reach p < 0.05
    v = _verdicts(ok)
    row = v.filter(like="pretraining raises accuracy", axis=0).iloc[0]
    assert row["verdict"] == "not testable" and "needs 6" in row["why"]
    assert vd.min_units_for(0.05) == 6


def test_verdicts_per_seed_show_whether_a_verdict_holds():
    ok = _runs(pretrain_gain=0.08)
    v = vd.verdict_table(ok, resources=RESOURCES, by="pepr_e", n_boot=200, n_perm=2000)
    by_seed = vd.verdicts_by_seed(ok, v, resources=RESOURCES, by="pepr_e", n_boot=200, n_perm=2000)
    assert list(by_seed.columns) == ["claim", "all seeds", "seed 0", "seed 1", "holds in every seed"]
    assert by_seed["holds in every seed"].iloc[1]
    # a seed in which pretraining does nothing: the verdict no longer holds in every seed subset
    ok2 = ok.copy()
    flat = (ok2["seed"] == 1) & (ok2["regime"] == "imagenet-full")
    ok2.loc[flat, "test_acc"] -= 0.08
    v2 = vd.verdict_table(ok2, resources=RESOURCES, by="pepr_e", n_boot=200, n_perm=2000)
    by_seed2 = vd.verdicts_by_seed(ok2, v2, resources=RESOURCES, by="pepr_e", n_boot=200, n_perm=2000)
    row = by_seed2.iloc[1]
    assert row["seed 1"] != "supported" and not row["holds in every seed"]
    assert "does **not** hold in every seed subset" in rp.say_verdicts(v2, by_seed2)


def test_interval_resamples_seeds_within_units():
    # one unit per pair, seeds disagree wildly: the interval must be wide although unit means agree
    units = [np.array([0.1, -0.1]) + 0.01 * i for i in range(8)]
    lo, hi = vd.unit_bootstrap(units, n_boot=2000, seed=0)
    assert lo < 0 < hi
    lo1, hi1 = vd.unit_bootstrap([u.mean(keepdims=True) for u in units], n_boot=2000, seed=0)
    assert hi1 - lo1 < (hi - lo) / 3


# ------------------------------------------------------------------------------- models at their floor
def _below_floor(ok: pd.DataFrame, where) -> pd.DataFrame:
    """The runs ``where`` learned nothing: accuracy under the majority-class floor, kappa 0."""
    ok = ok.copy()
    ok.loc[where, "majority_acc"] = ok.loc[where, "test_acc"] + 0.05
    ok.loc[where, ["test_kappa", "test_kappa_p"]] = [0.0, 0.5]
    return an.add_floor(ok)


def test_every_accuracy_below_the_floor_makes_every_claim_untestable():
    """The issue's planted case: with garbage accuracies PePR-E is energy alone and the cheapest model
    'wins'; no claim may be supported, reversed or not supported."""
    ok = _below_floor(_runs(pretrain_gain=0.08), slice(None))
    v = _verdicts(ok)
    cost = v.index.str.contains("compute needed")  # no per-epoch history here: not testable for that reason
    assert (v.loc[~cost, "verdict"] == vd.AT_FLOOR).all(), v["verdict"]
    assert v["verdict"].isin(vd.UNTESTED).all() and v.loc[~cost, "why"].str.contains("left out").all()
    assert set(cu.at_floor(ok)["model"]) == set(SIZES)
    assert "At floor: 48 of 48 model-experiments" in rp.say_at_floor(cu.at_floor(ok), ok)
    assert "not testable (models at their floor)" in rp.say_verdicts(v.reset_index())


def test_a_mixed_study_tests_only_the_models_that_learned():
    ok = _runs(pretrain_gain=0.08)
    ok = _below_floor(ok, (ok["dataset"] == "z") | ((ok["dataset"] == "x") & (ok["fraction"] == 1.0)
                                                     & (ok["regime"] == "imagenet-full") & (ok["model"] == "b")))
    v = _verdicts(ok)
    pre = v.filter(like="pretraining raises accuracy", axis=0).iloc[0]
    # 18 pairs: 6 on dataset z and b at 100% on x have a side at the floor
    assert pre["verdict"] == "supported" and pre["n"] == 11 and "7 of 18 units left out" in pre["why"]
    small = v.filter(like="Small models win", axis=0).iloc[0]
    # 12 experiments: 4 on z, and x-1-imagenet keeps 2 learned models (3 needed); the test's units are the
    # 29 models of the other 7 (5 from scratch, 3 pretrained each)
    assert small["verdict"] == "supported" and (small["n"], small["clusters"]) == (29, 7)
    assert "5 of 12 units left out" in small["why"]
    # only one seed of a model below its floor: the model did not learn in that experiment
    one_seed = _below_floor(_runs(), lambda d: (d["model"] == "a") & (d["seed"] == 1) & (d["dataset"] == "x"))
    learned = cu.with_learned(one_seed)
    assert not learned.loc[(learned["model"] == "a") & (learned["dataset"] == "x"), "learned"].any()
    assert learned.loc[learned["dataset"] != "x", "learned"].all()


def test_experiments_differing_only_by_epochs_are_not_merged():
    ok = _runs(pretrain_gain=0.08)
    extra = ok[ok["fraction"] == 0.1].assign(epochs=10, run_id=lambda d: d["run_id"] + "-e10")
    ok, _ = an.split_runs(an.prepare_runs(pd.concat([ok, extra], ignore_index=True)))
    assert {"x-28px-0.1-scratch-e3", "x-28px-0.1-scratch-e10", "x-28px-1-scratch-e3"} <= set(ok["experiment"])
    pairs = cu.contexts(ok, "pretraining")
    assert ("x-28px-0.1-imagenet-full-e10", "x-28px-0.1-scratch-e10") in pairs
    assert ("x-28px-0.1-imagenet-full-e10", "x-28px-0.1-scratch-e3") not in pairs
    assert len(pairs) == 9  # 3 datasets x (1.0, 0.1 e3, 0.1 e10)


# ------------------------------------------------------------------------------- the data question
def test_pretrained_on_little_data_worse_than_the_margin_is_contradicted():
    v = _verdicts(_runs(pretrain_gain=0.0, data_gain=0.1))
    cuts = v[v.index.str.contains("cuts the data")].iloc[0]
    assert cuts["verdict"] == "contradicted" and "by more than 0.02" in cuts["why"]


def test_data_efficiency_curve_finds_where_pretrained_matches_scratch_on_all_data():
    """Scratch loses 0.1 per decade of data; pretraining adds 0.06: pretrained matches scratch on all the
    data at 30% (gap -0.052 + 0.06 > 0) but not at 10% (-0.04); scratch matches only at 100%."""
    import math

    def acc(frac, regime):
        return 0.8 + 0.1 * math.log10(frac) + 0.06 * (regime == "imagenet")

    ok = _runs(fractions=(1.0, 0.3, 0.1), acc_of=acc, noise=0.002)
    curve = de.data_efficiency(ok, n_boot=300)
    assert set(curve["dataset"]) == {"x", "y", "z"} and len(curve) == 3 * 5  # 3 pretrained + 2 scratch points
    x = curve[curve["dataset"] == "x"].set_index(["regime", "fraction"])
    assert x.loc[("imagenet-full", 0.3), "matches"] and not x.loc[("imagenet-full", 0.1), "matches"]
    assert x.loc[("imagenet-full", 0.3), "models"] == 3
    smallest = de.smallest_matching_fraction(curve)
    at = smallest.set_index(["dataset", "regime"])
    assert at.loc[("x", "imagenet-full"), "smallest_matching_fraction"] == 0.3
    assert ("x", "scratch") not in at.index
    assert "imagenet-full: matches it from fraction 0.3" in rp.say_data_efficiency(curve, smallest)
    from pepr_utils.analysis import plots

    plots.data_efficiency_plot(curve)
    # two fractions only, or one pretrained architecture: no curve
    assert not len(de.data_efficiency(_runs()))
    for empty in (de.data_efficiency(_runs()), curve.iloc[:0], curve.assign(matches=False)):  # same columns
        assert list(de.smallest_matching_fraction(empty).columns) == list(smallest.columns)
    assert not len(de.data_efficiency(_runs(fractions=(1.0, 0.3, 0.1), acc_of=acc, pretrained=("c",))))


# ------------------------------------------------------------------------- statistics a verdict needs
def _judge(means, clusters=None, margin=0.02):
    units = cu.Units([np.array([m]) for m in means], clusters=list(clusters if clusters is not None else range(len(means))))
    return vd.judge(units, +1, margin=margin, n_boot=300)


def test_inconclusive_and_contradicted_are_told_apart():
    rng = np.random.default_rng(0)
    assert _judge(rng.normal(0, 0.003, 12))["verdict"] == "contradicted"  # TOST: within +-0.02
    wide = _judge(rng.normal(0, 0.08, 12))
    assert wide["verdict"] == "inconclusive" and wide["ci_lo"] < -0.02 and wide["ci_hi"] > 0.02


def test_direction_comes_from_the_tested_statistic_not_the_mean():
    means = [0.01 + 0.001 * i for i in range(16)] + [-0.3, -0.31]  # most ranks up, the mean down
    r = _judge(means)
    assert np.mean(means) < 0 < r["effect_r"] and r["estimate"] > 0 and r["p"] < 0.05
    assert r["verdict"] == "supported"


def test_holm_runs_over_the_claims_of_one_table():
    from pepr_utils.analysis.stats import holm

    assert np.allclose(holm([0.01, 0.04, np.nan, 0.03]), [0.03, 0.06, np.nan, 0.06], equal_nan=True)
    v = _verdicts(_runs(pretrain_gain=0.08))
    tested = v[~v["verdict"].isin(vd.UNTESTED)]
    assert (tested["p_holm"] >= tested["p"] - 1e-12).all()
    assert (v["survives_holm"] == (v["verdict"].isin(vd.DECIDED) & (v["p_holm"] < 0.05))).all()


def test_equivalence_needs_both_one_sided_tests():
    """Units on the upper bound leave the upper test undefined: TOST is undefined, as on the lower bound,
    never the lower test's p alone (which called effects of exactly the margin 'contradicted')."""
    from pepr_utils.analysis.stats import equivalence_p

    assert np.isnan(equivalence_p([0.02] * 8, 0.02)) and np.isnan(equivalence_p([-0.02] * 8, 0.02))
    assert np.isnan(equivalence_p([0.02] * 7 + [0.0], 0.02))
    assert equivalence_p(np.linspace(-0.005, 0.005, 8), 0.02) < 0.05
    assert _judge([0.02] * 8)["verdict"] == "supported"  # significant, not "within the margin"


def test_clustered_units_widen_the_interval_and_say_how_far_p_reaches():
    # 3 contexts of 6 units each: the context sets the sign; units within agree
    effects = [0.1, -0.05, 0.08]
    means = [e + 0.001 * i for e in effects for i in range(6)]
    clusters = [c for c in range(3) for _ in range(6)]
    one = _judge(means)
    clustered = _judge(means, clusters)
    assert clustered["ci_hi"] - clustered["ci_lo"] > 2 * (one["ci_hi"] - one["ci_lo"])
    assert clustered["clusters"] == 3 and clustered["p_clusters"] >= 0.25
    assert "3 contexts cannot reach p < 0.05" in clustered["why"]


def _histories(ok, pre_reaches: bool) -> pd.DataFrame:
    """Per-epoch test accuracy, 4 epochs of equal time: every run ends at its final accuracy; a pretrained
    run gets there at epoch 1 (or never reaches scratch-on-all-data's, when not ``pre_reaches``)."""
    rows = []
    for _, r in ok.iterrows():
        for e in range(4):
            pre = r["regime"] != "scratch"
            acc = r["test_acc"] if (pre and pre_reaches) or e == 3 else r["test_acc"] - 0.3
            rows.append({"run_id": r["run_id"], "epoch": e, "test_acc": acc, "epoch_time_s": 1.0})
    return pd.DataFrame(rows)


def test_cost_to_reach_a_target_accuracy():
    ok = _runs(pretrain_gain=0.12, noise=0.002)  # pretrained beats scratch on all the data, even at 10%
    v = _verdicts(ok, histories=_histories(ok, pre_reaches=True))
    cost = v[v.index.str.contains("compute needed")].iloc[0]
    # one unit per architecture x dataset x fraction (3 x 3 x 2): at 100%, a quarter of the scratch run's
    # cost (log 0.25); at 10%, scratch never reaches the target (the capped extreme): cheaper still
    assert cost["verdict"] == "supported" and cost["n"] == 18 and cost["estimate"] < np.log(0.25) + 0.05
    never = _runs(pretrain_gain=-0.05, noise=0.002)  # never reaches scratch-on-all-data's accuracy
    v2 = _verdicts(never, histories=_histories(never, pre_reaches=True))
    assert v2[v2.index.str.contains("compute needed")]["verdict"].item() == "reversed"
    none = _verdicts(ok)
    row = none[none.index.str.contains("compute needed")].iloc[0]
    assert row["verdict"] == "not testable" and "no per-epoch history" in row["why"]
    assert ct.cost_to_reach(pd.DataFrame({"epoch": [0, 1], "test_acc": [0.5, 0.7], "epoch_time_s": [1.0, 3.0]}),
                            8.0, 0.7) == 8.0
    assert ct.cost_to_reach(pd.DataFrame({"epoch": [0, 1], "test_acc": [0.5, 0.7], "epoch_time_s": [1.0, 3.0]}),
                            8.0, 0.5) == 2.0


def test_balanced_accuracy_as_co_primary_p():
    ok = _runs(pretrain_gain=0.0, noise=0.002)
    ok["test_bal_acc"] = ok["test_acc"] + 0.1 * (ok["regime"] == "imagenet-full")  # only bal. accuracy gains
    v = _verdicts(ok)
    row = v.filter(like="pretraining raises accuracy", axis=0).iloc[0]
    assert row["verdict"] == vd.NOT_ROBUST and "balanced accuracy: supported" in row["why"]
    ok["test_bal_acc"] = ok["test_acc"]
    assert _verdicts(ok).filter(like="pretraining raises", axis=0)["verdict"].item() == "contradicted"
    # recorded for too few runs to test (old records): the co-primary is untested, not in disagreement
    ok["test_bal_acc"] = ok["test_acc"].where((ok["dataset"] == "x") & (ok["fraction"] == 1.0))
    row = _verdicts(ok).filter(like="pretraining raises", axis=0).iloc[0]
    assert row["verdict"] == "contradicted" and "balanced accuracy: not testable" in row["why"]


def test_constant_predictors_are_named_from_the_runs():
    ok = _runs()
    ok.loc[(ok["dataset"] == "x") & (ok["fraction"] == 0.1) & (ok["regime"] == "scratch"), "test_kappa"] = 0.0
    text = rp.say_constant_predictors(ok)
    assert "`x-28px-0.1-scratch`: 10 of 10 runs (a, b, c, d, e)" in text and "imagenet" not in text


def test_the_data_question_pairs_every_smaller_pretrained_fraction_with_scratch_on_all():
    """One dataset, 3 pretrained architectures at 10% and 30%: 6 units (3 from the smallest fraction
    alone are too few for a signed-rank test), each against scratch on 100%."""
    ok = _runs(fractions=(1.0, 0.3, 0.1), pretrain_gain=0.15, data_gain=0.05)
    one = ok[ok["dataset"] == "x"]
    pairs = cu.contexts(one, "pretraining_for_data")
    assert pairs == [("x-28px-0.1-imagenet-full", "x-28px-1-scratch"), ("x-28px-0.3-imagenet-full", "x-28px-1-scratch")]
    cuts = _verdicts(one).filter(like="cuts the data", axis=0).iloc[0]
    assert cuts["n"] == 6 and cuts["verdict"] == "supported"
    only_smallest = one[one["fraction"] != 0.3]
    assert _verdicts(only_smallest).filter(like="cuts the data", axis=0)["verdict"].item() == "not testable"
