"""``pepr models check``: build every model of a catalogue at one input size and say which ones run.

It exercises the other three modules of :mod:`pepr_utils.models` together (the catalogue's names, the
input-size policy, the timm factory) and compares each model's size with the paper's count.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable
from typing import Any

import pandas as pd

from .catalogue import ModelRef, _catalogue_entry, resolve_model
from .input_plan import InputPlan, _check_size, _plan, _probing


# =========================================================================== checking the catalogue
def _imagenet_num_params(ref: ModelRef) -> int | None:
    """Parameters in timm's ImageNet configuration (3 channels, 1000 classes), the paper's count, built on
    the meta device so nothing is allocated."""
    import timm
    import torch

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(sum(p.numel() for p in timm.create_model(ref.timm_name).parameters()))
    except Exception:  # noqa: BLE001 - some models cannot be built on meta; the count is then unknown
        return None


def check_models(names: Iterable[str], size: int, *, progress: bool = True,
                 cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Build each model (3 channels, 2 classes, random init) and run forward+backward on 2 images at ``size``.

    One row per model: model, timm_name, exists, status (ok | resize | incompatible), run_size, reason,
    num_params (as built), num_params_imagenet (3 channels, 1000 classes), paper_num_params (from the
    catalogue, when listed), params_match_paper, check_s. Unknown names raise PeprError before any work.
    """
    import gc

    from tqdm.auto import tqdm

    size = _check_size(size)
    refs = [resolve_model(n) for n in names]
    rows = []
    bar = tqdm(refs, desc=f"models check {size}px", unit="model", disable=not progress)
    for ref in bar:
        bar.set_postfix_str(ref.name, refresh=False)
        start = time.perf_counter()
        entry = _catalogue_entry(ref.name) or {}
        row: dict[str, Any] = {"model": ref.name, "timm_name": ref.timm_name if ref.exists else None,
                               "exists": ref.exists}
        if not ref.exists:
            plan = InputPlan(ref.name, size, None, "incompatible", ref.note)
            n_params = n_imagenet = None
        else:
            with _probing(ref, cache_dir) as prober:
                prober.record(size, prober.run(size))  # always measured afresh: this is the check
                plan = _plan(prober, ref, size)
                prober.model()
                n_params = prober.num_params
            n_imagenet = _imagenet_num_params(ref)
            del prober
            gc.collect()
        paper = entry.get("paper_num_params")
        row.update(status=plan.status, run_size=plan.run_size, reason=plan.reason, error=plan.detail,
                   num_params=n_params, num_params_imagenet=n_imagenet, paper_num_params=paper,
                   params_match_paper=(None if paper is None or n_imagenet is None else bool(paper == n_imagenet)),
                   check_s=round(time.perf_counter() - start, 2))
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("run_size", "num_params", "num_params_imagenet", "paper_num_params"):
        if col in df:
            df[col] = df[col].astype("Int64")
    return df
