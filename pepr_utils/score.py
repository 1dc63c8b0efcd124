"""The PePR score: performance per resource.

``PePR_R = P / (1 + R_n)`` (Selvan et al., 2024), with P a performance in [0, 1] (test accuracy in
the paper) and R_n a normalised resource:

* ``minmax`` (the paper's): ``R_n = (R - min R) / (max R - min R)`` over the models of one group
  (one experiment). The cheapest model keeps its full P, the most expensive one gets P/2, so the
  score always lies in [P/2, P].
* ``reference``: ``R_n = R / R_ref`` for a fixed ``R_ref`` per resource, so that scores from
  different studies (different sets of models) can be compared; the score lies in (0, P].

Edge cases, all deliberate:

* a group of one model, or a group whose resources are all equal: ``R_n = 0``, PePR equals P;
* a missing P or resource (NaN): that row's R_n and PePR are NaN, never a silent 0; the other rows
  are normalised over the values present;
* a negative, infinite or non-numeric P or resource, a P above 1 (accuracy given in percent: pass
  ``perf_scale=100``), or a non-positive reference: :class:`PeprError`. An infinite resource would
  make every other model's R_n 0 and rank the infinite one first, so it is refused, never scored.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .errors import PeprError
from .resources import RESOURCES

#: The paper's four resources and the column each one reads in its published results.
PAPER_RESOURCES: dict[str, str] = {r.key: r.paper_column for r in RESOURCES}


def pepr_value(p: float | np.ndarray | pd.Series, r_n: float | np.ndarray | pd.Series):
    """``P / (1 + R_n)`` for already-normalised resources (scalars or arrays)."""
    return p / (1.0 + r_n)


def _numeric(df: pd.DataFrame, col: str, role: str) -> pd.Series:
    if col not in df.columns:
        raise PeprError(f"{role} column {col!r} not found; available columns: {', '.join(map(str, df.columns))}")
    flags = df[col][df[col].map(lambda v: isinstance(v, (bool, np.bool_)))]
    if len(flags):  # pandas reads TRUE/FALSE as booleans, which would score as 1.0/0.0
        raise PeprError(f"{role} column {col!r} has true/false values (e.g. {bool(flags.iloc[0])} in row {flags.index[0]}); "
                        "only numbers or empty cells (missing) are accepted")
    values = pd.to_numeric(df[col], errors="coerce")
    bad = df[col][values.isna() & df[col].notna()]
    if len(bad):
        raise PeprError(f"{role} column {col!r} has non-numeric values (e.g. {bad.iloc[0]!r} in row {bad.index[0]}); "
                        "only numbers or empty cells (missing) are accepted")
    values = values.astype(float)
    infinite = values[np.isinf(values)]
    if len(infinite):
        raise PeprError(f"{role} column {col!r} has infinite values (e.g. {infinite.iloc[0]} in row {infinite.index[0]}); "
                        "only finite numbers or empty cells (missing) are accepted")
    negative = values[values < 0]
    if len(negative):
        raise PeprError(f"{role} column {col!r} has negative values (e.g. {negative.iloc[0]} in row {negative.index[0]}); "
                        "resources and performance must be >= 0")
    return values


def _performance(df: pd.DataFrame, col: str, scale: float) -> pd.Series:
    """P in [0, 1]: the column divided by ``scale`` (100 for percentages), checked."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
        raise PeprError(f"performance scale {scale!r} must be a positive number (e.g. 100 for percentages)")
    p = _numeric(df, col, "performance") / float(scale)
    above = p[p > 1]
    if len(above):
        percent = 1.5 < float(above.max()) <= 100  # 1.0000001 is a rounding slip, not a percentage
        hint = " (given in percent? pass --perf-scale 100)" if percent else ""
        raise PeprError(f"performance column {col!r} has values above 1 after dividing by {scale:g} (e.g. "
                        f"{float(above.iloc[0] * scale)!r} in row {above.index[0]}); P must lie in [0, 1]{hint}")
    return p


