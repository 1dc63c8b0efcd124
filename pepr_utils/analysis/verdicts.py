"""The paper's claims, each tested on a study's runs and given a verdict: the table a report opens with.

Each claim is tested at the level of its real replication. The paired claims (pretraining, data) are
tested on *units*, a model in one context (dataset x size [x fraction or regime]), each holding one value
per seed: the estimate is the Hodges-Lehmann estimate of the units' seed means, the location the Wilcoxon
signed-rank test tests, and the direction of a significant effect is that of the test's own statistic
(the rank-biserial r), never of a mean that may disagree with the ranks. Its 95% interval comes from a
three-level bootstrap: contexts with replacement, the units of each drawn context, then each unit's
seeds. The size claims ("small models win", "PePR prefers smaller models") are tested over the models
within experiments, with seeds as replicates (:mod:`~pepr_utils.analysis.model_tests`: a permutation test
stratified by experiment), not one number per experiment. Every claim states the smallest effect its
design detects (``detectable``, 80% power at Holm's strictest level). Verdicts (:data:`VERDICTS`, the one vocabulary):

* ``supported`` / ``reversed``: the two-sided signed-rank test gives p < alpha, r the claimed way / not;
* ``contradicted``: an equivalence test (TOST of two one-sided signed-rank tests) shows the effect lies
  within +-margin, smaller than the claimed size (:data:`MARGINS`, stated per measure); for the
  non-inferiority claim (pretrained on little data vs scratch on all), significantly worse than -margin;
* ``inconclusive``: neither; the interval holds both no effect and an effect of the claimed size;
* ``not robust to the choice of P``: the accuracy claims are judged on test accuracy and on balanced
  accuracy (co-primary P, :data:`CO_PRIMARY`, chance-aware: a constant predictor scores 1/K); their
  verdicts differ. Test accuracy stays the headline, and PePR scores are never changed here;
* ``not testable``: too few units (a two-sided Wilcoxon test needs 6 non-zero pairs for p < 0.05), or
  nothing to test (e.g. no per-epoch history for the cost to a target accuracy);
* ``not testable (models at their floor)``: see below.

Clustered units: the units of one context share it, so p treats them as independent *given the
contexts studied*: a verdict speaks for those contexts. ``p_clusters`` is an exact sign-flip test over
context means, which speaks beyond them (with k contexts it cannot go below 2 / 2**k); ``why`` says
whether it does. Multiplicity: Holm's correction runs over the claims of one table (the family is the
claims of one report); ``survives_holm`` says which decided verdicts survive it.

Compute: "pretraining cuts the compute needed" compares the energy each side spends to reach the
accuracy scratch on all the data ends with (from the per-epoch history, :mod:`~pepr_utils.analysis.cost_to_target`),
paired by architecture, not the energy of a run on fewer images, which is lower by construction.

**Only models that learned give evidence** (:mod:`~pepr_utils.analysis.claim_units`: every seed above
the majority-class floor; a paired unit needs both sides, a size claim ``MIN_MODELS`` learned models per
experiment). Every unit left out is counted in the verdict's ``why``. The verdict vocabulary is
:data:`VERDICTS`, one entry per verdict with its meaning.

Values are compared within one normalisation only: paired PePR values are never used here, and the
size claims use PePR normalised within experiment and seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .claim_units import (
    MIN_MODELS,
    Units,
    contexts,
    gain,
    learned_scores,
    model_level,
    paired_units,
    rank_shift,
    value_of,
    with_learned,
)
from .columns import RESOURCE_COLUMNS, label
from .cost_to_target import target_cost_units
from .model_tests import detectable_effect, signed_rank_standard_error, stratified_rank_correlation
from .stats import (
    cluster_sign_flip_p,
    equivalence_p,
    hodges_lehmann,
    holm,
    min_units_for,
    rank_biserial,
    signed_rank_p,
    unit_bootstrap,
)

#: The smallest effect of interest of each kind of measure: the equivalence (TOST) margin below which a
#: claim is "contradicted", and the non-inferiority margin of "pretraining cuts the data needed".
MARGINS: dict[str, float] = {
    "accuracy": 0.02,  # accuracy points (also balanced accuracy)
    "rho": 0.2,  # Spearman's rho of a size trend
    "log cost ratio": float(np.log(1.25)),  # 25% cheaper or costlier
}
#: Accuracy a fine-tuned model on little data may lose against scratch on all data and still count as
#: "needing less data" (non-inferiority margin, in accuracy points).
NONINFERIORITY_MARGIN = MARGINS["accuracy"]
#: The co-primary P of the accuracy claims, beside test accuracy (same scale, so the same margin).
CO_PRIMARY = "test_bal_acc"
AT_FLOOR = "not testable (models at their floor)"
NOT_ROBUST = "not robust to the choice of P"
#: The verdicts, each with what it means: the one vocabulary the table, the report and the tests use.
VERDICTS: dict[str, str] = {
    "supported": "significant (p < alpha) the claimed way, the way the tested statistic (rank-biserial r) points",
    "reversed": "significant the other way",
    "contradicted": "an equivalence test (TOST, margin stated) shows an effect smaller than the claimed size "
                    "(for non-inferiority: worse by more than the margin)",
    "inconclusive": "neither: the interval holds both no effect and an effect of the claimed size",
    NOT_ROBUST: "test accuracy and balanced accuracy as P give different verdicts",
    "not testable": "too few units for the test to reach p < alpha by construction, or no data to test",
    AT_FLOOR: "enough units were run, but too few come from models that beat their majority-class floor",
}
#: The verdicts that say no test was made (the report gives their reason instead of numbers).
UNTESTED = ("not testable", AT_FLOOR)
#: The verdicts a significant test decided (the ones Holm's correction may overturn).
DECIDED = ("supported", "reversed", "contradicted")
COLUMNS = ["claim", "measure", "units", "n", "clusters", "estimate", "ci_lo", "ci_hi", "effect_r", "p", "margin",
           "p_equiv", "p_clusters", "p_holm", "survives_holm", "verdict", "why", "detectable"]


# ------------------------------------------------------------------------------------------ judging
def judge(units: Sequence[np.ndarray] | Units, direction: int, *, margin: float, alpha: float = 0.05,
          n_boot: int = 2000, seed: int = 0, noninferior: bool = False) -> dict:
    """Estimate, interval, tests and verdict for units whose claimed effect has sign ``direction``.

    The estimate is the Hodges-Lehmann estimate of the unit means (what the signed-rank test tests) with
    a cluster bootstrap interval; p is the two-sided signed-rank test (or, with ``noninferior``, the
    one-sided test of d > -margin), the direction that of the rank-biserial r, ``p_equiv`` the TOST
    against +-``margin``, ``p_clusters`` a sign-flip test over cluster means. ``units`` may carry the
    units left out at their floor: they are counted in ``why``."""
    left = units if isinstance(units, Units) else Units(list(units), clusters=list(range(len(units))))
    means, clusters, seeds = left.means()
    lo, hi = unit_bootstrap([v[np.isfinite(v)] for v in left.values], clusters=left.clusters, stat=hodges_lehmann,
                            n_boot=n_boot, seed=seed)
    p_clusters, k = cluster_sign_flip_p(means, clusters, seed=seed)
    out = {"n": len(means), "clusters": k, "estimate": hodges_lehmann(means), "ci_lo": lo, "ci_hi": hi,
           "effect_r": rank_biserial(means), "margin": margin, "p_equiv": equivalence_p(means, margin),
           "p_clusters": p_clusters, "seeds": seeds, "se": signed_rank_standard_error(means), "one_sided": noninferior}
    need, nonzero = min_units_for(alpha), int((means != 0).sum())
    if nonzero < need:
        verdict = AT_FLOOR if left.left_out and nonzero + left.left_out >= need else "not testable"
        out.update(p=np.nan, verdict=verdict,
                   why=f"{nonzero} non-zero units: a Wilcoxon test needs {need} to reach p < {alpha:g}")
    else:
        decide = _noninferiority if noninferior else _superiority
        out.update(decide(means, direction, margin, alpha, out))
        out["why"] += "; " + _scope(k, p_clusters, alpha)
    if left.left_out:
        out["why"] += f"; {left.note}"
    return out


def _superiority(means: np.ndarray, direction: int, margin: float, alpha: float, out: dict) -> dict:
    return _decide(signed_rank_p(means), out["effect_r"], out["p_equiv"], direction, margin, alpha,
                   f"{_share(means, direction)} units the claimed way")


def _decide(p: float, effect: float, p_equiv: float, direction: int, margin: float, alpha: float, said: str) -> dict:
    """The two-sided verdict from a test's p, the sign of its statistic and the equivalence p."""
    if p < alpha:
        verdict = "supported" if np.sign(effect) == direction else "reversed"
        return {"p": p, "verdict": verdict, "why": f"p = {p:.2g}; {said}"}
    if p_equiv < alpha:
        return {"p": p, "verdict": "contradicted",
                "why": f"no effect as large as {margin:.3g} (equivalence p = {p_equiv:.2g}); {said}"}
    return {"p": p, "verdict": "inconclusive",
            "why": f"p = {p:.2g}; the interval holds no effect and effects of +-{margin:.3g}; {said}"}


