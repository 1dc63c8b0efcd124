"""Models: the paper's catalogue, one timm factory, and an input-size policy decided before training.

Everything model-specific is data: the catalogue YAML (``parameters/models/<name>.yaml``) says which
models the study uses and what the paper reports about them; timm's ``pretrained_cfg`` says where a
model's weights live and which layers are its stem and its classifier; and whether a model runs at a
given input size is *measured* (a forward and backward pass on a tiny batch), cached per timm version,
because timm's own ``fixed_input_size`` flag is neither complete (halonets need 256 px and are not
flagged) nor exact (sequencer2d_l is flagged but runs at 28 px).

Public API: :func:`load_catalogue`, :func:`catalogue_models`, :func:`resolve_model`, :func:`plan_input`,
:func:`create_model`, :func:`set_trainable`, :func:`train_mode`, :func:`model_info`, :func:`check_models`.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import time
import traceback
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from . import settings
from .errors import PeprError
from .fileio import atomic_write_json

if TYPE_CHECKING:  # torch and timm are imported where they are used, so `pepr --help` stays fast
    import torch

CATALOGUE_DIR = settings.shipped("parameters", "models")  # package data (importlib.resources), checkout or wheel
CATALOGUE_COLUMNS = ("model", "type", "efficient", "paper_num_params", "link", "timm_name", "timm_note")
MODEL_TYPES = ("CNN", "Other")
TRAINABLE_MODES = ("full", "linear")
PLAN_STATUSES = ("ok", "resize", "incompatible")
MIN_SIZE, MAX_SIZE = 8, 1024
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
# Sizes tried (besides the model's default) when a model does not run at the data size.
_CANDIDATE_STEP = 32
_PROBE_BATCH = 2  # two images, so batch norm has more than one value per channel at 1x1 feature maps


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


# =========================================================================== input-size policy
@dataclass(frozen=True)
class InputPlan:
    """How a model will see a dataset's images, decided before training.

    status ``ok``: run at ``data_size``; ``resize``: resize each batch on the fly to ``run_size``;
    ``incompatible``: the model cannot run (``run_size`` None) and ``reason`` says why.
    """

    model: str
    data_size: int
    run_size: int | None
    status: str
    reason: str = ""
    detail: str = ""  # the error the model raised at data_size, when it did not run there

    def as_dict(self) -> dict:
        return asdict(self)


def _check_size(size: Any, what: str = "size") -> int:
    try:
        ok = int(size) == size and not isinstance(size, bool)
    except (TypeError, ValueError):
        ok = False
    if not ok or not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise PeprError(f"{what} {size!r} is not valid; expected an integer number of pixels from {MIN_SIZE} to {MAX_SIZE}")
    return int(size)


def probe_cache_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where measured input-size probes are kept (``<cache_dir>/models/input_probes.json``)."""
    return settings.cache_dir(cache_dir) / "models" / "input_probes.json"


def _versions_key() -> str:
    import timm
    import torch

    return f"timm-{timm.__version__}_torch-{torch.__version__}"


def _error_line(exc: BaseException) -> str:
    """One informative line for an exception (timm's bare ``assert`` carries no message: name the line)."""
    msg = (str(exc).strip().splitlines() or [""])[0].strip()
    if not msg:
        torch_dir = os.sep + "torch" + os.sep  # torch._assert is never the interesting frame
        tb = [f for f in traceback.extract_tb(exc.__traceback__) if torch_dir not in f.filename] or \
            traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno} ({(tb[-1].line or '').strip()})" if tb else ""
        return f"{type(exc).__name__}{where}"
    return f"{type(exc).__name__}: {msg}"[:300]