def check_rows(df: pd.DataFrame, group: str | list[str] | None = None, model: str | None = "model") -> None:
    """A table min-max PePR can score: every row in a group (no empty group cell, which would pool those
    rows into one extra group) and, when a ``model`` column exists, each model once per group (two rows
    of one model would both be scored, and each would stretch the other's min-max range)."""
    cols = [] if group is None else [group] if isinstance(group, str) else list(group)
    for col in cols:
        if col in df.columns and df[col].isna().any():
            row = df.index[df[col].isna()][0]
            raise PeprError(f"group column {col!r} is empty in row {row}; every row needs its group (experiment)")
    if model is None or model not in df.columns:
        return
    keys = [c for c in cols if c in df.columns] + [model]
    repeated = df[df.duplicated(keys, keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        where = ", ".join(f"{c}={first[c]!r}" for c in keys[:-1])
        raise PeprError(f"model {first[model]!r} has {int((df[keys] == first[keys]).all(axis=1).sum())} rows"
                        + (f" in group {where}" if where else "") + f" (rows {', '.join(map(str, repeated.index[:2]))}); "
                        "give one row per model and group (average seeds first)")


def minmax_normalise(values: pd.Series, groups: pd.Series | None = None) -> pd.Series:
    """Min-max normalise within each group; a group without spread gets 0, NaN stays NaN."""
    def one(v: pd.Series) -> pd.Series:
        lo, hi = v.min(skipna=True), v.max(skipna=True)
        if not np.isfinite(hi - lo) or hi == lo:
            return v.where(v.isna(), 0.0)
        return (v - lo) / (hi - lo)

    if groups is None:
        return one(values)
    return values.groupby(groups, group_keys=False, dropna=False, sort=False).transform(one)


def pepr(
    df: pd.DataFrame,
    perf: str,
    resources: Mapping[str, str],
    group: str | list[str] | None = None,
    reference: Mapping[str, float] | None = None,
    prefix: str = "pepr_",
    perf_scale: float = 1.0,
) -> pd.DataFrame:
    """Return a copy of ``df`` with ``<name>_n`` and ``<prefix><name>`` for each resource.

    ``resources`` maps a short name (``e``, ``energy``...) to the column holding that resource.
    ``group`` names the column(s) that define one experiment for min-max normalisation; ``reference``
    maps resource names to fixed ``R_ref`` values and switches those resources to ``R / R_ref``.
    ``perf_scale`` divides the performance column first (100 when it holds percentages); P must end up
    in [0, 1].
    """
    if not resources:
        raise PeprError("no resource given; pass at least one NAME=COLUMN pair")
    p = _performance(df, perf, perf_scale)
    out = df.copy()
    reference = dict(reference or {})
    unknown_refs = set(reference) - set(resources)
    if unknown_refs:
        raise PeprError(f"reference given for unknown resource(s) {sorted(unknown_refs)}; resources: {sorted(resources)}")
    groups = None
    if group is not None:
        cols = [group] if isinstance(group, str) else list(group)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise PeprError(f"group column(s) {missing} not found; available columns: {', '.join(map(str, df.columns))}")
        groups = df[cols].astype(str).agg("|".join, axis=1) if len(cols) > 1 else df[cols[0]]
    for name, col in resources.items():
        r = _numeric(df, col, f"resource {name!r}")
        if name in reference:
            ref = float(reference[name])
            if not np.isfinite(ref) or ref <= 0:
                raise PeprError(f"reference for resource {name!r} must be a positive number, got {reference[name]!r}")
            r_n = r / ref
        else:
            r_n = minmax_normalise(r, groups)
        out[f"{name}_n"] = r_n
        out[f"{prefix}{name}"] = pepr_value(p, r_n)
    return out


def parse_pairs(pairs: list[str], what: str, cast=str) -> dict:
    """Parse ``NAME=VALUE`` command-line pairs, with a one-line error for a malformed or repeated one."""
    out = {}
    for item in pairs or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise PeprError(f"bad {what} {item!r}; expected NAME=VALUE, e.g. e=energy_kwh")
        if name in out:
            raise PeprError(f"{what} name {name!r} given twice ({item!r}); each NAME may appear once")
        try:
            out[name] = cast(value)
        except ValueError as exc:
            raise PeprError(f"bad {what} {item!r}: {value!r} is not a number") from exc
    return out
