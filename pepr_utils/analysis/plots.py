"""Figures shared by the paper reproduction (notebook 00) and the analysis of our own runs (notebook 04).

Every function takes a tidy :class:`pandas.DataFrame` (one row per model and experiment) plus the
*names* of the columns to draw, so the same figure works on the paper's published results
(``num_param``, ``test_09``, ``energy``...) and on our run records (``num_params``, ``test_acc``,
``energy_kwh``...). Functions return a :class:`matplotlib.figure.Figure` and never show or save it;
:func:`save_figure` and :func:`save_table` write results atomically (PNG+PDF, CSV+Markdown), so an
interrupted notebook never leaves half-written files behind.

Axis labels come from :data:`AXIS_LABELS` (with honest units) unless given explicitly; parameter
counts are drawn on a log axis because the models span two orders of magnitude.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import PeprError
from ..fileio import atomic_write_csv, atomic_write_figure, atomic_write_text
from ..resources import RESOURCES
from ..score import pepr_value

#: Default axis labels (with units) for the column names of the paper's files and of our run records:
#: the resources' from their table (pepr_utils.resources), the paper's own columns where they differ.
AXIS_LABELS: dict[str, str] = {
    **{r.column: r.axis_label for r in RESOURCES},
    **{r.paper_column: r.axis_label for r in RESOURCES},
    **{f"pepr_{r.key}": f"PePR-{r.key.upper()} (score, 0–1)" for r in RESOURCES},
    "train_time": "training time, last epoch (s)",
    "memR": "GPU memory reserved (GB)",
    "num_param": "trainable parameters (count)",
    "num_params": "trainable parameters (count)",
    "trainable_params": "trainable parameters (count)",
    "test_09": "test accuracy after 10 epochs (fraction correct)",
    "test_acc": "test accuracy (fraction correct)",
    "implied_power_kw": "implied mean power (kW)",
}

#: Distinct markers for up to eight hue levels (colour-blind readers can still tell them apart).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def axis_label(column: str) -> str:
    """The label (with unit) used for ``column``; the column name itself when unknown."""
    return AXIS_LABELS.get(column, column.replace("_", " "))


def _require(df: pd.DataFrame, *columns: str | None) -> None:
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise PeprError(f"column(s) {missing} not found for plotting; available: {', '.join(map(str, df.columns))}")


def _levels(values: pd.Series, order: Sequence | None) -> list:
    if order is not None:
        return list(order)
    present = values.dropna().unique().tolist()
    try:
        return sorted(present)
    except TypeError:
        return present


def _grid(n: int, col_wrap: int, panel_size: tuple[float, float], sharey: bool = True, sharex: bool = True):
    ncols = max(1, min(n, col_wrap))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
                             sharex=sharex, sharey=sharey, squeeze=False, layout="constrained")
    flat = axes.ravel().tolist()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _hue_kws(data: pd.DataFrame, hue: str | None, order: Sequence | None = None) -> dict:
    """seaborn's arguments for one colour (tab10) and one marker (:data:`MARKERS`) per ``hue`` level."""
    if not hue:
        return {}
    levels = _levels(data[hue], order)
    return {"hue": hue, "hue_order": levels, "style": hue, "style_order": levels, "palette": "tab10",
            "markers": [MARKERS[i % len(MARKERS)] for i in range(len(levels))]}


def _trend(ax, part: pd.DataFrame, x: str, y: str, logx: bool, logy: bool) -> None:
    """A least-squares line of ``y`` on ``x`` straight as drawn (log10 where the axis is log), and Spearman's rho
    in the panel's title (off the data, where a text inside the axes could cover points)."""
    fit_part = part[((part[x] > 0) if logx else True) & ((part[y] > 0) if logy else True)]
    if len(fit_part) <= 2 or fit_part[x].nunique() <= 1:
        return
    lx = np.log10(fit_part[x].astype(float)) if logx else fit_part[x].astype(float)
    ly = np.log10(fit_part[y].astype(float)) if logy else fit_part[y].astype(float)
    slope, intercept = np.polyfit(lx, ly, 1)
    grid = np.linspace(lx.min(), lx.max(), 50)
    fit = slope * grid + intercept
    ax.plot(10 ** grid if logx else grid, 10 ** fit if logy else fit, color="0.3", lw=1, ls="--")
    rho = part[[x, y]].corr(method="spearman").iloc[0, 1]
    title = ax.get_title()
    ax.set_title((f"{title} · " if title else "") + f"Spearman ρ = {rho:.2f}", fontsize=10)


