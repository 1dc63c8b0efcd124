"""Our study beside the paper's published rows: the paper's own effect for each claim, and our rankings
beside the paper's for the models in both (the paper's experiment at our dataset and fraction,
``paper.matching_experiments``).

The paper's effect is measured with our own claims' statistics (:func:`~pepr_utils.analysis.verdicts.verdict_table`)
on its published rows (``paper.load_model_rows``), in the contrasts our study runs (100% against 10% of
the data; the 1% ``derma_smallest`` is left out), so an inconclusive verdict can say whether the design
could have seen an effect as large as the paper's. The published files record no majority-class floor
and one seed, so every paper row counts as learned and the paper's effect is a size, not a verdict.

Rankings are compared on the models in both studies only, and PePR is recomputed on each side among
those models (min-max over the shared set, :func:`pepr_utils.score.pepr`): ranks from one normalisation
are never set against ranks from another.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import PeprError
from ..score import pepr
from .verdicts import verdict_table

#: The paper's experiments whose contrasts match ours (100% vs 10%, pretrained vs scratch at 100%).
PAPER_EXPERIMENTS = ("derma", "derma_pt", "derma_small", "lidc", "lidc_small", "pneumonia", "pneumonia_small")


def published_rows(experiments: Sequence[str] = PAPER_EXPERIMENTS, reference_dir: str | os.PathLike | None = None,
                   *, offline: bool | None = None) -> tuple[pd.DataFrame | None, str]:
    """The paper's published rows of ``experiments`` (``paper.load_model_rows``) and a phrase saying which,
    or ``(None, why)`` when the file cannot be had here (offline without ``PEPR_REFERENCE_DIR``): a report
    goes on without the paper, saying so."""
    from ..paper.reference import load_model_rows

    try:
        rows = load_model_rows(list(experiments), reference_dir, offline=offline)
    except PeprError as exc:
        return None, f"the paper's published rows are not available here ({exc})"
    return rows, f"the paper's {len(rows)} model-experiments in {', '.join(experiments)}"


def paper_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """The paper's published rows (``paper.load_model_rows``) as a study's runs table: one seed (0), the
    regime from ``pretrained``, size ``"published"``, every row counted as learned (no floor recorded)."""
    rows = rows[rows["experiment"].isin(PAPER_EXPERIMENTS)]
    return pd.DataFrame({
        "run_id": "paper-" + rows["experiment"] + "-" + rows["model"], "experiment": "paper-" + rows["experiment"],
        "model": rows["model"], "seed": 0, "dataset": rows["dataset"], "size": "published",
        "fraction": rows["fraction"].astype(float), "num_params": rows["num_params"].astype(float),
        "regime": np.where(rows["pretrained"].astype(bool), "imagenet-full", "scratch"),
        "test_acc": rows["test_acc"].astype(float), "energy_kwh": rows["energy_kwh"].astype(float),
        "co2_g": rows["co2_g"].astype(float), "above_floor": True,
    }).reset_index(drop=True)


def paper_effects(rows: pd.DataFrame, *, resources: Mapping[str, str], by: str = "pepr_e", seed: int = 0,
                  n_boot: int = 50, n_perm: int = 200) -> pd.DataFrame:
    """Per claim, the paper's own effect in our claim's unit (``paper_effect``) and how many units it
    rests on (``paper_units``); NaN where the paper ran no such comparison. Only the estimates are used
    (the paper's 131 models per experiment need no test here), so few resamples do."""
    runs = paper_runs(rows)
    res = {k: v for k, v in resources.items() if v in runs.columns}
    table = verdict_table(runs, resources=res, by=by, seed=seed, n_boot=n_boot, n_perm=n_perm)
    ran = ~table["verdict"].str.startswith("not testable")
    return pd.DataFrame({"claim": table["claim"], "paper_effect": table["estimate"].where(ran),
                         "paper_units": table["n"].where(ran)})


def with_paper_effects(verdicts: pd.DataFrame, effects: pd.DataFrame | None) -> pd.DataFrame:
    """``verdicts`` with ``paper_effect`` beside each claim; an inconclusive verdict's ``why`` says
    whether the design's detectable effect is smaller than the paper's (so it could have seen it)."""
    out = verdicts.copy()
    paper = (effects.set_index("claim")["paper_effect"] if effects is not None and len(effects)
             else pd.Series(dtype=float))
    out["paper_effect"] = out["claim"].map(paper).astype(float)
    for i, row in out[out["verdict"] == "inconclusive"].iterrows():
        if effects is None:
            note = "the paper's rows were not available to compare"
        elif not np.isfinite(row["paper_effect"]):
            note = "the paper ran no such comparison"
        elif not np.isfinite(row["detectable"]):
            note = f"the paper's own effect: {row['paper_effect']:+.3g}"
        else:
            could = abs(row["paper_effect"]) >= row["detectable"]
            note = (f"the paper's own effect, {row['paper_effect']:+.3g}, is "
                    + ("within what the design detects: it would have seen it" if could
                       else "smaller than the design detects: it could not have seen it"))
        out.loc[i, "why"] = f"{row['why']}; {note}"
    return out


def _shared_scores(table: pd.DataFrame, perf: str, cost: str) -> pd.DataFrame:
    return pepr(table, perf, {"shared": cost})


def _paper_experiment(dataset: str, fraction: float, regime: str) -> str | None:
    """The paper's experiment at our dataset and fraction, in our regime where the paper ran it (its
    pneumonia and LIDC runs are all fine-tuned from ImageNet, so our scratch runs meet those)."""
    from ..paper.reference import matching_experiments

    same = matching_experiments(dataset, fraction, regime != "scratch")
    return (same or matching_experiments(dataset, fraction) or [None])[0]


def ranks_beside_paper(ok: pd.DataFrame, rows: pd.DataFrame, *, cost: str = "energy_kwh",
                       regime: str = "scratch") -> pd.DataFrame:
    """For each of our experiments (``regime``, at a fraction the paper ran) and the models it shares with
    the paper's matching experiment: accuracy and PePR on each side (our seed means; PePR min-max over
    the shared models on each side) and the ranks by each (1 = best). Empty when nothing is shared."""
    cols = ["experiment", "paper_experiment", "model", "num_params", "test_acc", "paper_test_acc", "pepr",
            "paper_pepr", "rank_acc", "paper_rank_acc", "rank_pepr", "paper_rank_pepr"]
    ours = ok[ok["regime"] == regime]
    parts = []
    for (exp, ds, frac), g in ours.groupby(["experiment", "dataset", "fraction"], sort=True):
        target = _paper_experiment(ds, frac, regime)
        theirs = rows[rows["experiment"] == target] if target else rows.iloc[:0]
        mine = g.groupby("model", as_index=False).agg(num_params=("num_params", "first"), test_acc=("test_acc", "mean"),
                                                       cost=(cost, "mean"))
        both = mine.merge(theirs[["model", "test_acc", "energy_kwh"]].rename(
            columns={"test_acc": "paper_test_acc", "energy_kwh": "paper_cost"}), on="model")
        both = both.dropna(subset=["test_acc", "cost", "paper_test_acc", "paper_cost"])
        if len(both) < 2:
            continue
        both["pepr"] = _shared_scores(both, "test_acc", "cost")["pepr_shared"]
        both["paper_pepr"] = _shared_scores(both, "paper_test_acc", "paper_cost")["pepr_shared"]
        for col, rank in (("test_acc", "rank_acc"), ("paper_test_acc", "paper_rank_acc"), ("pepr", "rank_pepr"),
                          ("paper_pepr", "paper_rank_pepr")):
            both[rank] = both[col].rank(ascending=False, method="average")
        parts.append(both.assign(experiment=exp, paper_experiment=target))
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def rank_agreement_with_paper(beside: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0,
                              level: float = 0.95) -> pd.DataFrame:
    """Kendall's tau-b between our ranking and the paper's, per experiment and measure (accuracy, PePR),
    with a bootstrap interval over the shared models and the test's p."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    rows = []
    for exp, g in beside.groupby("experiment", sort=True):
        for measure, a, b in (("accuracy", "test_acc", "paper_test_acc"), ("PePR-E", "pepr", "paper_pepr")):
            x, y = g[a].to_numpy(float), g[b].to_numpy(float)
            tau, p = stats.kendalltau(x, y)
            draws = rng.integers(0, len(x), size=(n_boot, len(x)))
            boot = np.array([stats.kendalltau(x[d], y[d])[0] for d in draws])
            boot = boot[np.isfinite(boot)]
            tail = (1 - level) / 2
            rows.append({"experiment": exp, "paper_experiment": g["paper_experiment"].iloc[0], "measure": measure,
                         "models": len(g), "tau": tau, "ci_lo": np.quantile(boot, tail) if len(boot) else np.nan,
                         "ci_hi": np.quantile(boot, 1 - tail) if len(boot) else np.nan, "p": p})
    return pd.DataFrame(rows, columns=["experiment", "paper_experiment", "measure", "models", "tau", "ci_lo",
                                       "ci_hi", "p"])


def paper_beside_plot(beside: pd.DataFrame, agreement: pd.DataFrame):
    """Our rank against the paper's, one panel per experiment and measure: on the diagonal, the two
    studies order the shared models alike; each panel's title gives Kendall's tau with its interval."""
    import matplotlib.pyplot as plt

    exps = sorted(beside["experiment"].unique())
    measures = (("accuracy", "rank_acc", "paper_rank_acc"), ("PePR-E", "rank_pepr", "paper_rank_pepr"))
    fig, axes = plt.subplots(len(exps), 2, figsize=(8.4, 3.6 * len(exps)), squeeze=False)
    for i, exp in enumerate(exps):
        g = beside[beside["experiment"] == exp]
        n = len(g)
        for j, (measure, ours, theirs) in enumerate(measures):
            ax = axes[i, j]
            ax.plot([1, n], [1, n], color="0.7", lw=1, zorder=0, label="same order")
            ax.scatter(g[theirs], g[ours], s=28, color="C0" if j == 0 else "C2", zorder=2)
            for _, r in g.iterrows():
                ax.annotate(r["model"], (r[theirs], r[ours]), fontsize=6.5, xytext=(3, 2), textcoords="offset points")
            a = agreement[(agreement["experiment"] == exp) & (agreement["measure"] == measure)]
            tau = (f"tau = {a['tau'].iloc[0]:.2f} [{a['ci_lo'].iloc[0]:.2f}, {a['ci_hi'].iloc[0]:.2f}]" if len(a)
                   else "")
            ax.set_title(f"{exp} vs paper's {g['paper_experiment'].iloc[0]}\n{measure}: {tau}", fontsize=9)
            ax.set_xlabel(f"paper's rank by {measure} (1 = best, of {n} shared models)")
            ax.set_ylabel(f"our rank by {measure} (1 = best)")
            ax.set_xlim(0.5, n + 0.5)
            ax.set_ylim(n + 0.5, 0.5)  # rank 1 at the top left: the diagonal runs down to the right
    fig.tight_layout()
    return fig
