"""Training batches straight from uint8 tensors.

The whole split stays as one uint8 tensor (on the GPU when it fits); each batch is gathered with one
indexing operation, then converted to float, normalised and (optionally) resized as whole arrays.
There is no per-sample Python, no PIL and no worker processes, which is what makes small-image
training fast enough that the model, not the input pipeline, is what gets measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import PeprError

if TYPE_CHECKING:  # a datasets.Split or anything with uint8 ``images`` (N, C, H, W) and int64 ``labels``
    from typing import Any as Split

#: Share of free accelerator memory a split may take to be kept there whole.
DEVICE_RESIDENT_SHARE = 0.4


def resize_float(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a float (B, C, H, W) batch to ``size`` x ``size``, antialiased when shrinking."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def resize_uint8(images: torch.Tensor, size: int, chunk: int = 512) -> torch.Tensor:
    """Resize a uint8 (N, C, H, W) tensor to ``size`` px in chunks (bounded memory), rounding back to uint8."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        x = resize_float(images[start:start + chunk].float(), size)
        out[start:start + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _per_channel(value: float | Sequence[float], n_channels: int, name: str) -> torch.Tensor:
    v = torch.as_tensor(value, dtype=torch.float32).flatten()
    if v.numel() not in (1, n_channels):
        raise PeprError(f"{name}={list(v.tolist())} has {v.numel()} values; expected 1 or {n_channels} (one per channel)")
    if name == "std" and bool((v <= 0).any()):
        raise PeprError(f"std={list(v.tolist())} must be positive")
    return v.expand(n_channels).reshape(1, n_channels, 1, 1).clone()


def _fits_on(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return device.type != "cpu"  # mps/xpu: unified or unknown memory, keep the data there
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes < DEVICE_RESIDENT_SHARE * free


class Batches:
    """Iterate ``(x, y)`` over a split: x float32 (B, C, H', W') = (uint8/255 - mean)/std, y int64.

    ``out_size`` resizes on the fly (bilinear, antialiased) when it differs from the stored size.
    With ``shuffle``, each pass draws a new order from a generator seeded by (seed, epoch); the epoch
    advances after each pass, or set it with :meth:`set_epoch` to reproduce a given epoch.
    """

    def __init__(self, split: Split, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 device: str | torch.device = "cpu", out_size: int | None = None,
                 mean: float | Sequence[float] = 0.5, std: float | Sequence[float] = 0.5,
                 channels_last: bool = False, drop_last: bool = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise PeprError(f"batch_size={batch_size!r} must be a positive integer")
        if out_size is not None and (not isinstance(out_size, (int, np.integer)) or out_size < 1):
            raise PeprError(f"out_size={out_size!r} must be a positive integer or None")
        images, labels = split.images, split.labels
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise PeprError(f"Batches needs uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.shuffle, self.seed, self.drop_last, self.channels_last = shuffle, int(seed), drop_last, channels_last
        self.out_size = None if out_size is None or out_size == images.shape[-1] else int(out_size)
        self.epoch = 0
        self.resident = self.device.type == "cpu" or _fits_on(self.device, images.numel())
        if self.resident:
            self.images, self.labels = images.to(self.device), labels.to(self.device)
        else:  # too big for the accelerator: pinned host memory, copied per batch without blocking
            self.images, self.labels = images.pin_memory(), labels.pin_memory()
        c = images.shape[1]
        std_t = _per_channel(std, c, "std")
        mean_t = _per_channel(mean, c, "mean")
        # (x/255 - mean)/std == x * scale - shift: plain numbers when every channel shares mean and std
        # (the default), which is faster than broadcasting a (1, C, 1, 1) array
        scale, shift = 1.0 / (255.0 * std_t), mean_t / std_t
        uniform = bool((scale == scale.flatten()[0]).all() and (shift == shift.flatten()[0]).all())
        if self.device.type == "cpu":
            # CPU batches are converted with numpy: single-threaded, so a small batch never waits on an
            # OpenMP thread team (torch's parallel kernels stall badly when the cores are oversubscribed)
            self._np_images, self._np_labels = self.images.numpy(), self.labels.numpy()
            self._scale = np.float32(scale.flatten()[0]) if uniform else scale.numpy()
            self._shift = np.float32(shift.flatten()[0]) if uniform else shift.numpy()
        else:
            self._scale = float(scale.flatten()[0]) if uniform else scale.to(self.device)
            self._shift = float(shift.flatten()[0]) if uniform else shift.to(self.device)

    def __len__(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use the order of ``epoch`` (0-based)."""
        self.epoch = int(epoch)

    def _order(self) -> torch.Tensor | None:
        if not self.shuffle:
            return None
        seed = int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1, np.uint64)[0] >> 1)
        order = torch.randperm(self.images.shape[0], generator=torch.Generator().manual_seed(seed))
        return order.to(self.images.device)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _prepare_cpu(self, a: np.ndarray) -> torch.Tensor:
        if self.out_size is not None:  # torch's uint8 bilinear kernel: 3-5x faster than resizing floats
            a = F.interpolate(torch.from_numpy(a), size=(self.out_size, self.out_size), mode="bilinear",
                              antialias=True, align_corners=False).numpy()
        x = np.multiply(a, self._scale, dtype=np.float32)
        x -= self._shift
        return self._finish(torch.from_numpy(x))

    def _prepare(self, xb: torch.Tensor) -> torch.Tensor:
        x = xb.to(self.device, non_blocking=True).float()
        size = self.out_size
        shrink = size is not None and size < x.shape[-1]
        if shrink:  # normalise the smaller tensor: resize and the affine map commute
            x = resize_float(x, size)
        x = x.mul_(self._scale).sub_(self._shift)
        if size is not None and not shrink:
            x = resize_float(x, size)
        return self._finish(x)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order()
        self.epoch += 1
        n = self.images.shape[0]
        stop_at = (n // self.batch_size) * self.batch_size if self.drop_last else n
        cpu = self.device.type == "cpu"
        if cpu and order is not None:
            order = order.numpy()
        for start in range(0, stop_at, self.batch_size):
            stop = min(start + self.batch_size, n)
            if cpu:
                sel = slice(start, stop) if order is None else order[start:stop]
                # labels copied, never a view: a caller's in-place edit must not reach the dataset
                yield self._prepare_cpu(self._np_images[sel]), torch.from_numpy(np.array(self._np_labels[sel]))
            elif order is None:
                yield self._prepare(self.images[start:stop]), self.labels[start:stop].to(self.device, non_blocking=True)
            else:
                idx = order[start:stop]
                yield (self._prepare(self.images.index_select(0, idx)),
                       self.labels.index_select(0, idx).to(self.device, non_blocking=True))
