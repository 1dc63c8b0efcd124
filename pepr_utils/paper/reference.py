"""The PePR paper's published raw results (Selvan et al. 2024), loaded and checked.

The files come from the authors' repository at one pinned commit, each with a known sha256, so what
we reproduce is exactly what they published. Where they are looked for, in order:

1. the reference dir (``reference_dir=`` argument or ``PEPR_REFERENCE_DIR``), for air-gapped machines;
2. the download cache ``<cache_dir>/reference`` (``PEPR_CACHE_DIR``, default ``~/.cache/pepr``);
3. a download from GitHub into that cache, unless offline (``PEPR_OFFLINE``).

A file whose checksum differs is never used. Loaded tables get an ``experiment`` column (the paper's
``dataset`` column names experiments, e.g. ``derma_pt`` = DermaMNIST, pretrained, all training data).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import settings
from ..data.download import fetch
from ..errors import PeprError
from ..fileio import file_digest

#: The authors' repository and the commit whose ``data/`` folder we reproduce.
REPOSITORY = "saintslab/PePR"
COMMIT = "ce087aafcdce4a5b636152d170475a6df5f4c3d7"
URL_TEMPLATE = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/data/{{name}}"

#: The published files and their sha256 checksums.
FILES: dict[str, str] = {
    "all_results.csv": "1f624ef1a68433aa2c56b83831bb30a1e06c285b56531fde8056f06a42394e98",
    "full_data_pepr_dataset_level.csv": "b218cf9f09eec0036c0db1b08da4b2fcc655383a58b4681b2fbea7e951bed575",
    "model_names.csv": "e26300f35a182a893c90d581684c0d61ed016f6e4f8bfcca370b817ea2bf9e7f",
}

#: Test accuracy after each of the 10 epochs; the paper's P is the last one, ``test_09``.
TEST_COLUMNS: list[str] = [f"test_{i:02d}" for i in range(10)]

#: Columns each file must have (the analysis relies on them).
REQUIRED_COLUMNS: dict[str, list[str]] = {
    "all_results.csv": ["model", "num_param", "memR", "energy", "co2", "train_time", *TEST_COLUMNS,
                        "type", "efficient", "dataset"],
    "full_data_pepr_dataset_level.csv": ["model", "num_param", "memR", "energy", "co2", "train_time",
                                         *TEST_COLUMNS, "type", "efficient", "dataset",
                                         "E_n", "C_n", "T_n", "M_n", "pepr_e", "pepr_c", "pepr_t", "pepr_m"],
    "model_names.csv": ["model", "num_param", "type", "efficient"],
}

#: The eight experiments: dataset, whether training started from ImageNet weights, and the fraction of
#: the training set used. Derma is the only experiment trained from scratch (the paper's
#: pretrained-vs-scratch comparison is ``derma_pt`` vs ``derma``). The files do not state the fractions:
#: "small" is the paper's 10 %; ``derma_smallest`` is a smaller subset whose last-epoch time (about
#: 2.4 s vs 27 s at 100 % and 4.6 s at 10 %, of which ~2 s is the test pass) fits 1 %.
EXPERIMENTS: dict[str, dict] = {
    "derma": {"dataset": "dermamnist", "pretrained": False, "fraction": 1.0},
    "derma_pt": {"dataset": "dermamnist", "pretrained": True, "fraction": 1.0},
    "derma_small": {"dataset": "dermamnist", "pretrained": True, "fraction": 0.1},
    "derma_smallest": {"dataset": "dermamnist", "pretrained": True, "fraction": 0.01},
    "lidc": {"dataset": "lidc", "pretrained": True, "fraction": 1.0},
    "lidc_small": {"dataset": "lidc", "pretrained": True, "fraction": 0.1},
    "pneumonia": {"dataset": "pneumoniamnist", "pretrained": True, "fraction": 1.0},
    "pneumonia_small": {"dataset": "pneumoniamnist", "pretrained": True, "fraction": 0.1},
}


def reference_file(
    name: str,
    reference_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
) -> Path:
    """Path to the verified published file ``name`` (see the module docstring for where it is looked for)."""
    if name not in FILES:
        raise PeprError(f"unknown reference file {name!r}; known: {', '.join(FILES)}")
    expected = FILES[name]
    searched = []
    local = settings.reference_dir(reference_dir)
    if local is not None:
        candidate = local / name
        searched.append(str(candidate))
        if candidate.is_file():
            got = file_digest(candidate, "sha256")
            if got != expected:
                raise PeprError(f"checksum mismatch for {candidate}: sha256 {got}, expected {expected} "
                                f"(the file published at {REPOSITORY}@{COMMIT[:7]})")
            return candidate
    cached = settings.cache_dir(cache_dir) / "reference" / name
    searched.append(str(cached))
    if settings.offline(offline) and not (cached.is_file() and file_digest(cached, "sha256") == expected):
        raise PeprError(f"reference file {name} not found (searched: {', '.join(searched)}) and offline mode "
                        f"forbids downloading it; set PEPR_REFERENCE_DIR to a folder holding {', '.join(FILES)}")
    return fetch(URL_TEMPLATE.format(name=name), cached, sha256=expected, offline=offline)


def _read(name: str, reference_dir, cache_dir, offline) -> pd.DataFrame:
    path = reference_file(name, reference_dir, cache_dir=cache_dir, offline=offline)
    df = pd.read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in df.columns]
    if missing:
        raise PeprError(f"{path} lacks column(s) {missing}; expected the published columns "
                        f"{', '.join(REQUIRED_COLUMNS[name])}")
    return df


def _with_experiment(df: pd.DataFrame, path_hint: str) -> pd.DataFrame:
    unknown = sorted(set(df["dataset"]) - set(EXPERIMENTS))
    if unknown:
        raise PeprError(f"{path_hint} has unknown experiment(s) {unknown}; known: {', '.join(EXPERIMENTS)}")
    out = df.copy()
    out.insert(1, "experiment", out["dataset"].astype(str))
    return out


def load_results(
    reference_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
) -> pd.DataFrame:
    """The raw results (``all_results.csv``): 131 models x 8 experiments, with an ``experiment`` column."""
    return _with_experiment(_read("all_results.csv", reference_dir, cache_dir, offline), "all_results.csv")


def load_published_scores(
    reference_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
) -> pd.DataFrame:
    """The paper's scored rows (``full_data_pepr_dataset_level.csv``) with normalised resources and PePR."""
    name = "full_data_pepr_dataset_level.csv"
    return _with_experiment(_read(name, reference_dir, cache_dir, offline), name)


