"""Where things live, and whether the network may be used.

Every path has an environment setting (``PEPR_DATA_DIR``, ``PEPR_WEIGHTS_DIR``, ``PEPR_REFERENCE_DIR``,
``PEPR_OUTPUT_DIR``, ``PEPR_CACHE_DIR``) and every function takes an explicit value that wins over it,
so notebooks, the CLI and tests can all point at the same files without copying them.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def shipped(*parts: str) -> Path:
    """A file or folder shipped with the package: ``shipped("parameters", "grids")``, ``shipped("notebooks")``.

    Found with ``importlib.resources``, so it works from a checkout (``pepr_utils/parameters`` and
    ``pepr_utils/notebooks`` are symlinks to the repository's ``parameters/`` and ``notebooks/``) and from
    an installed wheel (the build copies the files in as package data) alike.
    """
    from importlib.resources import files

    return Path(str(files("pepr_utils").joinpath(*parts)))


def _path_setting(explicit: str | os.PathLike | None, env: str, default: str | os.PathLike | None) -> Path | None:
    value = explicit if explicit not in (None, "") else os.environ.get(env) or default
    return Path(value).expanduser() if value not in (None, "") else None


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """Local dataset files (MedMNIST npz files, the LIDC-IDRI archive), or None."""
    return _path_setting(explicit, "PEPR_DATA_DIR", None)


def weights_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """Local pretrained weights as ``<timm model name>.safetensors``, or None."""
    return _path_setting(explicit, "PEPR_WEIGHTS_DIR", None)


def reference_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The paper's published CSVs, or None (then they are downloaded and cached)."""
    return _path_setting(explicit, "PEPR_REFERENCE_DIR", None)


def output_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Root of everything pepr writes: ``explicit``, else ``PEPR_OUTPUT_DIR``, else ``outputs/``.

    The default is anchored once, here: in a pepr checkout it is the checkout's ``outputs/`` wherever the
    code runs from (a notebook's folder, the repository root, a grid's kernel), elsewhere (an installed
    wheel) ``outputs/`` in the working directory.
    """
    root = _path_setting(explicit, "PEPR_OUTPUT_DIR", None)
    if root is not None:
        return root
    checkout = Path(__file__).resolve().parents[1]
    return checkout / "outputs" if (checkout / "pyproject.toml").is_file() else Path("outputs")


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Downloads and decoded datasets (default ``~/.cache/pepr``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pepr"
    return _path_setting(explicit, "PEPR_CACHE_DIR", default)  # type: ignore[return-value]


def offline(explicit: bool | None = None) -> bool:
    """True when nothing may touch the network (``PEPR_OFFLINE`` or ``HF_HUB_OFFLINE``)."""
    if explicit is not None:
        return bool(explicit)
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("PEPR_OFFLINE", "HF_HUB_OFFLINE"))
