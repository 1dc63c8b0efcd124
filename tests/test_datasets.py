"""Datasets: the real MedMNIST and LIDC files, sizes, fractions, batches, and every error path.

Real-data tests read ../shared/data through the ``data_dir`` fixture and share one decode cache per
session (``session_cache``), so LIDC's 77,740 PNGs are decoded once. Error paths use small synthetic
files in MedMNIST's format written by the tests themselves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pepr_utils.cli import command as cli
from pepr_utils.data import datasets, lidc
from pepr_utils.data.batches import Batches
from pepr_utils.data.datasets import SIZES, Split, dataset_names, file_digests, fraction_indices, load_dataset
from pepr_utils.data.preparation import build_manifest, indices_checksum, split_table
from pepr_utils.errors import PeprError

README_SHA256 = {
    "dermamnist": "2f5f46a8741e3d3d00122b20471749b3431522ad3ba7ed9b30c9082b29fb95b9",
    "pneumoniamnist": "8c555c787c4594882835129e3cee6a02cf9b8a6d8aed162b512521a5697177c8",
    "lidc": "be5714b1d692b8bc8356c8796c0fe9684a30ecb26df12a9a60369fef9e6103c5",
}


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg, f"not a one-line message: {msg!r}"
    return msg


def leftovers(folder: Path) -> list[Path]:
    """Cache files that a failed load must not leave: data (npz) or half-written temporaries."""
    return [p for p in folder.rglob("*") if p.is_file() and (p.suffix in (".npz", ".tmp") or ".tmp" in p.name)]


def load_quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_dataset(*args, **kwargs)


# --------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def derma(request):
    from conftest import DATA_DIR, need

    need(DATA_DIR / "dermamnist.npz")
    cache = request.getfixturevalue("session_cache")
    return load_quiet("dermamnist", 28, data_dir=DATA_DIR, cache_dir=cache)


@pytest.fixture(scope="module")
def lidc28(request):
    from conftest import DATA_DIR, need

    need(DATA_DIR / "lidc-idri-slices.tar.gz")
    cache = request.getfixturevalue("session_cache")
    return load_dataset("lidc", 28, data_dir=DATA_DIR, cache_dir=cache, progress=False)


def test_catalogue_has_every_2d_medmnist_flag_and_lidc():
    from medmnist import INFO

    names = dataset_names()
    assert names[-1] == "lidc"
    assert set(names[:-1]) == {k for k, v in INFO.items() if not v["python_class"].endswith("3D")}
    info = datasets.dataset_info("dermamnist")
    assert (info.task, info.n_channels, info.n_classes) == ("multi-class", 3, 7)
    assert info.files[28][1] == INFO["dermamnist"]["MD5"] and info.files[224][1] == INFO["dermamnist"]["MD5_224"]


def test_dermamnist_real_file(data_dir, session_cache):
    with pytest.warns(UserWarning, match="not the official"):
        ds = load_dataset("dermamnist", 28, data_dir=data_dir, cache_dir=session_cache)
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 7007, "val": 1003, "test": 2005}
    assert ds.n_classes == 7 and ds.n_channels == 3
    train = ds.splits["train"]
    assert train.images.dtype == torch.uint8 and tuple(train.images.shape) == (7007, 3, 28, 28)
    assert train.images.is_contiguous()
    assert train.labels.dtype == torch.int64 and tuple(train.labels.shape) == (7007,)
    assert set(train.labels.unique().tolist()) == set(range(7))
    assert np.bincount(train.labels.numpy()).tolist() == [228, 359, 769, 80, 779, 4693, 99]  # official counts
    src = ds.source
    assert src["official"] is False and src["origin"] == "data_dir" and src["resized_from"] is None
    assert src["sha256"] == README_SHA256["dermamnist"] and Path(src["path"]).name == "dermamnist.npz"


def test_pneumoniamnist_real_file_stays_grayscale(data_dir, session_cache):
    ds = load_quiet("pneumoniamnist", 28, data_dir=data_dir, cache_dir=session_cache)
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 4708, "val": 524, "test": 624}
    assert ds.n_classes == 2 and tuple(ds.splits["test"].images.shape) == (624, 1, 28, 28)
    assert ds.source["sha256"] == README_SHA256["pneumoniamnist"] and ds.source["official"] is False


def test_lidc_slices_labels_and_patient_split(lidc28):
    splits = lidc28.splits
    n = sum(len(s) for s in splits.values())
    assert n == 15548
    positives = sum(int(s.labels.sum()) for s in splits.values())
    assert positives / n == pytest.approx(0.487, abs=0.001)
    for s in splits.values():  # the paper's rule: at least 3 of 4 raters' masks non-empty
        assert torch.equal(s.labels, torch.from_numpy((s.meta["raters"].sum(1) > 2).astype(np.int64)))
        assert s.meta["raters"].shape == (len(s), 4) and len(s.meta["patient"]) == len(s)
    patients = {k: set(s.meta["patient"].tolist()) for k, s in splits.items()}
    assert not patients["train"] & patients["val"] and not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert [len(p) for p in patients.values()] == [525, 175, 175]  # 60/20/20 of 875 patients
    assert 0.55 < len(splits["train"]) / n < 0.65
    assert lidc28.source["sha256"] == README_SHA256["lidc"] and lidc28.source["official"] is False
    assert lidc28.source["resized_from"] == 128
    assert tuple(splits["val"].images.shape[1:]) == (1, 28, 28)


def test_lidc_split_is_reproducible_and_seeded(lidc28):
    patient = np.concatenate([s.meta["patient"] for s in lidc28.splits.values()])
    a, b = lidc.split_by_patient(patient, 0), lidc.split_by_patient(patient, 0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    other = lidc.split_by_patient(patient, 1)
    assert not np.array_equal(a["test"], other["test"])
    shuffled = np.random.default_rng(3).permutation(len(patient))
    c = lidc.split_by_patient(patient[shuffled], 0)  # the input order does not matter
    assert set(patient[shuffled][c["test"]]) == set(patient[a["test"]])


def test_lidc_second_load_uses_the_cache(lidc28, data_dir, session_cache, monkeypatch):
    def no_decode(*a, **k):
        raise AssertionError("LIDC decoded twice")

    monkeypatch.setattr(lidc, "read_lidc", no_decode)
    again = load_dataset("lidc", 28, data_dir=data_dir, cache_dir=session_cache, progress=False)
    for k in ("train", "val", "test"):
        assert torch.equal(again.splits[k].labels, lidc28.splits[k].labels)
        assert np.array_equal(again.splits[k].meta["patient"], lidc28.splits[k].meta["patient"])


def test_lidc_prepared_splits_cache_is_exact(lidc28, data_dir, session_cache, monkeypatch):
    """The second load reads the finished splits (uncompressed) and neither the slices nor the resize cache."""
    def no_arrays(*a, **k):
        raise AssertionError("prepared LIDC splits not taken from the cache")

    monkeypatch.setattr(datasets, "_lidc_arrays", no_arrays)
    again = load_dataset("lidc", 28, data_dir=data_dir, cache_dir=session_cache, progress=False)
    assert again.source == lidc28.source
    for k in ("train", "val", "test"):
        a, b = again.splits[k], lidc28.splits[k]
        assert torch.equal(a.images, b.images) and a.images.dtype == b.images.dtype and a.images.is_contiguous()
        assert torch.equal(a.labels, b.labels) and a.labels.dtype == b.labels.dtype
        assert a.meta.keys() == b.meta.keys()
        assert all(np.array_equal(a.meta[m], b.meta[m]) and a.meta[m].dtype == b.meta[m].dtype for m in a.meta)


def test_resized_real_data_shapes_and_content(derma, data_dir, session_cache):
    ds64 = load_quiet("dermamnist", 64, data_dir=data_dir, cache_dir=session_cache, offline=True)
    assert tuple(ds64.splits["train"].images.shape) == (7007, 3, 64, 64)
    assert ds64.splits["train"].images.dtype == torch.uint8
    assert ds64.source["resized_from"] == 28 and ds64.source["sha256"] == README_SHA256["dermamnist"]
    assert torch.equal(ds64.splits["test"].labels, derma.splits["test"].labels)
    # an antialiased bilinear resize keeps each image's mean brightness within a grey level or two
    m28 = derma.splits["val"].images.float().mean(dim=(1, 2, 3))
    m64 = ds64.splits["val"].images.float().mean(dim=(1, 2, 3))
    assert (m28 - m64).abs().max() < 2.0
    assert list((session_cache / "resized").glob("dermamnist_64_from28_*.npz"))


def test_fractions_on_real_labels_are_stratified_nested_and_seeded(derma):
    labels = derma.splits["train"].labels.numpy()
    counts = np.bincount(labels)
    subsets = {f: fraction_indices(labels, f, seed=0) for f in (1.0, 0.1, 0.01)}
    assert np.array_equal(subsets[1.0], np.arange(len(labels)))
    for f in (0.1, 0.01):
        kept = np.bincount(labels[subsets[f]], minlength=len(counts))
        assert np.all(kept == np.maximum(1, np.floor(f * counts + 0.5)))  # per-class share, at least one
        assert subsets[f].dtype == np.int64 and np.all(np.diff(subsets[f]) > 0)
    assert np.isin(subsets[0.01], subsets[0.1]).all()
    assert np.array_equal(fraction_indices(labels, 0.1, 0), subsets[0.1])
    assert not np.array_equal(fraction_indices(labels, 0.1, 1), subsets[0.1])


def test_with_train_fraction_leaves_val_and_test_alone(derma):
    small = derma.with_train_fraction(0.1, seed=0)
    assert len(small.splits["train"]) == 701 and small.fraction == 0.1 and small.fraction_seed == 0
    assert small.splits["val"] is derma.splits["val"] and small.splits["test"] is derma.splits["test"]
    idx = small.train_indices
    assert torch.equal(small.splits["train"].images, derma.splits["train"].images[torch.from_numpy(idx)])
    assert derma.with_train_fraction(1.0, 0).splits["train"] is derma.splits["train"]
    manifest = build_manifest(derma, [1.0, 0.1], 0)
    assert manifest["fractions"][1]["indices_sha256"] == indices_checksum(idx) and manifest["nested"]


def test_split_table_counts_add_up(lidc28):
    table = split_table(lidc28, [1.0, 0.1], seed=0)
    assert list(table["split"]) == ["train", "train", "val", "test"]
    assert (table["0"] + table["1"] == table["n"]).all()
    assert table["n"].iloc[[0, 2, 3]].sum() == 15548 and table["patients"].iloc[2] == 175


# --------------------------------------------------------------------------- batches
def _toy_split(n=10, c=3, size=8, seed=0) -> Split:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=g)
    return Split(images, torch.arange(n, dtype=torch.int64) % 3)


def test_batches_normalise_and_cover_every_sample():
    split = _toy_split(n=10)
    b = Batches(split, 4)
    assert len(b) == 3 and len(Batches(split, 4, drop_last=True)) == 2
    xs, ys = zip(*b, strict=True)
    assert [len(y) for y in ys] == [4, 4, 2]
    x = torch.cat(xs)
    assert x.dtype == torch.float32 and torch.allclose(x, (split.images.float() / 255 - 0.5) / 0.5, atol=1e-6)
    assert torch.equal(torch.cat(ys), split.labels)
    per_channel = torch.cat([x for x, _ in Batches(split, 4, mean=[0.1, 0.2, 0.3], std=[0.2, 0.3, 0.4])])
    m, s = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1)
    assert torch.allclose(per_channel, (split.images.float() / 255 - m) / s, atol=1e-5)
    assert sum(len(y) for _, y in Batches(split, 4, drop_last=True)) == 8
    for x, y in Batches(split, 4):  # batches are copies: editing them in place leaves the data alone
        x.zero_()
        y.zero_()
    assert torch.equal(split.labels, torch.arange(10) % 3) and int(split.images.sum()) > 0


def test_batches_shuffle_is_seeded_per_epoch():
    split = Split(torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1).expand(50, 1, 2, 2).contiguous(),
                  torch.arange(50, dtype=torch.int64))

    def epoch_order(b):
        return torch.cat([y for _, y in b])

    a, b = Batches(split, 8, shuffle=True, seed=7), Batches(split, 8, shuffle=True, seed=7)
    e0, e1 = epoch_order(a), epoch_order(a)
    assert torch.equal(e0, epoch_order(b)) and not torch.equal(e0, e1)
    assert sorted(e0.tolist()) == list(range(50)) and sorted(e1.tolist()) == list(range(50))
    a.set_epoch(0)
    assert torch.equal(epoch_order(a), e0)
    assert not torch.equal(epoch_order(Batches(split, 8, shuffle=True, seed=8)), e0)
    for x, y in Batches(split, 8, shuffle=True, seed=7):  # images travel with their labels
        assert torch.allclose(x[:, 0, 0, 0], (y.float() / 255 - 0.5) / 0.5)


def test_batches_resize_on_the_fly_and_channels_last():
    split = _toy_split(n=6, c=3, size=8)
    up = next(iter(Batches(split, 6, out_size=16, channels_last=True)))[0]
    assert tuple(up.shape) == (6, 3, 16, 16) and up.is_contiguous(memory_format=torch.channels_last)
    down = next(iter(Batches(split, 6, out_size=4)))[0]
    ref = torch.nn.functional.interpolate(split.images.float() / 127.5 - 1, size=(4, 4), mode="bilinear",
                                          antialias=True)
    assert tuple(down.shape) == (6, 3, 4, 4) and (down - ref).abs().max() < 2 / 127.5  # uint8 kernel rounding
    same = next(iter(Batches(split, 6, out_size=8)))[0]
    assert tuple(same.shape) == (6, 3, 8, 8)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 4, "mean": [0.5, 0.5]}, "mean"),
    ({"batch_size": 4, "std": 0.0}, "std"),
    ({"batch_size": 4, "out_size": -1}, "out_size"),
])
def test_batches_bad_arguments(kwargs, match):
    with pytest.raises(PeprError, match=match) as exc:
        Batches(_toy_split(), **kwargs)
    one_line(exc)


# --------------------------------------------------------------------------- synthetic MedMNIST files
def make_npz(path: Path, n=(12, 4, 4), size=28, channels=1, n_classes=2, drop=(), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        shape = (count, size, size) if channels == 1 else (count, size, size, channels)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % n_classes).astype(np.uint8).reshape(-1, 1)
    for key in drop:
        arrays.pop(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture
def dirs(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    return data, cache


def test_unknown_dataset_lists_valid_names(dirs):
    with pytest.raises(PeprError) as exc:
        load_dataset("dermamnst", data_dir=dirs[0], cache_dir=dirs[1])
    msg = one_line(exc)
    assert "'dermamnst'" in msg and "dermamnist" in msg and "pneumoniamnist" in msg and "lidc" in msg


@pytest.mark.parametrize("size", [32, 0, 512, "big", 28.5, True])
def test_unsupported_size(dirs, size):
    make_npz(dirs[0] / "breastmnist.npz")
    with pytest.raises(PeprError) as exc:
        load_dataset("breastmnist", size, data_dir=dirs[0], cache_dir=dirs[1])
    assert all(str(s) in one_line(exc) for s in SIZES)
    assert not leftovers(dirs[1])


@pytest.mark.parametrize("size", [28, 64])
def test_corrupt_npz_is_a_clear_error_and_caches_nothing(dirs, size):
    (dirs[0] / "breastmnist.npz").write_bytes(b"this is not a zip file" * 100)
    with pytest.raises(PeprError) as exc:
        load_dataset("breastmnist", size, data_dir=dirs[0], cache_dir=dirs[1], offline=True)
    assert "breastmnist.npz" in one_line(exc)
    assert not dirs[1].exists() or not any(p.is_file() for p in dirs[1].rglob("*"))


def test_truncated_npz_is_a_clear_error(dirs):
    path = make_npz(dirs[0] / "breastmnist.npz", n=(200, 20, 20))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PeprError) as exc:
        load_dataset("breastmnist", 64, data_dir=dirs[0], cache_dir=dirs[1], offline=True)
    assert "breastmnist.npz" in one_line(exc)
    assert not leftovers(dirs[1])


def test_npz_without_a_split_key(dirs):
    make_npz(dirs[0] / "breastmnist.npz", drop=("val_images",))
    with pytest.raises(PeprError) as exc:
        load_dataset("breastmnist", 28, data_dir=dirs[0], cache_dir=dirs[1])
    assert "val_images" in one_line(exc)
    assert not leftovers(dirs[1])


def test_npz_with_wrong_channels_or_size(dirs):
    make_npz(dirs[0] / "breastmnist.npz", channels=3)
    with pytest.raises(PeprError, match="channel") as exc:
        load_dataset("breastmnist", 28, data_dir=dirs[0], cache_dir=dirs[1])
    one_line(exc)
    make_npz(dirs[0] / "breastmnist_64.npz", size=28)
    with pytest.raises(PeprError, match="expected 64x64") as exc:
        load_quiet("breastmnist", 64, data_dir=dirs[0], cache_dir=dirs[1])
    one_line(exc)


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 1.5, float("nan"), float("inf"), "abc", None, True])
def test_fraction_outside_unit_interval(fraction):
    with pytest.raises(PeprError) as exc:
        fraction_indices(np.array([0, 1, 0, 1]), fraction, seed=0)
    assert "(0, 1]" in one_line(exc)


def test_with_train_fraction_rejects_bad_fraction(dirs):
    make_npz(dirs[0] / "breastmnist.npz")
    ds = load_quiet("breastmnist", 28, data_dir=dirs[0], cache_dir=dirs[1])
    with pytest.raises(PeprError):
        ds.with_train_fraction(1.2, seed=0)
    with pytest.raises(PeprError, match="already"):
        ds.with_train_fraction(0.5, 0).with_train_fraction(0.5, 0)


def test_fraction_properties_on_random_labels():
    rng = np.random.default_rng(0)
    for trial in range(30):
        labels = rng.integers(0, rng.integers(2, 9), size=rng.integers(20, 400))
        fs = sorted(rng.uniform(0.001, 1.0, size=3), reverse=True)
        subsets = [fraction_indices(labels, f, seed=trial) for f in fs]
        for big, small in zip(subsets, subsets[1:], strict=False):
            assert np.isin(small, big).all()
        for f, idx in zip(fs, subsets, strict=True):
            for c in np.unique(labels):
                n_c = int((labels == c).sum())
                assert int((labels[idx] == c).sum()) == min(n_c, max(1, int(np.floor(f * n_c + 0.5))))
    multi = rng.integers(0, 2, size=(300, 4))  # multi-label rows stratify by their combination
    idx = fraction_indices(multi, 0.5, 0)
    assert 120 <= len(idx) <= 180


def test_non_official_file_warns_and_official_file_does_not(dirs, monkeypatch):
    path = make_npz(dirs[0] / "breastmnist.npz")
    with pytest.warns(UserWarning, match="not the official"):
        ds = load_dataset("breastmnist", 28, data_dir=dirs[0], cache_dir=dirs[1])
    assert ds.source["official"] is False and ds.source["origin"] == "data_dir"
    assert ds.source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    cat = datasets._catalogue()
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(cat, "breastmnist", dataclasses.replace(cat["breastmnist"], files={28: ("https://x/b.npz", md5)}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset("breastmnist", 28, data_dir=dirs[0], cache_dir=dirs[1])
    assert ds.source["official"] is True


def test_offline_missing_file_names_it_and_the_places_searched(dirs):
    with pytest.raises(PeprError) as exc:
        load_dataset("bloodmnist", 28, data_dir=dirs[0], cache_dir=dirs[1], offline=True)
    msg = one_line(exc)
    assert "bloodmnist.npz" in msg and str(dirs[0]) in msg and str(dirs[1]) in msg and "offline" in msg


def test_download_uses_medmnist_url_and_md5(dirs, monkeypatch):
    from medmnist import INFO

    from pepr_utils.data import download

    calls = []

    def fake_fetch(url, dest, *, md5=None, sha256=None, offline=None, **kw):
        calls.append((url, md5, offline))
        return make_npz(Path(dest), n=(6, 2, 2), size=64 if Path(dest).name.endswith("_64.npz") else 28)

    monkeypatch.setattr(download, "fetch", fake_fetch)
    with pytest.warns(UserWarning):  # the fake file is not the real one
        ds = load_dataset("breastmnist", 64, data_dir=dirs[0], cache_dir=dirs[1], offline=False)
    assert calls == [(INFO["breastmnist"]["url_64"], INFO["breastmnist"]["MD5_64"], False)]
    assert Path(ds.source["path"]) == dirs[1] / "medmnist" / "breastmnist_64.npz"
    assert ds.source["origin"] == "download" and tuple(ds.splits["train"].images.shape[1:]) == (1, 64, 64)


def test_resize_from_largest_local_file_and_cache(dirs):
    make_npz(dirs[0] / "breastmnist.npz", size=28, seed=1)
    make_npz(dirs[0] / "breastmnist_128.npz", size=128, seed=2)
    ds = load_quiet("breastmnist", 256, data_dir=dirs[0], cache_dir=dirs[1], offline=True)
    assert tuple(ds.splits["train"].images.shape) == (12, 1, 256, 256) and ds.source["resized_from"] == 128
    cached = list((dirs[1] / "resized").glob("breastmnist_256_from128_*.npz"))
    assert len(cached) == 1 and not leftovers(dirs[1] / "digests")
    again = load_quiet("breastmnist", 256, data_dir=dirs[0], cache_dir=dirs[1], offline=True)
    assert torch.equal(again.splits["val"].images, ds.splits["val"].images)
    down = load_quiet("breastmnist", 64, data_dir=dirs[0], cache_dir=dirs[1], offline=True)
    assert down.source["resized_from"] == 128 and tuple(down.splits["test"].images.shape) == (4, 1, 64, 64)
    own = load_quiet("breastmnist", 128, data_dir=dirs[0], cache_dir=dirs[1], offline=True)
    assert own.source["resized_from"] is None


def test_file_digests_are_cached_by_path_size_and_mtime(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    cache = tmp_path / "cache"
    first = file_digests(f, cache)
    assert first["md5"] == hashlib.md5(b"abc").hexdigest()
    record = next((cache / "digests").glob("*.json"))
    saved = json.loads(record.read_text())
    saved["md5"] = "from-the-cache"
    record.write_text(json.dumps(saved))
    datasets._DIGESTS.clear()
    assert file_digests(f, cache)["md5"] == "from-the-cache"  # not recomputed
    os.utime(f, ns=(saved["mtime_ns"] + 10**9, saved["mtime_ns"] + 10**9))
    assert file_digests(f, cache)["md5"] == hashlib.md5(b"abc").hexdigest()  # changed file: recomputed


# --------------------------------------------------------------------------- synthetic LIDC trees
def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def lidc_tree(n_patients=5, slices=2, size=16, drop=None, seed=0) -> dict[str, bytes]:
    """{member name: PNG bytes}; rater k marks slice s of nodule n when (k + s + n + p) % 5 < 3."""
    rng = np.random.default_rng(seed)
    files = {}
    for p in range(n_patients):
        for n in range(1 + p % 2):
            for s in range(slices):
                base = f"LIDC-IDRI-slices/LIDC-IDRI-{p:04d}/nodule-{n}"
                files[f"{base}/images/slice-{s}.png"] = _png(rng.integers(0, 256, (size, size), dtype=np.uint8))
                for k in range(4):
                    mask = np.zeros((size, size), np.uint8)
                    if (k + s + n + p) % 5 < 3:
                        mask[2:5, 3:6] = 255
                    files[f"{base}/mask-{k}/slice-{s}.png"] = _png(mask)
    if drop:
        files = {k: v for k, v in files.items() if drop not in k}
    return files


def write_tar(path: Path, files: dict[str, bytes], extra=None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size) if extra.isfile() else None)
    return path


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root / "LIDC-IDRI-slices"


def test_lidc_tar_zip_and_folder_give_the_same_data(tmp_path):
    files = lidc_tree()
    tar = lidc.read_lidc(write_tar(tmp_path / "a.tar.gz", files), progress=False)
    zipped = lidc.read_lidc(write_zip(tmp_path / "a.zip", files), progress=False)
    folder = lidc.read_lidc(write_folder(tmp_path / "tree", files), progress=False)
    for key in tar:
        assert np.array_equal(tar[key], zipped[key]) and np.array_equal(tar[key], folder[key])
    n = len(tar["images"])
    assert n == sum(1 + p % 2 for p in range(5)) * 2 and tar["images"].shape == (n, 16, 16)
    expected = [[int((k + s + nod + int(p[-4:])) % 5 < 3) for k in range(4)]
                for p, nod, s in zip(tar["patient"], tar["nodule"], tar["slice"], strict=True)]
    assert tar["raters"].tolist() == expected
    assert lidc.slice_labels(tar["raters"]).tolist() == [int(sum(r) >= 3) for r in expected]


def test_lidc_dataset_from_synthetic_archive(dirs):
    write_tar(dirs[0] / "lidc-idri-slices.tar.gz", lidc_tree(n_patients=10))
    ds = load_dataset("lidc", 64, data_dir=dirs[0], cache_dir=dirs[1], progress=False)
    patients = [set(s.meta["patient"].tolist()) for s in ds.splits.values()]
    assert [len(p) for p in patients] == [6, 2, 2] and not (patients[0] & patients[1] | patients[0] & patients[2])
    assert tuple(ds.splits["train"].images.shape[1:]) == (1, 64, 64) and ds.source["resized_from"] == 16
    assert list((dirs[1] / "lidc").glob("lidc-slices-v*.npz"))


def test_lidc_nodule_without_masks(dirs):
    write_tar(dirs[0] / "lidc-idri-slices.tar.gz", lidc_tree(drop="LIDC-IDRI-0003/nodule-1/mask-"))
    with pytest.raises(PeprError) as exc:
        load_dataset("lidc", 28, data_dir=dirs[0], cache_dir=dirs[1], progress=False)
    msg = one_line(exc)
    assert "LIDC-IDRI-0003/nodule-1" in msg and "mask-0/slice-0.png" in msg
    assert not leftovers(dirs[1])


def test_lidc_one_missing_rater_mask(tmp_path):
    files = lidc_tree()
    del files["LIDC-IDRI-slices/LIDC-IDRI-0002/nodule-0/mask-2/slice-1.png"]
    with pytest.raises(PeprError, match="LIDC-IDRI-0002/nodule-0 .*lacks mask-2/slice-1.png") as exc:
        lidc.read_lidc(write_zip(tmp_path / "a.zip", files), progress=False)
    one_line(exc)


def test_lidc_missing_archive(dirs):
    with pytest.raises(PeprError) as exc:
        load_dataset("lidc", 28, data_dir=dirs[0], cache_dir=dirs[1])
    msg = one_line(exc)
    assert "lidc-idri-slices.tar.gz" in msg and str(dirs[0]) in msg


def _evil_members():
    link = tarfile.TarInfo("LIDC-IDRI-slices/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    up = tarfile.TarInfo("../../outside.png")
    up.size = 1
    absolute = tarfile.TarInfo("/tmp/absolute.png")
    absolute.size = 1
    return [link, up, absolute]


@pytest.mark.parametrize("member", _evil_members(), ids=["symlink", "dotdot", "absolute"])
def test_archives_with_escaping_members_are_refused(tmp_path, member):
    archive = write_tar(tmp_path / "lidc-idri-slices.tar.gz", lidc_tree(n_patients=1), extra=member)
    with pytest.raises(PeprError, match="refusing archive") as exc:
        lidc.read_lidc(archive, progress=False)
    one_line(exc)
    assert not (tmp_path.parent / "outside.png").exists()


def test_zip_with_escaping_member_is_refused(tmp_path):
    files = lidc_tree(n_patients=1)
    files["../escape.png"] = b"x"
    archive = write_zip(tmp_path / "a.zip", files)
    with pytest.raises(PeprError, match="refusing archive"):
        lidc.read_lidc(archive, progress=False)
    assert not (tmp_path / "escape.png").exists()


# --------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("argv, match", [
    (["--dataset", "nope"], "valid names"),
    (["--dataset", "breastmnist", "--size", "30"], "supported sizes"),
    (["--dataset", "breastmnist", "--size", "abc"], "supported sizes"),
    (["--dataset", "breastmnist", "--fractions", "1.0", "0"], "(0, 1]"),
    (["--dataset", "breastmnist", "--fractions", "half"], "not a number"),
])
def test_cli_prepare_bad_input(argv, match, tmp_path, capsys):
    rc = cli.main(["data", "prepare", *argv, "--out-dir", str(tmp_path / "out"), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and match in err
    assert not (tmp_path / "out").exists()


def test_cli_prepare_writes_tables_figure_and_manifest(dirs, tmp_path, capsys):
    make_npz(dirs[0] / "breastmnist.npz", n=(40, 8, 8))
    out = tmp_path / "prep"
    rc = cli.main(["data", "prepare", "--dataset", "breastmnist", "--size", "64", "--fractions", "1", "0.5",
                   "--data-dir", str(dirs[0]), "--cache-dir", str(dirs[1]), "--out-dir", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == {"manifest.json", "split_table.csv", "pixel_stats.csv", "samples.png"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["size"] == 64 and manifest["source"]["resized_from"] == 28 and not manifest["source"]["official"]
    assert [f["n_train"] for f in manifest["fractions"]] == [40, 20] and manifest["nested"]
    assert "NOT the official file" in capsys.readouterr().out
