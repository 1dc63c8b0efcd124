"""The paper's claims, each tested on a study's runs and given a verdict: the table a report opens with.

A claim is tested on *units* (a model in one context, or one experiment), each holding one value per
seed. The headline is the mean over units with a 95% interval from a two-level bootstrap (units with
replacement, then each unit's seeds with replacement), so the interval covers seed-to-seed variation
as well as model-to-model variation; the p-value is a Wilcoxon signed-rank test on the units' seed
means (two-sided). A verdict needs p < alpha:

* ``supported``: the effect goes the claimed way; ``reversed``: significantly the other way;
* ``not supported``: no significant effect (the interval says how large an effect is still possible);
* ``not testable``: too few units, or so few that the test cannot reach p < alpha by construction
  (a two-sided Wilcoxon test needs 6 non-zero pairs for p < 0.05);
* ``not testable (models at their floor)``: there would be enough units, but too few of them come from
  models that learned (see below).

**Only models that learned give evidence.** A model *learned* in an experiment when every one of its
seeds beats the majority-class floor (``above_floor``: test accuracy above ``majority_acc`` and Cohen's
kappa above 0 at p < 0.05; stricter than "the seed mean beats ``majority_acc``", and the same rule that
flags a model with a warning in the report). A paired unit (one model in two experiments) counts only
when the model learned on both sides; an experiment-level unit (size trend, winner size) is computed
over the models of that experiment that learned, and only when there are ``MIN_MODELS`` (3) or more of
them (their PePR is normalised among them). Every unit left out is counted in the verdict's ``why``;
runs without a recorded floor count as learned (old records). The verdict vocabulary is
:data:`VERDICTS`, one entry per verdict with its meaning.

Values are compared within one normalisation only: paired PePR values are never used here, and the
per-experiment statistics (size trend, winner sizes) use PePR normalised within experiment and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .analysis import HYPER_FIELDS, RESOURCES, label, per_seed_scores
from .stats import signed_rank_p

#: Accuracy a fine-tuned model on little data may lose against scratch on all data and still count as
#: "needing less data" (non-inferiority margin, in accuracy points).
NONINFERIORITY_MARGIN = 0.02
#: Fewest models that learned an experiment needs to give an experiment-level unit (size trend, winner).
MIN_MODELS = 3
AT_FLOOR = "not testable (models at their floor)"
#: The verdicts, each with what it means: the one vocabulary the table, the report and the tests use.
VERDICTS: dict[str, str] = {
    "supported": "significant (p < alpha) the claimed way",
    "reversed": "significant the other way",
    "not supported": "no significant effect; the interval says how large an effect is still possible",
    "not testable": "too few units for the test to reach p < alpha by construction",
    AT_FLOOR: "enough units were run, but too few come from models that beat their majority-class floor",
}
#: The verdicts that say no test was made (the report gives their reason instead of numbers).
UNTESTED = ("not testable", AT_FLOOR)
COLUMNS = ["claim", "measure", "units", "n", "mean", "ci_lo", "ci_hi", "p", "effect_r", "verdict", "why"]


# ------------------------------------------------------------------------------------------ statistics
def unit_bootstrap(units: Sequence[np.ndarray], *, n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float]:
    """Interval of the mean over units, resampling units and, within each, its seed values."""
    units = [np.asarray(u, dtype=float) for u in units if len(u)]
    if len(units) < 2:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    per_unit = np.empty((n_boot, len(units)))
    for j, values in enumerate(units):
        draw = rng.integers(0, len(values), size=(n_boot, len(values)))
        per_unit[:, j] = values[draw].mean(axis=1)
    pick = rng.integers(0, len(units), size=(n_boot, len(units)))
    means = np.take_along_axis(per_unit, pick, axis=1).mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def signed_rank(unit_means: np.ndarray) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank p against 0 and the matched-pairs rank-biserial r (NaN when undefined)."""
    from scipy import stats

    d = np.asarray(unit_means, dtype=float)
    d = d[np.isfinite(d)]
    nonzero = d[d != 0]
    if len(nonzero) < 2:
        return np.nan, np.nan
    ranks = stats.rankdata(np.abs(nonzero))
    w_plus, w_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    return float(stats.wilcoxon(d).pvalue), float((w_plus - w_minus) / (w_plus + w_minus))


def min_units_for(alpha: float) -> int:
    """Fewest non-zero pairs with which a two-sided Wilcoxon signed-rank test can reach p < alpha."""
    n = 1
    while 2 * 0.5 ** n >= alpha:
        n += 1
    return n


