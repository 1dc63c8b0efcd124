"""Statistics on the study's tables: paired tests with effect sizes, Pareto fronts, rank agreement,
seed intervals and how much P swings between epochs. Pure functions of numbers and tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from .columns import label


def paired_test(a: Iterable[float], b: Iterable[float]) -> dict:
    """Wilcoxon signed-rank and paired t-test of ``a`` against ``b`` with effect sizes.

    Effect sizes: the matched-pairs rank-biserial correlation ``r = (W+ - W-) / (W+ + W-)`` over
    non-zero differences (+1: every pair favours ``a``), and Cohen's ``d_z = mean(d) / sd(d)``.
    Small samples are run but flagged in ``note``: with fewer than 6 non-zero pairs the two-sided
    Wilcoxon test cannot reach p < 0.05 whatever the data.
    """
    from scipy import stats

    a = np.asarray(list(a), dtype=float)
    b = np.asarray(list(b), dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = a - b
    n = len(d)
    out = {"n_pairs": n, "mean_a": _mean(a), "mean_b": _mean(b), "mean_diff": _mean(d),
           "median_diff": float(np.median(d)) if n else np.nan, "a_better": int((d > 0).sum()),
           "b_better": int((d < 0).sum()), "ties": int((d == 0).sum()),
           "wilcoxon_stat": np.nan, "wilcoxon_p": np.nan, "rank_biserial": np.nan,
           "ttest_stat": np.nan, "ttest_p": np.nan, "cohen_dz": np.nan, "note": ""}
    notes = []
    nonzero = d[d != 0]
    if n < 2:
        out["note"] = f"{n} pair{'s' if n != 1 else ''}: no test possible"
        return out
    if len(nonzero):
        ranks = stats.rankdata(np.abs(nonzero))
        w_plus, w_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
        out["rank_biserial"] = float((w_plus - w_minus) / (w_plus + w_minus))
        res = stats.wilcoxon(a, b)
        out["wilcoxon_stat"], out["wilcoxon_p"] = float(res.statistic), float(res.pvalue)
        if len(nonzero) < 6:
            notes.append(f"only {len(nonzero)} non-zero pairs: Wilcoxon cannot reach p < 0.05")
    else:
        notes.append("all differences are zero")
    sd = float(np.std(d, ddof=1))
    if sd > 0:
        res = stats.ttest_rel(a, b)
        out["ttest_stat"], out["ttest_p"] = float(res.statistic), float(res.pvalue)
        out["cohen_dz"] = float(np.mean(d) / sd)
    elif len(nonzero):
        notes.append("identical differences: t-test undefined")
    if n < 10 and not notes:
        notes.append(f"small sample: n = {n}")
    out["note"] = "; ".join(notes)
    return out


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else np.nan


def pareto_front(df: pd.DataFrame, perf: str = "test_acc", cost: str = "energy_kwh",
                 group: str | None = "experiment") -> pd.Series:
    """True for rows no other row of their group dominates (cost <= and perf >=, one of them strictly).

    Rows with a missing perf or cost are never on the front. Identical points are all on it.
    """
    on = pd.Series(False, index=df.index)
    groups = [(None, df)] if group is None else df.groupby(group, sort=False)
    for _, g in groups:
        g = g.dropna(subset=[perf, cost])
        p, c = g[perf].to_numpy(float), g[cost].to_numpy(float)
        if not len(g):
            continue
        dominated = ((c[None, :] <= c[:, None]) & (p[None, :] >= p[:, None])
                     & ((c[None, :] < c[:, None]) | (p[None, :] > p[:, None]))).any(axis=1)
        on.loc[g.index] = ~dominated
    return on


def rank_agreement(scored: pd.DataFrame, columns: Sequence[str] = ("test_acc", "pepr_e", "pepr_t"),
                   group: str = "experiment") -> pd.DataFrame:
    """Kendall's tau-b between the rankings by each pair of ``columns`` within each group (n >= 2)."""
    from scipy import stats

    cols = [c for c in dict.fromkeys(columns) if c in scored.columns]  # a fallback headline may repeat a column
    rows = []
    for exp, g in scored.groupby(group, sort=True):
        for i, x in enumerate(cols):
            for y in cols[i + 1:]:
                sub = g[[x, y]].dropna()
                n = len(sub)
                tau, p = (np.nan, np.nan)
                if n >= 2 and sub[x].nunique() > 1 and sub[y].nunique() > 1:
                    res = stats.kendalltau(sub[x], sub[y])
                    tau, p = float(res.statistic), float(res.pvalue)
                rows.append({group: exp, "x": x, "y": y, "pair": f"{label(x)} vs {label(y)}", "n": n,
                             "tau": tau, "p": p})
    return pd.DataFrame(rows, columns=[group, "x", "y", "pair", "n", "tau", "p"])


def seed_summary(per_seed: pd.DataFrame, values: Sequence[str] = ("test_acc", "pepr_e"),
                 level: float = 0.95) -> pd.DataFrame:
    """Per (experiment, model): number of seeds and mean with a t-based ``level`` interval of each value.

    One seed gives the mean and no interval (NaN), never a zero-width one.
    """
    from scipy import stats

    rows = []
    for (exp, model), g in per_seed.groupby(["experiment", "model"], sort=True):
        row = {"experiment": exp, "model": model, "n_seeds": g["seed"].nunique()}
        for v in values:
            if v not in g.columns:
                continue
            x = g[v].dropna().to_numpy(float)
            n = len(x)
            mean = float(x.mean()) if n else np.nan
            half = np.nan
            if n >= 2:
                half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
            row.update({f"{v}_mean": mean, f"{v}_sd": float(x.std(ddof=1)) if n >= 2 else np.nan,
                        f"{v}_lo": mean - half, f"{v}_hi": mean + half})
        rows.append(row)
    return pd.DataFrame(rows)


