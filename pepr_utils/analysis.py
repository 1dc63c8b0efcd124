"""The numbers behind the analysis report: from run records to PePR tables, tests and recommendations.

Everything here is a pure function of a runs table (one row per run record, the columns of
:func:`pepr_utils.records.collect`), so the notebook ``04_analysis`` only says *what* is computed and
the report text can be generated from the results. Conventions:

* An **experiment** is dataset x size x training fraction x regime (scratch, imagenet-full,
  imagenet-linear, checkpoint-...); when a study varies epochs, batch size or learning rate within
  one experiment, those values are appended to its label so unlike runs are never ranked together.
* Only runs with status ``ok`` and a test accuracy are scored; the rest are listed with the reason.
* Several seeds of one model are averaged per experiment (the *model table*) before PePR is computed
  with the paper's per-experiment min-max normalisation; per-seed scores (normalised within experiment
  and seed) give the intervals and the bootstrap of the top rank.
* Every PePR value comes from :func:`pepr_utils.score.pepr` -- the one implementation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .comparisons import (  # noqa: F401 - the analysis API in one place (notebook 04, verdicts, report)
    POOL_SEP,
    Comparison,
    as_comparisons,
    common_scale,
    comparison_values,
    find_comparisons,
    minmax_score_parts,
    pair_unit,
    paired_long,
    paired_tests,
    paired_values,
    paired_violin_inputs,
)
from .errors import PeprError
from .score import pepr
from .stats import epoch_swing, paired_test, pareto_front, rank_agreement, seed_summary  # noqa: F401
from .study_columns import (  # noqa: F401
    _NUMERIC,
    EXPERIMENT_FIELDS,
    FIRST_FIELDS,
    FLOOR_ALPHA,
    HYPER_FIELDS,
    MEAN_FIELDS,
    RESOURCE_NAMES,
    RESOURCES,
    SCORE_PERFS,
    UNITS,
    _fraction_label,
    _missing,
    _truthy,
    label,
    regime_of,
)

_REQUIRED = ("model", "dataset", "status")


# ----------------------------------------------------------------------------------------- loading
def load_results(results: str | os.PathLike | Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Runs table from a ``results.csv``, ``result.json`` files, or folders holding either.

    A folder is searched for ``result.json`` files (any depth) and read with
    :func:`pepr_utils.records.collect`; a folder without any but with a ``results.csv`` reads that.
    Duplicate run ids keep the last finished record. Adds ``regime``, ``experiment`` and ``run_dir``.
    """
    items = [results] if isinstance(results, (str, os.PathLike)) else list(results)
    if not items:
        raise PeprError("no results given; pass a results.csv file, a run folder or a list of them")
    frames = [_load_one(Path(item).expanduser()) for item in items]
    frames = [f for f in frames if len(f)]
    if not frames:
        raise PeprError(f"no run records found in {', '.join(map(str, items))}; "
                        "expected result.json files (pepr grid run) or a results.csv (pepr grid collect)")
    runs = pd.concat(frames, ignore_index=True)
    missing = [c for c in _REQUIRED if c not in runs.columns]
    if missing:
        raise PeprError(f"results lack column(s) {missing}; expected the columns of pepr grid collect "
                        f"(run_id, status, model, dataset, size, fraction, ..., test_acc, energy_kwh)")
    return prepare_runs(runs)