def judge(units: Sequence[np.ndarray] | Units, direction: int, *, alpha: float = 0.05, n_boot: int = 2000,
          seed: int = 0) -> dict:
    """Mean, interval, p, effect and verdict for units whose claimed effect has sign ``direction``
    (``units`` may carry the units left out at their floor: they are counted in ``why``)."""
    left = units if isinstance(units, Units) else Units(list(units))
    units = [np.asarray(u, dtype=float) for u in left.values]
    units = [u[np.isfinite(u)] for u in units]
    units = [u for u in units if len(u)]
    means = np.array([u.mean() for u in units])
    lo, hi = unit_bootstrap(units, n_boot=n_boot, seed=seed)
    p, r = signed_rank(means)
    out = {"n": len(units), "mean": float(means.mean()) if len(means) else np.nan, "ci_lo": lo, "ci_hi": hi,
           "p": p, "effect_r": r, "seeds": max((len(u) for u in units), default=0)}
    need = min_units_for(alpha)
    nonzero = int((means != 0).sum())
    if nonzero < need:
        out.update(verdict=AT_FLOOR if left.left_out and nonzero + left.left_out >= need else "not testable",
                   why=f"{nonzero} non-zero units: a Wilcoxon test needs {need} to reach p < {alpha:g}")
    elif not np.isfinite(p) or p >= alpha:
        out.update(verdict="not supported", why=f"no significant effect (p = {p:.2g})")
    elif np.sign(out["mean"]) == direction:
        out.update(verdict="supported", why=f"p = {p:.2g}; {_share(means, direction)} units the claimed way")
    else:
        out.update(verdict="reversed", why=f"significant the other way (p = {p:.2g})")
    if left.left_out:
        out["why"] += f"; {left.note}"
    return out


def _share(means: np.ndarray, direction: int) -> str:
    return f"{int((np.sign(means) == direction).sum())} of {len(means)}"


# ------------------------------------------------------------------------------------------ units
@dataclass
class Units:
    """A claim's units (one array of per-seed values each) and how many were left out, and why."""

    values: list[np.ndarray] = field(default_factory=list)
    left_out: int = 0
    of: int = 0
    reason: str = "a model at its majority-class floor"

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
    * ``pretraining_for_data``: pretrained at the smallest fraction vs scratch at the largest one.

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
            small, large = tuned["fraction"].min(), scratch["fraction"].max()
            if small < large:
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
            units.values.append(np.asarray(value(ra.loc[seeds], rb.loc[seeds]), dtype=float))
    return units