def epoch_swing(histories: pd.DataFrame, values: Sequence[str] = ("test_acc", "test_auc")) -> pd.DataFrame:
    """Per dataset: median over runs of the mean absolute change of each value between neighbouring
    epochs -- how much the paper's "last epoch" P depends on where training happened to stop."""
    if not len(histories) or "epoch" not in histories.columns:
        return pd.DataFrame()
    vals = [v for v in values if v in histories.columns]
    per_run = []
    for run_id, h in histories.sort_values("epoch").groupby("run_id", sort=False):
        if len(h) < 2:
            continue
        row = {"run_id": run_id, "dataset": h["dataset"].iloc[0], "epochs": len(h)}
        for v in vals:
            row[f"{v}_swing"] = float(h[v].diff().abs().mean())
        per_run.append(row)
    if not per_run:
        return pd.DataFrame()
    per_run = pd.DataFrame(per_run)
    agg = per_run.groupby("dataset").agg(runs=("run_id", "count"),
                                         **{f"median_{v}_swing": (f"{v}_swing", "median") for v in vals})
    return agg.reset_index()


# ------------------------------------------------------------------------- one-sample tests for verdicts
def hodges_lehmann(x: Sequence[float]) -> float:
    """The Hodges-Lehmann estimate: the median of the Walsh averages (the estimate the signed-rank test tests)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return np.nan
    i, j = np.triu_indices(len(x))
    return float(np.median((x[i] + x[j]) / 2))


def signed_rank_p(x: Sequence[float], shift: float = 0.0, alternative: str = "two-sided") -> float:
    """Wilcoxon signed-rank p of ``x - shift`` against 0 (NaN with fewer than 2 non-zero values)."""
    from scipy import stats

    d = np.asarray(x, dtype=float) - shift
    d = d[np.isfinite(d)]
    if int((d != 0).sum()) < 2:
        return np.nan
    return float(stats.wilcoxon(d, alternative=alternative).pvalue)


def rank_biserial(x: Sequence[float]) -> float:
    """Matched-pairs rank-biserial r of ``x`` against 0: (W+ - W-) / (W+ + W-), the signed-rank statistic
    scaled to [-1, 1] (+1: every value positive); NaN without non-zero values."""
    from scipy import stats

    d = np.asarray(x, dtype=float)
    d = d[np.isfinite(d) & (d != 0)]
    if not len(d):
        return np.nan
    ranks = stats.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def equivalence_p(x: Sequence[float], margin: float) -> float:
    """TOST with signed-rank tests: p that the centre of ``x`` lies within (-margin, +margin), the larger
    of the one-sided p-values against ``-margin`` (greater) and ``+margin`` (less); NaN when either side
    cannot be tested (values sitting on a bound), never the other side's p alone."""
    return float(np.max([signed_rank_p(x, -margin, "greater"), signed_rank_p(x, margin, "less")]))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and are not counted in the family)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out


def cluster_sign_flip_p(values: Sequence[float], clusters: Sequence, *, n_perm: int = 20000,
                        seed: int = 0) -> tuple[float, int]:
    """Two-sided sign-flip randomisation p of the mean of cluster means against 0, flipping whole
    clusters (exact when there are at most 16 clusters), and the number of clusters. With k clusters
    the smallest possible p is 2 / 2**k: 6 clusters are needed to reach p < 0.05."""
    df = pd.DataFrame({"v": np.asarray(values, dtype=float), "c": list(clusters)}).dropna()
    means = df.groupby("c", sort=True)["v"].mean().to_numpy()
    k = len(means)
    if k < 2 or not np.any(means):
        return np.nan, k
    if k <= 16:
        signs = 1 - 2 * ((np.arange(2 ** k)[:, None] >> np.arange(k)) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1, 1], size=(n_perm, k))
    null = np.abs((signs * means).mean(axis=1))
    return float(np.mean(null >= abs(means.mean()) - 1e-12)), k


def unit_bootstrap(units: Sequence[np.ndarray], *, clusters: Sequence | None = None,
                   stat: Callable[[np.ndarray], float] = np.mean, n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float]:
    """Interval of ``stat`` over unit means, resampling clusters (each unit its own without ``clusters``),
    the units within each drawn cluster, and within each unit its seed values."""
    keep = [i for i, u in enumerate(units) if len(u)]
    units = [np.asarray(units[i], dtype=float) for i in keep]
    if len(units) < 2:
        return np.nan, np.nan
    labels = np.asarray([clusters[i] for i in keep] if clusters is not None else range(len(units)), dtype=object)
    groups = [np.flatnonzero(labels == c) for c in dict.fromkeys(labels)]
    rng = np.random.default_rng(seed)
    per_unit = np.empty((n_boot, len(units)))
    for j, values in enumerate(units):
        per_unit[:, j] = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    out = np.empty(n_boot)
    for b in range(n_boot):
        drawn = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
        out[b] = stat(per_unit[b, np.concatenate([g[rng.integers(0, len(g), len(g))] for g in drawn])])
    tail = (1 - level) / 2
    return float(np.quantile(out, tail)), float(np.quantile(out, 1 - tail))


def min_units_for(alpha: float) -> int:
    """Fewest non-zero pairs with which a two-sided Wilcoxon signed-rank test can reach p < alpha."""
    n = 1
    while 2 * 0.5 ** n >= alpha:
        n += 1
    return n
