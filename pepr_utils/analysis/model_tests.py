"""Tests whose unit is a model within an experiment, with seeds as replicates, and the smallest effect a
design can detect: the power behind a size-trend verdict.

One number per experiment (a Spearman rho of 5 models) gives a signed-rank test 6 units, whose smallest
two-sided p is 0.031: it can never survive Holm's correction over 6 claims. Here the statistic is the
mean, over experiments and seeds, of the within-experiment rank correlation between a model property
(log parameters) and a value (PePR, a rank shift), and its null distribution comes from permuting the
property among the models *of each experiment* (experiments are strata; a model keeps its seeds
together, so seeds replicate the model rather than multiply it). With 12 models in 6 experiments the
permutation p can go far below 0.001 when the effect is real.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Power at which :func:`detectable_effect` states the smallest detectable effect.
POWER = 0.8


def _ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank), for 1-D or 2-D arrays."""
    from scipy import stats

    return stats.rankdata(a, axis=-1)


def _unit(v: np.ndarray) -> np.ndarray:
    """Centred and scaled to unit length along the last axis (0 where the values are constant)."""
    c = v - v.mean(axis=-1, keepdims=True)
    norm = np.sqrt((c * c).sum(axis=-1, keepdims=True))
    return np.divide(c, norm, out=np.zeros_like(c), where=norm > 0)


def _strata(table: pd.DataFrame, x: str, y: str, stratum: str, replicate: str, model: str,
            min_models: int) -> list[tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]]:
    """Per stratum: the property of each of its models, and per replicate (seed) the indices of the
    models it has, their centred, scaled value ranks and their values. Replicates with fewer than ``min_models``
    models, or with one value for all, carry no correlation and are dropped."""
    out = []
    for _, g in table.dropna(subset=[x, y]).groupby(stratum, sort=True):
        models = sorted(g[model].unique())
        if len(models) < min_models:
            continue
        index = {m: i for i, m in enumerate(models)}
        prop = g.groupby(model)[x].first().reindex(models).to_numpy(float)
        reps = []
        for _, r in g.groupby(replicate, sort=True):
            r = r.drop_duplicates(model)
            if len(r) < min_models or r[y].nunique() < 2:
                continue
            idx = np.array([index[m] for m in r[model]])
            reps.append((idx, _unit(_ranks(r[y].to_numpy(float))), r[y].to_numpy(float)))
        if reps and np.unique(prop).size > 1:
            out.append((prop, reps))
    return out


def _mean_rho(strata, orders: Sequence[np.ndarray]) -> np.ndarray:
    """The mean rank correlation over every (stratum, replicate) for each row of property orders: each
    stratum's ``orders[s]`` has shape (draws, models) and says whose property each model takes (the
    identity for the data, a permutation among the stratum's models for the null)."""
    total, count = 0.0, 0
    for (prop, reps), order in zip(strata, orders, strict=True):
        drawn = prop[order]  # (draws, models)
        whole = _unit(_ranks(prop))[order]  # a reordering of all the models reorders their ranks
        for idx, y, _ in reps:
            u = whole[:, idx] if len(idx) == len(prop) else _unit(_ranks(drawn[:, idx]))
            total = total + u @ y
            count += 1
    return total / count