def load_models(
    reference_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
) -> pd.DataFrame:
    """The 131 models (``model_names.csv``): parameter count, type (CNN/Other) and the efficient flag."""
    return _read("model_names.csv", reference_dir, cache_dir, offline)


def matching_experiments(dataset: str, fraction: float | None = None, pretrained: bool | None = None) -> list[str]:
    """The paper's experiments on ``dataset``, at ``fraction`` and from ImageNet weights or not when given
    (:data:`EXPERIMENTS`): the one place our experiments are matched to the paper's."""
    return [name for name, e in EXPERIMENTS.items() if e["dataset"] == dataset
            and (fraction is None or np.isclose(float(fraction), e["fraction"]))
            and (pretrained is None or bool(pretrained) == e["pretrained"])]


#: The published scored rows' columns, renamed to the names our run records give the same quantity
#: (:func:`load_model_rows`); the last-epoch time and the GPU memory reserved have no twin in a run
#: record, so they keep names of their own (those of :func:`~pepr_utils.paper.reproduction.paper_top_table`).
MODEL_ROW_COLUMNS: dict[str, str] = {
    "num_param": "num_params", "test_09": "test_acc", "energy": "energy_kwh", "co2": "co2_g",
    "train_time": "last_epoch_s", "memR": "mem_reserved_gb",
}
#: The columns :func:`load_model_rows` ranks within each experiment (1 = best, ties share the best rank).
RANKED: tuple[str, ...] = ("test_acc", "pepr_e", "pepr_c", "pepr_t", "pepr_m")


def load_model_rows(
    experiments: Sequence[str] | None = None,
    reference_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
) -> pd.DataFrame:
    """The paper's published rows, one per model and experiment, in our run records' column names, so they
    sit beside our own models (the report's headline figure; our ranks beside the paper's).

    Columns: ``model``, ``experiment`` (the paper's name, e.g. ``derma_pt``) with its ``dataset``,
    ``pretrained`` and ``fraction`` (:data:`EXPERIMENTS`), ``num_params``, ``type``, ``efficient``,
    ``test_acc`` (after the 10th epoch, the paper's P), ``energy_kwh``, ``co2_g``, ``last_epoch_s``,
    ``mem_reserved_gb``, the published ``pepr_e/c/t/m`` (min-max within the experiment over its 131
    models) and ``rank_<col>`` for each of :data:`RANKED` within the experiment. ``experiments`` keeps
    those (unknown names are a PeprError); raises PeprError when the file cannot be had (see
    :func:`reference_file`)."""
    rows = load_published_scores(reference_dir, cache_dir=cache_dir, offline=offline)
    if experiments is not None:
        unknown = sorted(set(experiments) - set(EXPERIMENTS))
        if unknown:
            raise PeprError(f"unknown paper experiment(s) {unknown}; known: {', '.join(EXPERIMENTS)}")
        rows = rows[rows["experiment"].isin(list(experiments))]
    info = pd.DataFrame.from_dict(EXPERIMENTS, orient="index").rename_axis("experiment").reset_index()
    out = rows.drop(columns=["dataset"]).rename(columns=MODEL_ROW_COLUMNS).merge(info, on="experiment", how="left")
    keep = ["model", "experiment", "dataset", "pretrained", "fraction", "num_params", "type", "efficient",
            "test_acc", "energy_kwh", "co2_g", "last_epoch_s", "mem_reserved_gb", "pepr_e", "pepr_c", "pepr_t",
            "pepr_m"]
    out = out[keep].reset_index(drop=True)
    for col in RANKED:
        out[f"rank_{col}"] = out.groupby("experiment")[col].rank(ascending=False, method="min").astype(int)
    return out