class _Prober:
    """Runs (and caches) one forward+backward pass of a randomly initialised model at a given size.

    Probe results depend only on the architecture and the installed timm/torch, so they are cached in a
    JSON file keyed by those versions; the model is only built when a size has not been probed yet.
    """

    def __init__(self, ref: ModelRef, cache_dir: str | os.PathLike | None = None):
        self.ref = ref
        self.path = probe_cache_path(cache_dir)
        self.key = _versions_key()
        self.results: dict[str, str] = dict(self._load().get(self.key, {}).get(ref.timm_name, {}))
        self.new: dict[str, str] = {}
        self._model: Any = None
        self._build_error: str | None = None
        self.num_params: int | None = None

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def model(self) -> Any:
        if self._model is None and self._build_error is None:
            import timm

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._model = timm.create_model(self.ref.timm_name, pretrained=False, num_classes=2, in_chans=3)
                self.num_params = sum(p.numel() for p in self._model.parameters())
            except Exception as exc:  # noqa: BLE001 - any build failure is a result to report
                self._build_error = "cannot build: " + _error_line(exc)
        return self._model

    def run(self, size: int) -> str:
        """Forward+backward at ``size`` now (no cache): 'ok' or the error's first line."""
        import torch

        model = self.model()
        if model is None:
            return self._build_error or "cannot build"
        model.train()
        gen = torch.Generator().manual_seed(size)
        x = torch.randn(_PROBE_BATCH, 3, size, size, generator=gen)
        try:
            out = model(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            out.float().sum().backward()
            result = "ok"
        except Exception as exc:  # noqa: BLE001 - the failure is the measurement
            result = _error_line(exc)
        finally:
            model.zero_grad(set_to_none=True)
        return result

    def __call__(self, size: int) -> str:
        key = str(size)
        if key not in self.results:
            self.results[key] = self.new[key] = self.run(size)
        return self.results[key]

    def record(self, size: int, result: str) -> None:
        self.results[str(size)] = self.new[str(size)] = result

    def save(self) -> None:
        """Merge new results into the cache file (re-read first, so concurrent planners lose nothing)."""
        if not self.new:
            return
        data = self._load()
        data.setdefault(self.key, {}).setdefault(self.ref.timm_name, {}).update(self.new)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, data)
        except OSError as exc:  # a read-only cache only costs time, never correctness
            warnings.warn(f"could not save input-size probes to {self.path}: {exc}", stacklevel=3)
        self.new = {}


@contextmanager
def _probing(ref: ModelRef, cache_dir: str | os.PathLike | None) -> Iterator[_Prober]:
    """A prober that leaves torch's global random state untouched and saves what it measured."""
    import torch

    prober = _Prober(ref, cache_dir)
    try:
        with torch.random.fork_rng(devices=[]):
            yield prober
    finally:
        prober.save()


def _plan(prober: _Prober, ref: ModelRef, data_size: int) -> InputPlan:
    """The policy: the data size if the model runs there, else the smallest size it runs at, else none."""
    name = ref.name
    first = prober(data_size)
    if first == "ok":
        return InputPlan(name, data_size, data_size, "ok", ref.note)
    if first.startswith("cannot build"):
        return InputPlan(name, data_size, None, "incompatible", first, first)
    default = default_input_size(name)
    flagged = bool(getattr(_pretrained_cfg(ref), "fixed_input_size", False))
    # timm's fixed_input_size flag is only a hint of where to look first (it is wrong for some models)
    if flagged and default != data_size and prober(default) == "ok" and prober(default + _CANDIDATE_STEP) != "ok":
        reason = f"needs exactly {default} px" + (f"; {ref.note}" if ref.note else "")
        return InputPlan(name, data_size, default, "resize", reason, first)
    top = max(default, data_size)
    candidates = sorted({*range(_CANDIDATE_STEP, top + 1, _CANDIDATE_STEP), default})
    lo, hi = data_size, None
    for size in (s for s in candidates if s > data_size):  # the smallest working size above the data size
        if prober(size) == "ok":
            hi = size
            break
        lo = size
    if hi is None:
        return InputPlan(name, data_size, None, "incompatible",
                         f"does not run at {data_size} px nor at any size up to {top} px ({first})", first)
    if prober(hi + _CANDIDATE_STEP) != "ok":  # runs at hi but not just above: a fixed size
        reason = f"needs exactly {hi} px"
    else:
        least = hi
        while least - lo > 1:  # the smallest working size in (lo, hi], if larger sizes keep working
            mid = (lo + least) // 2
            lo, least = (lo, mid) if prober(mid) == "ok" else (mid, least)
        irregular = next((s for s in (least + 1, hi + 1) if prober(s) != "ok"), None)
        if irregular is None:
            reason, hi = f"needs at least {least} px", least
        else:  # e.g. DLA: 31, 32, 63, 64 ... px work, 33 px does not; keep to the grid size that works
            reason = f"needs a size such as {hi} px (runs at {hi} and {hi + _CANDIDATE_STEP} px, not at {irregular} px)"
    if ref.note:
        reason += f"; {ref.note}"
    return InputPlan(name, data_size, hi, "resize", reason, first)


