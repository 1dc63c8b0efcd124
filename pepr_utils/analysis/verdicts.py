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
accuracy scratch on all the data ends with (from the per-epoch history), paired by architecture, not
the energy of a run on fewer images, which is lower by construction.

**Only models that learned give evidence.** A model *learned* in an experiment when every one of its
seeds beats the majority-class floor (``above_floor``: test accuracy above ``majority_acc`` and Cohen's
kappa above 0 at p < 0.05; stricter than "the seed mean beats ``majority_acc``", and the same rule that
flags a model with a warning in the report). A paired unit (one model in two experiments) counts only
when the model learned on both sides; a size claim uses the models of an experiment that learned, and
only experiments with ``MIN_MODELS`` (3) or more of them (their PePR is normalised among them). Every unit left out is counted in the verdict's ``why``;
runs without a recorded floor count as learned (old records). The verdict vocabulary is
:data:`VERDICTS`, one entry per verdict with its meaning.

Values are compared within one normalisation only: paired PePR values are never used here, and the
size claims use PePR normalised within experiment and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .columns import HYPER_FIELDS, RESOURCE_COLUMNS, label
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
from .tables import per_seed_scores

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
#: Fewest models that learned an experiment needs to give an experiment-level unit (size trend, winner).
MIN_MODELS = 3
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


# ------------------------------------------------------------------------------------------ units
@dataclass
class Units:
    """A claim's units (one array of per-seed values each) and how many were left out, and why."""

    values: list[np.ndarray] = field(default_factory=list)
    clusters: list = field(default_factory=list)  # the context of each unit (dataset x size [x fraction])
    left_out: int = 0
    of: int = 0
    reason: str = "a model at its majority-class floor"

    def add(self, value, cluster) -> None:
        self.values.append(np.asarray(value, dtype=float))
        self.clusters.append(cluster)

    def means(self) -> tuple[np.ndarray, list, int]:
        """The finite unit means, their clusters, and the most seeds a unit has."""
        kept = [(v[np.isfinite(v)], c) for v, c in zip(self.values, self.clusters, strict=True)]
        kept = [(v, c) for v, c in kept if len(v)]
        return (np.array([v.mean() for v, _ in kept]), [c for _, c in kept],
                max((len(v) for v, _ in kept), default=0))

    @property
    def note(self) -> str:
        return f"{self.left_out} of {self.of} units left out ({self.reason})" if self.left_out else ""


def with_learned(ok: pd.DataFrame) -> pd.DataFrame:
    """``learned`` per run: True when every seed of its model in its experiment beats the floor
    (``above_floor``; unknown counts as beating it). The one rule of this module's docstring."""
    ok = ok.copy()
    floor = ok["above_floor"] if "above_floor" in ok.columns else pd.Series(np.nan, index=ok.index)
    worst = floor.groupby([ok["experiment"], ok["model"]]).transform("min")
    ok["learned"] = worst.fillna(1.0).to_numpy() > 0
    return ok


def at_floor(ok: pd.DataFrame) -> pd.DataFrame:
    """The model-experiments left out of every verdict because they did not learn (shown apart)."""
    ok = with_learned(ok)
    cols = [c for c in ("test_acc", "majority_acc", "test_kappa") if c in ok.columns]
    left = ok[~ok["learned"]]
    table = left.groupby(["experiment", "model"], sort=True).agg(
        seeds=("seed", "nunique"), **{c: (c, "mean") for c in cols})
    return table.reset_index()


