"""Input-pipeline throughput: our uint8-tensor batches vs a per-sample torchvision DataLoader.

The baseline is what MedMNIST's tutorial does: a Dataset whose ``__getitem__`` turns one uint8 array
into a PIL image and applies ``transforms.Compose([ToTensor(), Normalize(mean=[.5], std=[.5])])``
(plus ``Resize`` when training at another size), batched by ``torch.utils.data.DataLoader``. Ours is
:class:`pepr_utils.data.batches.Batches` over the same images. Both shuffle, both yield normalised float32
(B, C, H, W) batches and int64 labels; both run in this process, one after the other, so the ratio is
measured on the same machine under the same load. Goal: ours >= 10x.

    python benchmarks/bench_data.py [--dataset dermamnist] [--scenarios 28:28 28:224 224:224] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from pepr_utils.data.batches import Batches
from pepr_utils.data.datasets import load_dataset


class PerSampleDataset(Dataset):
    """MedMNIST 3.0.2's ``MedMNIST2D.__getitem__``, over our arrays (NHWC uint8, as in the npz files)."""

    def __init__(self, images_nhwc: np.ndarray, labels: np.ndarray, transform) -> None:
        self.imgs, self.labels, self.transform = images_nhwc, labels, transform

    def __len__(self) -> int:
        return len(self.imgs)

    def __getitem__(self, index):
        img, target = self.imgs[index], self.labels[index].astype(int)
        img = Image.fromarray(img)
        return self.transform(img), target


def images_per_s(batches, device: torch.device, min_s: float) -> float:
    """Images/s over consecutive batches (passes repeat as needed) until ``min_s`` seconds have run."""
    n, start = 0, time.perf_counter()
    while True:
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            n += x.shape[0]
            if time.perf_counter() - start >= min_s:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                return n / (time.perf_counter() - start)


def parse_scenario(text: str) -> tuple[int, int]:
    stored, _, model_input = text.partition(":")
    return int(stored), int(model_input or stored)


def goal(*, dataset: str = "dermamnist", repeats: int = 3, min_s: float = 1.0, threads: int = 1) -> str:
    """``make bench``: Batches vs the per-sample DataLoader at 28 px, images/s, interleaved (goal >= 10x)."""
    from common import interleave, note, ratio_of_medians, report

    torch.set_num_threads(threads)
    device = torch.device("cpu")
    train = load_dataset(dataset, 28, progress=False).splits["train"]
    nhwc = np.ascontiguousarray(train.images.permute(0, 2, 3, 1).numpy())
    nhwc = nhwc[..., 0] if nhwc.shape[-1] == 1 else nhwc
    c = train.images.shape[1]
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=[0.5] * c, std=[0.5] * c)])
    loader = DataLoader(PerSampleDataset(nhwc, train.labels.numpy(), tf), batch_size=32, shuffle=True)
    batches = Batches(train, 32, shuffle=True, seed=0)
    rates = interleave({"ours": lambda: images_per_s(batches, device, min_s),
                        "dataloader": lambda: images_per_s(loader, device, min_s)}, repeats)
    ratio = ratio_of_medians(rates, "ours", "dataloader")
    note(f"data: {dataset} 28 px train, batch 32: Batches {np.median(rates['ours']):,.0f} img/s, "
         f"per-sample DataLoader {np.median(rates['dataloader']):,.0f} img/s")
    return report("data_path_vs_dataloader", f"{ratio:.1f}x", ">= 10x", ratio >= 10)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="dermamnist")
    ap.add_argument("--scenarios", nargs="+", default=["28:28", "28:224", "224:224"], metavar="STORED:INPUT",
                    help="stored size : size the model sees (resized per batch when they differ); "
                         "default 28:28 28:224 224:224")
    ap.add_argument("--batch-size", type=int, default=32, help="the paper's batch size (default 32)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (tutorial: 0)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's choice); 1 is steadier on a busy machine")
    ap.add_argument("--min-s", type=float, default=3.0, help="seconds to measure each pipeline (default 3)")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.dataset}, train split; batch {args.batch_size}; device {device}; torch threads "
          f"{torch.get_num_threads()}; DataLoader workers {args.workers}; >= {args.min_s:g} s per measurement")
    print(f"{'stored':>7} {'model input':>12} {'ours img/s':>12} {'DataLoader img/s':>17} {'ratio':>7}")
    loaded: dict[int, tuple] = {}
    for stored, out in map(parse_scenario, args.scenarios):
        if stored not in loaded:
            loaded.clear()  # keep one size in memory at a time
            train = load_dataset(args.dataset, stored, progress=False).splits["train"]
            nhwc = np.ascontiguousarray(train.images.permute(0, 2, 3, 1).numpy())
            nhwc = nhwc[..., 0] if nhwc.shape[-1] == 1 else nhwc  # grayscale npz files hold (N, H, W)
            loaded[stored] = (train, nhwc, train.labels.numpy())
        train, nhwc, labels = loaded[stored]
        c = train.images.shape[1]
        steps = [transforms.ToTensor(), transforms.Normalize(mean=[0.5] * c, std=[0.5] * c)]
        if out != stored:
            steps.insert(0, transforms.Resize(out, antialias=True))
        loader = DataLoader(PerSampleDataset(nhwc, labels, transforms.Compose(steps)), batch_size=args.batch_size,
                            shuffle=True, num_workers=args.workers, pin_memory=device.type == "cuda")
        ours = Batches(train, args.batch_size, shuffle=True, seed=0, device=device, out_size=out)
        x_ours, _ = next(iter(ours))
        x_base, _ = next(iter(loader))
        assert x_ours.shape[1:] == x_base.shape[1:] and x_ours.dtype == x_base.dtype, (x_ours.shape, x_base.shape)
        rate_ours = images_per_s(ours, device, args.min_s)
        rate_base = images_per_s(loader, device, args.min_s)
        print(f"{stored:>7} {f'{c}x{out}x{out}':>12} {rate_ours:>12,.0f} {rate_base:>17,.0f} "
              f"{rate_ours / rate_base:>6.1f}x", flush=True)


if __name__ == "__main__":
    main()
