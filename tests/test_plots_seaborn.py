"""Figures drawn by seaborn where it does the job (issue 21.7): the same content, less hand-made code."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
from matplotlib.collections import QuadMesh

from pepr_utils import plots


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