def accuracy_gain(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Test accuracy of side ``a`` minus side ``b``, seed by seed (the value of a paired accuracy claim)."""
    return a["test_acc"].to_numpy(float) - b["test_acc"].to_numpy(float)


def learned_scores(ok: pd.DataFrame, resources: Mapping[str, str]) -> pd.DataFrame:
    """Per-seed PePR of the models that learned, normalised among them (within experiment and seed)."""
    ok = ok if "learned" in ok.columns else with_learned(ok)
    kept = ok[ok["learned"]]
    return per_seed_scores(kept, resources) if len(kept) else kept


def experiment_units(ok: pd.DataFrame, per_seed: pd.DataFrame, stat: Callable[[pd.DataFrame], float],
                     min_models: int = MIN_MODELS) -> Units:
    """One unit per experiment in which ``min_models`` or more models learned: ``stat`` of each seed's
    learned models (``per_seed``: :func:`learned_scores`). Experiments with fewer are left out, counted."""
    units = Units(reason=f"fewer than {min_models} models beat their majority-class floor")
    for exp, g in ok.groupby("experiment", sort=True):
        if g["model"].nunique() < min_models:
            continue  # never enough models to test: not a unit, at the floor or not
        units.of += 1
        mine = per_seed[per_seed["experiment"] == exp] if len(per_seed) else per_seed
        values = [stat(s) for _, s in mine.groupby("seed", sort=True) if s["model"].nunique() >= min_models]
        values = [v for v in values if np.isfinite(v)]
        if values:
            units.values.append(np.asarray(values))
        else:
            units.left_out += 1
    return units


def size_trend(by: str) -> Callable[[pd.DataFrame], float]:
    """Spearman's rho between log parameters and ``by`` within one experiment and seed."""
    def stat(g: pd.DataFrame) -> float:
        sub = g[["num_params", by]].dropna()
        if len(sub) < 3 or sub["num_params"].nunique() < 2 or sub[by].nunique() < 2:
            return np.nan
        return float(sub["num_params"].rank().corr(sub[by].rank()))
    return stat


def winner_size_gap(by: str) -> Callable[[pd.DataFrame], float]:
    """log10 parameters of the top model by ``by`` minus those of the most accurate model (0: same model)."""
    def stat(g: pd.DataFrame) -> float:
        sub = g.dropna(subset=[by, "test_acc", "num_params"])
        if len(sub) < 2:
            return np.nan
        top = sub.sort_values([by, "test_acc"], ascending=False).iloc[0]
        best = sub.sort_values(["test_acc", by], ascending=False).iloc[0]
        return float(np.log10(top["num_params"]) - np.log10(best["num_params"]))
    return stat


# ------------------------------------------------------------------------------------------ claims
def verdict_table(ok: pd.DataFrame, *, resources: Mapping[str, str] = RESOURCES, by: str = "pepr_e",
                  alpha: float = 0.05, n_boot: int = 2000, seed: int = 0,
                  margin: float = NONINFERIORITY_MARGIN) -> pd.DataFrame:
    """One row per claim of the paper: the evidence (units, mean with 95% interval, p, effect r) and the
    verdict, from the scored runs ``ok`` (one row per run, several seeds allowed)."""
    key = by[len("pepr_"):]
    cost = resources.get(key, "energy_kwh")
    ok = with_learned(ok)
    per_seed = learned_scores(ok, resources) if len(ok) else ok
    kw = {"alpha": alpha, "n_boot": n_boot, "seed": seed}
    rows = []

    def add(claim: str, measure: str, units_label: str, result: dict) -> None:
        rows.append({"claim": claim, "measure": measure, "units": units_label, **result})

    name = label(by)
    scored = key in resources and resources[key] in ok.columns
    if scored:
        add(f"Small models win on {name} ({name} falls with model size)",
            f"Spearman rho(parameters, {name}) per experiment", "experiments",
            judge(experiment_units(ok, per_seed, size_trend(by)), -1, **kw))
    else:
        add(f"Small models win on {name}", "", "experiments", _untestable(f"{by} not scored"))

    pre = contexts(ok, "pretraining")
    add("ImageNet pretraining raises accuracy", "test accuracy, pretrained - scratch",
        "model x dataset x fraction", judge(paired_units(ok, pre, accuracy_gain), +1, **kw) if pre
        else _untestable("no pretrained and scratch runs at the same dataset and fraction"))
    add(*_data_needed(ok, cost, margin, kw))
    data = contexts(ok, "data")
    add("More training data raises accuracy", "test accuracy, largest - smallest fraction",
        "model x dataset x regime", judge(paired_units(ok, data, accuracy_gain), +1, **kw) if data
        else _untestable("no experiment was run at two training fractions"))
    result = (judge(experiment_units(ok, per_seed, winner_size_gap(by)), -1, **kw) if scored
              else _untestable(f"{by} not scored"))
    add(f"{name} prefers smaller models than accuracy",
        f"log10 parameters of the {name} winner - of the most accurate model", "experiments", result)
    table = pd.DataFrame(rows)
    return table.reindex(columns=[*COLUMNS, "seeds"])


def _data_needed(ok: pd.DataFrame, cost: str, margin: float, kw: dict) -> tuple[str, str, str, dict]:
    """The paper's data question: pretrained on the smallest fraction vs scratch on the largest, paired by
    model, as a non-inferiority test: supported when the accuracy difference is significantly above
    ``-margin`` (one-sided signed-rank test on d + margin); the energy ratio is reported beside it (it
    is lower by construction, as the small fraction has fewer training images)."""
    claim = "Pretraining cuts the data needed (pretrained on the smallest fraction is no worse than scratch on all)"
    measure = f"test accuracy, pretrained at the smallest fraction - scratch at the largest (margin {margin:g})"
    pairs = contexts(ok, "pretraining_for_data")
    if not pairs:
        return claim, measure, "model x dataset", _untestable("no pretrained runs on less data than scratch runs")
    units = paired_units(ok, pairs, accuracy_gain)
    acc = judge(units, +1, **kw)
    if acc["verdict"] in UNTESTED:
        return claim, measure, "model x dataset", acc
    means = [u[np.isfinite(u)].mean() for u in units.values if np.isfinite(u).any()]
    p_ni = signed_rank_p(means, -margin, "greater")
    p_worse = signed_rank_p(means, -margin, "less")
    if p_ni < kw["alpha"]:
        verdict, why = "supported", f"no worse than scratch on all the data by more than {margin:g} (p = {p_ni:.2g})"
    elif p_worse < kw["alpha"]:
        verdict, why = "reversed", f"worse than scratch on all the data by more than {margin:g} (p = {p_worse:.2g})"
    else:
        verdict, why = "not supported", f"non-inferiority at margin {margin:g} not shown (p = {p_ni:.2g})"
    ratio = _ratio(ok, pairs, cost, kw)
    return claim, measure, "model x dataset", {**acc, "p": p_ni, "verdict": verdict,
                                               "why": "; ".join(w for w in (why, ratio, units.note) if w)}


def _ratio(ok: pd.DataFrame, pairs: Sequence[tuple[str, str]], cost: str, kw: dict) -> str:
    """``cost`` of side a over side b, geometric mean over units with its interval, for a claim's why."""
    if cost not in ok.columns or ok[cost].isna().all():
        return f"{cost} not recorded"
    units = paired_units(ok, pairs, lambda a, b: np.log(a[cost].to_numpy(float) / b[cost].to_numpy(float)))
    logs = [u[np.isfinite(u)] for u in units.values]
    logs = [u for u in logs if len(u)]
    if not logs:
        return ""
    lo, hi = unit_bootstrap(logs, n_boot=kw["n_boot"], seed=kw["seed"])
    mean = float(np.mean([u.mean() for u in logs]))
    return f"{label(cost)} x{np.exp(mean):.2g} [{np.exp(lo):.2g}, {np.exp(hi):.2g}] (fewer images: cheaper by construction)"


# ------------------------------------------------------------------------------------ data efficiency
def data_efficiency(ok: pd.DataFrame, *, margin: float = NONINFERIORITY_MARGIN, n_boot: int = 2000,
                    seed: int = 0, min_fractions: int = 3, min_models: int = 2) -> pd.DataFrame:
    """Accuracy at each training fraction minus scratch on all the data (the largest fraction), per regime
    (scratch and ImageNet-pretrained), paired by model and seed, over the models that learned on both
    sides: mean with a 95% interval (units, then seeds), and whether it is within ``margin``
    (``matches``: interval above -margin). Only for a dataset and size whose pretrained and scratch runs
    cover ``min_fractions`` fractions with ``min_models`` architectures run in both regimes at each."""
    ok = with_learned(ok)
    exps = _experiments(ok)
    pre = _pretrained_regime(exps)
    rows = []
    for (ds, size), g in exps.groupby(["dataset", "size"], sort=True):
        scratch_all = g[(g["regime"] == "scratch") & (g["fraction"] == g["fraction"].max())]
        if pre is None or not _covers(ok, g, pre, min_fractions, min_models) or not len(scratch_all):
            continue
        for (regime, fraction), side in g[g["regime"].isin(["scratch", pre])].groupby(["regime", "fraction"]):
            units = paired_units(ok, _cross(side, scratch_all), accuracy_gain)
            if regime == "scratch" and side["experiment"].isin(scratch_all["experiment"]).all():
                continue  # scratch on all the data against itself
            means = [u.mean() for u in units.values]
            lo, hi = unit_bootstrap(units.values, n_boot=n_boot, seed=seed)
            rows.append({"dataset": ds, "size": size, "regime": regime, "fraction": fraction,
                         "models": len(units.values), "at_floor": units.left_out,
                         "gap": float(np.mean(means)) if means else np.nan, "ci_lo": lo, "ci_hi": hi,
                         "margin": margin, "matches": bool(np.isfinite(lo) and lo > -margin)})
    return pd.DataFrame(rows, columns=["dataset", "size", "regime", "fraction", "models", "at_floor", "gap",
                                       "ci_lo", "ci_hi", "margin", "matches"])


def _covers(ok: pd.DataFrame, exps: pd.DataFrame, pre: str, min_fractions: int, min_models: int) -> bool:
    """Whether ``min_models`` architectures were run pretrained and from scratch at ``min_fractions`` fractions."""
    runs = ok[ok["experiment"].isin(exps["experiment"]) & ok["regime"].isin(["scratch", pre])]
    both = runs.groupby(["model", "fraction"])["regime"].nunique() == 2
    per_model = both[both].reset_index().groupby("model")["fraction"].nunique()
    return int((per_model >= min_fractions).sum()) >= min_models


def smallest_matching_fraction(curve: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, size and regime: the smallest fraction whose accuracy matches scratch on all the data."""
    if not len(curve):
        return curve.assign(smallest=np.nan).iloc[:0]
    hits = curve[curve["matches"]]
    return (hits.groupby(["dataset", "size", "regime"], sort=True)["fraction"].min()
            .rename("smallest_matching_fraction").reset_index())


def _untestable(why: str) -> dict:
    return {"n": 0, "mean": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "p": np.nan, "effect_r": np.nan,
            "verdict": "not testable", "why": why, "seeds": 0}


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
