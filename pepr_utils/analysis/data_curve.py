"""How much data pretraining saves: accuracy at each training fraction against scratch on all the data,
per regime, and the smallest fraction that matches it (the report's data-efficiency curve).

The units and the floor rule are the verdicts' (:mod:`pepr_utils.analysis.verdicts`): models paired with
themselves, seed by seed, and only models that learned on both sides.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .claim_units import accuracy_gain, cross, experiments, paired_units, pretrained_regime, with_learned
from .stats import unit_bootstrap
from .verdicts import NONINFERIORITY_MARGIN


def data_efficiency(ok: pd.DataFrame, *, margin: float = NONINFERIORITY_MARGIN, n_boot: int = 2000,
                    seed: int = 0, min_fractions: int = 3, min_models: int = 2) -> pd.DataFrame:
    """Accuracy at each training fraction minus scratch on all the data (the largest fraction), per regime
    (scratch and ImageNet-pretrained), paired by model and seed, over the models that learned on both
    sides: mean with a 95% interval (units, then seeds), and whether it is within ``margin``
    (``matches``: interval above -margin). Only for a dataset and size whose pretrained and scratch runs
    cover ``min_fractions`` fractions with ``min_models`` architectures run in both regimes at each."""
    ok = with_learned(ok)
    exps = experiments(ok)
    pre = pretrained_regime(exps)
    rows = []
    for (ds, size), g in exps.groupby(["dataset", "size"], sort=True):
        scratch_all = g[(g["regime"] == "scratch") & (g["fraction"] == g["fraction"].max())]
        if pre is None or not _covers(ok, g, pre, min_fractions, min_models) or not len(scratch_all):
            continue
        for (regime, fraction), side in g[g["regime"].isin(["scratch", pre])].groupby(["regime", "fraction"]):
            units = paired_units(ok, cross(side, scratch_all), accuracy_gain)
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
    """Per dataset, size and regime: the smallest fraction whose accuracy matches scratch on all the data
    (the same columns when nothing matches or there is no curve)."""
    hits = curve[curve["matches"].astype(bool)]
    return (hits.groupby(["dataset", "size", "regime"], sort=True)["fraction"].min()
            .rename("smallest_matching_fraction").reset_index())
