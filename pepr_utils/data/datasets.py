"""The dataset catalogue: every 2D MedMNIST flag plus ``lidc``, at any size, with training fractions.

The catalogue is data, not branches: ``medmnist.INFO`` gives each flag's task, channels, labels and
official files (URL + MD5 per size); ``lidc`` adds one entry. A file is looked for in the data dir
(``PEPR_DATA_DIR``, MedMNIST names: ``<flag>.npz`` for 28 px, ``<flag>_<size>.npz``), then in the
cache, then downloaded with its MD5 checked. A local file whose MD5 is not the official one is used
with a warning and recorded as not official. Sizes without an official file (256, or any size when
offline and only another size is at hand) are resized from the largest available file and cached.

Everything ends up as uint8 (N, C, H, W) tensors: grayscale stays one channel (models adapt
``in_chans``), and conversion to float happens per batch in :class:`~pepr_utils.data.batches.Batches`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import os
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import PeprError
from ..fileio import atomic_path, atomic_write_json
from ..settings import cache_dir as cache_dir_setting
from ..settings import data_dir as data_dir_setting
from ..settings import offline as offline_setting
from . import lidc
from .batches import resize_uint8

SIZES = (28, 64, 128, 224, 256)
SPLITS = ("train", "val", "test")
RESIZE_CACHE_VERSION = 1
PREPARED_CACHE_VERSION = 1  # lidc: finished splits per (size, archive, split seed)


# --------------------------------------------------------------------------- catalogue
@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is: task, channels, class names, and its official files (size -> (url, md5))."""

    name: str
    task: str
    n_channels: int
    labels: dict[str, str]
    n_samples: dict[str, int] | None = None
    license: str = ""
    files: dict[int, tuple[str, str]] = field(default_factory=dict)
    native_size: int = 28
    source: str = "medmnist"  # which loader reads it (``LOADERS``)

    @property
    def n_classes(self) -> int:
        return len(self.labels)


LIDC_INFO = DatasetInfo(
    name="lidc", task="binary-class", n_channels=1,
    labels={"0": "negative (<3 of 4 raters)", "1": "positive (>=3 of 4 raters)"},
    # the patient-level split (lidc.SPLIT_SEED) of the published crop archive, 15,548 slices; another copy of
    # the tree splits otherwise, and the loaded data always says its own counts
    n_samples={"train": 9414, "val": 3039, "test": 3095}, license="CC BY 3.0 (TCIA)", files={},
    native_size=lidc.NATIVE_SIZE, source="lidc",
)


@functools.cache
def _catalogue() -> dict[str, DatasetInfo]:
    from medmnist import INFO

    cat = {}
    for flag, entry in INFO.items():
        if entry["python_class"].endswith("3D"):
            continue
        files = {28: (entry["url"], entry["MD5"])}
        for size in SIZES:
            if f"url_{size}" in entry and f"MD5_{size}" in entry:
                files[size] = (entry[f"url_{size}"], entry[f"MD5_{size}"])
        cat[flag] = DatasetInfo(name=flag, task=entry["task"], n_channels=int(entry["n_channels"]),
                                labels=dict(entry["label"]), n_samples=dict(entry["n_samples"]),
                                license=entry.get("license", ""), files=files, native_size=28)
    cat["lidc"] = LIDC_INFO
    return cat


