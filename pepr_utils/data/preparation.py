"""What notebook 01 and ``pepr data prepare`` show and write about one dataset at one size.

Both call these functions in the same order (:func:`prepare` is that order for the CLI): class counts
per split and per training fraction, a grid of sample images per class, pixel statistics, and a
manifest JSON that pins the exact data (source file, sha256, official or not) and the exact training
subsets (a checksum of each fraction's indices), so a later run can prove it used the same data.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import PeprError
from ..fileio import atomic_dir, atomic_write_bytes, atomic_write_json
from ..settings import output_dir
from .datasets import SPLITS, MedicalDataset, check_fraction, fraction_indices, load_dataset

SPLIT_TABLE_FILE = "split_table.csv"
PIXEL_STATS_FILE = "pixel_stats.csv"
SAMPLES_FILE = "samples.png"
MANIFEST_FILE = "manifest.json"


def default_out_dir(dataset: str, size: int) -> Path:
    """``<PEPR_OUTPUT_DIR>/data/<dataset>-<size>px``."""
    return output_dir() / "data" / f"{dataset}-{size}px"


def resolve_out_dir(out_dir: str | os.PathLike | None, dataset: str, size: int) -> Path:
    """``out_dir`` when given, else :func:`default_out_dir`; created if missing."""
    path = Path(out_dir) if out_dir not in (None, "") else default_out_dir(dataset, size)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_fractions(fractions: float | Sequence[float]) -> list[float]:
    """The distinct fractions, largest first, each checked to lie in (0, 1]."""
    values = [fractions] if isinstance(fractions, (int, float, str)) else list(fractions)
    return sorted({check_fraction(f) for f in values}, reverse=True)


# --------------------------------------------------------------------------- counts
def class_counts(labels, n_classes: int) -> np.ndarray:
    """Images per class (single label) or positives per label (multi-label)."""
    y = np.asarray(labels)
    if y.ndim == 2:
        return y.sum(axis=0).astype(np.int64)
    return np.bincount(y.astype(np.int64), minlength=n_classes)


def label_table(ds: MedicalDataset) -> pd.DataFrame:
    """Class index -> class name, as the dataset defines them."""
    return pd.DataFrame({"class": list(ds.info.labels), "name": list(ds.info.labels.values())})


def _row(ds: MedicalDataset, split: str, fraction: float, labels, meta) -> dict:
    row: dict = {"split": split, "fraction": fraction, "n": int(len(labels))}
    if meta is not None and "patient" in meta:
        row["patients"] = int(len(np.unique(meta["patient"])))
    counts = class_counts(labels, ds.n_classes)
    row.update({str(k): int(c) for k, c in enumerate(counts)})
    if ds.info.task == "binary-class" and len(labels):
        row["positive_%"] = round(100.0 * counts[1] / len(labels), 2)
    return row


def split_table(ds: MedicalDataset, fractions: float | Sequence[float] = (1.0,), seed: int = 0) -> pd.DataFrame:
    """One row per split and per training fraction: images, (patients,) counts per class (columns by class index)."""
    rows = []
    train = ds.splits["train"]
    for f in check_fractions(fractions):
        idx = fraction_indices(train.labels.numpy(), f, seed)
        meta = None if train.meta is None else {k: v[idx] for k, v in train.meta.items()}
        rows.append(_row(ds, "train", f, train.labels.numpy()[idx], meta))
        _warn_one_class(ds, train.labels.numpy()[idx], f)
    for split in SPLITS[1:]:
        s = ds.splits[split]
        rows.append(_row(ds, split, 1.0, s.labels.numpy(), s.meta))
    return pd.DataFrame(rows)


def _warn_one_class(ds: MedicalDataset, labels: np.ndarray, fraction: float) -> None:
    """Warn when a (single-label) training split holds one class: no classifier can be trained on it, and every
    model would score the majority-class accuracy (the labels are likely wrong, or the fraction too small)."""
    import warnings

    if labels.ndim == 2 and labels.shape[1] > 1 or not len(labels):
        return
    present = np.unique(labels.reshape(-1))
    if len(present) < 2:
        warnings.warn(f"{ds.name}: every training label{f' at fraction {fraction:g}' if fraction < 1 else ''} is "
                      f"class {present[0]} (of {ds.n_classes} classes); a classifier cannot be trained on one class "
                      "(check the labels)", stacklevel=3)


def indices_checksum(indices: np.ndarray) -> str:
    """sha256 of the indices as little-endian int64: the identity of a training subset."""
    return hashlib.sha256(np.ascontiguousarray(indices, dtype="<i8").tobytes()).hexdigest()


def fraction_summary(ds: MedicalDataset, fractions: float | Sequence[float], seed: int) -> dict:
    """Per fraction: n, class counts, index checksum; and whether the subsets are nested."""
    labels = ds.splits["train"].labels.numpy()
    entries, previous, nested = [], None, True
    for f in check_fractions(fractions):
        idx = fraction_indices(labels, f, seed)
        if previous is not None:
            nested = nested and bool(np.isin(idx, previous).all())
        previous = idx
        entries.append({"fraction": f, "seed": int(seed), "n_train": int(len(idx)),
                        "class_counts": class_counts(labels[idx], ds.n_classes).tolist(),
                        "indices_sha256": indices_checksum(idx)})
    return {"fractions": entries, "nested": nested}


# --------------------------------------------------------------------------- pixels
def pixel_stats(ds: MedicalDataset, chunk: int = 4096) -> pd.DataFrame:
    """Per split and channel: mean, std, min, median and max on one scale, 0..1 (the 0..255 pixel value / 255, as
    the models see them; one table mixing 0..1 and 0..255 misleads), and % black pixels.

    Computed from exact 256-bin histograms in chunks, so memory stays small at 224 px.
    """
    rows = []
    for split in SPLITS:
        images = ds.splits[split].images
        for c in range(images.shape[1]):
            hist = np.zeros(256, dtype=np.int64)
            for start in range(0, images.shape[0], chunk):
                hist += np.bincount(images[start:start + chunk, c].numpy().ravel(), minlength=256)
            total = hist.sum()
            levels = np.arange(256, dtype=np.float64)
            mean = float((hist * levels).sum() / total)
            var = float((hist * (levels - mean) ** 2).sum() / total)
            present = np.flatnonzero(hist)
            median = int(np.searchsorted(np.cumsum(hist), total / 2))
            rows.append({"split": split, "channel": c, "mean": round(mean / 255, 4), "std": round(var ** 0.5 / 255, 4),
                         "min": round(int(present[0]) / 255, 4), "median": round(median / 255, 4),
                         "max": round(int(present[-1]) / 255, 4),
                         "black_%": round(100.0 * hist[0] / total, 2)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figure
def sample_grid(ds: MedicalDataset, per_class: int = 8, seed: int = 0, split: str = "train"):
    """A figure with ``per_class`` random images of each class (one row per class)."""
    import matplotlib.pyplot as plt

    s = ds.splits[split]
    labels = s.labels.numpy()
    rng = np.random.default_rng(seed)
    n_classes = ds.n_classes
    fig, axes = plt.subplots(n_classes, per_class, figsize=(1.1 * per_class + 2.2, 1.1 * n_classes + 0.5),
                             squeeze=False)
    for k, name in enumerate(ds.info.labels.values()):
        members = np.flatnonzero(labels[:, k] > 0 if labels.ndim == 2 else labels == k)
        picks = rng.choice(members, size=min(per_class, len(members)), replace=False) if len(members) else []
        for j, ax in enumerate(axes[k]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(picks):
                img = s.images[picks[j]].numpy()
                if img.shape[0] == 1:
                    ax.imshow(img[0], cmap="gray", vmin=0, vmax=255)
                else:
                    ax.imshow(img.transpose(1, 2, 0))
        label = name if len(name) <= 26 else name[:25] + "\u2026"
        axes[k][0].set_ylabel(f"{k}: {label}\n(n={len(members)})", rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{ds.name} at {ds.size} px: random {split} images per class", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- manifest
def build_manifest(ds: MedicalDataset, fractions: float | Sequence[float], seed: int,
                   files: Sequence[str] = ()) -> dict:
    """Everything needed to recognise this exact data again (JSON-ready)."""
    splits = {}
    for name, s in ds.splits.items():
        entry = {"n": len(s), "class_counts": class_counts(s.labels.numpy(), ds.n_classes).tolist()}
        if s.meta is not None and "patient" in s.meta:
            entry["patients"] = int(len(np.unique(s.meta["patient"])))
        splits[name] = entry
    manifest = {
        "dataset": ds.name, "size": ds.size, "task": ds.info.task, "n_channels": ds.n_channels,
        "n_classes": ds.n_classes, "labels": dict(ds.info.labels),
        "source": dict(ds.source), "splits": splits,
        **fraction_summary(ds, fractions, seed),
        "created_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "pepr_utils": __version__, "files": list(files),
    }
    if all(s.meta is not None and "patient" in s.meta for s in ds.splits.values()):
        sets = [set(np.unique(s.meta["patient"]).tolist()) for s in ds.splits.values()]
        manifest["patients_in_two_splits"] = len((sets[0] & sets[1]) | (sets[0] & sets[2]) | (sets[1] & sets[2]))
    return manifest


def write_manifest(out_dir: str | os.PathLike, manifest: dict) -> Path:
    """``<out_dir>/manifest.json``, written atomically."""
    return atomic_write_json(Path(out_dir) / MANIFEST_FILE, manifest)


# --------------------------------------------------------------------------- the whole step
@dataclass
class Prepared:
    dataset: MedicalDataset
    split_table: pd.DataFrame
    pixel_stats: pd.DataFrame
    manifest: dict
    out_dir: Path


def prepare(dataset: str, size: int = 28, fractions: float | Sequence[float] = (1.0, 0.1, 0.01), seed: int = 0, *,
            data_dir: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
            cache_dir: str | os.PathLike | None = None, offline: bool | None = None,
            progress: bool = True) -> Prepared:
    """Notebook 01 as one call: load, count, sample grid, pixel stats, manifest, all written to ``out_dir``.

    Everything is computed before anything is written, and written all or nothing: a new ``out_dir``
    appears in one rename; in an existing one the files are replaced one by one, ``manifest.json`` last
    (a folder without a manifest, or with an older one, was never completed by this call). ``seed`` is a
    run parameter, checked where it enters (``pepr data prepare``, notebook 01: ``params.check_param``).
    """
    import io

    import matplotlib.pyplot as plt

    fractions = check_fractions(fractions)
    ds = load_dataset(dataset, size, data_dir=data_dir, cache_dir=cache_dir, offline=offline, progress=progress)
    out = Path(out_dir) if out_dir not in (None, "") else default_out_dir(dataset, size)
    if out.exists() and not out.is_dir():
        raise PeprError(f"--out-dir {str(out)!r} is a file; expected a folder")
    table = split_table(ds, fractions, seed)
    fig = sample_grid(ds, seed=seed)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    stats = pixel_stats(ds)
    manifest = build_manifest(ds, fractions, seed, files=[SPLIT_TABLE_FILE, SAMPLES_FILE, PIXEL_STATS_FILE])
    files = {SPLIT_TABLE_FILE: table.to_csv(index=False).encode(), SAMPLES_FILE: png.getvalue(),
             PIXEL_STATS_FILE: stats.to_csv(index=False).encode()}
    if out.is_dir():
        for name, data in files.items():
            atomic_write_bytes(out / name, data)
        write_manifest(out, manifest)
    else:
        with atomic_dir(out) as tmp:
            for name, data in files.items():
                (tmp / name).write_bytes(data)
            write_manifest(tmp, manifest)
    return Prepared(ds, table, stats, manifest, out)
