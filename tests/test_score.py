"""PePR: hand-computed cases, edge cases, properties, and the `pepr score` command."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pepr_utils.cli.command import main
from pepr_utils.errors import PeprError
from pepr_utils.score import minmax_normalise, pepr, pepr_value


def frame(**cols) -> pd.DataFrame:
    return pd.DataFrame(cols)


def test_hand_computed_minmax():
    # energies 1, 2, 3 -> R_n 0, 0.5, 1 -> PePR = P, P/1.5, P/2
    df = frame(model=list("abc"), acc=[0.9, 0.6, 0.8], energy=[1.0, 2.0, 3.0])
    out = pepr(df, "acc", {"e": "energy"})
    assert out["e_n"].tolist() == [0.0, 0.5, 1.0]
    assert out["pepr_e"].tolist() == pytest.approx([0.9, 0.4, 0.4])
    assert "pepr_e" not in df.columns  # input left untouched


def test_groups_are_normalised_separately():
    df = frame(exp=["x", "x", "y", "y"], acc=[0.5, 0.5, 1.0, 1.0], t=[10.0, 20.0, 100.0, 300.0])
    out = pepr(df, "acc", {"t": "t"}, group="exp")
    assert out["t_n"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert out["pepr_t"].tolist() == pytest.approx([0.5, 0.25, 1.0, 0.5])


def test_several_group_columns_and_resources():
    df = frame(d=["a", "a", "a", "a"], f=[1, 1, 2, 2], acc=[0.8] * 4, e=[1.0, 3.0, 5.0, 9.0], m=[2.0, 1.0, 1.0, 1.0])
    out = pepr(df, "acc", {"e": "e", "m": "m"}, group=["d", "f"])
    assert out["e_n"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert out["m_n"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert out["pepr_m"].tolist() == pytest.approx([0.4, 0.8, 0.8, 0.8])


def test_single_model_group_scores_its_performance():
    out = pepr(frame(acc=[0.73], e=[5.0]), "acc", {"e": "e"})
    assert out["e_n"].tolist() == [0.0]
    assert out["pepr_e"].tolist() == [0.73]


def test_equal_resources_give_zero_normalised_resource():
    out = pepr(frame(acc=[0.7, 0.6, 0.5], e=[2.0, 2.0, 2.0]), "acc", {"e": "e"})
    assert out["e_n"].tolist() == [0.0, 0.0, 0.0]
    assert out["pepr_e"].tolist() == [0.7, 0.6, 0.5]


def test_missing_values_give_nan_never_zero():
    df = frame(acc=[0.9, np.nan, 0.8, 0.7], e=[1.0, 2.0, np.nan, 3.0])
    out = pepr(df, "acc", {"e": "e"})
    # min/max over the values present (1 and 3)
    assert out["e_n"].iloc[0] == 0.0 and out["e_n"].iloc[3] == 1.0
    assert out["e_n"].iloc[1] == 0.5
    assert math.isnan(out["pepr_e"].iloc[1])  # missing P
    assert math.isnan(out["e_n"].iloc[2]) and math.isnan(out["pepr_e"].iloc[2])  # missing R
    assert out["pepr_e"].iloc[3] == pytest.approx(0.35)


def test_all_missing_resource_in_group_stays_nan():
    out = pepr(frame(acc=[0.9, 0.8], e=[np.nan, np.nan]), "acc", {"e": "e"})
    assert out["pepr_e"].isna().all()


def test_fixed_reference_normalisation():
    df = frame(exp=["x", "y"], acc=[0.8, 0.8], e=[0.5, 2.0])
    out = pepr(df, "acc", {"e": "e"}, group="exp", reference={"e": 1.0})
    assert out["e_n"].tolist() == [0.5, 2.0]  # not per group: comparable across studies
    assert out["pepr_e"].tolist() == pytest.approx([0.8 / 1.5, 0.8 / 3.0])


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_reference_must_be_positive(bad):
    with pytest.raises(PeprError, match="positive"):
        pepr(frame(acc=[0.8], e=[1.0]), "acc", {"e": "e"}, reference={"e": bad})


def test_negative_resource_is_an_error():
    with pytest.raises(PeprError, match=r"'e' has negative"):
        pepr(frame(acc=[0.8, 0.9], e=[1.0, -2.0]), "acc", {"energy": "e"})


def test_negative_performance_is_an_error():
    with pytest.raises(PeprError, match="performance"):
        pepr(frame(acc=[-0.1, 0.9], e=[1.0, 2.0]), "acc", {"e": "e"})


def test_non_numeric_resource_is_an_error():
    with pytest.raises(PeprError, match=r"non-numeric.*'lots'"):
        pepr(frame(acc=[0.8, 0.9], e=["1.0", "lots"]), "acc", {"e": "e"})


def test_missing_columns_are_named():
    with pytest.raises(PeprError, match="'energy'.*available columns: acc, e"):
        pepr(frame(acc=[0.8], e=[1.0]), "acc", {"e": "energy"})
    with pytest.raises(PeprError, match="group column"):
        pepr(frame(acc=[0.8], e=[1.0]), "acc", {"e": "e"}, group="experiment")
    with pytest.raises(PeprError, match="no resource"):
        pepr(frame(acc=[0.8], e=[1.0]), "acc", {})


def test_minmax_normalise_without_groups():
    assert minmax_normalise(pd.Series([4.0, 2.0, 3.0])).tolist() == [1.0, 0.0, 0.5]


resources = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(resources, st.floats(min_value=0, max_value=1))
def test_minmax_pepr_lies_between_half_p_and_p(values, p):
    out = pepr(frame(acc=[p] * len(values), r=values), "acc", {"r": "r"})
    scores = out["pepr_r"].to_numpy()
    assert np.all(scores <= p + 1e-12) and np.all(scores >= p / 2 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(resources, st.floats(min_value=0.01, max_value=1))
def test_pepr_falls_as_the_resource_grows(values, p):
    out = pepr(frame(acc=[p] * len(values), r=values), "acc", {"r": "r"})
    order = np.argsort(values, kind="stable")
    ranked = out["pepr_r"].to_numpy()[order]
    assert np.all(np.diff(ranked) <= 1e-12)  # more resource never scores higher at equal P
    if max(values) > min(values):
        assert ranked[0] == pytest.approx(p) and ranked[-1] == pytest.approx(p / 2)


def test_pepr_value_is_vectorised():
    assert pepr_value(np.array([1.0, 0.5]), np.array([0.0, 1.0])).tolist() == [1.0, 0.25]


# ------------------------------------------------------------------ the `pepr score` command
def test_cli_score_writes_columns(tmp_path):
    src = tmp_path / "results.csv"
    frame(exp=["x", "x"], acc=[0.9, 0.8], kwh=[1.0, 2.0]).to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    rc = main(["score", str(src), "--perf", "acc", "--resource", "e=kwh", "--group", "exp", "-o", str(out)])
    assert rc == 0
    scored = pd.read_csv(out)
    assert scored["pepr_e"].tolist() == pytest.approx([0.9, 0.4])
    assert scored["e_n"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    "content, args, message",
    [
        (None, ["--perf", "acc", "--resource", "e=kwh"], "not found"),
        ("acc,kwh\n0.9,1\n", ["--perf", "acc", "--resource", "e=energy"], "'energy' not found"),
        ("acc,kwh\n0.9,1\n", ["--perf", "accuracy", "--resource", "e=kwh"], "'accuracy' not found"),
        ("acc,kwh\n0.9,1\n0.8,many\n", ["--perf", "acc", "--resource", "e=kwh"], "non-numeric"),
        ("acc,kwh\n0.9,1\n", ["--perf", "acc", "--resource", "kwh"], "NAME=VALUE"),
        ("acc,kwh\n0.9,1\n", ["--perf", "acc", "--resource", "e=kwh", "--reference", "e=big"], "not a number"),
    ],
)
def test_cli_score_bad_input(tmp_path, capsys, content, args, message):
    src = tmp_path / "in.csv"
    if content is not None:
        src.write_text(content)
    out = tmp_path / "out.csv"
    rc = main(["score", str(src), *args, "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == ([src] if content is not None else [])