def _load_one(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise PeprError(f"results path {str(path)!r} not found; expected a results.csv, a result.json or a run folder")
    if path.is_file() and path.suffix.lower() == ".csv":
        try:
            table = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise PeprError(f"cannot read {str(path)!r} as CSV: {str(exc).splitlines()[0]}") from exc
        runs_dir = path.parent / "runs"  # pepr grid collect writes results.csv beside runs/<run_id>/
        recorded = table["record_dir"] if "record_dir" in table.columns else pd.Series(None, index=table.index)
        if "run_id" in table.columns and "run_dir" not in table.columns:
            table["run_dir"] = [
                str(rec) if not _missing(rec) and (Path(str(rec)) / "result.json").is_file()
                else str(runs_dir / str(r)) if (runs_dir / str(r) / "result.json").is_file() else None
                for r, rec in zip(table["run_id"], recorded, strict=True)]
        return table
    if path.is_file() and path.suffix.lower() == ".json":
        files = [path]
    elif path.is_dir():
        files = sorted(path.rglob("result.json"))
        if not files:
            csv = path / "results.csv"
            if csv.is_file():
                return _load_one(csv)
            return pd.DataFrame()
    else:
        raise PeprError(f"results path {str(path)!r} is neither a .csv, a .json nor a folder")
    from .records import collect

    runs = collect(files)
    if "record_dir" in runs.columns:
        runs["run_dir"] = runs["record_dir"]
    return runs


def prepare_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Typed columns, ``regime`` and ``experiment`` (hyper-parameters appended when they vary)."""
    runs = runs.copy()
    for col in _NUMERIC & set(runs.columns):
        runs[col] = pd.to_numeric(runs[col], errors="coerce")
    runs["status"] = runs["status"].astype(str).str.strip().str.lower()
    for col in ("pretrained", "weights", "mode", "size", "fraction", "seed", "error", "run_id", "run_dir"):
        if col not in runs.columns:
            runs[col] = np.nan
    if "seed" in runs.columns and runs["seed"].isna().all():
        runs["seed"] = 0
    runs["regime"] = [regime_of(p, w, m) for p, w, m in zip(runs["pretrained"], runs["weights"], runs["mode"], strict=True)]
    base = [f"{d}-{'' if _missing(s) else int(s)}px-{_fraction_label(f)}-{r}"
            for d, s, f, r in zip(runs["dataset"], runs["size"], runs["fraction"], runs["regime"], strict=True)]
    runs["experiment"] = base
    varying = [h for h in HYPER_FIELDS if h in runs.columns
               and (runs.groupby("experiment")[h].nunique(dropna=True) > 1).any()]
    if varying:
        short = {"epochs": "e", "batch_size": "bs", "lr": "lr"}
        runs["experiment"] = runs["experiment"] + runs[varying].apply(
            lambda row: "".join(f"-{short[h]}{row[h]:g}" for h in varying), axis=1)
    runs = add_floor(runs)
    if "finished_at" in runs.columns and runs["run_id"].notna().any():
        runs = runs.sort_values("finished_at", kind="stable", na_position="first")
        dup = runs["run_id"].notna() & runs.duplicated("run_id", keep="last")
        runs = runs[~dup]
    return runs.reset_index(drop=True)


def add_floor(runs: pd.DataFrame) -> pd.DataFrame:
    """``above_floor`` per run: 1.0 when it beats its majority-class floor (test accuracy above
    ``majority_acc``) *and* agrees with the labels beyond chance (Cohen's kappa > 0 at p < FLOOR_ALPHA,
    which a coin flip on a balanced task fails although it may beat a majority guess); 0.0 when not;
    NaN when the record predates these fields. ``kappa_pos`` is the chance-corrected P, kappa clipped at 0.
    """
    runs = runs.copy()
    for col in ("majority_acc", "test_kappa", "test_kappa_p"):
        runs[col] = pd.to_numeric(runs[col], errors="coerce") if col in runs.columns else np.nan
    acc = pd.to_numeric(runs["test_acc"], errors="coerce") if "test_acc" in runs.columns else np.nan
    beats = (acc > runs["majority_acc"]) & ~(runs["test_kappa_p"] >= FLOOR_ALPHA)
    runs["above_floor"] = beats.astype(float).where(runs["majority_acc"].notna() & pd.notna(acc))
    runs["kappa_pos"] = runs["test_kappa"].clip(lower=0.0)
    return runs


def split_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(ok, excluded)``: runs that can be scored, and the others with the reason they are left out."""
    has_acc = runs["test_acc"].notna() if "test_acc" in runs.columns else pd.Series(False, index=runs.index)
    ok_mask = (runs["status"] == "ok") & has_acc
    ok = runs[ok_mask].reset_index(drop=True)
    bad = runs[~ok_mask].copy()
    reasons = []
    for _, row in bad.iterrows():
        if row["status"] == "ok":
            reasons.append("status ok but no test accuracy recorded")
        elif _missing(row.get("error")):
            reasons.append(f"status {row['status']}")
        else:
            reasons.append(str(row["error"]).strip().splitlines()[-1][:200])
    bad["reason"] = reasons
    cols = [c for c in ("run_id", "status", "experiment", "model", "seed", "reason") if c in bad.columns]
    return ok, bad[cols].sort_values(["status", "experiment", "model"]).reset_index(drop=True)


def require_scorable(runs: pd.DataFrame, ok: pd.DataFrame, resources: Mapping[str, str]) -> None:
    """PeprError (one line, with the commonest reason) when nothing can be scored."""
    if len(ok) and resources:
        return
    if not len(ok):
        _, bad = split_runs(runs)
        reason = bad["reason"].value_counts().index[0] if len(bad) else "none"
        raise PeprError(f"no run finished with status ok and a test accuracy: nothing to score "
                        f"({len(runs)} records; commonest reason: {reason})")
    raise PeprError(f"no resource recorded in the ok runs; expected at least one of {', '.join(RESOURCES.values())}")


def available_resources(df: pd.DataFrame, resources: Mapping[str, str] = RESOURCES) -> dict[str, str]:
    """The resources whose column exists and holds at least one number."""
    return {k: c for k, c in resources.items() if c in df.columns and pd.to_numeric(df[c], errors="coerce").notna().any()}


# ------------------------------------------------------------------------------------------ overview
def overview(runs: pd.DataFrame) -> pd.DataFrame:
    """Per experiment: runs by status, models and seeds scored, epochs and how energy was measured."""
    rows = []
    for exp, g in runs.groupby("experiment", sort=True):
        ok = g[(g["status"] == "ok") & g.get("test_acc", pd.Series(np.nan, index=g.index)).notna()]
        rows.append({
            "experiment": exp,
            "dataset": g["dataset"].iloc[0],
            "size": g["size"].iloc[0],
            "fraction": g["fraction"].iloc[0],
            "regime": g["regime"].iloc[0],
            "runs": len(g),
            "ok": len(ok),
            "failed": int((g["status"] == "failed").sum()),
            "incompatible": int((g["status"] == "incompatible").sum()),
            "models": ok["model"].nunique(),
            "seeds": ok["seed"].nunique() if len(ok) else 0,
            "epochs": _joined(ok.get("epochs")),
            "energy_method": _joined(ok.get("energy_method")),
        })
    return pd.DataFrame(rows)


def _joined(values) -> str:
    if values is None:
        return ""
    vals = pd.Series(values).dropna().unique()
    return ", ".join(f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v) for v in sorted(vals, key=str))


