"""PePR on the study's tables: the model table (seeds averaged), min-max and fixed-reference scores, per-seed
scores, the top k, and how stable the top rank is when seeds and test images are resampled. Every PePR
value comes from :func:`pepr_utils.score.pepr` -- the one implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import PeprError
from ..score import pepr
from .columns import FIRST_FIELDS, MEAN_FIELDS, RESOURCE_COLUMNS, SCORE_PERFS


# ------------------------------------------------------------------------------------------- scoring
def available_resources(df: pd.DataFrame, resources: Mapping[str, str] = RESOURCE_COLUMNS) -> dict[str, str]:
    """The resources whose column exists and holds at least one number."""
    return {k: c for k, c in resources.items() if c in df.columns and pd.to_numeric(df[c], errors="coerce").notna().any()}


def model_table(ok: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, model): metrics and resources averaged over seeds, ``n_seeds``."""
    if not len(ok):
        return pd.DataFrame(columns=["experiment", "model", "n_seeds"])
    keys = ["experiment", "model"]
    means = [c for c in MEAN_FIELDS if c in ok.columns]
    firsts = [c for c in FIRST_FIELDS if c in ok.columns]
    grouped = ok.groupby(keys, sort=True)
    table = grouped[means].mean()
    if firsts:
        table = table.join(grouped[firsts].first())
    table["n_seeds"] = grouped["seed"].nunique()
    if "above_floor" in ok.columns:  # a model beats its floor when every seed does (NaN: not recorded)
        table["above_floor"] = grouped["above_floor"].min()
    table = table.reset_index()
    order = keys + [c for c in firsts if c not in keys] + ["n_seeds"] + means
    return table[order + (["above_floor"] if "above_floor" in table.columns else [])]


