"""Our runs as a table: loading run records, splitting what can be scored, and the study's facts and questions.

Everything here is a pure function of a runs table (one row per run record, the columns of
:func:`pepr_utils.records.collect`), so the notebook ``04_analysis`` only says *what* is computed and
the report text can be generated from the results. Conventions:

* An **experiment** is dataset x size x training fraction x regime (scratch, imagenet-full,
  imagenet-linear, checkpoint-...); when a study varies epochs, batch size or learning rate within
  one experiment, those values are appended to its name (:func:`pepr_utils.params.experiment_name`) so
  unlike runs are never ranked together.
* Only runs with status ``ok`` and a test accuracy are scored; the rest are listed with the reason.
* Several seeds of one model are averaged per experiment (the *model table*, :mod:`pepr_utils.analysis.tables`)
  before PePR is computed with the paper's per-experiment min-max normalisation; per-seed scores
  (normalised within experiment and seed) give the intervals and the bootstrap of the top rank.
* Every PePR value comes from :func:`pepr_utils.score.pepr` -- the one implementation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import PeprError
from ..meter.meter import energy_components, estimated_method
from ..params import experiment_name, is_missing, regime
from .columns import _NUMERIC, FLOOR_ALPHA, HYPER_FIELDS, RESOURCE_COLUMNS, label
from .comparisons import pair_unit
from .stats import pareto_front

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
                str(rec) if not is_missing(rec) and (Path(str(rec)) / "result.json").is_file()
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
    from ..records import collect

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
    runs["regime"] = [regime(row) for row in runs.to_dict("records")]
    rows = runs.to_dict("records")
    runs["experiment"] = [experiment_name(row) for row in rows]
    varying = [h for h in HYPER_FIELDS if h in runs.columns
               and (runs.groupby("experiment")[h].nunique(dropna=True) > 1).any()]
    if varying:
        runs["experiment"] = [experiment_name(row, vary=varying) for row in rows]
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
        elif is_missing(row.get("error")):
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
    raise PeprError(f"no resource recorded in the ok runs; expected at least one of {', '.join(RESOURCE_COLUMNS.values())}")


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
        "sizes": sorted(int(s) for s in pd.to_numeric(ok["size"], errors="coerce").dropna().unique())
        if len(ok) and "size" in ok.columns else [],
        "seeds": sorted(int(s) for s in pd.to_numeric(ok["seed"], errors="coerce").dropna().unique())
        if len(ok) and "seed" in ok.columns else [],
        "models": sorted(ok["model"].astype(str).unique()) if len(ok) else [],
        "max_seeds": int(seeds.max()) if len(seeds) else 0,
        "single_seed": bool(len(seeds) == 0 or seeds.max() <= 1),
        "single_model_experiments": sorted(models[models == 1].index) if len(models) else [],
        "energy_methods": methods,
        "energy_estimated": any(estimated_method(m) for m in methods),
        # components (gpu, cpu, ram) metered in every run, and estimated in at least one
        "energy_metered_parts": _parts(methods, estimated=False),
        "energy_estimated_parts": _parts(methods, estimated=True),
        "devices": sorted(str(d) for d in ok.get("device", pd.Series(dtype=str)).dropna().unique()),
        "co2_per_kwh": _single_intensity(ok),
    }


def _parts(methods: list[str], estimated: bool) -> list[str]:
    """The energy components estimated in any run (``estimated``), or metered in every run that has them
    (a component NVML failed to read in one run is not "metered")."""
    seen = [energy_components(m) for m in methods]
    names = sorted({n for parts in seen for n in parts})
    if estimated:
        return [n for n in names if any(parts.get(n) == "estimated" for parts in seen)]
    return [n for n in names if all(parts.get(n, "metered") == "metered" for parts in seen)]


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


# ------------------------------------------------------------------------------------- model types
def add_model_type(table: pd.DataFrame) -> pd.DataFrame:
    """Add the catalogues' ``type`` (CNN / Other) and ``efficient`` flag when a shipped catalogue knows the
    model, as the paper colours its figures by them; unknown models get ``type = "unlisted"``."""
    out = table.copy()
    try:
        from ..models.catalogue import catalogue_names, load_catalogue

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

    Reads each run folder's ``predictions.npz``; runs without one are simply absent from the result
    (the bootstrap then resamples seeds only).
    """
    out: dict[str, np.ndarray] = {}
    if "run_dir" not in runs.columns:
        return out
    for run_id, run_dir in zip(runs["run_id"], runs["run_dir"], strict=True):
        if is_missing(run_dir) or is_missing(run_id):
            continue
        correct = _read_predictions(Path(str(run_dir)))
        if correct is not None:
            out[str(run_id)] = correct
    return out


def _read_predictions(run_dir: Path) -> np.ndarray | None:
    """Per-sample correctness (1.0/0.0; the fraction of correct labels for multi-label tasks) from the
    run's ``predictions.npz`` (``y_true`` and ``y_score``, as :func:`pepr_utils.train.experiment.save_run`
    writes it, or ``y_pred``); None without one."""
    f = run_dir / "predictions.npz"
    if not f.is_file():
        return None
    with np.load(f, allow_pickle=False) as z:
        y = np.asarray(z["y_true"]) if "y_true" in z.files else None
        pred = np.asarray(z["y_pred"]) if "y_pred" in z.files else None
        score = np.asarray(z["y_score"]) if "y_score" in z.files else None
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


# ----------------------------------------------------------------------------------- epoch swing
def load_histories(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch history of the runs that have one (``history.csv`` or ``metrics.history`` in the record)."""
    frames = []
    if "run_dir" not in runs.columns:
        return pd.DataFrame()
    for _, row in runs.iterrows():
        if is_missing(row.get("run_dir")):
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
                        f"{', '.join(c for c in RESOURCE_COLUMNS.values() if c in table.columns)}")
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