def _noninferiority(means: np.ndarray, direction: int, margin: float, alpha: float, out: dict) -> dict:
    p, p_worse = signed_rank_p(means, -margin, "greater"), signed_rank_p(means, -margin, "less")
    if p < alpha:
        return {"p": p, "verdict": "supported", "why": f"no worse than the reference by more than {margin:g} (p = {p:.2g})"}
    if p_worse < alpha:
        return {"p": p, "p_equiv": p_worse, "verdict": "contradicted",
                "why": f"worse than the reference by more than {margin:g} (p = {p_worse:.2g})"}
    return {"p": p, "verdict": "inconclusive", "why": f"non-inferiority at margin {margin:g} not shown (p = {p:.2g})"}


def _scope(k: int, p_clusters: float, alpha: float) -> str:
    """How p treats clustered units: the units of one context are tested as independent, so the verdict
    speaks for the contexts studied; the sign-flip test over context means says whether it reaches beyond."""
    if not np.isfinite(p_clusters):
        return f"units in {k} context(s): the verdict speaks for these contexts only"
    reach = ("also beyond them" if p_clusters < alpha else
             "not beyond them" + (f" ({k} contexts cannot reach p < {alpha:g})" if 2 * 0.5 ** k >= alpha else ""))
    return f"units in {k} contexts: the verdict speaks for these; context-level sign-flip p = {p_clusters:.2g}, {reach}"