def plan_input(model_name: str, data_size: int, *, cache_dir: str | os.PathLike | None = None) -> InputPlan:
    """Decide, before training, at which size ``model_name`` sees images stored at ``data_size`` px.

    Runs at the data size when the model accepts it (``ok``); else at the smallest size it runs at, the
    batch resized on the fly (``resize``, e.g. "needs exactly 256 px", "needs at least 75 px"); else
    ``incompatible`` with the reason (e.g. removed from timm). Measured once per model, size and
    timm/torch version (cached under the cache dir), so planning a run costs nothing after the first time.
    """
    data_size = _check_size(data_size, "data size")
    ref = resolve_model(model_name)
    if not ref.exists:
        return InputPlan(ref.name, data_size, None, "incompatible", ref.note)
    with _probing(ref, cache_dir) as prober:
        return _plan(prober, ref, data_size)


# =========================================================================== building
def _check_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PeprError(f"{what} must be a positive integer, got {value!r}")
    return value


def _weights_file_candidates(ref: ModelRef, wdir: Path) -> list[Path]:
    """``<name>.safetensors``, then the current timm name (``resnet34.gluon_in1k``) for renamed models; never
    the bare architecture, whose default weights may be another training recipe's."""
    return [wdir / f"{n}.safetensors" for n in dict.fromkeys([ref.name, ref.timm_name])]


def _hf_cached_file(hub_id: str | None) -> str | None:
    """The model's weights in the local Hugging Face cache, without touching the network."""
    if not hub_id:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo, _, revision = hub_id.partition("@")
    for filename in ("model.safetensors", "pytorch_model.bin"):
        hit = try_to_load_from_cache(repo, filename, revision=revision or None)
        if isinstance(hit, str) and os.path.isfile(hit):
            return hit
    return None