def _experiments(ok: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment with its keys; ``setting`` holds the hyper-parameters (epochs, batch size,
    lr) that distinguish experiments of one dataset, size, fraction and regime (``-e3`` vs ``-e10``)."""
    exps = ok.drop_duplicates("experiment")
    hyper = [h for h in HYPER_FIELDS if h in exps.columns]
    setting = exps[hyper].astype(str).agg("/".join, axis=1) if hyper else pd.Series("", index=exps.index)
    return exps[["experiment", "dataset", "size", "fraction", "regime"]].assign(setting=setting.to_numpy())


def _pretrained_regime(exps: pd.DataFrame) -> str | None:
    regimes = sorted(r for r in exps["regime"].unique() if r != "scratch" and str(r).startswith("imagenet"))
    return "imagenet-full" if "imagenet-full" in regimes else (regimes[0] if regimes else None)


def _cross(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple[str, str]]:
    """Every experiment of ``a`` against every one of ``b`` (several when they differ only by epochs)."""
    return [(x, y) for x in a["experiment"] for y in b["experiment"]]


def contexts(ok: pd.DataFrame, kind: str) -> list[tuple[str, str]]:
    """Pairs of experiments ``(a, b)`` a paired claim compares, one per context:

    * ``pretraining``: ImageNet-pretrained vs scratch at the same dataset, size and fraction, and the
      same setting (epochs, batch size, lr) where scratch was run with it;
    * ``data``: the largest vs the smallest training fraction at the same dataset, size and regime;
    * ``pretraining_for_data``: pretrained at each fraction smaller than scratch's largest vs scratch at
      the largest one (every "less data" the study ran is a context: with 3 pretrained architectures,
      one small fraction gives 3 units, too few for a signed-rank test; two give 6).

    Experiments that differ only by their setting are never merged: at one fraction, each setting is
    paired with each setting of the other side (a model then gives one unit per pair of settings).
    """
    exps = _experiments(ok)
    pre = _pretrained_regime(exps)
    pairs: list[tuple[str, str]] = []
    if kind == "data":
        for _, g in exps.groupby(["dataset", "size", "regime"], sort=True):
            if g["fraction"].nunique() >= 2:
                pairs += _cross(g[g["fraction"] == g["fraction"].max()], g[g["fraction"] == g["fraction"].min()])
        return pairs
    if pre is None:
        return pairs
    for _, g in exps.groupby(["dataset", "size"], sort=True):
        scratch, tuned = g[g["regime"] == "scratch"], g[g["regime"] == pre]
        if kind == "pretraining":
            for (f, setting), t in tuned.groupby(["fraction", "setting"], sort=True):
                same = scratch[scratch["fraction"] == f]
                pairs += _cross(t, same[same["setting"] == setting] if (same["setting"] == setting).any() else same)
        elif kind == "pretraining_for_data" and len(scratch) and len(tuned):
            large = scratch["fraction"].max()
            for small in sorted(f for f in tuned["fraction"].unique() if f < large):
                pairs += _cross(tuned[tuned["fraction"] == small], scratch[scratch["fraction"] == large])
    return pairs


def paired_units(ok: pd.DataFrame, pairs: Sequence[tuple[str, str]],
                 value: Callable[[pd.Series, pd.Series], np.ndarray]) -> Units:
    """One unit per model present in both experiments of a pair: ``value(a_runs, b_runs)`` per seed,
    the runs of both sides matched by seed (a seed decides the initial head, batch order and fraction).
    A unit whose model did not learn on either side is left out and counted."""
    ok = ok if "learned" in ok.columns else with_learned(ok)
    units = Units(reason="a side at its majority-class floor")
    for a, b in pairs:
        runs_a, runs_b = ok[ok["experiment"] == a], ok[ok["experiment"] == b]
        for model in sorted(set(runs_a["model"]) & set(runs_b["model"])):
            ra = runs_a[runs_a["model"] == model].drop_duplicates("seed").set_index("seed")
            rb = runs_b[runs_b["model"] == model].drop_duplicates("seed").set_index("seed")
            seeds = sorted(set(ra.index) & set(rb.index))
            if not seeds:
                continue
            units.of += 1
            if not (ra["learned"].all() and rb["learned"].all()):
                units.left_out += 1
                continue
            units.add(value(ra.loc[seeds], rb.loc[seeds]), a)
    return units


def gain(column: str) -> Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]:
    """``column`` of side ``a`` minus side ``b``, seed by seed (the value of a paired accuracy claim)."""
    def value(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
        return a[column].to_numpy(float) - b[column].to_numpy(float)
    return value


accuracy_gain = gain("test_acc")


def learned_scores(ok: pd.DataFrame, resources: Mapping[str, str]) -> pd.DataFrame:
    """Per-seed PePR of the models that learned, normalised among them (within experiment and seed)."""
    ok = ok if "learned" in ok.columns else with_learned(ok)
    kept = ok[ok["learned"]]
    return per_seed_scores(kept, resources) if len(kept) else kept


def model_level(ok: pd.DataFrame, per_seed: pd.DataFrame, y: Callable[[pd.DataFrame], pd.Series],
                min_models: int = MIN_MODELS) -> tuple[pd.DataFrame, Units]:
    """The per-seed values ``y`` of the models that learned, one row per model, experiment and seed,
    beside log10 parameters (the property a size claim correlates with), for
    :func:`~pepr_utils.analysis.model_tests.stratified_rank_correlation`; experiments with fewer than
    ``min_models`` learned models are left out and counted (a ``Units`` without values, for ``why``)."""
    counted = Units(reason=f"an experiment with fewer than {min_models} models above their majority-class floor")
    parts = []
    for exp, g in ok.groupby("experiment", sort=True):
        if g["model"].nunique() < min_models:
            continue  # never enough models to test: not counted, at the floor or not
        counted.of += 1
        mine = per_seed[per_seed["experiment"] == exp] if len(per_seed) else per_seed
        if not len(mine) or mine["model"].nunique() < min_models:
            counted.left_out += 1
            continue
        for _, one in mine.groupby("seed", sort=True):
            parts.append(one.assign(log_params=np.log10(one["num_params"].astype(float)), value=y(one)))
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["experiment", "model", "seed",
                                                                                     "log_params", "value"])), counted


def value_of(by: str) -> Callable[[pd.DataFrame], pd.Series]:
    """The score ``by`` itself (the size trend: does it fall with model size?)."""
    return lambda g: g[by]


def rank_shift(by: str) -> Callable[[pd.DataFrame], pd.Series]:
    """A model's rank by ``by`` minus its rank by test accuracy, within one experiment and seed (higher:
    ``by`` places it higher than accuracy does; ties share their mean rank)."""
    return lambda g: g[by].rank() - g["test_acc"].rank()


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


def cost_to_reach(history: pd.DataFrame | None, total: float, target: float) -> float:
    """``total`` cost of a run times the share of its epoch time spent until the first epoch whose test
    accuracy reaches ``target``; inf when no epoch does; NaN without a per-epoch test accuracy."""
    if history is None or "test_acc" not in history.columns or history["test_acc"].isna().all():
        return np.nan
    h = history.sort_values("epoch")
    times = (h["epoch_time_s"].fillna(0).to_numpy(float) if "epoch_time_s" in h.columns
             and h["epoch_time_s"].notna().all() and h["epoch_time_s"].sum() > 0 else np.ones(len(h)))
    reached = np.flatnonzero(h["test_acc"].to_numpy(float) >= target - 1e-9)
    if not len(reached):
        return np.inf
    return float(total * times[: reached[0] + 1].sum() / times.sum())


def target_cost_units(ok: pd.DataFrame, histories: pd.DataFrame | None, cost: str) -> Units | str:
    """One unit per architecture and training fraction run pretrained and from scratch (one dataset and
    size): per seed, the log of what the pretrained run at that fraction spends to reach the accuracy
    scratch on all the data ends with in that seed, over what the scratch run at the same fraction
    spends (read from the per-epoch history). A side that never reaches it is costlier than any that
    does (the largest value, for the ranks); when neither does, that seed gives no value. The reason,
    as a string, when nothing can be computed."""
    if cost not in ok.columns or ok[cost].isna().all():
        return f"{cost} not recorded"
    per_run = {} if histories is None or not len(histories) or "test_acc" not in histories.columns else {
        rid: h for rid, h in histories.dropna(subset=["test_acc"]).groupby("run_id")}
    if not per_run:
        return "no per-epoch history (evaluate every epoch to test it)"
    ok = with_learned(ok)
    exps, units = _experiments(ok), Units(reason="a side at its floor or without per-epoch history")
    pre = _pretrained_regime(exps)
    for (ds, size), g in exps.groupby(["dataset", "size"], sort=True):
        runs = ok[ok["experiment"].isin(g["experiment"])]
        scratch = runs[runs["regime"] == "scratch"]
        full = scratch[scratch["fraction"] == scratch["fraction"].max()]
        tuned = runs[runs["regime"] == pre]
        for model, fraction in sorted(set(zip(tuned["model"], tuned["fraction"], strict=True))):
            sides = [r[(r["model"] == model) & (r["fraction"] == fraction)] for r in (tuned, scratch)]
            target = full[full["model"] == model]
            if not len(sides[1]) or not len(target):
                continue
            units.of += 1
            value = _log_cost_ratio(*sides, target, per_run, cost)
            if value is None:
                units.left_out += 1
            else:
                units.add(value, f"{ds}-{size}-{fraction:g}")
    finite = [abs(v[np.isfinite(v)]).max() for v in units.values if np.isfinite(v).any()]
    cap = (max(finite) if finite else 1.0) + 1.0
    units.values = [np.clip(v, -cap, cap) for v in units.values]
    return units


def _log_cost_ratio(tuned: pd.DataFrame, scratch: pd.DataFrame, target: pd.DataFrame, per_run: Mapping,
                    cost: str) -> np.ndarray | None:
    if not (tuned["learned"].all() and scratch["learned"].all() and target["learned"].all()):
        return None
    values = []
    for s, goal in target.drop_duplicates("seed").set_index("seed")["test_acc"].items():
        spent = [[cost_to_reach(per_run.get(r["run_id"]), r[cost], goal) for _, r in side[side["seed"] == s].iterrows()]
                 for side in (tuned, scratch)]
        if not all(spent) or any(np.isnan(x) for side in spent for x in side):
            continue
        a, b = min(spent[0]), min(spent[1])
        if np.isfinite(a) or np.isfinite(b):
            values.append(np.log(a / b) if np.isfinite(a) and np.isfinite(b) else (np.inf if np.isinf(a) else -np.inf))
    return np.asarray(values, dtype=float) if values else None


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
