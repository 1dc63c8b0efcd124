"""Building a model for a dataset: timm's factory, pretrained weights (hub, local dir or checkpoint),
freezing for a linear probe, and the model's size and MACs.

timm's ``pretrained_cfg`` says where a model's weights live and which layers are its stem and its
classifier, so nothing here is model-specific.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import settings
from ..errors import PeprError

if TYPE_CHECKING:  # torch and timm are imported where they are used, so `pepr --help` stays fast
    import torch

from .catalogue import ModelRef, _pretrained_cfg, close_model_names, resolve_model
from .input_plan import _check_size, _error_line

#: How a run from weights trains: every layer, or the head on a frozen backbone.
TRAINABLE_MODES = ("full", "linear")
#: The checkpoint files a run may start from (an earlier run's ``model.safetensors``, or a torch state dict).
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")
NO_WEIGHTS = ("", "none", "scratch")


@dataclass(frozen=True)
class WeightsInfo:
    """What :func:`create_model` loaded: ``weights`` as asked (None, ``"imagenet"`` or the checkpoint path), the
    ``source`` it came from (a file, or ``hf-hub:<id>``; the record's ``model_info.weights_source``), and the
    checkpoint keys whose classifier was skipped (another class count) or whose stem was adapted (another
    channel count)."""

    weights: str | None = None
    source: str | None = None
    skipped_keys: tuple[str, ...] = ()
    adapted_keys: tuple[str, ...] = ()


class BuiltModel(NamedTuple):
    """What :func:`create_model` returns: the network and what it was loaded from (``net, weights_info = ...``)."""

    net: torch.nn.Module
    weights_info: WeightsInfo


def no_weights(weights: Any) -> bool:
    """True for every spelling of "no weights" (None, False, "", "none", "scratch", any case)."""
    return weights is None or weights is False or (isinstance(weights, str) and weights.strip().lower() in NO_WEIGHTS)


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


def _create_imagenet(ref: ModelRef, num_classes: int, in_chans: int, weights_dir: Any,
                     offline: bool | None) -> BuiltModel:
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
    return BuiltModel(model, WeightsInfo(weights="imagenet", source=source or f"hf-hub:{hub_id}"))


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
            import pickle

            if isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower():
                # torch's own text is a page of advice; its first 300 characters stop mid-sentence
                raise PeprError(f"cannot read checkpoint {path}: it holds pickled Python objects besides tensors, "
                                "which are not loaded (running them could run any code); save a plain state dict "
                                "(torch.save(model.state_dict(), path)) or a .safetensors file") from exc
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


def _load_checkpoint_into(model: Any, sd: dict, path: Path, name: str) -> tuple[list[str], list[str]]:
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
    return skipped, adapted


def create_model(name: str, num_classes: int, in_chans: int, *, weights: str | os.PathLike | None = None,
                 weights_dir: str | os.PathLike | None = None, offline: bool | None = None) -> BuiltModel:
    """Build a timm model for a dataset (``num_classes``, ``in_chans``) from scratch or from weights.

    ``weights``: None (random init), ``"imagenet"`` (timm's default weights: ``<weights_dir>/<model>.safetensors``
    when present, else the Hugging Face cache or hub; offline and missing is a PeprError naming the file
    looked for), or a checkpoint file (.safetensors, or .pt/.pth read with ``weights_only=True``: a state dict
    or a pepr checkpoint with ``state_dict``). Returns ``(net, weights_info)``: the network and a
    :class:`WeightsInfo` saying what was loaded (:func:`pepr_utils.train.experiment.model_summary` records it).
    """
    import timm

    num_classes = _check_count(num_classes, "num_classes")
    in_chans = _check_count(in_chans, "in_chans")
    ref = resolve_model(name)
    if not ref.exists:
        close = close_model_names(name)
        raise PeprError(f"model {name!r} cannot be built: {ref.note}"
                        + (f"; close names: {', '.join(close)}" if close else ""))
    if no_weights(weights):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*deprecated.*")
            model = timm.create_model(ref.timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
        return BuiltModel(model, WeightsInfo())
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
    skipped, adapted = _load_checkpoint_into(model, sd, path, name)
    return BuiltModel(model, WeightsInfo(weights=str(path), source=str(path), skipped_keys=tuple(skipped),
                                         adapted_keys=tuple(adapted)))


# =========================================================================== training helpers
def _classifier_modules(model: Any) -> list:
    head = model.get_classifier()
    return list(head) if isinstance(head, (tuple, list)) else [head]


def set_trainable(model: torch.nn.Module, mode: str) -> tuple[str, ...]:
    """``full``: every parameter trains; ``linear``: only the classifier (timm's ``get_classifier()``) trains.

    Returns the names of the frozen normalisation layers (none in full mode). Freezing parameters does not
    stop batch norm from updating its running statistics in train mode, so pass these names to
    :func:`pepr_utils.train.loop.train_one_epoch` (``frozen_norms=``), which keeps those layers in eval mode
    (:func:`pepr_utils.train.loop.freeze_frozen_norms`) and the backbone exactly as loaded.
    """
    if mode not in TRAINABLE_MODES:
        raise PeprError(f"mode {mode!r} is not valid; expected one of: {', '.join(TRAINABLE_MODES)}")
    if mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return ()
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
    return tuple(
        n for n, m in model.named_modules()
        if id(m) not in head_ids and any(b in dict(m.named_buffers(recurse=False)) for b in ("running_mean", "running_var"))
    )


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
