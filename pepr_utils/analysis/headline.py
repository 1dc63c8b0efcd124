"""The report's headline figure: accuracy and PePR against model size, our models beside the paper's.

The paper's question at the top of every report is whether small models win on PePR while large ones
barely win on accuracy. :func:`paper_beside` picks the paper's published rows that match our experiments
(same dataset, regime and training fraction; :func:`pepr_utils.paper.load_model_rows`) and says in
words which it drew, or why none (offline without ``PEPR_REFERENCE_DIR``): the figure then says so
instead of failing. :func:`headline_plot` draws both, each with its least-squares trend in log size.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..errors import PeprError
from .columns import label
from .plots import axis_label

#: Colours of the two sides (tab10's blue for ours; the paper's rows are context, so grey).
OURS, PAPER = "#1f77b4", "0.55"


def paper_experiments_like(scored: pd.DataFrame) -> tuple[list[str], str]:
    """The paper's experiments run as ours were (dataset, pretrained or not, training fraction), and how
    they were chosen: the same set-up; else the paper's experiments on our datasets; else all of them.
    Our linear probes and checkpoint starts match no experiment of the paper (it fine-tuned from ImageNet)."""
    from ..paper.reference import EXPERIMENTS, matching_experiments

    mine = scored[["dataset", "regime", "fraction"]].drop_duplicates() if len(scored) else scored
    same = {name for r in mine.itertuples() if r.regime in ("scratch", "imagenet-full")
            for name in matching_experiments(r.dataset, r.fraction, r.regime == "imagenet-full")}
    if same:
        return [n for n in EXPERIMENTS if n in same], "the same dataset, regime and training fraction as ours"
    on_ours = {name for ds in (mine["dataset"].astype(str).unique() if len(mine) else []) for name in matching_experiments(ds)}
    if on_ours:
        return [n for n in EXPERIMENTS if n in on_ours], "our datasets, though none in our regime and fraction"
    return list(EXPERIMENTS), "none on our datasets, so all of the paper's experiments"


def paper_beside(scored: pd.DataFrame, reference_dir: str | os.PathLike | None = None,
                 *, offline: bool | None = None) -> tuple[pd.DataFrame | None, str]:
    """The paper's rows to draw beside ``scored`` (our model table) and a phrase saying which they are;
    ``(None, why)`` when the published file cannot be had here (the report goes on without them)."""
    from .paper_compare import published_rows

    names, how = paper_experiments_like(scored)
    rows, said = published_rows(names, reference_dir, offline=offline)
    return rows, (said if rows is None else f"{said} ({how})")


def trend_line(x: pd.Series, y: pd.Series, *, logx: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares line of ``y`` on (log10) ``x`` over the range of ``x``, and Spearman's rho;
    empty arrays and NaN with fewer than 3 points or one distinct ``x``."""
    part = pd.DataFrame({"x": x, "y": y}).dropna()
    part = part[part["x"] > 0] if logx else part
    if len(part) < 3 or part["x"].nunique() < 2:
        return np.array([]), np.array([]), np.nan
    lx = np.log10(part["x"].astype(float)) if logx else part["x"].astype(float)
    slope, intercept = np.polyfit(lx, part["y"].astype(float), 1)
    grid = np.linspace(lx.min(), lx.max(), 50)
    rho = float(part[["x", "y"]].corr(method="spearman").iloc[0, 1])
    return (10 ** grid if logx else grid), slope * grid + intercept, rho


def headline_plot(ours: pd.DataFrame, paper: pd.DataFrame | None = None, *, score: str = "pepr_e",
                  perf: str = "test_acc", x: str = "num_params", paper_note: str = "",
                  size: tuple[float, float] = (11.0, 3.3)) -> Figure:
    """``perf`` (left) and ``score`` (right) against model size ``x`` (log axis): our model-experiments in
    colour with a solid trend, the paper's rows (``paper``, same column names) in grey with a dashed
    one; Spearman's rho of each in the panel's title. The legend sits under the panels, off the data;
    without ``paper`` it says the paper's rows are missing (``paper_note``: why)."""
    for col in (x, perf, score):
        if col not in ours.columns:
            raise PeprError(f"column {col!r} not found for the headline figure")
    if ours.dropna(subset=[x, perf]).empty:
        raise PeprError(f"no model with both {x!r} and {perf!r} to draw")
    fig, axes = plt.subplots(1, 2, figsize=size, layout="constrained")
    for ax, y in zip(axes, (perf, score), strict=True):
        rhos = []
        if paper is not None and y in paper.columns:
            p = paper.dropna(subset=[x, y])
            ax.scatter(p[x], p[y], s=9, color=PAPER, alpha=0.35, linewidth=0, zorder=1)
            gx, gy, rho = trend_line(p[x], p[y])
            ax.plot(gx, gy, color="0.25", ls="--", lw=1.4, zorder=2)
            rhos.append(f"paper ρ = {rho:.2f}" if np.isfinite(rho) else "paper: no trend")
        o = ours.dropna(subset=[x, y])
        ax.scatter(o[x], o[y], s=30, color=OURS, edgecolor="white", linewidth=0.5, zorder=3)
        gx, gy, rho = trend_line(o[x], o[y])
        ax.plot(gx, gy, color=OURS, lw=2, zorder=4)
        rhos.insert(0, f"ours ρ = {rho:.2f}" if np.isfinite(rho) else "ours: too few models for a trend")
        ax.set_xscale("log")
        ax.set_xlabel(axis_label(x) + ", log scale")
        ax.set_ylabel(axis_label(y))
        ax.set_title(f"{label(y)}: " + ", ".join(rhos), fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    n_ours = len(ours.dropna(subset=[x, perf]))
    handles = [Line2D([], [], color=OURS, marker="o", lw=2, label=f"ours: {n_ours} model-experiments, trend")]
    if paper is not None:
        handles.append(Line2D([], [], color="0.25", marker="o", markerfacecolor=PAPER, markeredgewidth=0,
                              ls="--", lw=1.4, label=f"paper: {len(paper)} model-experiments, trend"))
    else:
        handles.append(Line2D([], [], color="none", label="paper: rows not available here"
                              + (" (see the caption)" if paper_note else "")))
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False, fontsize=9)
    return fig