def _share(means: np.ndarray, direction: int) -> str:
    return f"{int((np.sign(means) == direction).sum())} of {len(means)}"


# ------------------------------------------------------------------------------------------ claims
def verdict_table(ok: pd.DataFrame, *, resources: Mapping[str, str] = RESOURCE_COLUMNS, by: str = "pepr_e",
                  alpha: float = 0.05, n_boot: int = 2000, seed: int = 0,
                  margin: float = NONINFERIORITY_MARGIN, histories: pd.DataFrame | None = None,
                  n_perm: int = 10000) -> pd.DataFrame:
    """One row per claim of the paper: the evidence (units, Hodges-Lehmann estimate with 95% interval,
    tests, effect r) and the verdict, from the scored runs ``ok`` (one row per run, several seeds
    allowed) and their per-epoch ``histories`` (:func:`pepr_utils.analysis.results.load_histories`; the cost to
    a target accuracy needs them). Holm's correction runs over the claims of this table (the family);
    ``n_perm`` permutations give the size claims' p (its floor is 1 / (n_perm + 1))."""
    key = by[len("pepr_"):]
    cost = resources.get(key, "energy_kwh")
    ok = with_learned(ok)
    per_seed = learned_scores(ok, resources) if len(ok) else ok
    kw = {"alpha": alpha, "n_boot": n_boot, "seed": seed}
    size_kw = {**kw, "n_perm": n_perm}
    name = label(by)
    scored = key in resources and resources[key] in ok.columns
    rows = [
        _model_claim(ok, per_seed, scored, by, f"Small models win on {name} ({name} falls with model size)",
                     f"Spearman rho(parameters, {name}) within experiment and seed, mean", value_of(by), size_kw),
        _accuracy_claim(ok, "pretraining", "ImageNet pretraining raises accuracy", "pretrained - scratch",
                        "model x dataset x fraction", MARGINS["accuracy"], False, kw,
                        "no pretrained and scratch runs at the same dataset and fraction"),
        _accuracy_claim(ok, "pretraining_for_data", "Pretraining cuts the data needed (pretrained on less data "
                        "is no worse than scratch on all)", f"pretrained at each smaller fraction - scratch "
                        f"at the largest (non-inferiority margin {margin:g})", "model x dataset", margin, True, kw,
                        "no pretrained runs on less data than scratch runs", ratio_of=cost),
        _cost_claim(ok, histories, cost, kw),
        _accuracy_claim(ok, "data", "More training data raises accuracy", "largest - smallest fraction",
                        "model x dataset x regime", MARGINS["accuracy"], False, kw,
                        "no experiment was run at two training fractions"),
        _model_claim(ok, per_seed, scored, by, f"{name} prefers smaller models than accuracy",
                     f"Spearman rho(parameters, rank by {name} - rank by accuracy) within experiment and seed, mean",
                     rank_shift(by), size_kw),
    ]
    return _with_power(_with_holm(pd.DataFrame(rows), alpha), alpha).reindex(columns=[*COLUMNS, "seeds"])


