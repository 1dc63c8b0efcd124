"""LIDC-IDRI nodule crops as a slice-level classification task.

The source is the "LIDC-IDRI slices" tree used with the Probabilistic U-Net
(``LIDC-IDRI-slices/LIDC-IDRI-XXXX/nodule-Y/images/slice-N.png`` plus ``mask-K/slice-N.png`` for the
four raters K = 0..3), as a ``.tar.gz``, a ``.zip`` (Kaggle) or an unpacked folder. The PNGs are decoded
straight from the archive stream (no extraction to disk); ``pepr_utils.data.datasets`` caches the result as
a compressed npz, because decoding 77,740 small files is the slow part.

Label (the PePR paper's rule): a slice is positive when at least 3 of the 4 raters drew a non-empty
mask on it. The paper split slices by index, which leaks patients between train and test; we split by
patient with a fixed seed instead.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm.auto import tqdm

from ..errors import PeprError

#: File and folder names accepted for the crop archive, in the order they are looked for.
LIDC_SOURCES = (
    "lidc-idri-slices.tar.gz", "lidc-idri-slices.tgz", "lidc-idri-slices.tar", "lidc-idri-slices.zip",
    "LIDC-IDRI-slices.zip", "LIDC-IDRI.zip", "lidc-idri-slices", "LIDC-IDRI-slices",
)
N_RATERS = 4
MIN_POSITIVE_RATERS = 3  # "at least 3 of 4" = sum of rater labels > 2
SPLIT_SHARES = (0.6, 0.2, 0.2)
SPLIT_SEED = 0
NATIVE_SIZE = 128

_SLICE = re.compile(r"^slice-(\d+)\.png$")
_NODULE = re.compile(r"^nodule-(\d+)$")
_KIND = re.compile(r"^(images|mask-(\d+))$")


# --------------------------------------------------------------------------- archive safety
def _unsafe_reason(name: str) -> str | None:
    """Why an archive member name would land outside the target folder, or None if it is safe."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "parent-directory component"
    return None


def _refuse(archive: Path, name: str, why: str) -> PeprError:
    return PeprError(f"refusing archive {archive.name}: member {name!r} ({why}) would land outside the "
                     "target folder; only plain files and folders inside the tree are accepted")


def _check_tar_member(archive: Path, member: tarfile.TarInfo) -> None:
    why = _unsafe_reason(member.name)
    if why is None and (member.issym() or member.islnk()):
        why = "link"
    elif why is None and not (member.isfile() or member.isdir()):
        why = "device or special file"
    if why:
        raise _refuse(archive, member.name, why)


def _check_zip_member(archive: Path, info: zipfile.ZipInfo) -> None:
    why = _unsafe_reason(info.filename)
    if why is None and stat.S_ISLNK(info.external_attr >> 16):
        why = "link"
    if why:
        raise _refuse(archive, info.filename, why)


# --------------------------------------------------------------------------- reading the tree
def _parse(name: str) -> tuple[str, int, int, int] | None:
    """(patient, nodule, kind, slice) from ``.../PATIENT/nodule-Y/images|mask-K/slice-N.png``.

    kind is -1 for the image and K for rater K's mask; None for any other member (folders, stray files).
    """
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".")]
    if len(parts) < 4:
        return None
    patient, nodule, kind, fname = parts[-4:]
    s, n, k = _SLICE.match(fname), _NODULE.match(nodule), _KIND.match(kind)
    if not (s and n and k):
        return None
    rater = -1 if k.group(1) == "images" else int(k.group(2))
    return patient, int(n.group(1)), rater, int(s.group(1))


class _CountingReader(io.RawIOBase):
    """A file wrapper that advances a progress bar by the compressed bytes read."""

    def __init__(self, fh, bar):
        self._fh, self._bar = fh, bar

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._fh.readinto(b)
        self._bar.update(n or 0)
        return n


