"""The cost to a target accuracy: what a run spends until its first epoch at the accuracy scratch on all the
data ends with, read from the per-epoch history (the unit of "pretraining cuts the compute needed").

A run on fewer images is cheaper by construction, so comparing whole runs would say nothing; this pairs
the pretrained and the scratch run of one architecture at the same fraction and asks which reaches the
target for less.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .claim_units import Units, experiments, pretrained_regime, with_learned


def cost_to_reach(history: pd.DataFrame | None, total: float, target: float) -> float:
    """``total`` cost of a run times the share of its epoch time spent until the first epoch whose test
    accuracy reaches ``target``; inf when no epoch does; NaN without a per-epoch test accuracy."""
    if history is None or "test_acc" not in history.columns or history["test_acc"].isna().all():
        return np.nan
    h = history.sort_values("epoch")
    times = (h["epoch_time_s"].fillna(0).to_numpy(float) if "epoch_time_s" in h.columns
             and h["epoch_time_s"].notna().all() and h["epoch_time_s"].sum() > 0 else np.ones(len(h)))
    reached = np.flatnonzero(h["test_acc"].to_numpy(float) >= target - 1e-9)
    if not len(reached):
        return np.inf
    return float(total * times[: reached[0] + 1].sum() / times.sum())


def target_cost_units(ok: pd.DataFrame, histories: pd.DataFrame | None, cost: str) -> Units | str:
    """One unit per architecture and training fraction run pretrained and from scratch (one dataset and
    size): per seed, the log of what the pretrained run at that fraction spends to reach the accuracy
    scratch on all the data ends with in that seed, over what the scratch run at the same fraction
    spends (read from the per-epoch history). A side that never reaches it is costlier than any that
    does (the largest value, for the ranks); when neither does, that seed gives no value. The reason,
    as a string, when nothing can be computed."""
    if cost not in ok.columns or ok[cost].isna().all():
        return f"{cost} not recorded"
    per_run = {} if histories is None or not len(histories) or "test_acc" not in histories.columns else {
        rid: h for rid, h in histories.dropna(subset=["test_acc"]).groupby("run_id")}
    if not per_run:
        return "no per-epoch history (evaluate every epoch to test it)"
    ok = with_learned(ok)
    exps, units = experiments(ok), Units(reason="a side at its floor or without per-epoch history")
    pre = pretrained_regime(exps)
    for (ds, size), g in exps.groupby(["dataset", "size"], sort=True):
        runs = ok[ok["experiment"].isin(g["experiment"])]
        scratch = runs[runs["regime"] == "scratch"]
        full = scratch[scratch["fraction"] == scratch["fraction"].max()]
        tuned = runs[runs["regime"] == pre]
        for model, fraction in sorted(set(zip(tuned["model"], tuned["fraction"], strict=True))):
            sides = [r[(r["model"] == model) & (r["fraction"] == fraction)] for r in (tuned, scratch)]
            target = full[full["model"] == model]
            if not len(sides[1]) or not len(target):
                continue
            units.of += 1
            value = _log_cost_ratio(*sides, target, per_run, cost)
            if value is None:
                units.left_out += 1
            else:
                units.add(value, f"{ds}-{size}-{fraction:g}")
    finite = [abs(v[np.isfinite(v)]).max() for v in units.values if np.isfinite(v).any()]
    cap = (max(finite) if finite else 1.0) + 1.0
    units.values = [np.clip(v, -cap, cap) for v in units.values]
    return units


def _log_cost_ratio(tuned: pd.DataFrame, scratch: pd.DataFrame, target: pd.DataFrame, per_run: Mapping,
                    cost: str) -> np.ndarray | None:
    if not (tuned["learned"].all() and scratch["learned"].all() and target["learned"].all()):
        return None
    values = []
    for s, goal in target.drop_duplicates("seed").set_index("seed")["test_acc"].items():
        spent = [[cost_to_reach(per_run.get(r["run_id"]), r[cost], goal) for _, r in side[side["seed"] == s].iterrows()]
                 for side in (tuned, scratch)]
        if not all(spent) or any(np.isnan(x) for side in spent for x in side):
            continue
        a, b = min(spent[0]), min(spent[1])
        if np.isfinite(a) or np.isfinite(b):
            values.append(np.log(a / b) if np.isfinite(a) and np.isfinite(b) else (np.inf if np.isinf(a) else -np.inf))
    return np.asarray(values, dtype=float) if values else None
