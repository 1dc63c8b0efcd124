"""The input-size policy: at which size a model sees a dataset's images, decided before training.

Whether a model runs at a given input size is *measured* (a forward and backward pass on a tiny batch),
cached per timm version, because timm's own ``fixed_input_size`` flag is neither complete (halonets
need 256 px and are not flagged) nor exact (sequencer2d_l is flagged but runs at 28 px).
"""

from __future__ import annotations

import json
import os
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import settings
from ..errors import PeprError
from ..fileio import atomic_write_json

if TYPE_CHECKING:  # torch and timm are imported where they are used, so `pepr --help` stays fast
    pass

from .catalogue import ModelRef, _pretrained_cfg, default_input_size, resolve_model

PLAN_STATUSES = ("ok", "resize", "incompatible")
MIN_SIZE, MAX_SIZE = 8, 1024
# Sizes tried (besides the model's default) when a model does not run at the data size.
_CANDIDATE_STEP = 32
_PROBE_BATCH = 2  # two images, so batch norm has more than one value per channel at 1x1 feature maps


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
