"""The model catalogues (``parameters/models/<name>.yaml``) and model names: what the study uses, as data.

A catalogue lists the paper's models and what the paper reports about them; :func:`resolve_model` maps
any name (a catalogue name timm renamed, or a timm name) to the installed timm's, with close names
when it is unknown.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from .. import settings
from ..errors import PeprError

if TYPE_CHECKING:  # torch and timm are imported where they are used, so `pepr --help` stays fast
    pass

CATALOGUE_DIR = settings.shipped("parameters", "models")  # package data (importlib.resources), checkout or wheel
CATALOGUE_COLUMNS = ("model", "type", "efficient", "paper_num_params", "link", "timm_name", "timm_note")
MODEL_TYPES = ("CNN", "Other")


# =========================================================================== catalogue
def catalogue_names() -> list[str]:
    """The catalogues shipped in ``parameters/models`` (file stems)."""
    return sorted(p.stem for p in CATALOGUE_DIR.glob("*.yaml"))


@functools.lru_cache(maxsize=8)
def _read_catalogue(name: str) -> tuple[dict, ...]:
    path = CATALOGUE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise PeprError(f"unknown model catalogue {name!r}; available: {', '.join(catalogue_names()) or 'none'} "
                        f"(YAML files in {CATALOGUE_DIR})")
    doc = yaml.safe_load(path.read_text())
    entries = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise PeprError(f"{path}: expected a mapping with a non-empty 'models' list")
    seen: set[str] = set()
    for i, e in enumerate(entries):
        where = f"{path.name}: model #{i + 1}"
        if not isinstance(e, dict) or not isinstance(e.get("model"), str) or not e["model"]:
            raise PeprError(f"{where}: each entry needs a 'model' name")
        if e["model"] in seen:
            raise PeprError(f"{where}: model {e['model']!r} is listed twice")
        seen.add(e["model"])
        if e.get("type") not in MODEL_TYPES:
            raise PeprError(f"{where} ({e['model']}): type {e.get('type')!r} is not one of {', '.join(MODEL_TYPES)}")
        if not isinstance(e.get("efficient"), bool):
            raise PeprError(f"{where} ({e['model']}): efficient must be true or false, got {e.get('efficient')!r}")
        unknown = set(e) - set(CATALOGUE_COLUMNS)
        if unknown:
            raise PeprError(f"{where} ({e['model']}): unknown field(s) {', '.join(sorted(unknown))}; "
                            f"accepted: {', '.join(CATALOGUE_COLUMNS)}")
    return tuple(entries)


def load_catalogue(name: str = "paper131") -> pd.DataFrame:
    """The catalogue as a table, one row per model (columns: :data:`CATALOGUE_COLUMNS`)."""
    df = pd.DataFrame(list(_read_catalogue(name)), columns=list(CATALOGUE_COLUMNS))
    df["paper_num_params"] = df["paper_num_params"].astype("Int64")
    df["efficient"] = df["efficient"].astype(bool)
    return df


def catalogue_models(name: str = "paper131") -> list[str]:
    """The model names of a catalogue, in the catalogue's order."""
    return [e["model"] for e in _read_catalogue(name)]


def _catalogue_entry(model: str) -> dict | None:
    """A model's entry in any shipped catalogue (the first that lists it)."""
    for cat in catalogue_names():
        for e in _read_catalogue(cat):
            if e["model"] == model:
                return e
    return None


# =========================================================================== names
@dataclass(frozen=True)
class ModelRef:
    """A model name as asked for, and what it is in the installed timm."""

    name: str  # as the user (or the paper) wrote it
    timm_name: str  # what timm.create_model gets (may carry a pretrained tag, e.g. resnet34.gluon_in1k)
    exists: bool  # False: the name is known (a catalogue lists it) but this timm no longer has it
    note: str = ""  # why it does not exist, or what to know about it


@functools.lru_cache(maxsize=1)
def _timm_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models())


def close_model_names(name: str, n: int = 5) -> list[str]:
    """Model names (timm's and the catalogues') that look like ``name``, best first."""
    pool = set(_timm_names())
    for cat in catalogue_names():
        pool.update(catalogue_models(cat))
    return difflib.get_close_matches(name, sorted(pool), n=n, cutoff=0.6)


def resolve_model(name: str) -> ModelRef:
    """Map a model name to the installed timm's name; PeprError (with close names) when unknown.

    Catalogue names that timm renamed (``gluon_resnet34_v1b`` -> ``resnet34.gluon_in1k``) resolve through the
    catalogue's ``timm_name`` or timm's own deprecation table; names a catalogue lists but timm removed
    resolve with ``exists=False`` so a run can be reported ``incompatible`` instead of failing.
    """
    import timm
    from timm.models import get_deprecated_models

    if not isinstance(name, str) or not name.strip():
        raise PeprError(f"model name must be a non-empty string, got {name!r}")
    name = name.strip()
    entry = _catalogue_entry(name)
    note = (entry or {}).get("timm_note") or ""
    timm_name = (entry or {}).get("timm_name") or get_deprecated_models().get(name) or name
    if timm.is_model(timm_name):
        arch, _, tag = timm_name.partition(".")
        tags = [t.partition(".")[2] for t in timm.list_pretrained(f"{arch}.*")]
        if tag and tag not in tags:
            raise PeprError(f"model {name!r}: timm has no pretrained tag {tag!r} for {arch}; "
                            f"available: {', '.join(tags) or 'none'}")
        return ModelRef(name, timm_name, True, note)
    if entry is not None:
        return ModelRef(name, timm_name, False, note or f"removed from timm (not in timm {timm.__version__})")
    close = close_model_names(name)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise PeprError(f"unknown model {name!r}{hint} (any name in timm.list_models() is accepted)")


def _pretrained_cfg(ref: ModelRef) -> Any:
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(ref.timm_name, allow_unregistered=True)


def default_input_size(name: str) -> int:
    """The square input size timm's default pretrained config declares (224 when it declares none)."""
    cfg = _pretrained_cfg(resolve_model(name))
    size = getattr(cfg, "input_size", None) or (3, 224, 224)
    return int(size[-1])