def scatter_vs_params(
    df: pd.DataFrame,
    y: str,
    *,
    x: str = "num_params",
    hue: str | None = None,
    hue_order: Sequence | None = None,
    facet: str | None = None,
    facet_order: Sequence | None = None,
    col_wrap: int = 4,
    logx: bool = True,
    logy: bool = False,
    sharey: bool = True,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    trend: bool = False,
    panel_size: tuple[float, float] = (4.2, 3.4),
    point_size: float = 28,
    alpha: float = 0.85,
) -> Figure:
    """Scatter ``y`` against model size ``x`` (log axis), coloured by ``hue``, one panel per ``facet`` value:
    seaborn's ``relplot``.

    Examples: energy vs parameters (``y="energy_kwh"``), test accuracy vs parameters (``y="test_acc"``),
    PePR-E vs parameters (``y="pepr_e"``), with ``hue="type"`` and ``facet="experiment"``.
    ``trend=True`` adds a least-squares line of ``y`` on log10 ``x`` per panel and reports Spearman's rho,
    a quick read of whether bigger models score higher or lower.
    """
    import seaborn as sns

    _require(df, x, y, hue, facet)
    data = df.dropna(subset=[x, y])
    if data.empty:
        raise PeprError(f"no rows with both {x!r} and {y!r} to plot")
    panels = _levels(data[facet], facet_order) if facet else None
    g = sns.relplot(data=data, x=x, y=y, **_hue_kws(data, hue, hue_order), col=facet, col_order=panels,
                    col_wrap=min(col_wrap, len(panels)) if facet else None, height=panel_size[1],
                    aspect=panel_size[0] / panel_size[1], facet_kws={"sharex": True, "sharey": sharey},
                    s=point_size, alpha=alpha, linewidth=0.4)  # the legend: seaborn's, right of the panels
    g.set(xscale="log" if logx else "linear", yscale="log" if logy else "linear")
    if facet:
        g.set_titles("{col_name}", size=10)
    g.set_axis_labels(xlabel or axis_label(x), ylabel or axis_label(y))
    for panel, ax in (g.axes_dict.items() if facet else [(None, g.ax)]):
        if trend:
            _trend(ax, data if panel is None else data[data[facet] == panel], x, y, logx, logy)
        ax.grid(True, which="major", alpha=0.3)
    if title:
        g.figure.suptitle(title)
        g.tight_layout()
    return g.figure


def metrics_vs_params(
    df: pd.DataFrame,
    ys: Sequence[str],
    *,
    x: str = "num_params",
    hue: str | None = None,
    hue_order: Sequence | None = None,
    ylabels: Sequence[str] | None = None,
    ylabel: str = "score (0–1)",
    sharey: bool = True,
    logx: bool = True,
    trend: bool = False,
    title: str | None = None,
    panel_size: tuple[float, float] = (4.2, 3.4),
) -> Figure:
    """One panel per column in ``ys`` against model size (e.g. PePR-C, PePR-M, PePR-T vs parameters), the
    shared y axis labelled ``ylabel``."""
    _require(df, x, hue, *ys)
    long = pd.concat(
        [df[[x] + ([hue] if hue else [])].assign(_metric=(ylabels[i] if ylabels else axis_label(y)), _value=df[y])
         for i, y in enumerate(ys)],
        ignore_index=True,
    )
    order = list(ylabels) if ylabels else [axis_label(y) for y in ys]
    fig = scatter_vs_params(long, "_value", x=x, hue=hue, hue_order=hue_order, facet="_metric", facet_order=order,
                            col_wrap=len(ys), logx=logx, sharey=sharey, ylabel=ylabel, trend=trend,
                            panel_size=panel_size, title=title)
    return fig