def _create_imagenet(ref: ModelRef, num_classes: int, in_chans: int, weights_dir: Any, offline: bool | None) -> Any:
    """timm's default ImageNet weights: from the weights dir, else the HF cache, else (online) the hub.

    timm itself adapts the stem to ``in_chans`` (summing the RGB filters for one channel) and drops the
    ImageNet classifier when ``num_classes`` differs, exactly as in ``timm.create_model(pretrained=True)``.
    """
    import timm

    cfg = _pretrained_cfg(ref)
    hub_id = getattr(cfg, "hf_hub_id", None)
    if not (hub_id or getattr(cfg, "url", None)):
        raise PeprError(f"timm has no ImageNet weights for {ref.name!r}; use weights=None (train from scratch) "
                        "or a checkpoint file")
    wdir = settings.weights_dir(weights_dir)
    looked = _weights_file_candidates(ref, wdir) if wdir else []
    file = next((p for p in looked if p.is_file()), None)
    source = str(file) if file else None
    if file is None and settings.offline(offline):
        source = _hf_cached_file(hub_id)
        if source is None:
            where = (" or ".join(str(p) for p in looked) if looked
                     else f"<PEPR_WEIGHTS_DIR>/{ref.name}.safetensors (PEPR_WEIGHTS_DIR is not set)")
            raise PeprError(f"no ImageNet weights for {ref.name!r} while offline: looked for {where} and in the "
                            f"Hugging Face cache ({hub_id or 'no hub id'}); put the file there or go online")
    overlay = {"file": source} if source else None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*deprecated.*")
            model = timm.create_model(ref.timm_name, pretrained=True, pretrained_cfg_overlay=overlay,
                                      num_classes=num_classes, in_chans=in_chans)
    except PeprError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bad file or a failed download is the user's to fix
        raise PeprError(f"cannot load ImageNet weights for {ref.name!r} from {source or hub_id}: "
                        f"{_error_line(exc)}") from exc
    model.pepr_weights_info = {"weights": "imagenet", "source": source or f"hf-hub:{hub_id}",
                               "skipped_keys": [], "adapted_keys": []}
    return model


def _read_checkpoint(path: Path) -> dict:
    """A state dict from a .safetensors file or a weights-only torch file (plain or a pepr checkpoint)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            sd: Any = load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError: not a safetensors file, truncated
            raise PeprError(f"cannot read checkpoint {path} as a safetensors file ({_error_line(exc)}); "
                            "expected a file written by safetensors.torch.save_file, or a .pt/.pth "
                            "state dict") from exc
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - an unreadable or unsafe file
            raise PeprError(f"cannot read checkpoint {path} with torch.load(weights_only=True): {_error_line(exc)}") from exc
        if isinstance(sd, dict):
            for key in ("state_dict", "model_state_dict", "model"):
                if isinstance(sd.get(key), dict):
                    sd = sd[key]
                    break
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise PeprError(f"checkpoint {path} holds no state dict (expected tensors by name, or a dict with 'state_dict')")
    prefixes = ("_orig_mod.", "module.")
    clean = {}
    for k, v in sd.items():
        while k.startswith(prefixes):
            k = k.split(".", 1)[1]
        clean[k] = v
    return clean


def _head_prefixes(model: Any) -> tuple[str, ...]:
    """Module names of the classifier head(s): timm's ``pretrained_cfg['classifier']`` and ``get_classifier()``."""
    names: set[str] = set()
    cfg_cls = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
    if cfg_cls:
        names.update([cfg_cls] if isinstance(cfg_cls, str) else cfg_cls)
    heads = _classifier_modules(model)
    for n, m in model.named_modules():
        if any(m is h for h in heads) and n:
            names.add(n)
    return tuple(sorted(names))


def _is_under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _load_checkpoint_into(model: Any, sd: dict, path: Path, name: str) -> dict:
    """Load ``sd`` strictly, except: a head of another class count is skipped (kept random), and a stem of
    another channel count is adapted as timm does (summed to 1 channel, or repeated and rescaled)."""
    from timm.models import adapt_input_conv

    own = model.state_dict()
    heads = _head_prefixes(model)
    first = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv") or ()
    stems = {f"{c}.weight" for c in ([first] if isinstance(first, str) else first)}
    skipped, adapted, load = [], [], {}
    for k, v in sd.items():
        if k not in own:
            continue
        if v.shape == own[k].shape:
            load[k] = v
        elif _is_under(k, heads):
            skipped.append(k)
        elif k in stems and v.ndim == 4 and v.shape[0] == own[k].shape[0] and v.shape[2:] == own[k].shape[2:]:
            load[k] = adapt_input_conv(own[k].shape[1], v, base_chans=v.shape[1])
            adapted.append(k)
        else:
            raise PeprError(f"checkpoint {path} does not fit {name!r}: {k} has shape {tuple(v.shape)} there and "
                            f"{tuple(own[k].shape)} in the model")
    unexpected = [k for k in sd if k not in own]
    missing = [k for k in own if k not in sd and not _is_under(k, heads)]
    if unexpected or missing:
        detail = "; ".join(f"{len(ks)} {what} (e.g. {ks[0]})" for what, ks in
                           (("unexpected keys", unexpected), ("missing keys", missing)) if ks)
        raise PeprError(f"checkpoint {path} does not fit {name!r}: {detail}; is it a checkpoint of this model?")
    model.load_state_dict(load, strict=False)
    if skipped:
        warnings.warn(f"{path.name}: skipped the classifier ({', '.join(skipped)}) whose class count differs from "
                      f"this model's; the new head starts from random weights", UserWarning, stacklevel=3)
    return {"skipped_keys": skipped, "adapted_keys": adapted}