def score_table(table: pd.DataFrame, *, resources: Mapping[str, str] = RESOURCE_COLUMNS,
                reference: Mapping[str, float] | None = None, group: str | list[str] = "experiment",
                perfs: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Add PePR columns: ``pepr_<r>`` (test accuracy, min-max, the paper's), ``pepr_auc_<r>``
    (test AUC as P) and, with ``reference``, ``pepr_ref_<r>`` (fixed-reference normalisation);
    plus ``<r>_n`` and ``rank_<score>`` (1 = best within the group)."""
    res = available_resources(table, resources)
    out = table.copy()
    if not len(out) or not res:
        return out
    perfs = dict(perfs) if perfs is not None else SCORE_PERFS
    scored_cols = []
    for prefix, perf in perfs.items():
        if perf not in out.columns or out[perf].isna().all():
            continue
        new = pepr(out, perf, res, group=group, prefix=prefix)
        for name in res:
            out[f"{prefix}{name}"] = new[f"{prefix}{name}"]
            scored_cols.append(f"{prefix}{name}")
            if prefix == "pepr_":
                out[f"{name}_n"] = new[f"{name}_n"]
    if reference:
        ref = {k: float(v) for k, v in reference.items() if k in res}
        if ref:
            new = pepr(out, "test_acc", {k: res[k] for k in ref}, group=group, reference=ref, prefix="pepr_ref_")
            for name in ref:
                out[f"pepr_ref_{name}"] = new[f"pepr_ref_{name}"]
                out[f"{name}_ref_n"] = new[f"{name}_n"]
                scored_cols.append(f"pepr_ref_{name}")
    groups = _group_keys(out, group)
    out["n_models"] = out.groupby(groups, sort=False)["model"].transform("nunique")
    minmax = [c for c in scored_cols if not c.startswith("pepr_ref_")]
    normalised = [f"{name}_n" for name in res if f"{name}_n" in out.columns]
    out.loc[out["n_models"] < 2, minmax + normalised] = np.nan  # min-max over one model is undefined, not P
    for col in ["test_acc", *scored_cols]:
        out[f"rank_{col}"] = out.groupby(groups, sort=False)[col].rank(ascending=False, method="min")
    return out


def _group_keys(df: pd.DataFrame, group: str | list[str]) -> list[str]:
    return [group] if isinstance(group, str) else list(group)


def default_reference(ok: pd.DataFrame, resources: Mapping[str, str] = RESOURCE_COLUMNS) -> dict[str, float]:
    """A fixed reference per resource when none is given: the study-wide median over scored runs.

    The same ``R_ref`` for every experiment makes PePR comparable across experiments of this study;
    pass explicit values to compare with another study.
    """
    ref = {}
    for name, col in available_resources(ok, resources).items():
        values = pd.to_numeric(ok[col], errors="coerce").dropna()
        for candidate in (values.median(), values.mean()):
            if np.isfinite(candidate) and candidate > 0:
                ref[name] = float(candidate)
                break
    return ref


def parse_reference(reference: Mapping[str, float] | None, resources: Mapping[str, str] = RESOURCE_COLUMNS) -> dict[str, float]:
    """Accept ``{"e": 0.01}``, ``{"energy": ...}`` or ``{"energy_kwh": ...}``; return by short name."""
    return {_resource_key(k, resources, "reference"): _positive(v, f"reference {k}") for k, v in (reference or {}).items()}


def parse_budget(budget: Mapping[str, float] | None, resources: Mapping[str, str] = RESOURCE_COLUMNS) -> dict[str, float]:
    """Accept resource short names, names or columns as keys; return ``{column: limit}``."""
    out = {}
    for k, v in (budget or {}).items():
        key = _resource_key(k, resources, "budget")
        out[resources[key]] = _positive(v, f"budget {k}")
    return out


def _resource_key(key: str, resources: Mapping[str, str], what: str) -> str:
    k = str(key).strip().lower().replace("-", "_").replace(" ", "_")
    aliases = {"e": ("energy",), "c": ("co2", "carbon", "emissions"), "t": ("time", "train_time", "training_time"),
               "m": ("memory", "mem", "peak_mem", "peak_memory")}
    for name, col in resources.items():
        if k in (name, col, *aliases.get(name, ())):
            return name
    accepted = ", ".join(f"{n}/{c}" for n, c in resources.items())
    raise PeprError(f"unknown {what} resource {key!r}; accepted: {accepted}")


def _positive(value, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise PeprError(f"{what} must be a positive number, got {value!r}") from exc
    if not np.isfinite(v) or v <= 0:
        raise PeprError(f"{what} must be a positive number, got {value!r}")
    return v


def per_seed_scores(ok: pd.DataFrame, resources: Mapping[str, str] = RESOURCE_COLUMNS) -> pd.DataFrame:
    """Every scored run with PePR normalised within its experiment and seed (one replicate of the paper)."""
    return score_table(ok, resources=resources, group=["experiment", "seed"], perfs={"pepr_": "test_acc"})


# ------------------------------------------------------------------------------------------- top k
def top_k(scored: pd.DataFrame, by: str = "pepr_e", k: int = 5) -> pd.DataFrame:
    """The ``k`` best models per experiment by ``by``, with the best-accuracy model beside each row.

    Ranking (ties broken by model name) is :func:`pepr_utils.paper.reproduction.top_k`, the one used for the paper's
    Table 2; here the best-accuracy model becomes columns beside the top-k rows, and ``acc_given_up`` is
    how much test accuracy each row's model gives up against it.
    """
    from ..paper.reproduction import top_k as paper_top_k

    if by not in scored.columns:
        raise PeprError(f"cannot rank by {by!r}; available scores: "
                        f"{', '.join(c for c in scored.columns if c.startswith('pepr_')) or 'none'}")
    ranked = paper_top_k(scored.dropna(subset=[by, "test_acc"]), by, k=k, perf="test_acc")
    if not len(ranked):
        return pd.DataFrame()
    top = ranked[ranked["role"] != "best accuracy"]
    best = ranked[ranked["role"] == "best accuracy"].set_index("experiment")
    cols = ["experiment", "rank", "model", by, "test_acc"] + [c for c in ("energy_kwh", "num_params", "above_floor")
                                                              if c in top]
    out = top[cols].reset_index(drop=True)
    out["best_acc_model"] = out["experiment"].map(best["model"])
    out["best_acc"] = out["experiment"].map(best["test_acc"])
    out[f"best_acc_{by}"] = out["experiment"].map(best[by])
    out[f"best_acc_rank_{by}"] = out["experiment"].map(best["rank"])
    out["acc_given_up"] = out["best_acc"] - out["test_acc"]
    return out


def best_per_experiment(scored: pd.DataFrame, scores: Sequence[str]) -> pd.DataFrame:
    """Per experiment, the top model by accuracy and by each score (the paper's headline comparison)."""
    rows = []
    for exp, g in scored.groupby("experiment", sort=True):
        row = {"experiment": exp, "models": g["model"].nunique()}
        for col in ["test_acc", *scores]:
            if col in g.columns and g[col].notna().any():
                top = g.loc[g[col].idxmax()]
                row[f"top_{col}"] = top["model"]
                row[f"top_{col}_acc"] = top["test_acc"]
                if "above_floor" in top.index:  # 0: the winner does not beat its majority-class floor
                    row[f"top_{col}_above_floor"] = top["above_floor"]
                if "num_params" in top.index:
                    row[f"top_{col}_params"] = top["num_params"]
        rows.append(row)
    return pd.DataFrame(rows)



# ------------------------------------------------------------------------------- rank stability
def top_rank_stability(ok: pd.DataFrame, by: str = "pepr_e", *, n_boot: int = 1000, seed: int = 0,
                       resources: Mapping[str, str] = RESOURCE_COLUMNS,
                       predictions: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """How often the top model of each experiment stays on top when the evidence is resampled.

    Each replicate draws, per model, its seeds with replacement (metrics and resources of a run stay
    together) and, when per-sample test predictions exist for every run of the experiment, the test
    images with replacement (the same draw for all models, as they share the test set); accuracies are
    averaged per model and PePR recomputed with :func:`pepr_utils.score.pepr` within the replicate.
    Returns per experiment: the observed top model, ``p_stays_top`` and the most frequent other winner.
    """
    if by != "test_acc" and not by.startswith("pepr_"):
        raise PeprError(f"cannot bootstrap ranking by {by!r}; use test_acc or pepr_<resource>")
    res_key = by[len("pepr_"):] if by.startswith("pepr_") else None
    if res_key is not None and res_key not in resources:
        raise PeprError(f"unknown resource in {by!r}; resources: {', '.join(resources)}")
    cost = resources[res_key] if res_key else None
    predictions = predictions or {}
    rng = np.random.default_rng(seed)
    rows = []
    observed = score_table(model_table(ok), resources=resources, perfs={"pepr_": "test_acc"})
    for exp, g in ok.groupby("experiment", sort=True):
        obs = observed[observed["experiment"] == exp].dropna(subset=[by])
        models = sorted(obs["model"])
        base = {"experiment": exp, "by": by, "n_models": len(models),
                "min_seeds": int(g.groupby("model")["seed"].nunique().min()),
                "max_seeds": int(g.groupby("model")["seed"].nunique().max())}
        if len(models) < 2:
            rows.append({**base, "top_model": models[0] if models else None, "p_stays_top": np.nan,
                         "other_winner": None, "p_other_winner": np.nan, "resampled": "",
                         "note": "one model: nothing to rank"})
            continue
        top = obs.sort_values([by, "test_acc"], ascending=False)["model"].iloc[0]
        runs_of = {m: g[g["model"] == m] for m in models}
        have_preds = all(str(r) in predictions for r in g["run_id"])
        n_test = None
        if have_preds:
            sizes = {len(predictions[str(r)]) for r in g["run_id"]}
            have_preds = len(sizes) == 1
            n_test = sizes.pop() if have_preds else None
        multi_seed = base["max_seeds"] > 1
        if not multi_seed and not have_preds:
            rows.append({**base, "top_model": top, "p_stays_top": np.nan, "other_winner": None,
                         "p_other_winner": np.nan, "resampled": "",
                         "note": "single seed and no per-sample test predictions: nothing to resample"})
            continue
        test_idx = rng.integers(0, n_test, size=(n_boot, n_test)) if have_preds else None
        acc = np.empty((n_boot, len(models)))
        res = np.empty((n_boot, len(models)))
        for j, m in enumerate(models):
            runs_m = runs_of[m]
            k = len(runs_m)
            pick = rng.integers(0, k, size=(n_boot, k)) if multi_seed else np.zeros((n_boot, k), dtype=int)
            if have_preds:
                correct = np.stack([predictions[str(r)] for r in runs_m["run_id"]]).astype(np.float32)
                per_run = np.stack([correct[i][test_idx].mean(axis=1) for i in range(k)], axis=1)  # (n_boot, k)
                acc[:, j] = np.take_along_axis(per_run, pick, axis=1).mean(axis=1)
            else:
                acc[:, j] = runs_m["test_acc"].to_numpy(float)[pick].mean(axis=1)
            res[:, j] = runs_m[cost].to_numpy(float)[pick].mean(axis=1) if cost else 0.0
        long = pd.DataFrame({"rep": np.repeat(np.arange(n_boot), len(models)),
                             "model": np.tile(models, n_boot), "test_acc": acc.ravel(), "cost": res.ravel()})
        if res_key:
            long = pepr(long, "test_acc", {res_key: "cost"}, group="rep")
        winners = long.loc[long.groupby("rep")[by].idxmax(), "model"].value_counts() / n_boot
        others = winners.drop(top, errors="ignore")
        rows.append({**base, "top_model": top, "p_stays_top": float(winners.get(top, 0.0)),
                     "other_winner": others.index[0] if len(others) else None,
                     "p_other_winner": float(others.iloc[0]) if len(others) else 0.0,
                     "resampled": " + ".join(s for s, on in (("seeds", multi_seed), ("test set", have_preds)) if on),
                     "note": "" if have_preds else "no per-sample test predictions: seeds only"})
    return pd.DataFrame(rows)