def _row(claim: str, measure: str, units: str, result: dict) -> dict:
    return {"claim": claim, "measure": measure, "units": units, **result}


def _model_claim(ok, per_seed, scored, by, claim, measure, y, kw) -> dict:
    """A claim on a size trend, tested over models within experiments with seeds as replicates
    (:func:`~pepr_utils.analysis.model_tests.stratified_rank_correlation`, direction: smaller is better)."""
    units = "models within experiments (seeds as replicates)"
    if not scored:
        return _row(claim, measure, units, _untestable(f"{by} not scored"))
    table, counted = model_level(ok, per_seed, y)
    margin, alpha = MARGINS["rho"], kw["alpha"]
    r = stratified_rank_correlation(table, x="log_params", y="value", margin=margin, seed=kw["seed"],
                                    n_boot=kw["n_boot"], n_perm=kw["n_perm"])
    out = {"n": r["models"], "clusters": r["strata"], "estimate": r["estimate"], "ci_lo": r["ci_lo"],
           "ci_hi": r["ci_hi"], "effect_r": r["estimate"], "p": r["p"], "margin": margin, "p_equiv": r["p_equiv"],
           "p_clusters": np.nan, "seeds": int(table.groupby("experiment")["seed"].nunique().max()) if len(table) else 0,
           "se": r["null_sd"], "one_sided": False}
    if not np.isfinite(r["p"]):
        verdict = AT_FLOOR if counted.left_out else "not testable"
        out.update(verdict=verdict, why=f"no experiment with {MIN_MODELS} or more models that learned and differ in size")
    else:
        out.update(_decide(r["p"], r["estimate"], r["p_equiv"], -1, margin, alpha,
                           f"{r['models']} models in {r['strata']} experiments, {r['replicates']} experiment-seeds; "
                           "permutation p (parameters permuted among the models of each experiment)"))
    if counted.left_out:
        out["why"] += f"; {counted.note}"
    return _row(claim, measure, units, out)


def _accuracy_claim(ok, kind, claim, measure, units_label, margin, noninferior, kw, none_why, ratio_of=None) -> dict:
    """A paired claim on test accuracy, with balanced accuracy as co-primary P: where both are recorded
    and their verdicts differ, the verdict is "not robust to the choice of P"."""
    pairs = contexts(ok, kind)
    measure = f"test accuracy, {measure}"
    if not pairs:
        return _row(claim, measure, units_label, _untestable(none_why))
    acc = judge(paired_units(ok, pairs, gain("test_acc")), +1, margin=margin, noninferior=noninferior, **kw)
    if acc["verdict"] not in UNTESTED:
        acc = _co_primary(acc, ok, pairs, margin, noninferior, kw)
        if ratio_of:
            acc["why"] += "; " + _ratio(ok, pairs, ratio_of, kw)
    return _row(claim, measure, units_label, acc)


def _co_primary(acc: dict, ok, pairs, margin, noninferior, kw) -> dict:
    if CO_PRIMARY not in ok.columns or ok[CO_PRIMARY].isna().all():
        return {**acc, "why": acc["why"] + f"; {label(CO_PRIMARY)} not recorded (no co-primary P)"}
    other = judge(paired_units(ok, pairs, gain(CO_PRIMARY)), +1, margin=margin, noninferior=noninferior, **kw)
    if other["verdict"] == acc["verdict"]:
        return {**acc, "why": acc["why"] + f"; {label(CO_PRIMARY)} agrees"}
    if other["verdict"] in UNTESTED:  # e.g. recorded for too few runs: no second verdict, so no disagreement
        return {**acc, "why": acc["why"] + f"; {label(CO_PRIMARY)}: {other['verdict']} ({other['why']})"}
    return {**acc, "verdict": NOT_ROBUST,
            "why": f"test accuracy: {acc['verdict']} ({acc['why']}); {label(CO_PRIMARY)}: {other['verdict']} "
                   f"(estimate {other['estimate']:+.3g}, p = {other['p']:.2g})"}