def _bootstrap_rho(strata, n_boot: int, rng: np.random.Generator, min_models: int) -> np.ndarray:
    """The mean rank correlation with the models of each stratum resampled with replacement (a model's
    property and its values in every seed drawn together); draws in which a seed keeps fewer than
    ``min_models`` models, or one value for all, give that seed no correlation."""
    total, count = np.zeros(n_boot), np.zeros(n_boot)
    for prop, reps in strata:
        d = rng.integers(0, len(prop), size=(n_boot, len(prop)))
        for idx, _, v in reps:
            values = np.full(len(prop), np.nan)
            values[idx] = v
            ys, xs = values[d], prop[d]
            present = np.isfinite(ys)
            if present.all():
                ux, uy = _unit(_ranks(xs)), _unit(_ranks(ys))
                ok = (np.abs(ux).sum(axis=1) > 0) & (np.abs(uy).sum(axis=1) > 0)
                rho = (ux * uy).sum(axis=1)
            else:  # a seed without some models: draw by draw
                rho, ok = np.zeros(n_boot), np.zeros(n_boot, dtype=bool)
                for b in range(n_boot):
                    keep = present[b]
                    if keep.sum() >= min_models:
                        ux, uy = _unit(_ranks(xs[b, keep])), _unit(_ranks(ys[b, keep]))
                        ok[b] = np.abs(ux).sum() > 0 and np.abs(uy).sum() > 0
                        rho[b] = (ux * uy).sum()
            total += np.where(ok, rho, 0.0)
            count += ok
    return (total / np.where(count > 0, count, np.nan))[count > 0]


def stratified_rank_correlation(table: pd.DataFrame, *, x: str, y: str, stratum: str = "experiment",
                                replicate: str = "seed", model: str = "model", min_models: int = 3,
                                n_perm: int = 10000, n_boot: int = 2000, seed: int = 0,
                                margin: float | None = None, level: float = 0.95) -> dict:
    """Mean within-stratum Spearman rho between ``x`` (a property of each model) and ``y``, with seeds
    (``replicate``) as replicates: its two-sided permutation p (``x`` permuted among the models of each
    stratum, the same permutation for all seeds of a stratum), an interval from resampling models
    within strata (``level``), the null's spread (``null_sd``, what :func:`detectable_effect` uses) and,
    with ``margin``, the equivalence p (TOST on the bootstrap: the larger share of estimates beyond
    either margin). NaN throughout when no stratum has ``min_models`` models with varying values."""
    strata = _strata(table, x, y, stratum, replicate, model, min_models)
    out = {"estimate": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "p": np.nan, "null_sd": np.nan,
           "p_equiv": np.nan, "strata": len(strata), "replicates": sum(len(r) for _, r in strata),
           "models": sum(len(p) for p, _ in strata)}
    if not strata:
        return out
    rng = np.random.default_rng(seed)
    observed = float(_mean_rho(strata, [np.arange(len(p))[None, :] for p, _ in strata])[0])
    null = _mean_rho(strata, [rng.permuted(np.tile(np.arange(len(p)), (n_perm, 1)), axis=1) for p, _ in strata])
    boot = _bootstrap_rho(strata, n_boot, rng, min_models)
    tail = (1 - level) / 2
    out.update(estimate=observed, p=float((1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (n_perm + 1)),
               null_sd=float(np.std(null)))
    if len(boot):
        out.update(ci_lo=float(np.quantile(boot, tail)), ci_hi=float(np.quantile(boot, 1 - tail)))
    if margin is not None and len(boot):
        out["p_equiv"] = float(max(np.mean(boot <= -margin), np.mean(boot >= margin)))
    return out


def detectable_effect(standard_error: float, alpha: float, *, power: float = POWER, one_sided: bool = False) -> float:
    """The smallest true effect a test at ``alpha`` finds with probability ``power``, for an estimate
    with this ``standard_error`` (normal approximation: (z_alpha + z_power) x SE). NaN without an SE."""
    from scipy import stats

    if not np.isfinite(standard_error) or standard_error < 0 or not 0 < alpha < 1:
        return np.nan
    z = stats.norm.ppf(1 - (alpha if one_sided else alpha / 2))
    return float((z + stats.norm.ppf(power)) * standard_error)


def signed_rank_standard_error(values: Sequence[float]) -> float:
    """The standard error a Wilcoxon signed-rank test on these unit values works with: the units'
    spread over the root of their effective number (n x 3/pi, the test's efficiency against the t-test
    under normal errors), so that :func:`detectable_effect` speaks in the claim's unit."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return np.nan
    return float(np.std(v, ddof=1) / math.sqrt(len(v) * 3 / math.pi))
