"""The paper's tables and tests, and an audit of its published results.

Reproduction (Selvan et al. 2024, from the authors' ``data/`` files, see :mod:`pepr_utils.paper.reference`):

* :func:`recompute_scores` -- PePR-E/C/T/M through :func:`pepr_utils.score.pepr` (the one implementation),
  and :func:`score_differences` against the published values;
* :func:`top_k` -- the top-k models per experiment by a score, with the best-accuracy model beside them;
* :func:`condition_table` and :func:`compare_conditions` -- pretrained vs scratch, 100 % vs 10 % training
  data, with the paper's test (an unpaired two-sample t-test, ``scipy.stats.ttest_ind``, as in the
  authors' ``paper_plots.py``) and the paired tests that suit per-model pairs (paired t, Wilcoxon).

Audit (the published energy/CO2 values are reused across experiments):

* :func:`shared_values`, :func:`pair_counts`, :func:`identical_rows` -- exact equalities of a model's
  values between experiments, which two separate training runs cannot produce for energy measured to
  12 digits;
* :func:`implied_power_kw` and :func:`accuracy_grid_check` -- two physical consistency checks that tell a
  copied value from its original;
* :func:`flag_suspects`, :func:`ranking_sensitivity`, :func:`headline_checks` -- what changes when the
  suspect rows are dropped, and when PePR-T is used instead of PePR-E.

Functions take column names as arguments (defaults are the paper's: ``model``, ``experiment``,
``test_09``, ``energy``...), so notebook 04 can apply the same checks to our own run records.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import PeprError
from ..score import PAPER_RESOURCES, pepr
from .reference import EXPERIMENTS, TEST_COLUMNS

#: The paper's performance measure P: test accuracy after the 10th (last) epoch.
PERF = "test_09"

#: Per-model conditions of the paper's two comparisons: each is the mean over the listed experiments.
CONDITIONS: dict[str, list[str]] = {
    "scratch": ["derma"],
    "pretrained": ["derma_pt"],
    "train_100": ["derma_pt", "lidc", "pneumonia"],
    "train_10": ["derma_small", "lidc_small", "pneumonia_small"],
}

#: The paper's two statistical comparisons (Fig. 5a, 5b): (name, condition a, condition b).
COMPARISONS: list[tuple[str, str, str]] = [
    ("pretrained vs scratch (DermaMNIST)", "pretrained", "scratch"),
    ("100% vs 10% training data (Derma, LIDC, Pneumonia)", "train_100", "train_10"),
]

#: The paper's code reports accuracy as the mean over test batches of 32 with the last incomplete batch
#: dropped, so every value is a multiple of 1/(32 x batches): DermaMNIST's 2005 test images give 62
#: batches (1/1984), PneumoniaMNIST's 624 give 19 (1/608), the LIDC test split gives 94 (1/3008).
ACCURACY_GRID: dict[str, int] = {"dermamnist": 1984, "lidc": 3008, "pneumoniamnist": 608}

#: The audit's scenarios: which rows each keeps (see :func:`flag_suspects`).
SCENARIOS: dict[str, str] = {
    "published": "all 1048 published rows",
    "without suspect rows": "drops every row whose energy or CO2 equals the same model's value in another "
                            "experiment, or whose accuracies lie on another experiment's test-set grid",
    "without likely copies": "drops only rows whose shared energy implies an impossible mean power for that "
                             "experiment, and rows whose accuracies lie on another experiment's grid",
}


# --------------------------------------------------------------------------------------------------
# Reproduction
# --------------------------------------------------------------------------------------------------

def recompute_scores(
    results: pd.DataFrame,
    *,
    perf: str = PERF,
    resources: Mapping[str, str] = PAPER_RESOURCES,
    group: str = "experiment",
) -> pd.DataFrame:
    """PePR for each resource (``pepr_e``, ``pepr_c``...), min-max normalised within each experiment."""
    return pepr(results, perf, resources, group=group)


def score_differences(
    ours: pd.DataFrame,
    published: pd.DataFrame,
    *,
    names: Sequence[str] = tuple(PAPER_RESOURCES),
    key: Sequence[str] = ("experiment", "model"),
) -> pd.DataFrame:
    """Max absolute difference per score (and per normalised resource) between two scored tables.

    Rows are matched on ``key``; a row missing on either side, or a duplicated key, is an error, so the
    comparison always covers every row.
    """
    key = list(key)
    for side, df in (("ours", ours), ("published", published)):
        if df.duplicated(key).any():
            raise PeprError(f"{side} table has duplicated {key} rows; expected one row per model and experiment")
    merged = ours.merge(published, on=key, how="outer", suffixes=("_ours", "_pub"), indicator=True)
    unmatched = merged[merged["_merge"] != "both"]
    if len(unmatched):
        row = unmatched.iloc[0]
        raise PeprError(f"{len(unmatched)} row(s) only on one side, e.g. {dict(row[key])} ({row['_merge']})")
    rows = []
    for name in names:
        diff_score = (merged[f"pepr_{name}_ours"] - merged[f"pepr_{name}_pub"]).abs()
        ours_n, pub_n = f"{name}_n", f"{name.upper()}_n"  # ours: e_n; the paper's files: E_n
        if ours_n == pub_n:
            ours_n, pub_n = f"{name}_n_ours", f"{name}_n_pub"
        diff_n = (merged[ours_n] - merged[pub_n]).abs() if {ours_n, pub_n} <= set(merged) else pd.Series([np.nan])
        rows.append({"score": f"pepr_{name}", "rows": len(merged), "max_abs_diff": float(diff_score.max()),
                     "max_abs_diff_normalised_resource": float(diff_n.max())})
    return pd.DataFrame(rows)


def experiment_overview(
    results: pd.DataFrame,
    *,
    group: str = "experiment",
    perf: str = PERF,
) -> pd.DataFrame:
    """One row per experiment: its set-up (dataset, pretrained, fraction) and median resources."""
    summary = results.groupby(group, sort=False).agg(
        models=("model", "nunique"),
        median_energy_kwh=("energy", "median"),
        median_co2_g=("co2", "median"),
        median_last_epoch_s=("train_time", "median"),
        median_mem_reserved_gb=("memR", "median"),
        median_test_acc=(perf, "median"),
        best_test_acc=(perf, "max"),
    )
    info = pd.DataFrame.from_dict(EXPERIMENTS, orient="index")
    out = info.join(summary, how="right").rename_axis(group).reset_index()
    return out.rename(columns={"fraction": "train_fraction"})


def top_k(
    df: pd.DataFrame,
    score: str = "pepr_e",
    *,
    k: int = 5,
    perf: str = PERF,
    group: str = "experiment",
    model: str = "model",
) -> pd.DataFrame:
    """The ``k`` best models by ``score`` per group, then the best-accuracy model of that group.

    Adds ``role`` (``top-k`` or ``best accuracy``) and ``rank`` (the model's rank by ``score`` within the
    group, 1 = best; ties broken by model name), like the paper's Table 2.
    """
    for col in (score, perf, group, model):
        if col not in df.columns:
            raise PeprError(f"column {col!r} not found; available: {', '.join(map(str, df.columns))}")
    if k < 1:
        raise PeprError(f"k must be at least 1, got {k}")
    parts = []
    for _, g in df.groupby(group, sort=False):
        ranked = g.sort_values([score, model], ascending=[False, True], kind="mergesort").copy()
        ranked["rank"] = np.arange(1, len(ranked) + 1)
        top = ranked.head(k).assign(role=f"top-{k}")
        best = ranked.sort_values([perf, score, model], ascending=[False, False, True], kind="mergesort").head(1)
        parts += [top, best.assign(role="best accuracy")]
    if not parts:  # no scored model (e.g. a study of one model: min-max is undefined): an empty table, same columns
        return pd.DataFrame(columns=[group, "role", "rank", model, *df.columns.drop([group, model])])
    out = pd.concat(parts, ignore_index=True)
    first = [group, "role", "rank", model]
    return out[first + [c for c in out.columns if c not in first]]


def paper_top_table(top: pd.DataFrame, score: str = "pepr_e", extra: Sequence[str] = ()) -> pd.DataFrame:
    """:func:`top_k` on the paper's columns, in the paper's table units (M parameters, Wh, GB, s).

    ``extra`` columns (e.g. the audit's ``likely_copy`` flag) are appended unchanged.
    """
    return pd.DataFrame({
        "experiment": top["experiment"], "role": top["role"], "rank": top["rank"], "model": top["model"],
        "type": top["type"], "efficient": top["efficient"], "params_m": top["num_param"] / 1e6,
        "mem_reserved_gb": top["memR"], "energy_wh": top["energy"] * 1000, "last_epoch_s": top["train_time"],
        "test_acc": top[PERF], score: top[score], **{c: top[c] for c in extra},
    })


def model_means(
    df: pd.DataFrame,
    columns: Sequence[str],
    *,
    model: str = "model",
    keep: Sequence[str] = ("num_param", "type", "efficient"),
) -> pd.DataFrame:
    """Per-model means of ``columns`` over all experiments (the paper's Fig. 4/5 scatter data).

    The descriptive columns in ``keep`` are taken per model (they do not vary across experiments).
    """
    keep = [c for c in keep if c in df.columns]
    means = df.groupby(model)[list(columns)].mean()
    described = df.groupby(model)[keep].first()
    return described.join(means).reset_index()


def condition_table(
    df: pd.DataFrame,
    conditions: Mapping[str, Sequence[str]] = CONDITIONS,
    *,
    value: str = PERF,
    group: str = "experiment",
    model: str = "model",
) -> pd.DataFrame:
    """One row per model, one column per condition: the mean of ``value`` over that condition's groups.

    A model lacking a value in any of a condition's groups gets NaN for that condition, so it drops out
    of comparisons instead of being averaged over a different set of experiments (which would compare
    datasets, not conditions, once the audit removes rows).
    """
    columns = {}
    for name, groups in conditions.items():
        part = df[df[group].isin(list(groups))].dropna(subset=[value])
        per_model = part.groupby(model).agg(mean=(value, "mean"), groups=(group, "nunique"))
        columns[name] = per_model["mean"].where(per_model["groups"] == len(set(groups)))
    return pd.DataFrame(columns).rename_axis(model)


def compare_conditions(wide: pd.DataFrame, a: str, b: str) -> dict:
    """Compare two per-model conditions: the paper's unpaired t-test, plus paired t and Wilcoxon tests.

    Only models with both values count. The paper (``paper_plots.py``) used ``scipy.stats.ttest_ind``
    (equal variances) and annotated ``p<0.001``; since each model appears in both conditions, the
    paired tests are the fitting ones, and reported beside it.
    """
    part = wide[[a, b]].dropna()
    n = len(part)
    out = {"a": a, "b": b, "n_models": n, "mean_a": part[a].mean(), "mean_b": part[b].mean(),
           "mean_diff": (part[a] - part[b]).mean(), "share_a_better": float((part[a] > part[b]).mean()) if n else np.nan}
    if n >= 3:
        out["p_ttest_ind"] = float(stats.ttest_ind(part[a], part[b]).pvalue)
        out["p_ttest_rel"] = float(stats.ttest_rel(part[a], part[b]).pvalue)
        out["p_wilcoxon"] = float(stats.wilcoxon(part[a], part[b]).pvalue)
    else:
        out.update(p_ttest_ind=np.nan, p_ttest_rel=np.nan, p_wilcoxon=np.nan)
    return out


def paper_tests(
    df: pd.DataFrame,
    *,
    value: str = PERF,
    conditions: Mapping[str, Sequence[str]] = CONDITIONS,
    comparisons: Sequence[tuple[str, str, str]] = COMPARISONS,
) -> pd.DataFrame:
    """The paper's comparisons as a table, one row per comparison (see :func:`compare_conditions`)."""
    wide = condition_table(df, conditions, value=value)
    return pd.DataFrame([{"comparison": name, **compare_conditions(wide, a, b)} for name, a, b in comparisons])


# --------------------------------------------------------------------------------------------------
# Audit
# --------------------------------------------------------------------------------------------------

def _check(df: pd.DataFrame, *columns: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PeprError(f"column(s) {missing} not found; available: {', '.join(map(str, df.columns))}")


def shared_values(
    df: pd.DataFrame,
    column: str,
    *,
    group: str = "experiment",
    model: str = "model",
) -> pd.DataFrame:
    """Every value of ``column`` that one model has in two or more groups, with the groups listed.

    Columns: ``model``, ``value``, ``n_groups``, ``groups`` (comma-separated, in table order).
    """
    _check(df, column, group, model)
    data = df.dropna(subset=[column])
    grouped = data.groupby([model, column], sort=True)[group].agg(lambda s: list(dict.fromkeys(s)))
    grouped = grouped[grouped.map(len) > 1]
    return pd.DataFrame({
        model: grouped.index.get_level_values(0), "value": grouped.index.get_level_values(1),
        "n_groups": grouped.map(len).to_numpy(), "groups": grouped.map(", ".join).to_numpy(),
    }).sort_values(["n_groups", model], ascending=[False, True], ignore_index=True)


def pair_counts(
    df: pd.DataFrame,
    columns: Sequence[str] = ("energy", "co2", "train_time", PERF),
    *,
    identical: Sequence[str] = (PERF, "energy", "train_time"),
    group: str = "experiment",
    model: str = "model",
    order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """For every pair of groups, how many models have exactly equal values in each of ``columns``.

    ``identical_rows`` counts the models equal in all of ``identical`` at once (accuracy, energy and
    time: a duplicated result, not a coincidence). Columns: ``group_a``, ``group_b``, ``models``,
    ``same_<column>``..., ``identical_rows``.
    """
    _check(df, group, model, *columns, *identical)
    if df.duplicated([group, model]).any():
        raise PeprError(f"duplicated ({group}, {model}) rows; expected one row per model and group")
    groups = list(order) if order is not None else list(dict.fromkeys(df[group]))
    wide = {c: df.pivot(index=model, columns=group, values=c) for c in set(columns) | set(identical)}
    rows = []
    for ga, gb in itertools.combinations(groups, 2):
        both = wide[columns[0] if columns else identical[0]][[ga, gb]].dropna().index
        row = {"group_a": ga, "group_b": gb, "models": len(both)}
        for c in columns:
            row[f"same_{c}"] = int((wide[c].loc[both, ga] == wide[c].loc[both, gb]).sum())
        same_all = np.ones(len(both), dtype=bool)
        for c in identical:
            same_all &= (wide[c].loc[both, ga] == wide[c].loc[both, gb]).to_numpy()
        row["identical_rows"] = int(same_all.sum())
        rows.append(row)
    return pd.DataFrame(rows)


def pair_matrix(pairs: pd.DataFrame, column: str) -> pd.DataFrame:
    """A symmetric group x group matrix of one count column of :func:`pair_counts` (diagonal NaN)."""
    groups = list(dict.fromkeys(list(pairs["group_a"]) + list(pairs["group_b"])))
    matrix = pd.DataFrame(np.nan, index=groups, columns=groups)
    for row in pairs.itertuples(index=False):
        value = getattr(row, column)
        matrix.loc[row.group_a, row.group_b] = value
        matrix.loc[row.group_b, row.group_a] = value
    return matrix


def identical_rows(
    df: pd.DataFrame,
    columns: Sequence[str] = (PERF, "energy", "train_time"),
    *,
    group: str = "experiment",
    model: str = "model",
) -> pd.DataFrame:
    """The models whose ``columns`` are all exactly equal in two groups, one row per model and pair."""
    _check(df, group, model, *columns)
    keyed = df[[model, group, *columns]].dropna()
    dup = keyed[keyed.duplicated([model, *columns], keep=False)]
    rows = []
    for _, g in dup.groupby([model, *columns], sort=True):
        for ga, gb in itertools.combinations(list(g[group]), 2):
            rows.append({model: g[model].iloc[0], "group_a": ga, "group_b": gb,
                         **{c: g[c].iloc[0] for c in columns}})
    return pd.DataFrame(rows, columns=[model, "group_a", "group_b", *columns])


def implied_power_kw(
    df: pd.DataFrame,
    *,
    energy: str = "energy",
    time: str = "train_time",
    epochs: int = 10,
) -> pd.Series:
    """Mean power a row's energy implies: ``energy_kWh * 3600 / (epochs * time_s)`` in kW.

    The paper's ``train_time`` is the last epoch only, so ``epochs * time`` approximates the whole
    training time. Genuine rows imply the power of one GPU machine (~0.2-0.6 kW); an energy value copied
    from a larger experiment into a smaller one implies several kW, which one GPU cannot draw.
    """
    _check(df, energy, time)
    return df[energy] * 3600.0 / (epochs * df[time])


def accuracy_grid_check(
    df: pd.DataFrame,
    grids: Mapping[str, int] | None = None,
    *,
    group: str = "experiment",
    columns: Sequence[str] = tuple(TEST_COLUMNS),
    tol: float = 1e-3,
) -> pd.DataFrame:
    """Per row: how many epochs' accuracies lie on the group's test-set grid, and which other grid fits.

    ``grids`` maps a group to its denominator n (accuracies are multiples of 1/n, e.g.
    ``{"derma": 1984}``); by default each experiment of the paper gets its dataset's
    :data:`ACCURACY_GRID`. ``fits_other`` is set when no epoch lies on the row's own grid but all lie on
    another one: it names that grid (the dataset, or ``1/n`` for custom grids) -- a result copied from
    another experiment.
    """
    _check(df, group, *columns)
    if grids is None:
        grids = {e: ACCURACY_GRID[info["dataset"]] for e, info in EXPERIMENTS.items()}
        names = {n: name for name, n in ACCURACY_GRID.items()}
    else:
        names = {n: f"1/{n}" for n in set(grids.values())}
    unknown = sorted(set(df[group]) - set(grids))
    if unknown:
        raise PeprError(f"no accuracy grid for group(s) {unknown}; known: {', '.join(grids)}")
    values = df[list(columns)].to_numpy(dtype=float)

    def on_grid(n) -> np.ndarray:
        scaled = values * np.asarray(n, dtype=float).reshape(-1, 1)
        return np.abs(scaled - np.round(scaled)) < tol

    own = np.array([grids[g] for g in df[group]])
    on_own = on_grid(own)
    all_on = {n: on_grid(n).all(axis=1) for n in names}
    fits_other = []
    for i, n_own in enumerate(own):
        others = [names[n] for n, ok in all_on.items() if ok[i] and n != n_own]
        fits_other.append(", ".join(others) if not on_own[i].any() and others else "")
    return pd.DataFrame({"epochs_on_own_grid": on_own.sum(axis=1), "fits_other": fits_other,
                         "own_grid": [names.get(n, f"1/{n}") for n in own]}, index=df.index)


def flag_suspects(
    df: pd.DataFrame,
    *,
    group: str = "experiment",
    model: str = "model",
    energy: str = "energy",
    co2: str = "co2",
    time: str = "train_time",
    grids: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """A copy of ``df`` with the audit's flags per row.

    * ``shared_energy`` / ``shared_co2``: the value equals the same model's value in another group;
      ``energy_shared_with`` lists those groups;
    * ``implied_power_kw`` and ``power_implausible``: the implied mean power exceeds the highest one among
      the group's rows whose energy is not shared (a data-driven bound, no magic threshold);
    * ``accuracy_misplaced``: no epoch's accuracy lies on the group's test grid, all lie on another's;
    * ``suspect``: shared energy or CO2, or misplaced accuracy (we cannot tell original from copy);
    * ``likely_copy``: shared energy with an implausible power, or misplaced accuracy.
    """
    _check(df, group, model, energy, co2, time)
    out = df.copy()
    for col, flag in ((energy, "shared_energy"), (co2, "shared_co2")):
        counts = out.groupby([model, col], dropna=True)[group].transform("size")
        out[flag] = counts.fillna(0).to_numpy() > 1
    holders = out.dropna(subset=[energy]).groupby([model, energy])[group].agg(list).to_dict()
    out["energy_shared_with"] = [
        ", ".join(x for x in holders.get((m, e), []) if x != g)
        for m, e, g in zip(out[model], out[energy], out[group], strict=True)
    ]
    out["implied_power_kw"] = implied_power_kw(out, energy=energy, time=time)
    bound = out[~out["shared_energy"]].groupby(group)["implied_power_kw"].max()
    out["power_implausible"] = out["implied_power_kw"] > out[group].map(bound).fillna(np.inf)
    grid = accuracy_grid_check(out, grids, group=group)
    out["accuracy_misplaced"] = grid["fits_other"] != ""
    out["accuracy_fits"] = grid["fits_other"]
    out["suspect"] = out["shared_energy"] | out["shared_co2"] | out["accuracy_misplaced"]
    out["likely_copy"] = (out["shared_energy"] & out["power_implausible"]) | out["accuracy_misplaced"]
    return out


def suspect_summary(flags: pd.DataFrame, *, group: str = "experiment") -> pd.DataFrame:
    """Counts of each audit flag per group (and in total) from :func:`flag_suspects`."""
    cols = ["shared_energy", "shared_co2", "power_implausible", "accuracy_misplaced", "suspect", "likely_copy"]
    table = flags.groupby(group, sort=False)[cols].sum().astype(int)
    table.insert(0, "rows", flags.groupby(group, sort=False).size())
    table.loc["all"] = table.sum()
    return table.rename_axis(group).reset_index()


def scenario_rows(flags: pd.DataFrame, scenario: str) -> pd.DataFrame:
    """The rows a scenario of :data:`SCENARIOS` keeps, rescored (min-max over the rows kept)."""
    if scenario == "published":
        kept = flags
    elif scenario == "without suspect rows":
        kept = flags[~flags["suspect"]]
    elif scenario == "without likely copies":
        kept = flags[~flags["likely_copy"]]
    else:
        raise PeprError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    drop = [c for c in kept.columns if c.startswith("pepr_") or c in {"e_n", "c_n", "t_n", "m_n"}]
    return recompute_scores(kept.drop(columns=drop))


def ranking_sensitivity(
    flags: pd.DataFrame,
    *,
    k: int = 5,
    scenarios: Sequence[str] = tuple(SCENARIOS),
    scores: Sequence[str] = ("pepr_e", "pepr_t"),
    baseline: tuple[str, str] = ("published", "pepr_e"),
) -> pd.DataFrame:
    """Top-``k`` per experiment under each scenario and score, compared with the published PePR-E top-k.

    Columns: ``experiment``, ``scenario``, ``score``, ``models`` (rows kept), ``top_k`` (models in order),
    ``overlap`` (how many of the baseline's top-k remain), ``baseline_top1_rank`` (where the baseline's
    best model now ranks; NaN when its row was dropped), ``spearman_vs_baseline`` (rank correlation of
    the scores over the models both keep).
    """
    scored = {s: scenario_rows(flags, s) for s in scenarios}
    base = scored[baseline[0]]
    rows = []
    for experiment in dict.fromkeys(flags["experiment"]):
        b = base[base["experiment"] == experiment].set_index("model")[baseline[1]]
        b_top = b.sort_values(ascending=False, kind="mergesort").head(k).index.tolist()
        for scenario in scenarios:
            for score in scores:
                d = scored[scenario]
                d = d[d["experiment"] == experiment].set_index("model")[score]
                order = d.reset_index().sort_values([score, "model"], ascending=[False, True], kind="mergesort")
                ranks = pd.Series(np.arange(1, len(order) + 1), index=order["model"])
                top = order["model"].head(k).tolist()
                common = b.index.intersection(d.index)
                rows.append({
                    "experiment": experiment, "scenario": scenario, "score": score, "models": len(d),
                    "top_k": ", ".join(top), "overlap": len(set(top) & set(b_top)),
                    "baseline_top1_rank": float(ranks.get(b_top[0], np.nan)) if b_top else np.nan,
                    "spearman_vs_baseline": float(b[common].corr(d[common], method="spearman")),
                })
    return pd.DataFrame(rows)


def headline_checks(
    flags: pd.DataFrame,
    *,
    k: int = 5,
    scenarios: Sequence[str] = tuple(SCENARIOS),
    scores: Sequence[str] = ("pepr_e", "pepr_t"),
) -> pd.DataFrame:
    """The paper's headline conclusions, measured under each scenario and score.

    * pretraining raises test accuracy (paired Wilcoxon p, mean gain) and more data does (100 % vs 10 %);
    * PePR favours small models: Spearman rho of the per-model mean score vs parameters (the paper's
      Fig. 5d), against rho of test accuracy vs parameters (Fig. 5c);
    * the top-k models by PePR are small: median parameters (M) of the top-k over all experiments,
      against the median of all models, and the share of "efficient" models among them.
    """
    rows = []
    all_median = flags.groupby("model")["num_param"].first().median() / 1e6
    all_eff = flags.groupby("model")["efficient"].first().mean()
    for scenario in scenarios:
        d = scenario_rows(flags, scenario)
        tests = paper_tests(d)
        means = model_means(d, [PERF, *scores])
        rho_acc = means[[PERF, "num_param"]].corr(method="spearman").iloc[0, 1]
        for score in scores:
            top = top_k(d, score, k=k)
            top = top[top["role"] == f"top-{k}"]
            rows.append({
                "scenario": scenario, "score": score, "rows": len(d),
                "pretrain_gain": tests.loc[0, "mean_diff"], "pretrain_p_wilcoxon": tests.loc[0, "p_wilcoxon"],
                "pretrain_p_ttest_ind": tests.loc[0, "p_ttest_ind"],
                "data_gain": tests.loc[1, "mean_diff"], "data_p_wilcoxon": tests.loc[1, "p_wilcoxon"],
                "data_p_ttest_ind": tests.loc[1, "p_ttest_ind"],
                "rho_score_vs_params": means[[score, "num_param"]].corr(method="spearman").iloc[0, 1],
                "rho_acc_vs_params": rho_acc,
                f"top{k}_median_params_m": top["num_param"].median() / 1e6,
                "all_median_params_m": all_median,
                f"top{k}_share_efficient": top["efficient"].mean(),
                "all_share_efficient": all_eff,
            })
    return pd.DataFrame(rows)