def study_facts(runs: pd.DataFrame, ok: pd.DataFrame) -> dict:
    """Counts the report states up front (and uses to choose its wording)."""
    seeds = ok.groupby(["experiment", "model"])["seed"].nunique() if len(ok) else pd.Series(dtype=int)
    models = ok.groupby("experiment")["model"].nunique() if len(ok) else pd.Series(dtype=int)
    methods = sorted(str(m) for m in ok.get("energy_method", pd.Series(dtype=str)).dropna().unique())
    return {
        "n_runs": len(runs),
        "n_ok": len(ok),
        "n_failed": int((runs["status"] == "failed").sum()),
        "n_incompatible": int((runs["status"] == "incompatible").sum()),
        "n_other_excluded": int(len(runs) - len(ok) - (runs["status"] == "failed").sum()
                                - (runs["status"] == "incompatible").sum()),
        "experiments": sorted(ok["experiment"].unique()) if len(ok) else [],
        "datasets": sorted(ok["dataset"].astype(str).unique()) if len(ok) else [],
        "models": sorted(ok["model"].astype(str).unique()) if len(ok) else [],
        "max_seeds": int(seeds.max()) if len(seeds) else 0,
        "single_seed": bool(len(seeds) == 0 or seeds.max() <= 1),
        "single_model_experiments": sorted(models[models == 1].index) if len(models) else [],
        "energy_methods": methods,
        "energy_estimated": any("estimate" in m for m in methods),  # e.g. "cpu=estimate:cpu-tdp+ram=..."
        "devices": sorted(str(d) for d in ok.get("device", pd.Series(dtype=str)).dropna().unique()),
        "co2_per_kwh": _single_intensity(ok),
    }


def _single_intensity(ok: pd.DataFrame) -> float | None:
    """The one carbon intensity (g/kWh) behind every CO2 value, if there is one: then PePR-C = PePR-E."""
    if not {"co2_g", "energy_kwh"} <= set(ok.columns):
        return None
    both = ok[["co2_g", "energy_kwh"]].apply(pd.to_numeric, errors="coerce").dropna()
    both = both[both["energy_kwh"] > 0]
    if not len(both):
        return None
    ratio = both["co2_g"] / both["energy_kwh"]
    return float(ratio.median()) if np.allclose(ratio, ratio.median(), rtol=1e-6) else None


# ------------------------------------------------------------------------------------------- scoring
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