def _with_holm(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Holm-adjusted p over the claims that were tested (the family: this table's claims); a verdict
    ``survives_holm`` when it was decided by a test (supported, reversed, contradicted) whose adjusted
    p stays below ``alpha``. The deciding p of "contradicted" is the equivalence test's."""
    deciding = np.where(table["verdict"] == "contradicted", table["p_equiv"], table["p"])
    deciding = np.where(table["verdict"].isin(UNTESTED), np.nan, deciding)
    table["p_holm"] = holm(deciding)
    table["survives_holm"] = table["verdict"].isin(DECIDED) & (table["p_holm"] < alpha)
    return table


def _with_power(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """``detectable``: the smallest effect, in the claim's unit, that its test finds with 80% power at
    Holm's strictest level (alpha over the number of claims tested), from the measured spread of its
    units (:func:`~pepr_utils.analysis.model_tests.detectable_effect`); an inconclusive verdict says it."""
    level = alpha / max(int(table["p_holm"].notna().sum()), 1)
    table["detectable"] = [detectable_effect(se, level, one_sided=bool(one)) if np.isfinite(se) and v not in UNTESTED
                           else np.nan for se, one, v in zip(table["se"].astype(float), table["one_sided"].fillna(False),
                                                             table["verdict"], strict=True)]
    low = (table["verdict"] == "inconclusive") & table["detectable"].notna()
    table.loc[low, "why"] = [f"{w}; the design detects effects of {d:.2g} or more (80% power at alpha {level:.2g}, "
                             "Holm's strictest step)" for w, d in zip(table.loc[low, "why"], table.loc[low, "detectable"], strict=True)]
    return table


def _ratio(ok: pd.DataFrame, pairs: Sequence[tuple[str, str]], cost: str, kw: dict) -> str:
    """``cost`` of side a over side b, geometric mean over units with its interval, for a claim's why."""
    if cost not in ok.columns or ok[cost].isna().all():
        return f"{cost} not recorded"
    units = paired_units(ok, pairs, lambda a, b: np.log(a[cost].to_numpy(float) / b[cost].to_numpy(float)))
    means, _, _ = units.means()
    if not len(means):
        return ""
    lo, hi = unit_bootstrap([v[np.isfinite(v)] for v in units.values], clusters=units.clusters, **_kw_boot(kw))
    return (f"{label(cost)} x{np.exp(means.mean()):.2g} [{np.exp(lo):.2g}, {np.exp(hi):.2g}] beside it "
            "(fewer images: cheaper by construction)")


def _kw_boot(kw: Mapping) -> dict:
    return {"n_boot": kw["n_boot"], "seed": kw["seed"]}


# ----------------------------------------------------------------------------------- cost to a target
def _cost_claim(ok: pd.DataFrame, histories: pd.DataFrame | None, cost: str, kw: dict) -> dict:
    claim = "Pretraining cuts the compute needed (to reach scratch-on-all-data's accuracy)"
    measure = (f"log {label(cost)} to reach scratch-on-all-data's accuracy, pretrained / scratch at the same "
               "fraction (up to the first epoch at the target)")
    units = target_cost_units(ok, histories, cost)
    if isinstance(units, str):
        return _row(claim, measure, "model x dataset x fraction", _untestable(units))
    return _row(claim, measure, "model x dataset x fraction", judge(units, -1, margin=MARGINS["log cost ratio"], **kw))


def _untestable(why: str) -> dict:
    return {"n": 0, "clusters": 0, "estimate": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "effect_r": np.nan,
            "p": np.nan, "margin": np.nan, "p_equiv": np.nan, "p_clusters": np.nan, "verdict": "not testable",
            "why": why, "seeds": 0, "se": np.nan, "one_sided": False}


def verdicts_by_seed(ok: pd.DataFrame, verdicts: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """The verdict of every claim on each seed's runs alone, beside the verdict on all seeds, and
    whether it holds in every seed subset (the robustness of the verdicts)."""
    out = verdicts[["claim", "verdict"]].rename(columns={"verdict": "all seeds"})
    seeds = sorted(pd.to_numeric(ok["seed"], errors="coerce").dropna().unique()) if len(ok) else []
    for s in seeds:
        out[f"seed {int(s)}"] = verdict_table(ok[ok["seed"] == s], **kwargs)["verdict"].to_numpy()
    seed_cols = [c for c in out.columns if c.startswith("seed ")]
    out["holds in every seed"] = (out[seed_cols].eq(out["all seeds"], axis=0).all(axis=1)
                                  if seed_cols else False)
    return out