def create_model(name: str, num_classes: int, in_chans: int, *, weights: str | os.PathLike | None = None,
                 weights_dir: str | os.PathLike | None = None, offline: bool | None = None) -> torch.nn.Module:
    """Build a timm model for a dataset (``num_classes``, ``in_chans``) from scratch or from weights.

    ``weights``: None (random init), ``"imagenet"`` (timm's default weights: ``<weights_dir>/<model>.safetensors``
    when present, else the Hugging Face cache or hub; offline and missing is a PeprError naming the file
    looked for), or a checkpoint file (.safetensors, or .pt/.pth read with ``weights_only=True``: a state dict
    or a pepr checkpoint with ``state_dict``). The model gets a ``pepr_weights_info`` dict saying what was loaded.
    """
    import timm

    num_classes = _check_count(num_classes, "num_classes")
    in_chans = _check_count(in_chans, "in_chans")
    ref = resolve_model(name)
    if not ref.exists:
        close = close_model_names(name)
        raise PeprError(f"model {name!r} cannot be built: {ref.note}"
                        + (f"; close names: {', '.join(close)}" if close else ""))
    if weights in (None, "", "none", "scratch"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*deprecated.*")
            model = timm.create_model(ref.timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
        model.pepr_weights_info = {"weights": None, "source": None, "skipped_keys": [], "adapted_keys": []}
        return model
    if isinstance(weights, str) and weights.lower() == "imagenet":
        return _create_imagenet(ref, num_classes, in_chans, weights_dir, offline)
    path = Path(weights).expanduser()
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise PeprError(f"weights {str(weights)!r} not understood; expected None, 'imagenet' or a checkpoint file "
                        f"({', '.join(CHECKPOINT_SUFFIXES)})")
    if not path.is_file():
        raise PeprError(f"checkpoint file {str(path)!r} not found")
    sd = _read_checkpoint(path)
    model = timm.create_model(ref.timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    report = _load_checkpoint_into(model, sd, path, name)
    model.pepr_weights_info = {"weights": str(path), "source": str(path), **report}
    return model


# =========================================================================== training helpers
def _classifier_modules(model: Any) -> list:
    head = model.get_classifier()
    return list(head) if isinstance(head, (tuple, list)) else [head]


def set_trainable(model: torch.nn.Module, mode: str) -> None:
    """``full``: every parameter trains; ``linear``: only the classifier (timm's ``get_classifier()``) trains.

    Freezing parameters does not stop batch norm from updating its running statistics in train mode, so
    linear mode also records the frozen normalisation layers in ``model.pepr_frozen_norms``: put the
    model in training mode with :func:`train_mode`, which keeps those layers in eval mode and the
    backbone exactly as loaded.
    """
    if mode not in TRAINABLE_MODES:
        raise PeprError(f"mode {mode!r} is not valid; expected one of: {', '.join(TRAINABLE_MODES)}")
    if mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        model.pepr_frozen_norms = ()
        return
    heads = _classifier_modules(model)
    for p in model.parameters():
        p.requires_grad_(False)
    n_head = 0
    for h in heads:
        for p in h.parameters():
            p.requires_grad_(True)
            n_head += p.numel()
    if n_head == 0:
        raise PeprError(f"{type(model).__name__} has no classifier parameters to train in linear mode")
    head_ids = {id(m) for h in heads for m in h.modules()}
    model.pepr_frozen_norms = tuple(
        n for n, m in model.named_modules()
        if id(m) not in head_ids and any(b in dict(m.named_buffers(recurse=False)) for b in ("running_mean", "running_var"))
    )


def train_mode(model: torch.nn.Module) -> torch.nn.Module:
    """``model.train()``, except normalisation layers frozen by :func:`set_trainable` stay in eval mode."""
    model.train()
    for name in getattr(model, "pepr_frozen_norms", ()):
        model.get_submodule(name).eval()
    return model


def model_info(model: torch.nn.Module, input_size: int, in_chans: int) -> dict:
    """Parameter counts and MACs per image (PyTorch's FLOP counter on one image; MACs = FLOPs / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    input_size = _check_size(input_size, "input size")
    in_chans = _check_count(in_chans, "in_chans")
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(1, in_chans, input_size, input_size, device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return {
        "num_params": int(sum(p.numel() for p in params)),
        "trainable_params": int(sum(p.numel() for p in params if p.requires_grad)),
        "macs_per_image": int(counter.get_total_flops() // 2),
        "input_size": int(input_size),
    }


# =========================================================================== checking the catalogue
def _imagenet_num_params(ref: ModelRef) -> int | None:
    """Parameters in timm's ImageNet configuration (3 channels, 1000 classes), the paper's count, built on
    the meta device so nothing is allocated."""
    import timm
    import torch

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(sum(p.numel() for p in timm.create_model(ref.timm_name).parameters()))
    except Exception:  # noqa: BLE001 - some models cannot be built on meta; the count is then unknown
        return None


def check_models(names: Iterable[str], size: int, *, progress: bool = True,
                 cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Build each model (3 channels, 2 classes, random init) and run forward+backward on 2 images at ``size``.

    One row per model: model, timm_name, exists, status (ok | resize | incompatible), run_size, reason,
    num_params (as built), num_params_imagenet (3 channels, 1000 classes), paper_num_params (from the
    catalogue, when listed), params_match_paper, check_s. Unknown names raise PeprError before any work.
    """
    import gc

    from tqdm.auto import tqdm

    size = _check_size(size)
    refs = [resolve_model(n) for n in names]
    rows = []
    bar = tqdm(refs, desc=f"models check {size}px", unit="model", disable=not progress)
    for ref in bar:
        bar.set_postfix_str(ref.name, refresh=False)
        start = time.perf_counter()
        entry = _catalogue_entry(ref.name) or {}
        row: dict[str, Any] = {"model": ref.name, "timm_name": ref.timm_name if ref.exists else None,
                               "exists": ref.exists}
        if not ref.exists:
            plan = InputPlan(ref.name, size, None, "incompatible", ref.note)
            n_params = n_imagenet = None
        else:
            with _probing(ref, cache_dir) as prober:
                prober.record(size, prober.run(size))  # always measured afresh: this is the check
                plan = _plan(prober, ref, size)
                prober.model()
                n_params = prober.num_params
            n_imagenet = _imagenet_num_params(ref)
            del prober
            gc.collect()
        paper = entry.get("paper_num_params")
        row.update(status=plan.status, run_size=plan.run_size, reason=plan.reason, error=plan.detail,
                   num_params=n_params, num_params_imagenet=n_imagenet, paper_num_params=paper,
                   params_match_paper=(None if paper is None or n_imagenet is None else bool(paper == n_imagenet)),
                   check_s=round(time.perf_counter() - start, 2))
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("run_size", "num_params", "num_params_imagenet", "paper_num_params"):
        if col in df:
            df[col] = df[col].astype("Int64")
    return df
