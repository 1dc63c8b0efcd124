"""Notebook 01 executed by papermill on the three study datasets at 28 px.

The kernel inherits PEPR_DATA_DIR and PEPR_CACHE_DIR (the session cache), so LIDC is decoded once per
test session however many tests load it.
"""

from __future__ import annotations

import json

import pandas as pd
import papermill
import pytest
from conftest import NOTEBOOKS

from pepr_utils.data.datasets import fraction_indices, load_dataset
from pepr_utils.data.preparation import indices_checksum

EXPECTED = {
    "dermamnist": {"splits": (7007, 1003, 2005), "classes": 7,
                   "sha256": "2f5f46a8741e3d3d00122b20471749b3431522ad3ba7ed9b30c9082b29fb95b9"},
    "pneumoniamnist": {"splits": (4708, 524, 624), "classes": 2,
                       "sha256": "8c555c787c4594882835129e3cee6a02cf9b8a6d8aed162b512521a5697177c8"},
    "lidc": {"splits": None, "classes": 2,
             "sha256": "be5714b1d692b8bc8356c8796c0fe9684a30ecb26df12a9a60369fef9e6103c5"},
}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(EXPECTED))
def test_notebook_01_runs_and_writes_its_manifest(dataset, data_dir, session_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("PEPR_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PEPR_CACHE_DIR", str(session_cache))
    monkeypatch.setenv("PEPR_OFFLINE", "1")
    out = tmp_path / "out"
    papermill.execute_notebook(
        str(NOTEBOOKS / "01_data_prep.ipynb"), str(tmp_path / "01_data_prep.ipynb"),
        parameters={"dataset": dataset, "size": 28, "fractions": [1.0, 0.1, 0.01], "seed": 0, "out_dir": str(out)},
        kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False,
    )
    assert {p.name for p in out.iterdir()} == {"manifest.json", "split_table.csv", "pixel_stats.csv", "samples.png"}
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((out / "manifest.json").read_text())
    want = EXPECTED[dataset]
    assert manifest["dataset"] == dataset and manifest["size"] == 28 and manifest["n_classes"] == want["classes"]
    assert manifest["source"]["sha256"] == want["sha256"] and manifest["source"]["official"] is False
    sizes = tuple(manifest["splits"][s]["n"] for s in ("train", "val", "test"))
    if want["splits"]:
        assert sizes == want["splits"]
    else:
        assert sum(sizes) == 15548 and manifest["patients_in_two_splits"] == 0
    assert manifest["nested"] and [f["fraction"] for f in manifest["fractions"]] == [1.0, 0.1, 0.01]
    ds = load_dataset(dataset, 28, cache_dir=session_cache, progress=False) if dataset == "lidc" else None
    if ds is not None:  # the notebook's checksum identifies the very indices the library draws
        idx = fraction_indices(ds.splits["train"].labels, 0.1, 0)
        assert manifest["fractions"][1]["indices_sha256"] == indices_checksum(idx)
    table = pd.read_csv(out / "split_table.csv")
    assert list(table["split"]) == ["train", "train", "train", "val", "test"]
    assert table["n"].iloc[0] == sizes[0] and table["n"].iloc[3:].tolist() == list(sizes[1:])
    stats = pd.read_csv(out / "pixel_stats.csv")
    assert len(stats) == 3 * (3 if dataset == "dermamnist" else 1) and stats["mean"].between(0, 1).all()
