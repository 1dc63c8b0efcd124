"""Figures drawn by seaborn where it does the job (issue 21.7): the same content, less hand-made code."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection, PathCollection, QuadMesh

from pepr_utils.analysis import plots


def test_value_heatmap_is_seaborns_heatmap_with_the_values_written_in():
    matrix = pd.DataFrame([[0.5, -0.25], [np.nan, 1.0]], index=["derma", "pneumonia"], columns=["e vs t", "e vs acc"])
    fig = plots.value_heatmap(matrix, title="tau", cbar_label="Kendall's tau")
    ax = fig.axes[0]
    assert any(isinstance(c, QuadMesh) for c in ax.collections)  # sns.heatmap, not a hand-built imshow
    assert sorted(t.get_text() for t in ax.texts) == ["-0.25", "0.50", "1.00"]  # no value: no number
    assert [t.get_text() for t in ax.get_yticklabels()] == ["derma", "pneumonia"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["e vs t", "e vs acc"]
    assert ax.get_title() == "tau" and fig.axes[1].get_ylabel() == "Kendall's tau"
    matplotlib.pyplot.close(fig)


def _models(n: int = 24) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"num_params": 10 ** rng.uniform(5, 8, n), "energy_kwh": 10 ** rng.uniform(-3, -1, n),
                         "test_acc": rng.uniform(0.5, 0.9, n), "type": ["cnn", "vit", "mlp"] * (n // 3),
                         "experiment": ["derma", "derma", "pneumonia", "breast"] * (n // 4)})


def _points(ax) -> set[tuple[float, float]]:
    return {(round(float(x), 9), round(float(y), 9)) for c in ax.collections if isinstance(c, PathCollection)
            for x, y in c.get_offsets()}


def test_scatter_vs_params_is_seaborns_relplot_one_panel_per_facet_every_point_drawn():
    df = _models()
    df.loc[0, "energy_kwh"] = np.nan  # a row without a value is not drawn
    fig = plots.scatter_vs_params(df, "energy_kwh", hue="type", facet="experiment", logy=True, trend=True,
                                  facet_order=["pneumonia", "derma", "breast"], col_wrap=2)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    # each panel's title: its facet, then the trend's Spearman rho (off the data, where a text could cover points)
    assert [ax.get_title().split(" · ")[0] for ax in axes] == ["pneumonia", "derma", "breast"]
    assert all("Spearman ρ = " in ax.get_title() and not ax.texts for ax in axes)
    assert len(fig.axes) == 3 and axes[2].get_position().y0 < axes[0].get_position().y0  # wrapped after 2
    drawn = df.dropna(subset=["energy_kwh"])
    for ax in axes:
        part = drawn[drawn["experiment"] == ax.get_title().split(" · ")[0]]
        # seaborn's scatterplot: one collection per panel with every point of it (the hand-built one: one per hue)
        assert sum(isinstance(c, PathCollection) for c in ax.collections) == 1
        assert _points(ax) == {(round(x, 9), round(y, 9)) for x, y in zip(part["num_params"], part["energy_kwh"],
                                                                          strict=True)}
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert axes[0].get_ylabel() == "training energy (kWh)" and axes[-1].get_xlabel() == "trainable parameters (count)"
    legend = fig.legends[0]  # seaborn's figure legend: hue title, one entry per level, in order
    assert legend.get_title().get_text() == "type"
    assert [t.get_text() for t in legend.get_texts()] == ["cnn", "mlp", "vit"]
    matplotlib.pyplot.close(fig)


def test_scatter_vs_params_one_panel_colours_and_marks_each_hue_level():
    df = _models()
    fig = plots.scatter_vs_params(df, "test_acc", hue="type", logx=False, xlabel="size", ylabel="acc")
    (ax,) = fig.axes
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points.get_offsets()) == len(df)
    colours = {tuple(np.round(c[:3], 3)) for c in points.get_facecolors()}
    assert colours == {tuple(np.round(matplotlib.colormaps["tab10"](i)[:3], 3)) for i in range(3)}
    assert len({p.vertices.tobytes() for p in points.get_paths()}) == 3  # one marker per level
    assert (ax.get_xscale(), ax.get_yscale(), ax.get_xlabel(), ax.get_ylabel()) == ("linear", "linear", "size", "acc")
    assert fig.legends and not ax.get_legend()  # seaborn puts the legend beside the panel
    matplotlib.pyplot.close(fig)


def test_metrics_vs_params_one_seaborn_panel_per_metric():
    df = _models()
    fig = plots.metrics_vs_params(df, ["test_acc", "energy_kwh"], hue="experiment", ylabels=["acc", "energy"])
    assert [ax.get_title() for ax in fig.axes] == ["acc", "energy"]
    assert fig.axes[0].get_ylabel() == "score (0–1)"
    assert [len(_points(ax)) for ax in fig.axes] == [len(df), len(df)]
    assert all(sum(isinstance(c, PathCollection) for c in ax.collections) == 1 for ax in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["breast", "derma", "pneumonia"]
    matplotlib.pyplot.close(fig)


def test_paired_violins_are_seaborns_violins_with_quartiles_points_and_pair_lines():
    wide = pd.DataFrame({"a": [0.1, 0.2, 0.3, 0.5, 0.4], "b": [0.3, 0.4, 0.6, 0.5, np.nan],
                         "c": [0.5, 0.6, 0.7, 0.8, 0.9], "d": [0.6, 0.6, 0.9, 0.7, 0.95]})
    fig = plots.paired_violins(wide, [("a", "b"), ("c", "d")], labels=[("scratch", "pretrained"), ("10", "100")],
                               titles=["pretraining", "data"], pvalues=[0.01, None], ylabel="acc")
    ax0, ax1 = fig.axes
    assert (ax0.get_title(), ax1.get_title(), ax0.get_ylabel()) == ("pretraining", "data", "acc")
    assert [t.get_text() for t in ax0.get_xticklabels()] == ["scratch\n(n=4)", "pretrained\n(n=4)"]
    assert [t.get_text() for t in ax1.get_xticklabels()] == ["10\n(n=5)", "100\n(n=5)"]
    assert [t.get_text() for t in ax0.texts] == ["p = 0.010"] and not ax1.texts
    assert not any(isinstance(c, LineCollection) for c in ax0.collections)  # no matplotlib violinplot bars
    for ax, (a, b) in ((ax0, ("a", "b")), (ax1, ("c", "d"))):
        part = wide[[a, b]].dropna()
        strips = [c for c in ax.collections if isinstance(c, PathCollection)]
        for side, strip in enumerate(strips):  # every pair's value drawn as a point over its violin
            assert sorted(strip.get_offsets()[:, 1]) == sorted(part.iloc[:, side])
            assert np.all(np.abs(strip.get_offsets()[:, 0] - side) < 0.1)
        quartiles = sorted(round(line.get_ydata()[0], 6) for line in ax.lines if line.get_linestyle() == "--")
        expected = sorted(round(q, 6) for col in (a, b) for q in np.percentile(part[col], [25, 50, 75]))
        assert quartiles == expected  # seaborn's inner="quart", cut=0: the violin spans the data
        pair_lines = [line for line in ax.lines if list(line.get_xdata()) == [0, 1]]
        assert sorted((ln.get_ydata()[0], ln.get_ydata()[1]) for ln in pair_lines) == sorted(
            part.itertuples(index=False, name=None))
    matplotlib.pyplot.close(fig)


def test_pepr_profile_points_draws_every_model_once_with_the_legend_below():
    df = _models().assign(e_n=lambda d: np.linspace(0, 1, len(d)))
    df["pepr_e"], df["model"] = df["test_acc"] / (1 + df["e_n"]), [f"m{i}" for i in range(len(df))]
    fig = plots.pepr_profile_points(df, hue="experiment")
    ax = fig.axes[0]
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points.get_offsets()) == len(df)
    assert ax.get_xlabel().startswith("normalised resource")  # the profile's labels, not the column names
    assert ax.get_legend().get_title().get_text() == "experiment"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["breast", "derma", "pneumonia"]
    matplotlib.pyplot.close(fig)