def dataset_names() -> list[str]:
    """Every 2D MedMNIST flag (from ``medmnist.INFO``) and ``lidc``."""
    return list(_catalogue())


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry for ``name``; PeprError listing the valid names otherwise."""
    cat = _catalogue()
    if name not in cat:
        close = difflib.get_close_matches(str(name).lower(), cat, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PeprError(f"unknown dataset {name!r}{hint}; valid names: {', '.join(cat)}")
    return cat[name]


def check_size(size: object) -> int:
    """``size`` as an int if it is one of SIZES, else a PeprError."""
    try:
        ok = not isinstance(size, bool) and int(size) == float(size) and int(size) in SIZES  # type: ignore[arg-type]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise PeprError(f"unsupported size {size!r}; supported sizes: {', '.join(map(str, SIZES))}")
    return int(size)  # type: ignore[arg-type]


def check_fraction(fraction: object) -> float:
    """``fraction`` as a float in (0, 1], else a PeprError."""
    try:
        value = float(fraction)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(fraction, bool) or not (0.0 < value <= 1.0):
        raise PeprError(f"training fraction {fraction!r} is outside (0, 1]; use e.g. 1.0, 0.1 or 0.01")
    return value


def medmnist_filename(name: str, size: int) -> str:
    """MedMNIST's own file name: ``<flag>.npz`` at 28 px, ``<flag>_<size>.npz`` otherwise."""
    return f"{name}.npz" if size == 28 else f"{name}_{size}.npz"


# --------------------------------------------------------------------------- data containers
@dataclass
class Split:
    """One split: uint8 images (N, C, H, W), int64 labels (N,) (or (N, K) multi-label), optional
    per-sample ``meta`` arrays (LIDC: ``raters``, ``patient``, ``nodule``, ``slice``)."""

    images: torch.Tensor
    labels: torch.Tensor
    meta: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: np.ndarray) -> Split:
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        meta = None if self.meta is None else {k: v[np.asarray(indices)] for k, v in self.meta.items()}
        return Split(self.images.index_select(0, idx), self.labels.index_select(0, idx), meta)


@dataclass
class MedicalDataset:
    """A dataset at one size: ``splits`` train/val/test and where the data came from (``source``).

    ``source`` has path, sha256, official (bool), origin ("data_dir" | "cache" | "download") and
    resized_from (int | None). After :meth:`with_train_fraction`, ``fraction``, ``fraction_seed`` and
    ``train_indices`` (into the full train split) say which training images were kept.
    """

    info: DatasetInfo
    size: int
    splits: dict[str, Split]
    source: dict
    fraction: float = 1.0
    fraction_seed: int | None = None
    train_indices: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def n_channels(self) -> int:
        return self.info.n_channels

    @property
    def n_classes(self) -> int:
        return self.info.n_classes

    def with_train_fraction(self, fraction: float, seed: int) -> MedicalDataset:
        """A copy whose train split keeps a stratified, seeded, nested ``fraction``; val/test untouched."""
        fraction = check_fraction(fraction)
        if self.fraction != 1.0:
            raise PeprError(f"this dataset already holds a {self.fraction} training fraction; "
                            "take fractions of the full dataset")
        train = self.splits["train"]
        idx = fraction_indices(train.labels.numpy(), fraction, seed)
        splits = dict(self.splits)
        splits["train"] = train if len(idx) == len(train) else train.subset(idx)
        return dataclasses.replace(self, splits=splits, fraction=fraction, fraction_seed=int(seed),
                                   train_indices=idx)