def pepr_profile(
    *,
    resolution: int = 201,
    levels: int = 11,
    resource: str = "E",
    ax: plt.Axes | None = None,
) -> Figure:
    """The PePR profile: PePR = P / (1 + R_n) as a contour over performance P and normalised resource R_n.

    Both axes run over [0, 1], as under the paper's min-max normalisation; iso-PePR lines show how much
    performance a model must gain to justify using more of the resource.
    """
    r = np.linspace(0.0, 1.0, resolution)
    p = np.linspace(0.0, 1.0, resolution)
    rr, pp = np.meshgrid(r, p)
    z = pepr_value(pp, rr)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.2, 4.3), layout="constrained")
    else:
        fig = ax.figure
    filled = ax.contourf(rr, pp, z, levels=np.linspace(0, 1, levels), cmap="viridis")
    lines = ax.contour(rr, pp, z, levels=np.linspace(0.1, 0.9, 9), colors="white", linewidths=0.6)
    ax.clabel(lines, fmt="%.1f", fontsize=7)
    fig.colorbar(filled, ax=ax, label=f"PePR-{resource}")
    ax.set_xlabel(f"normalised resource ${resource}_n$ (0 = cheapest, 1 = most expensive)")
    ax.set_ylabel("performance $P$ (e.g. test accuracy, 0–1)")
    ax.set_title(f"PePR-{resource} = P / (1 + ${resource}_n$)")
    return fig


def paired_violins(
    wide: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    *,
    labels: Sequence[tuple[str, str]] | None = None,
    titles: Sequence[str] | None = None,
    pvalues: Sequence[float | None] | None = None,
    ylabel: str = "test accuracy",
    connect: bool = True,
    panel_size: tuple[float, float] = (3.4, 4.0),
    col_wrap: int = 4,
) -> Figure:
    """Side-by-side violins for paired samples, one panel per ``(column_a, column_b)`` pair: seaborn's
    ``catplot`` (violins cut at the data's range, quartiles inside) with every value as a point.

    ``wide`` has one row per model (the pairing unit) and one column per condition, e.g. ``scratch``,
    ``pretrained``, ``frac_100``, ``frac_10``. ``connect`` draws a faint line per model between its two
    values, which shows the paired differences the violins hide. ``pvalues`` (one per pair) are
    annotated over a bracket.
    """
    import seaborn as sns

    from .formatting import fmt_p  # the report's p-value wording, on the figure too

    for a, b in pairs:
        _require(wide, a, b)
    parts = [wide[[a, b]].dropna() for a, b in pairs]
    for (a, b), part in zip(pairs, parts, strict=True):
        if part.empty:
            raise PeprError(f"no rows with both {a!r} and {b!r} to compare")
    long = pd.concat([pd.DataFrame({"panel": i, "side": side, "value": part.iloc[:, side]})
                      for i, part in enumerate(parts) for side in (0, 1)], ignore_index=True)
    g = sns.catplot(data=long, x="side", y="value", hue="side", col="panel", col_wrap=min(col_wrap, len(pairs)),
                    kind="violin", palette="tab10", cut=0, inner="quart", alpha=0.45, legend=False, sharex=False,
                    height=panel_size[1], aspect=panel_size[0] / panel_size[1])
    np.random.seed(0)  # seaborn's jitter draws from numpy's global generator: the same figure every time
    g.map_dataframe(sns.stripplot, x="side", y="value", hue="side", palette="tab10", jitter=0.06, size=2.5,
                    alpha=0.6, legend=False)
    g.set_axis_labels("", ylabel)
    g.set_titles("")
    top_limit = -np.inf
    for i, ax in g.axes_dict.items():
        part, names = parts[i], (labels[i] if labels else pairs[i])
        if connect:  # one faint line per model between its two values: the paired differences
            ax.plot([[0] * len(part), [1] * len(part)], part.to_numpy().T, color="0.5", alpha=0.15, lw=0.6)
        ax.set_xticks([0, 1], [f"{names[0]}\n(n={len(part)})", f"{names[1]}\n(n={len(part)})"])
        if titles:
            ax.set_title(titles[i], fontsize=10)
        if pvalues is not None and pvalues[i] is not None:
            top, span = float(part.max().max()), float(part.max().max() - part.min().min()) or 1.0
            y, h = top + 0.06 * span, 0.03 * span
            ax.plot([0, 0, 1, 1], [y, y + h, y + h, y], color="k", lw=1)
            ax.text(0.5, y + 1.3 * h, fmt_p(pvalues[i]), ha="center", va="bottom", fontsize=9)
            top_limit = max(top_limit, y + 0.2 * span)
        ax.grid(True, axis="y", alpha=0.3)
    if np.isfinite(top_limit):
        g.axes.flat[0].set_ylim(top=top_limit)  # shared y: one limit that leaves room for every annotation
    return g.figure


