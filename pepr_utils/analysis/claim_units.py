"""A claim's units: which runs give evidence, which experiments a claim compares, and the units built from them.

**Only models that learned give evidence.** A model *learned* in an experiment when every one of its
seeds beats the majority-class floor (``above_floor``: test accuracy above ``majority_acc`` and Cohen's
kappa above 0 at p < 0.05; the same rule that flags a model with a warning in the report). A paired unit
(one model in two experiments) counts only when the model learned on both sides; a size claim uses the
models of an experiment that learned, and only experiments with :data:`MIN_MODELS` or more of them (their
PePR is normalised among them). Every unit left out is counted (:class:`Units`), so a verdict can say how
many and why; runs without a recorded floor count as learned (old records).

:mod:`~pepr_utils.analysis.verdicts` judges these units; :mod:`~pepr_utils.analysis.data_curve` and
:mod:`~pepr_utils.analysis.cost_to_target` build theirs from the same pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .columns import HYPER_FIELDS
from .tables import per_seed_scores

#: Fewest models that learned an experiment needs to give an experiment-level unit (size trend, winner).
MIN_MODELS = 3


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


def experiments(ok: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment with its keys; ``setting`` holds the hyper-parameters (epochs, batch size,
    lr) that distinguish experiments of one dataset, size, fraction and regime (``-e3`` vs ``-e10``)."""
    exps = ok.drop_duplicates("experiment")
    hyper = [h for h in HYPER_FIELDS if h in exps.columns]
    setting = exps[hyper].astype(str).agg("/".join, axis=1) if hyper else pd.Series("", index=exps.index)
    return exps[["experiment", "dataset", "size", "fraction", "regime"]].assign(setting=setting.to_numpy())


def pretrained_regime(exps: pd.DataFrame) -> str | None:
    regimes = sorted(r for r in exps["regime"].unique() if r != "scratch" and str(r).startswith("imagenet"))
    return "imagenet-full" if "imagenet-full" in regimes else (regimes[0] if regimes else None)


def cross(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple[str, str]]:
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
    exps = experiments(ok)
    pre = pretrained_regime(exps)
    pairs: list[tuple[str, str]] = []
    if kind == "data":
        for _, g in exps.groupby(["dataset", "size", "regime"], sort=True):
            if g["fraction"].nunique() >= 2:
                pairs += cross(g[g["fraction"] == g["fraction"].max()], g[g["fraction"] == g["fraction"].min()])
        return pairs
    if pre is None:
        return pairs
    for _, g in exps.groupby(["dataset", "size"], sort=True):
        scratch, tuned = g[g["regime"] == "scratch"], g[g["regime"] == pre]
        if kind == "pretraining":
            for (f, setting), t in tuned.groupby(["fraction", "setting"], sort=True):
                same = scratch[scratch["fraction"] == f]
                pairs += cross(t, same[same["setting"] == setting] if (same["setting"] == setting).any() else same)
        elif kind == "pretraining_for_data" and len(scratch) and len(tuned):
            large = scratch["fraction"].max()
            for small in sorted(f for f in tuned["fraction"].unique() if f < large):
                pairs += cross(tuned[tuned["fraction"] == small], scratch[scratch["fraction"] == large])
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