def _members(source: Path, progress: bool) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) for every PNG under ``source`` (archive or folder), checking member safety."""
    desc = f"decode {source.name}"
    if source.is_dir():
        files = sorted(p for p in source.rglob("*.png") if p.is_file())
        for p in tqdm(files, desc=desc, unit="png", disable=not progress):
            yield p.relative_to(source).as_posix(), p.read_bytes()
        return
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_zip_member(source, info)
            for info in tqdm(infos, desc=desc, unit="file", disable=not progress):
                if not info.is_dir() and info.filename.endswith(".png"):
                    yield info.filename, zf.read(info)
        return
    with open(source, "rb") as raw, tqdm(total=source.stat().st_size, desc=desc, unit="B", unit_scale=True,
                                          disable=not progress) as bar:
        try:
            with tarfile.open(fileobj=io.BufferedReader(_CountingReader(raw, bar), 1 << 20), mode="r|*") as tar:
                for m in tar:
                    _check_tar_member(source, m)
                    if m.isfile() and m.name.endswith(".png"):
                        yield m.name, tar.extractfile(m).read()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise PeprError(f"cannot read {source.name} as a LIDC-IDRI slices archive (tar, zip or folder): "
                            f"{exc}") from exc


def read_lidc(source: str | os.PathLike, *, progress: bool = True) -> dict[str, np.ndarray]:
    """Decode the crop tree into arrays sorted by (patient, nodule, slice).

    Returns ``images`` (N, H, W) uint8, ``raters`` (N, 4) uint8 (1 = that rater's mask is non-empty),
    ``patient`` (N,) str, ``nodule`` and ``slice`` (N,) int32. A slice without all four masks (or a
    mask without its image) is a one-line PeprError naming the nodule folder.
    """
    from PIL import Image, UnidentifiedImageError

    source = Path(source)
    images: dict[tuple[str, int, int], np.ndarray] = {}
    masks: dict[tuple[str, int, int], list[int | None]] = {}
    for name, data in _members(source, progress):
        parsed = _parse(name)
        if parsed is None:
            continue
        patient, nodule, rater, sl = parsed
        key = (patient, nodule, sl)
        try:
            im = Image.open(io.BytesIO(data))
            im = im if im.mode == "L" else im.convert("L")
            if rater < 0:
                images[key] = np.asarray(im)
            elif rater < N_RATERS:
                masks.setdefault(key, [None] * N_RATERS)[rater] = int(im.getbbox() is not None)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise PeprError(f"cannot decode {name} in {source.name}: {exc}") from exc
    if not images:
        raise PeprError(f"no LIDC slices found in {source.name}; expected "
                        "LIDC-IDRI-XXXX/nodule-Y/images/slice-N.png with mask-0..mask-3/slice-N.png beside it")
    for key in sorted(set(images) | set(masks)):
        patient, nodule, sl = key
        folder = f"{patient}/nodule-{nodule}"
        if key not in images:
            raise PeprError(f"LIDC nodule folder {folder} in {source.name} has masks but no images/slice-{sl}.png")
        missing = [k for k, v in enumerate(masks.get(key, [None] * N_RATERS)) if v is None]
        if missing:
            raise PeprError(f"LIDC nodule folder {folder} in {source.name} lacks "
                            + ", ".join(f"mask-{k}/slice-{sl}.png" for k in missing)
                            + f"; every slice needs the masks of all {N_RATERS} raters")
    keys = sorted(images)
    shapes = {images[k].shape for k in keys}
    if len(shapes) != 1:
        raise PeprError(f"LIDC slices in {source.name} have mixed sizes {sorted(shapes)}; expected one size")
    return {
        "images": np.stack([images[k] for k in keys]),
        "raters": np.array([masks[k] for k in keys], dtype=np.uint8),
        "patient": np.array([k[0] for k in keys]),
        "nodule": np.array([k[1] for k in keys], dtype=np.int32),
        "slice": np.array([k[2] for k in keys], dtype=np.int32),
    }


# --------------------------------------------------------------------------- labels and split
def slice_labels(raters: np.ndarray) -> np.ndarray:
    """1 when at least 3 of the 4 raters marked the nodule on the slice (the paper's rule), else 0."""
    return (np.asarray(raters).sum(axis=1) >= MIN_POSITIVE_RATERS).astype(np.int64)


def split_by_patient(patient: np.ndarray, seed: int = SPLIT_SEED,
                     shares: tuple[float, float, float] = SPLIT_SHARES) -> dict[str, np.ndarray]:
    """Sorted slice indices per split, assigning whole patients 60/20/20 (by patient count), seeded.

    The same patients and seed always give the same split, whatever order the slices came in.
    """
    patients = np.unique(patient)
    order = np.random.default_rng(seed).permutation(len(patients))
    n_train = round(shares[0] * len(patients))
    n_val = round(shares[1] * len(patients))
    groups = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    which = np.searchsorted(patients, patient)
    return {name: np.flatnonzero(np.isin(which, idx)).astype(np.int64) for name, idx in groups.items()}


def find_lidc_source(places: list[Path]) -> Path | None:
    """The first accepted archive or folder name present in ``places``."""
    for place in places:
        for name in LIDC_SOURCES:
            if (place / name).exists():
                return place / name
    return None