def distribution_by_group(
    df: pd.DataFrame,
    y: str,
    group: str,
    *,
    hue: str | None = None,
    hue_order: Sequence | None = None,
    group_order: Sequence | None = None,
    logy: bool = False,
    ylabel: str | None = None,
    title: str | None = None,
    hline: float | None = None,
    hline_label: str | None = None,
    size: tuple[float, float] = (9.0, 4.2),
) -> Figure:
    """A jittered strip plot of ``y`` per ``group`` value (x axis), coloured by ``hue``.

    Used for the audit's implied power per experiment (rows with shared vs unique energy); equally
    useful for any per-run quantity by experiment, e.g. energy per dataset in our own runs.
    """
    _require(df, y, group, hue)
    data = df.dropna(subset=[y])
    groups = _levels(data[group], group_order)
    hue_levels = _levels(data[hue], hue_order) if hue else [None]
    import seaborn as sns

    fig, ax = plt.subplots(figsize=size, layout="constrained")
    np.random.seed(0)  # seaborn's jitter draws from numpy's global generator: the same figure every time
    sns.stripplot(data=data.assign(**{group: data[group].astype(str)}), x=group, y=y, hue=hue,
                  order=[str(g) for g in groups], hue_order=hue_levels if hue else None, dodge=bool(hue),
                  palette="tab10" if hue else None, size=np.sqrt(10), alpha=0.7, jitter=0.25, legend=bool(hue), ax=ax)
    if hline is not None:
        ax.axhline(hline, color="0.3", ls="--", lw=1, label=hline_label)
    ax.tick_params(axis="x", labelrotation=30)
    plt.setp(ax.get_xticklabels(), ha="right")
    ax.set_xlabel(group)
    ax.set_ylabel(ylabel or axis_label(y))
    if logy:
        ax.set_yscale("log")
    ax.grid(True, axis="y", alpha=0.3)
    if hue or hline_label:
        ax.legend(title=hue, fontsize=8, title_fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def count_heatmap(
    matrix: pd.DataFrame,
    *,
    title: str | None = None,
    cbar_label: str = "count",
    size: tuple[float, float] = (6.8, 5.6),
) -> Figure:
    """A labelled heatmap of a square count matrix (e.g. models sharing a value between two experiments)."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=size, layout="constrained")
    # Empty (NaN) cells stay blank; annotation colours follow each cell's shade.
    sns.heatmap(matrix.astype(float), cmap="Reds", vmin=0, annot=True, fmt=".0f", annot_kws={"fontsize": 8},
                square=True, cbar_kws={"label": cbar_label}, ax=ax)
    ax.tick_params(axis="x", labelrotation=40)
    plt.setp(ax.get_xticklabels(), ha="right")
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_xlabel("")
    ax.set_ylabel("")
    if title:
        ax.set_title(title)
    return fig


# ----------------------------------------------------------------- analysis of our runs (notebook 04)
def pepr_profile_points(
    df: pd.DataFrame,
    *,
    x: str = "e_n",
    y: str = "test_acc",
    hue: str | None = None,
    resource: str = "E",
    label_top: int = 3,
    score: str | None = None,
) -> Figure:
    """The PePR profile (:func:`pepr_profile`) with models drawn at (normalised resource, performance).

    ``label_top`` names the best models by ``score`` (default ``pepr_<resource>``) so the reader sees
    where the iso-PePR lines put them.
    """
    import seaborn as sns

    _require(df, x, y, hue)
    data = df.dropna(subset=[x, y])
    if data.empty:
        raise PeprError(f"no rows with both {x!r} and {y!r} to place on the PePR profile")
    fig = pepr_profile(resource=resource)
    ax = fig.axes[0]
    sns.scatterplot(data=data, x=x, y=y, **_hue_kws(data, hue), s=30 if len(data) <= 100 else 12, alpha=0.95,
                    linewidth=0.4, legend=bool(hue), ax=ax)
    score = score or f"pepr_{resource.lower()}"
    if label_top and score in data.columns and "model" in data.columns:
        top = data.nlargest(label_top, score)
        for i, row in enumerate(top.itertuples()):
            ax.annotate(str(row.model), (getattr(row, x), getattr(row, y)), xytext=(18, -8 - 11 * i),
                        textcoords="offset points", fontsize=7, color="white",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "black", "alpha": 0.6, "lw": 0},
                        arrowprops={"arrowstyle": "-", "color": "white", "lw": 0.5})
    if hue:  # below the axes: the colour bar holds the right, and points fill the corners
        sns.move_legend(ax, "upper center", bbox_to_anchor=(0.5, -0.16), title=hue, fontsize=7, title_fontsize=7,
                        ncol=2 if data[hue].nunique() > 3 else 1, frameon=False)
    return fig


def pareto_plot(
    df: pd.DataFrame,
    *,
    x: str = "energy_kwh",
    y: str = "test_acc",
    front: str = "on_front",
    facet: str | None = "experiment",
    label: str | None = "model",
    highlight: str | None = None,
    highlight_label: str | None = None,
    logx: bool = True,
    col_wrap: int = 3,
    panel_size: tuple[float, float] = (4.4, 3.6),
) -> Figure:
    """Cost ``x`` against performance ``y`` with the Pareto front (boolean column ``front``) as a step line.

    Dominated models are grey, front models coloured and named (``label``); ``highlight`` (a boolean
    column, e.g. the top PePR model) is circled.
    """
    _require(df, x, y, front, facet, label, highlight)
    data = df.dropna(subset=[x, y])
    if data.empty:
        raise PeprError(f"no rows with both {x!r} and {y!r} for a Pareto plot")
    panels = _levels(data[facet], None) if facet else [None]
    fig, axes = _grid(len(panels), col_wrap, panel_size, sharey=False, sharex=False)
    cmap = plt.get_cmap("tab10")
    for ax, panel in zip(axes, panels, strict=True):
        part = data if panel is None else data[data[facet] == panel]
        on = part[part[front].astype(bool)].sort_values(x)
        off = part[~part[front].astype(bool)]
        ax.scatter(off[x], off[y], s=22, color="0.7", label="dominated")
        ax.step(on[x], on[y], where="post", color=cmap(0), lw=1.2, alpha=0.8)
        ax.scatter(on[x], on[y], s=36, color=cmap(0), edgecolor="white", linewidth=0.5, label="Pareto front", zorder=3)
        if highlight:
            hi = part[part[highlight].astype(bool)]
            ax.scatter(hi[x], hi[y], s=140, facecolor="none", edgecolor=cmap(3), linewidth=1.5,
                       label=highlight_label or highlight, zorder=4)
        low, high = part[x].min(), part[x].max()
        use_log = bool(logx and low > 0 and high / low >= 10)  # a log axis pays off over a decade or more
        if use_log:
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            decades = np.log10(high / low)
            ax.set_xscale("log")  # plain numbers at 1-2-5 steps read better than 2x10^-2 minor labels
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades < 2 else (1.0,)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        if label:
            _label_points(ax, on, part, x, y, label, use_log, priority=hi.index if highlight else ())
        if panel is not None:
            ax.set_title(str(panel), fontsize=9)
        ax.set_xlabel(axis_label(x))
        ax.set_ylabel(axis_label(y))
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()  # under the panels: a legend inside could cover points
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8, frameon=False)
    return fig


def _label_points(ax, points: pd.DataFrame, panel: pd.DataFrame, x: str, y: str, label: str, logx: bool,
                  priority=()) -> None:
    """Name points without overlapping labels: ``priority`` rows first, then the ends of the front,
    then the rest; a label too close (as a fraction of the panel's range) to one already placed is left out."""
    if points.empty:
        return
    scale = (lambda v: np.log10(v.astype(float))) if logx else (lambda v: v.astype(float))  # noqa: E731
    all_x, all_y = scale(panel[x]), panel[y].astype(float)
    xs, ys = scale(points[x]), points[y].astype(float)
    span_x = float(all_x.max() - all_x.min()) or 1.0
    span_y = float(all_y.max() - all_y.min()) or 1.0
    first = [i for i in priority if i in points.index] + [points.index[0], points.index[-1]]
    order = list(dict.fromkeys(first + list(points.index)))
    placed: list[tuple[float, float]] = []
    for i in order:
        fx, fy = (xs[i] - all_x.min()) / span_x, (ys[i] - all_y.min()) / span_y
        if any(abs(fx - px) < 0.22 and abs(fy - py) < 0.08 for px, py in placed):
            continue
        placed.append((fx, fy))
        ax.annotate(str(points.at[i, label]), (points.at[i, x], points.at[i, y]), xytext=(3, -9),
                    textcoords="offset points", fontsize=7)


def value_heatmap(
    matrix: pd.DataFrame,
    *,
    title: str | None = None,
    cbar_label: str = "value",
    vmin: float = -1.0,
    vmax: float = 1.0,
    cmap: str = "RdBu",
    fmt: str = ".2f",
    size: tuple[float, float] | None = None,
) -> Figure:
    """A labelled heatmap of any matrix with a diverging colour scale (e.g. Kendall's tau per experiment);
    seaborn's heatmap, with cells that have no value on grey."""
    import seaborn as sns

    rows, cols = matrix.shape
    size = size or (max(4.5, 1.3 * cols + 3.0), max(2.6, 0.42 * rows + 1.6))
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    ax.set_facecolor("0.9")
    sns.heatmap(matrix.astype(float), ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, annot=True, fmt=fmt,
                annot_kws={"fontsize": 8}, cbar_kws={"label": cbar_label})
    ax.set_xticklabels([str(c) for c in matrix.columns], rotation=30, ha="right")
    ax.set(xlabel=None, ylabel=None, title=title)
    return fig


def interval_plot(
    df: pd.DataFrame,
    *,
    mean: str,
    lo: str,
    hi: str,
    label: str = "model",
    facet: str | None = "experiment",
    xlabel: str | None = None,
    col_wrap: int = 3,
    max_rows: int = 25,
) -> Figure:
    """A forest plot: one row per ``label`` with its mean and interval, best at the top, per ``facet``."""
    _require(df, mean, lo, hi, label, facet)
    data = df.dropna(subset=[mean])
    if data.empty:
        raise PeprError(f"no rows with {mean!r} for an interval plot")
    panels = _levels(data[facet], None) if facet else [None]
    n_rows = min(max_rows, int(data.groupby(facet).size().max()) if facet else len(data))
    fig, axes = _grid(len(panels), col_wrap, (4.4, 0.9 + 0.28 * n_rows), sharey=False, sharex=False)
    for ax, panel in zip(axes, panels, strict=True):
        part = (data if panel is None else data[data[facet] == panel]).nlargest(max_rows, mean)[::-1]
        ys = np.arange(len(part))
        err = np.vstack([part[mean] - part[lo], part[hi] - part[mean]])
        ax.errorbar(part[mean], ys, xerr=np.where(np.isfinite(err), err, 0), fmt="o", ms=4, capsize=2)
        ax.set_yticks(ys, part[label].astype(str), fontsize=7)
        ax.set_xlabel(xlabel or axis_label(mean))
        ax.grid(True, axis="x", alpha=0.3)
        if panel is not None:
            ax.set_title(str(panel), fontsize=9)
    return fig


def save_figure(
    fig: Figure,
    out_dir: str | os.PathLike,
    name: str,
    *,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = 150,
    close: bool = True,
) -> list[Path]:
    """Write ``fig`` as ``<out_dir>/<name>.<fmt>`` for each format, atomically; return the paths."""
    paths = [atomic_write_figure(Path(out_dir) / f"{name}.{fmt}", fig, dpi=dpi) for fmt in formats]
    if close:
        plt.close(fig)
    return paths


def save_table(
    df: pd.DataFrame,
    out_dir: str | os.PathLike,
    name: str,
    *,
    index: bool = False,
    floatfmt: str = ".4g",
) -> list[Path]:
    """Write ``df`` as ``<out_dir>/<name>.csv`` (full precision) and ``.md`` (rounded), atomically."""
    out = Path(out_dir)
    return [atomic_write_csv(out / f"{name}.csv", df, index=index),
            atomic_write_text(out / f"{name}.md", df.to_markdown(index=index, floatfmt=floatfmt) + "\n")]


def data_efficiency_plot(curve: pd.DataFrame, *, panel_size: tuple[float, float] = (4.2, 3.2)) -> Figure:
    """Accuracy minus scratch on all the data against the training fraction, one line per regime with
    its 95% interval, one panel per dataset and size (the table of
    :func:`pepr_utils.analysis.data_curve.data_efficiency`); the band between 0 and -margin is "matches"."""
    _require(curve, "dataset", "size", "regime", "fraction", "gap", "ci_lo", "ci_hi", "margin")
    if not len(curve):
        raise PeprError("no dataset has pretrained and scratch runs at 3 or more fractions for 2 or more models")
    panels = list(curve.groupby(["dataset", "size"], sort=True))
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_size[0] * len(panels), panel_size[1] + 0.5),
                             squeeze=False, sharey=True, layout="constrained")
    for ax, ((ds, size), g) in zip(axes[0], panels, strict=True):
        margin = float(g["margin"].iloc[0])
        ax.axhspan(-margin, 0, color="0.9", zorder=0, label=f"within {margin:g} of scratch on all data")
        ax.axhline(0, color="0.5", lw=0.8)
        for regime, r in g.sort_values("fraction").groupby("regime", sort=True):
            line = ax.plot(r["fraction"], r["gap"], marker="o", label=regime)[0]
            ax.fill_between(r["fraction"], r["ci_lo"], r["ci_hi"], color=line.get_color(), alpha=0.2)
        ax.set_xscale("log")
        fractions = sorted(g["fraction"].unique())  # the fractions run, as plain numbers (not 10^-1)
        ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xlabel("training fraction (share of the training split, log scale)")
        ax.set_title(f"{ds}, {int(size)} px")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("test accuracy − scratch on all data\n(fraction correct)")
    entries = {lab: h for ax in axes[0] for h, lab in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(entries.values(), entries.keys(), loc="outside lower center", ncol=len(entries), fontsize=8,
               frameon=False)  # under the panels, off the intervals
    return fig
