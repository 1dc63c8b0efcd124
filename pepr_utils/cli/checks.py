"""Checks of command-line values that every subcommand applies the same way."""

from __future__ import annotations

from pathlib import Path

from ..errors import PeprError


def check_output_file(path: str | Path, option: str = "-o") -> Path:
    """An output file path that can be written: not a folder, its parent a folder (or creatable)."""
    out = Path(path).expanduser()
    if str(path).strip() == "":
        raise PeprError(f"{option} is empty; expected a file path such as scored.csv")
    if out.is_dir():
        raise PeprError(f"{option} {str(path)!r} is a folder; expected a file path such as {out / 'scored.csv'}")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PeprError(f"{option} {str(path)!r}: {str(parent)!r} is a file, not a folder")
            break
    return out