def _strata(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels
    if labels.ndim == 2 and labels.shape[1] == 1:
        return labels[:, 0]
    return np.unique(labels.reshape(len(labels), -1), axis=0, return_inverse=True)[1].reshape(-1)


def fraction_indices(labels: np.ndarray | torch.Tensor, fraction: float, seed: int) -> np.ndarray:
    """Sorted int64 indices of a stratified, seeded, nested share of ``labels``.

    One seeded permutation orders every sample; each class keeps its first round(fraction * n_c)
    members in that order (at least one). Because the order does not depend on ``fraction``, the 1%
    subset lies inside the 10% subset, and 1.0 returns every index. Multi-label rows are strata by
    their exact label combination.
    """
    fraction = check_fraction(fraction)
    strata = _strata(labels.numpy() if isinstance(labels, torch.Tensor) else labels)
    n = len(strata)
    if fraction == 1.0:
        return np.arange(n, dtype=np.int64)
    order = np.random.default_rng(int(seed)).permutation(n)
    ranked = strata[order]
    keep = []
    for c in np.unique(strata):
        members = order[ranked == c]  # this class, in permutation order
        k = min(len(members), max(1, int(np.floor(fraction * len(members) + 0.5))))
        keep.append(members[:k])
    return np.sort(np.concatenate(keep)).astype(np.int64)


# --------------------------------------------------------------------------- checksums
_DIGESTS: dict[tuple[str, int, int], dict[str, str]] = {}


def file_digests(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """md5 and sha256 of a file, computed in one pass once per (path, size, mtime).

    Results are remembered in memory and in ``<cache_dir>/digests/`` so a 150 MB archive is hashed once.
    """
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    record = None
    if cache_dir is not None:
        record = Path(cache_dir) / "digests" / (hashlib.sha1(str(path).encode()).hexdigest()[:24] + ".json")
        try:
            saved = json.loads(record.read_text())
            if (saved["path"], saved["size"], saved["mtime_ns"]) == key:
                _DIGESTS[key] = {"md5": saved["md5"], "sha256": saved["sha256"]}
                return _DIGESTS[key]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            md5.update(block)
            sha.update(block)
    _DIGESTS[key] = {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}
    if record is not None:
        try:
            atomic_write_json(record, {"path": key[0], "size": key[1], "mtime_ns": key[2], **_DIGESTS[key]})
        except OSError:
            pass  # a read-only cache only costs speed
    return _DIGESTS[key]


def _tree_digest(folder: Path) -> str:
    """A digest of an unpacked folder's listing (relative path, size, mtime): cheap and change-sensitive."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(folder).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- MedMNIST files
def _places(data_dir: Path | None, cache: Path, sub: str) -> list[tuple[Path, str]]:
    places = [(data_dir, "data_dir")] if data_dir is not None else []
    return places + [(cache / sub, "cache")]


def _find(fname: str, places: list[tuple[Path, str]]) -> tuple[Path, str] | None:
    for folder, origin in places:
        if (folder / fname).is_file():
            return folder / fname, origin
    return None


def _read_npz(path: Path, info: DatasetInfo, size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (images NCHW uint8, labels)} from a MedMNIST-format npz, checked, or one-line PeprError."""
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            for split in SPLITS:
                for kind in ("images", "labels"):
                    if f"{split}_{kind}" not in keys:
                        raise PeprError(f"{path.name} has no '{split}_{kind}' array (found: {', '.join(sorted(keys))}); "
                                        "a MedMNIST file has train/val/test _images and _labels")
                arrays[split] = (z[f"{split}_images"], z[f"{split}_labels"])
    except PeprError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise PeprError(f"cannot read {path.name} as a MedMNIST npz file ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'corrupt'}); replace the file") from exc
    out = {}
    for split, (images, labels) in arrays.items():
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise PeprError(f"{path.name}: {split}_images is {images.dtype} {images.shape}; expected uint8 (N, H, W[, C])")
        if images.ndim == 3:
            images = images[:, None]
        else:
            images = images.transpose(0, 3, 1, 2)
        n, c, h, w = images.shape
        if (h, w) != (size, size):
            raise PeprError(f"{path.name}: {split}_images are {h}x{w}; expected {size}x{size} for this file name")
        if c != info.n_channels:
            raise PeprError(f"{path.name}: {split}_images have {c} channel(s); {info.name} has {info.n_channels}")
        if len(labels) != n:
            raise PeprError(f"{path.name}: {len(labels)} {split}_labels for {n} images")
        if n == 0:
            raise PeprError(f"{path.name}: the {split} split has no images; every split (train, val, test) "
                            "needs at least one")
        out[split] = (np.ascontiguousarray(images), check_labels(labels, info, f"{path.name}: {split}_labels"))
    return out


def check_labels(labels: np.ndarray, info: DatasetInfo, where: str) -> np.ndarray:
    """``labels`` as int64 (N,) class indices, or (N, K) 0/1 for a multi-label task, checked against
    ``info``'s classes; a PeprError naming ``where`` and the bad values otherwise (labels out of range
    would otherwise pass data preparation and crash training with an IndexError)."""
    labels = np.asarray(labels)
    multi = info.task == "multi-label, binary-class"
    if labels.ndim == 2 and labels.shape[1] == 1 and not multi:
        labels = labels[:, 0]
    shape_ok = labels.shape[1:] == ((info.n_classes,) if multi else ())
    if not shape_ok:
        expected = f"(N, {info.n_classes})" if multi else "(N,) or (N, 1)"
        raise PeprError(f"{where} have shape {labels.shape}; expected {expected} for {info.name} ({info.task})")
    if labels.dtype.kind not in "biuf":
        raise PeprError(f"{where} are {labels.dtype}; expected integer class labels")
    values = labels.astype(np.float64, copy=False)
    valid = np.isin(values, (0, 1)) if multi else (np.isfinite(values) & (values == np.round(values))
                                                    & (values >= 0) & (values < info.n_classes))
    if not valid.all():
        bad = np.unique(values[~valid])
        shown = ", ".join(f"{v:g}" for v in bad[:5]) + (", ..." if len(bad) > 5 else "")
        allowed = "0 or 1" if multi else f"0..{info.n_classes - 1}"
        raise PeprError(f"{where} hold {shown} ({int((~valid).sum())} labels); {info.name} has "
                        f"{info.n_classes} classes, so labels must be {allowed}")
    return labels.astype(np.int64)


def _check_official(path: Path, info: DatasetInfo, size: int, cache: Path) -> dict:
    digests = file_digests(path, cache)
    official_md5 = info.files.get(size, (None, None))[1]
    official = digests["md5"] == official_md5
    if not official:
        warnings.warn(f"{path.name}: md5 {digests['md5']} is not the official MedMNIST checksum "
                      f"{official_md5}; using it as a local copy, recorded as not official", UserWarning,
                      stacklevel=4)
    return {"sha256": digests["sha256"], "md5": digests["md5"], "official": official}


def save_npz(target: str | os.PathLike, arrays: dict[str, np.ndarray], level: int = 1) -> Path:
    """Write a compressed npz atomically (fast deflate level: the cache is written once, read often).

    Readable by ``np.load``; level 1 is ~2.5x faster than ``np.savez_compressed`` at the same size here.
    """
    target = Path(target)
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
            for key, value in arrays.items():
                with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
    return target


def _resized_cached(images: dict[str, torch.Tensor], size: int, cache_file: Path) -> dict[str, torch.Tensor]:
    """Resize each array to ``size`` once; later calls load the compressed npz (written atomically)."""
    if cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                loaded = {k: torch.from_numpy(z[k]) for k in images}
            if all(v.shape[-1] == size and v.shape[0] == images[k].shape[0] for k, v in loaded.items()):
                return loaded
        except Exception:  # damaged cache entry: rebuild it
            pass
    out = {k: resize_uint8(v, size) for k, v in images.items()}
    try:
        save_npz(cache_file, {k: v.numpy() for k, v in out.items()})
    except OSError as exc:
        warnings.warn(f"could not cache resized images at {cache_file}: {exc}", UserWarning, stacklevel=2)
    return out


def _load_medmnist(info: DatasetInfo, size: int, data_dir: Path | None, cache: Path, *, offline: bool,
                   split_seed: int, progress: bool) -> MedicalDataset:
    places = _places(data_dir, cache, "medmnist")
    target = medmnist_filename(info.name, size)
    found = _find(target, places) if size in info.files else None
    src_size = size
    if found is None:
        local = [(s, hit) for s in sorted(info.files, reverse=True)
                 if (hit := _find(medmnist_filename(info.name, s), places))]
        if size in info.files and not offline:
            found = (_download(info, size, cache), "download")
        elif local:
            src_size, found = local[0]
        elif not offline:
            src_size = min((s for s in info.files if s >= size), default=max(info.files))
            found = (_download(info, src_size, cache), "download")
        else:
            searched = ", ".join(str(p) for p, _ in places)
            names = target if size in info.files else " or ".join(medmnist_filename(info.name, s) for s in info.files)
            raise PeprError(f"{names} not found (searched {searched}) and offline mode forbids downloading; "
                            f"put the file in PEPR_DATA_DIR or unset PEPR_OFFLINE")
    path, origin = found
    raw = _read_npz(path, info, src_size)  # a bad file fails here, before anything is cached
    checks = _check_official(path, info, src_size, cache)
    images = {s: torch.from_numpy(raw[s][0]) for s in SPLITS}
    if src_size != size:
        cache_file = (cache / "resized" /
                      f"{info.name}_{size}_from{src_size}_v{RESIZE_CACHE_VERSION}_{checks['sha256'][:16]}.npz")
        images = _resized_cached(images, size, cache_file)
    splits = {s: Split(images[s].contiguous(), torch.from_numpy(raw[s][1])) for s in SPLITS}
    source = {"path": str(path), "sha256": checks["sha256"], "md5": checks["md5"], "official": checks["official"],
              "origin": origin, "resized_from": src_size if src_size != size else None}
    return MedicalDataset(info=info, size=size, splits=splits, source=source)


def _download(info: DatasetInfo, size: int, cache: Path) -> Path:
    from .download import fetch

    url, md5 = info.files[size]
    return fetch(url, cache / "medmnist" / medmnist_filename(info.name, size), md5=md5, offline=False)


# --------------------------------------------------------------------------- LIDC
LIDC_CACHE_VERSION = 1
_LIDC_KEYS = ("images", "raters", "patient", "nodule", "slice")


def _lidc_arrays(source: Path, digest: str, cache: Path, progress: bool) -> dict[str, np.ndarray]:
    """``lidc.read_lidc`` once per archive: later calls load the npz cached under the archive's digest."""
    cache_file = cache / "lidc" / f"lidc-slices-v{LIDC_CACHE_VERSION}-{digest[:16]}.npz"
    if cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                return {k: z[k] for k in _LIDC_KEYS}
        except Exception:  # damaged cache entry: decode again and replace it
            pass
    arrays = lidc.read_lidc(source, progress=progress)
    try:
        save_npz(cache_file, arrays)
    except OSError as exc:
        warnings.warn(f"could not cache decoded LIDC slices at {cache_file}: {exc}", UserWarning, stacklevel=2)
    return arrays


def _load_lidc(info: DatasetInfo, size: int, data_dir: Path | None, cache: Path, *, offline: bool, split_seed: int,
               progress: bool) -> MedicalDataset:
    places = _places(data_dir, cache, "lidc")
    source = lidc.find_lidc_source([p for p, _ in places])
    if source is None:
        searched = ", ".join(str(p) for p, _ in places)
        raise PeprError(f"LIDC-IDRI crops not found: none of {', '.join(lidc.LIDC_SOURCES[:4])} or an unpacked "
                        f"LIDC-IDRI-slices folder in {searched}; get the archive (Kaggle 'LIDC-IDRI' by zhangweiled) "
                        "and put it in PEPR_DATA_DIR")
    origin = "data_dir" if data_dir is not None and source.parent == data_dir else "cache"
    if source.is_dir():
        digests = {"sha256": _tree_digest(source), "md5": None}
    else:
        digests = file_digests(source, cache)
    src = {"path": str(source), "sha256": digests["sha256"], "md5": digests["md5"], "official": False,
           "origin": origin, "resized_from": None,
           "note": "no published checksum exists for the LIDC-IDRI crops", "split": "by patient 60/20/20",
           "split_seed": int(split_seed)}
    # the finished splits at this size, uncompressed: a run's kernel reads them in a fraction of a second
    # instead of inflating the 128 px slices (about 5-8 s per run on 2 cores)
    prepared = cache / "lidc" / f"lidc-prepared_{size}_v{PREPARED_CACHE_VERSION}_{digests['sha256'][:16]}_s{int(split_seed)}.npz"
    cached = _load_prepared(prepared)
    if cached is not None:
        splits, resized_from = cached
        return MedicalDataset(info=info, size=size, splits=splits, source={**src, "resized_from": resized_from})
    arrays = _lidc_arrays(source, digests["sha256"], cache, progress)
    images = torch.from_numpy(arrays["images"][:, None])
    native = int(images.shape[-1])  # 128 for the published crops
    if size != native:
        cache_file = cache / "lidc" / f"lidc-slices_{size}_v{RESIZE_CACHE_VERSION}_{digests['sha256'][:16]}.npz"
        images = _resized_cached({"images": images}, size, cache_file)["images"]
    labels = torch.from_numpy(lidc.slice_labels(arrays["raters"]))
    meta = {k: arrays[k] for k in ("raters", "patient", "nodule", "slice")}
    whole = Split(images, labels, meta)
    splits = {name: whole.subset(idx) for name, idx in lidc.split_by_patient(arrays["patient"], split_seed).items()}
    src["resized_from"] = native if size != native else None
    _save_prepared(prepared, splits, src["resized_from"])
    return MedicalDataset(info=info, size=size, splits=splits, source=src)


def _save_prepared(path: Path, splits: dict[str, Split], resized_from: int | None) -> None:
    """The finished splits (images, labels, meta) as one uncompressed npz, written atomically."""
    arrays = {"resized_from": np.asarray(-1 if resized_from is None else resized_from)}
    for name, split in splits.items():
        arrays[f"{name}__images"], arrays[f"{name}__labels"] = split.images.numpy(), split.labels.numpy()
        arrays.update({f"{name}__meta__{k}": v for k, v in (split.meta or {}).items()})
    try:
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    except OSError as exc:
        warnings.warn(f"could not cache prepared splits at {path}: {exc}", UserWarning, stacklevel=3)


def _load_prepared(path: Path) -> tuple[dict[str, Split], int | None] | None:
    """What :func:`_save_prepared` wrote, or None (absent or damaged: prepared again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        splits = {}
        for name in SPLITS:
            meta = {k.split("__", 2)[2]: v for k, v in arrays.items() if k.startswith(f"{name}__meta__")}
            splits[name] = Split(torch.from_numpy(arrays[f"{name}__images"]),
                                 torch.from_numpy(arrays[f"{name}__labels"]), meta or None)
        resized_from = int(arrays["resized_from"])
    except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt
        return None
    return splits, (None if resized_from < 0 else resized_from)


# --------------------------------------------------------------------------- entry point
#: One loader per kind of source, all with the same signature: every dataset of the catalogue is read by the
#: loader its ``DatasetInfo.source`` names (MedMNIST npz files by flag, the LIDC-IDRI crop archive).
LOADERS = {"medmnist": _load_medmnist, "lidc": _load_lidc}


def load_dataset(name: str, size: int = 28, *, data_dir: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, offline: bool | None = None,
                 split_seed: int = lidc.SPLIT_SEED, progress: bool = True) -> MedicalDataset:
    """Load ``name`` at ``size`` px as uint8 tensors, from the data dir, the cache, or a checked download.

    ``split_seed`` only matters for ``lidc`` (MedMNIST has official splits); keep the default so every
    run sees the same patients in test. Raises PeprError for an unknown name (listing the valid ones),
    an unsupported size, a corrupt or incomplete file, or a missing file in offline mode.
    """
    info = dataset_info(name)
    size = check_size(size)
    data = data_dir_setting(data_dir)
    cache = cache_dir_setting(cache_dir)
    ds = LOADERS[info.source](info, size, data, cache, offline=offline_setting(offline), split_seed=split_seed,
                              progress=progress)
    empty = [s for s in SPLITS if len(ds.splits[s]) == 0]
    if empty:
        raise PeprError(f"{name} from {ds.source['path']}: the {' and '.join(empty)} split(s) have no images; "
                        "every split (train, val, test) needs at least one")
    return ds
