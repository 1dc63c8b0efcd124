"""Atomic writes and checksums.

Results must never be half-written: everything goes to a temporary file in the destination's
folder, is flushed to disk, then renamed over the target (atomic on POSIX).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of files and folders pepr writes: the usual ones (mkstemp/mkdtemp make them owner-only).
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only if the block succeeds."""
    target = Path(target)
    with _naming(target, target.parent / f".{target.name}."):
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(target.parent, f".{target.name}.")  # what a killed earlier write of this target left
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=suffix + ".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp_path, FILE_MODE)
            os.replace(tmp_path, target)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: someone else's process, alive
        return True
    return True


def clean_stale(folder: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove ``<folder>/<prefix><pid>-*`` entries whose process is gone; return them.

    Every temporary pepr makes carries its maker's pid after a fixed prefix, so what a killed command
    (kill -9, power cut) left behind is removed by the next command that writes the same target, and a
    temporary of a command still running is never touched.
    """
    removed = []
    folder = Path(folder)
    try:
        entries = list(folder.glob(f"{glob.escape(prefix)}*"))
    except OSError:
        return removed
    for entry in entries:
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def temp_prefix(target: Path) -> str:
    """``.<name>.<pid>-``: the hidden temporary beside ``target`` of this process (see :func:`clean_stale`)."""
    return f".{target.name}.{os.getpid()}-"


@contextmanager
def _naming(target: Path, tmp_prefix: Path) -> Iterator[None]:
    """An OSError about our hidden temporary (or about no file at all: a full disk) names ``target``,
    the path the user gave, never ``.target.xxxx.tmp``."""
    try:
        yield
    except OSError as exc:
        names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
        if exc.errno is not None and (not names or any(n.startswith(str(tmp_prefix)) for n in names)):
            raise type(exc)(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=str, allow_nan=True) + "\n")


def atomic_write_figure(target: str | os.PathLike, fig: Any, *, dpi: int = 150) -> Path:
    """A matplotlib figure saved atomically, in the format the file name says (``.png``, ``.pdf``, ...)."""
    target = Path(target)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=target.suffix.lstrip(".").lower() or "png", dpi=dpi, bbox_inches="tight")
    return target


def atomic_write_csv(target: str | os.PathLike, df: Any, *, index: bool = False) -> Path:
    """A pandas table saved atomically as CSV, at full precision."""
    with atomic_path(target) as tmp:
        df.to_csv(tmp, index=index)
    return Path(target)


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; it replaces ``target`` only if the block succeeds.

    A reader never sees a half-filled folder under the final name: the old folder (if any) is moved
    aside, the new one renamed in, then the old one deleted. A ``target`` that exists but is not a
    folder is never replaced (PeprError, before anything is written). Callers that replace a folder
    they did not write must check first (see ``report.check_report_dir``).
    """
    from .errors import PeprError

    target = Path(target)
    if target.exists() and not target.is_dir():
        raise PeprError(f"{str(target)!r} exists and is not a folder; refusing to replace it (choose another path)")
    with _naming(target, target.parent / f".{target.name}."):
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(target.parent, f".{target.name}.")  # a killed earlier build: its folder, or the old one
        clean_stale(target.parent, f".{target.name}.old-")
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target), suffix=".tmp", dir=target.parent))
        try:
            yield tmp
            os.chmod(tmp, DIR_MODE)
            old = None
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def read_text(path: str | os.PathLike, what: str) -> str:
    """The UTF-8 text of a file the user gave (``what`` says which, e.g. "grid file"), or a one-line PeprError.

    Every text file the CLI reads goes through here, so stray bytes are "not UTF-8 text (byte 0xff at
    offset 12)" naming the user's path, never a UnicodeDecodeError traceback.
    """
    from .errors import PeprError

    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PeprError(f"{what} {str(path)!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                        f"{exc.start}); save it as UTF-8 text") from None
    except IsADirectoryError:
        raise PeprError(f"{what} {str(path)!r} is a folder; expected a file") from None


def load_yaml(path: str | os.PathLike, what: str) -> Any:
    """A YAML file read with :func:`read_text`; a key given twice in one mapping is an error (YAML's
    "the last one wins" would drop the first value without a word), as is invalid YAML."""
    import yaml

    from .errors import PeprError

    class _UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):  # type: ignore[override]
            seen: dict = {}  # key -> its line (a flow mapping, {a: 1, a: 2}, has both on one line)
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<: *defaults": merged by yaml itself, where later keys override it
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: yaml's own error follows
                    continue
                if first is not None:
                    where = f"line {line}" if first == line else f"lines {first} and {line}"
                    raise PeprError(f"{what} {str(path)!r}: key {key!r} given twice ({where}); keep one")
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    text = read_text(path, what)
    try:
        return yaml.load(text, Loader=_UniqueKeys)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise PeprError(f"{what} {str(path)!r} is not valid YAML: {' '.join(str(exc).split())}") from exc


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks (works for multi-GB archives)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