def score_table(table: pd.DataFrame, *, resources: Mapping[str, str] = RESOURCES,
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


def default_reference(ok: pd.DataFrame, resources: Mapping[str, str] = RESOURCES) -> dict[str, float]:
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


def parse_reference(reference: Mapping[str, float] | None, resources: Mapping[str, str] = RESOURCES) -> dict[str, float]:
    """Accept ``{"e": 0.01}``, ``{"energy": ...}`` or ``{"energy_kwh": ...}``; return by short name."""
    return {_resource_key(k, resources, "reference"): _positive(v, f"reference {k}") for k, v in (reference or {}).items()}


def parse_budget(budget: Mapping[str, float] | None, resources: Mapping[str, str] = RESOURCES) -> dict[str, float]:
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


def per_seed_scores(ok: pd.DataFrame, resources: Mapping[str, str] = RESOURCES) -> pd.DataFrame:
    """Every scored run with PePR normalised within its experiment and seed (one replicate of the paper)."""
    return score_table(ok, resources=resources, group=["experiment", "seed"], perfs={"pepr_": "test_acc"})


# ------------------------------------------------------------------------------------------- top k
def top_k(scored: pd.DataFrame, by: str = "pepr_e", k: int = 5) -> pd.DataFrame:
    """The ``k`` best models per experiment by ``by``, with the best-accuracy model beside each row.

    Ranking (ties broken by model name) is :func:`pepr_utils.paper.top_k`, the one used for the paper's
    Table 2; here the best-accuracy model becomes columns beside the top-k rows, and ``acc_given_up`` is
    how much test accuracy each row's model gives up against it.
    """
    from .paper import top_k as paper_top_k

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


# ------------------------------------------------------------------------------------- model types
def add_model_type(table: pd.DataFrame) -> pd.DataFrame:
    """Add the catalogues' ``type`` (CNN / Other) and ``efficient`` flag when a shipped catalogue knows the
    model, as the paper colours its figures by them; unknown models get ``type = "unlisted"``."""
    out = table.copy()
    try:
        from .models import catalogue_names, load_catalogue

        cat = pd.concat([load_catalogue(n) for n in catalogue_names()], ignore_index=True)
    except Exception:  # noqa: BLE001 - the catalogue is optional colour, never a reason to fail a report
        return out
    if "model" not in cat.columns or "type" not in cat.columns:
        return out
    keep = [c for c in ("model", "type", "efficient") if c in cat.columns]
    out = out.drop(columns=[c for c in keep[1:] if c in out.columns]).merge(
        cat[keep].drop_duplicates("model"), on="model", how="left")
    out["type"] = out["type"].fillna("unlisted")
    return out


# ---------------------------------------------------------------------------------------- pareto
def pareto_table(scored: pd.DataFrame, perf: str = "test_acc", cost: str = "energy_kwh",
                 by: str = "pepr_e") -> pd.DataFrame:
    """The models on each experiment's front, cheapest first, with their PePR rank."""
    df = scored.copy()
    df["on_front"] = pareto_front(df, perf, cost)
    front = df[df["on_front"]]
    cols = ["experiment", "model", perf, cost] + [c for c in (by, f"rank_{by}", "num_params") if c in df.columns]
    return front.sort_values(["experiment", cost, perf], ascending=[True, True, False])[cols].reset_index(drop=True)


# ------------------------------------------------------------------------------------------- seeds


def load_predictions(runs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-run test-set correctness (1.0/0.0 per test image) for the runs whose folder holds predictions.

    Looks for ``predictions.npz`` / ``test_predictions.npz`` (arrays ``y_true`` and ``y_pred`` or
    ``y_score`` -- class probabilities as :func:`pepr_utils.train.predict` returns them) or
    ``predictions.csv`` (columns y_true, y_pred) in each run folder. Runs without such a file are
    simply absent from the result (the bootstrap then resamples seeds only).
    """
    out: dict[str, np.ndarray] = {}
    if "run_dir" not in runs.columns:
        return out
    for run_id, run_dir in zip(runs["run_id"], runs["run_dir"], strict=True):
        if _missing(run_dir) or _missing(run_id):
            continue
        correct = _read_predictions(Path(str(run_dir)))
        if correct is not None:
            out[str(run_id)] = correct
    return out


def _read_predictions(run_dir: Path) -> np.ndarray | None:
    """Per-sample correctness (1.0/0.0; the fraction of correct labels for multi-label tasks)."""
    y = pred = score = None
    for name in ("predictions.npz", "test_predictions.npz"):
        f = run_dir / name
        if f.is_file():
            with np.load(f, allow_pickle=False) as z:
                pick = lambda names: next((np.asarray(z[k]) for k in names if k in z.files), None)  # noqa: E731
                y = pick(("y_true", "labels", "targets", "test_labels"))
                pred = pick(("y_pred", "pred", "preds", "predictions"))
                score = pick(("y_score", "probs", "scores", "probabilities"))
            break
    else:
        f = run_dir / "predictions.csv"
        if f.is_file():
            df = pd.read_csv(f)
            if {"y_true", "y_pred"} <= set(df.columns):
                y, pred = df["y_true"].to_numpy(), df["y_pred"].to_numpy()
    if y is None or (pred is None and score is None):
        return None
    y = y.reshape(len(y), -1)
    if y.shape[1] > 1:  # multi-label: a label is correct when its score is on the right side of 0.5
        guess = pred.reshape(y.shape) if pred is not None else (score.reshape(y.shape) > 0.5)
        return (guess.astype(int) == y.astype(int)).mean(axis=1)
    if pred is None:
        score = score.reshape(len(score), -1)
        pred = score.argmax(axis=1) if score.shape[1] > 1 else (score[:, 0] > 0.5)
    return (np.asarray(pred).ravel().astype(int) == y.ravel().astype(int)).astype(float)


def top_rank_stability(ok: pd.DataFrame, by: str = "pepr_e", *, n_boot: int = 1000, seed: int = 0,
                       resources: Mapping[str, str] = RESOURCES,
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


# ----------------------------------------------------------------------------------- epoch swing
def load_histories(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch history of the runs that have one (``history.csv`` or ``metrics.history`` in the record)."""
    frames = []
    if "run_dir" not in runs.columns:
        return pd.DataFrame()
    for _, row in runs.iterrows():
        if _missing(row.get("run_dir")):
            continue
        d = Path(str(row["run_dir"]))
        hist = None
        if (d / "history.csv").is_file():
            hist = pd.read_csv(d / "history.csv")
        elif (d / "result.json").is_file():
            record = json.loads((d / "result.json").read_text())
            h = (record.get("metrics") or {}).get("history")
            hist = pd.DataFrame(h) if h else None
        if hist is not None and len(hist):
            hist = hist.assign(run_id=row["run_id"], experiment=row["experiment"], model=row["model"],
                               dataset=row["dataset"], seed=row.get("seed"))
            frames.append(hist)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ----------------------------------------------------------------------------------- recommendation
def recommend(table: pd.DataFrame, budget: Mapping[str, float], perf: str = "test_acc",
              by: str = "dataset") -> pd.DataFrame:
    """The most accurate model per ``by`` whose resources all fit ``budget`` ({column: limit}), among the
    models that beat their majority-class floor (``above_floor``; unknown counts as beating it).

    Candidates are model-level rows of every experiment (so the recommendation also names the regime
    and data fraction); a model with a missing budgeted resource is not a candidate. When nothing fits,
    the row names the cheapest model of the first budgeted resource instead and says so.
    """
    cols = list(budget)
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise PeprError(f"budget column(s) {missing} not in the results; available: "
                        f"{', '.join(c for c in RESOURCES.values() if c in table.columns)}")
    label = ", ".join(f"{c} <= {v:g}" for c, v in budget.items())
    rows = []
    if "above_floor" in table.columns:  # a model that does not beat its majority-class floor is never recommended
        table = table[table["above_floor"] != 0]
    for key, g in table.groupby(by, sort=True):
        g = g.dropna(subset=[perf])
        known = g.dropna(subset=cols)
        fits = known[np.logical_and.reduce([known[c] <= v for c, v in budget.items()])] if cols else known
        base = {by: key, "budget": label, "candidates": len(g), "within_budget": len(fits)}
        extra = [c for c in ("experiment", "model", perf, *cols, "pepr_e", "num_params") if c in g.columns]
        extra = list(dict.fromkeys(extra))
        if len(fits):
            best = fits.sort_values([perf, cols[0]] if cols else [perf], ascending=[False, True] if cols else [False]).iloc[0]
            runner = fits[fits.index != best.name]
            best_any = g.loc[g[perf].idxmax()]
            rows.append({**base, **{c: best[c] for c in extra},
                         "best_overall_model": best_any["model"], "acc_given_up": best_any[perf] - best[perf],
                         "runner_up": runner.sort_values(perf, ascending=False)["model"].iloc[0] if len(runner) else None,
                         "note": ""})
        else:
            cheapest = known.sort_values(cols[0]).iloc[0] if len(known) else None
            rows.append({**base, **{c: (cheapest[c] if cheapest is not None else None) for c in extra},
                         "best_overall_model": g.loc[g[perf].idxmax(), "model"] if len(g) else None,
                         "acc_given_up": np.nan, "runner_up": None,
                         "note": "nothing fits the budget; shown: the cheapest model" if cheapest is not None
                         else "no model has the budgeted resources recorded"})
    return pd.DataFrame(rows)


def paper_questions(scored: pd.DataFrame, tests: pd.DataFrame, by: str = "pepr_e",
                    alpha: float = 0.05) -> pd.DataFrame:
    """The paper's questions answered on these runs, one row per question and experiment/comparison.

    Columns: question, where, evidence (the numbers), answer ("yes", "no", "reverse", "not significant",
    "same model", "not testable"). An answer needs p < ``alpha`` to be "yes" or "reverse".
    """
    from scipy import stats

    rows = []
    q_size, q_pick = "Are larger models more accurate?", f"Does {label(by)} pick a smaller model than accuracy?"
    for exp, g in scored.groupby("experiment", sort=True):
        sub = g[["num_params", "test_acc"]].dropna() if "num_params" in g.columns else pd.DataFrame()
        if len(sub) >= 3 and sub["num_params"].nunique() > 1 and sub["test_acc"].nunique() > 1:
            res = stats.spearmanr(sub["num_params"], sub["test_acc"])
            rho, p = float(res.statistic), float(res.pvalue)
            answer = "yes" if rho > 0 and p < alpha else "reverse" if rho < 0 and p < alpha else "not significant"
            rows.append({"question": q_size, "where": exp, "answer": answer,
                         "evidence": f"Spearman rho(accuracy, parameters) = {rho:.2f}, p = {p:.3g}, n = {len(sub)}"})
        else:
            rows.append({"question": q_size, "where": exp, "answer": "not testable",
                         "evidence": f"{len(sub)} model(s) with distinct sizes and accuracies (3 needed)"})
        if by in g.columns and g[by].notna().any() and len(g) >= 2:
            top, best = g.loc[g[by].idxmax()], g.loc[g["test_acc"].idxmax()]
            if top["model"] == best["model"]:
                answer = "same model"
            else:
                answer = "yes" if top.get("num_params", np.nan) < best.get("num_params", np.nan) else "no"
            rows.append({"question": q_pick, "where": exp, "answer": answer,
                         "evidence": f"top {label(by)}: {top['model']} ({top.get('num_params', np.nan):,.0f} params, "
                                     f"accuracy {top['test_acc']:.3f}); most accurate: {best['model']} "
                                     f"({best.get('num_params', np.nan):,.0f} params, accuracy {best['test_acc']:.3f})"})
    questions = {("pretraining", "test_acc"): "Does ImageNet pretraining improve accuracy?",
                 ("pretraining", by): f"Does ImageNet pretraining improve {label(by)}?",
                 ("data", "test_acc"): "Does more training data improve accuracy?",
                 ("data", by): f"Does more training data improve {label(by)}?"}
    for _, t in tests.iterrows() if len(tests) else []:
        q = questions.get((t["kind"], t["value"]))
        if q is None:
            continue
        if t["n_pairs"] < 2 or not np.isfinite(t["wilcoxon_p"]):
            answer = "not testable"
        elif t["wilcoxon_p"] < alpha:
            answer = "yes" if t["mean_diff"] > 0 else "reverse"
        else:
            answer = "not significant"
        rows.append({"question": q, "where": t["comparison"], "answer": answer,
                     "evidence": f"mean difference {t['mean_diff']:+.3g} over {int(t['n_pairs'])} "
                                 f"{pair_unit(t)} "
                                 f"({int(t['a_better'])} up, {int(t['b_better'])} down); Wilcoxon p = "
                                 f"{t['wilcoxon_p']:.3g}, r = {t['rank_biserial']:.2f}; t-test p = {t['ttest_p']:.3g}"})
    return pd.DataFrame(rows, columns=["question", "where", "answer", "evidence"])


def default_budget(table: pd.DataFrame) -> dict[str, float]:
    """When no budget is stated: the median energy per model-level run of this study (or the median
    training time when energy is missing), so the table shows a real trade-off."""
    for col in ("energy_kwh", "train_time_s", "peak_mem_gb"):
        if col in table.columns:
            v = pd.to_numeric(table[col], errors="coerce").median()
            if np.isfinite(v) and v > 0:
                return {col: float(v)}
    return {}
