"""Training throughput of ``pepr_utils.train.loop.fit`` next to a bare, minimal PyTorch loop, in one run.

Both loops train the same model (the same initial weights, copied), on the same batches (one
:class:`~pepr_utils.data.batches.Batches` over the same images, reshuffled per pass), with the same batch
size, optimiser (Adam, lr 5e-4) and number of threads. Trials alternate, and the order flips every
round, so warm-up and machine drift hit both alike. ``fit`` is timed from the call to its return
(device placement, optimiser creation, progress bar and bookkeeping included; no evaluation: no
val/test batches are given). On CUDA the bare loop uses the same autocast precision and
channels-last layout as ``fit``, so the ratio measures the loop's overhead, not AMP's gain.

Prints images/s of each trial, the medians and the ratio ours / bare (goal: >= 0.95), twice: per
second of wall-clock time (what a user waits for), and per CPU second of this process (all its
threads; ``time.process_time``), which stays meaningful on a machine shared with other jobs, where
wall-clock rates swing by 2x between trials. On a GPU only the wall-clock ratio counts.

    .venv/bin/python benchmarks/bench_train.py                      # resnet18d, PneumoniaMNIST 28 px
    .venv/bin/python benchmarks/bench_train.py --quick              # seconds: a smoke run
    .venv/bin/python benchmarks/bench_train.py --device cuda --images 20000
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

from pepr_utils import settings
from pepr_utils.data.batches import Batches
from pepr_utils.data.datasets import load_dataset
from pepr_utils.devices import resolve_device
from pepr_utils.models.build import create_model
from pepr_utils.params import RunParams
from pepr_utils.train.loop import autocast_for, fit


def bare_loop(model: torch.nn.Module, batches: Batches, device: torch.device, lr: float) -> int:
    """The minimal loop: zero_grad, forward, cross-entropy, backward, step. Returns images seen."""
    autocast, _ = autocast_for(device, amp=True)  # bf16 or none: the minimal loop has no gradient scaler
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    seen = 0
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        seen += y.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return seen


def ours(model: torch.nn.Module, batches: Batches, device: torch.device, lr: float, batch_size: int,
         progress: bool) -> int:
    result = fit(model, batches, task="multi-class",
                 params=RunParams(model="bench", dataset="bench", epochs=1, batch_size=batch_size, lr=lr,
                                  device=str(device)), progress=progress)
    return result.train_images


def goal(*, model: str = "resnet18d", dataset: str = "pneumoniamnist", images: int = 384, repeats: int = 3,
         threads: int = 1) -> str:
    """``make bench``: fit vs the bare loop, images per second, interleaved, medians (goal >= 0.95x)."""
    from common import interleave, note, ratio_of_medians, report

    torch.set_num_threads(threads)
    device = torch.device("cpu")
    data = load_dataset(dataset, 28, data_dir=settings.data_dir(), progress=False)
    split = data.splits["train"].subset(torch.arange(images).numpy())
    batches = Batches(split, 32, shuffle=True, seed=0)
    torch.manual_seed(0)
    initial, _ = create_model(model, data.n_classes, data.n_channels)
    bare_loop(copy.deepcopy(initial), batches, device, 5e-4)  # warm-up of both
    ours(copy.deepcopy(initial), batches, device, 5e-4, 32, progress=False)

    def trial(fn):  # images per CPU second of this process: steady when other jobs share the machine
        def run():
            t0 = time.process_time()
            seen = fn(copy.deepcopy(initial))
            return seen / (time.process_time() - t0)
        return run

    rates = interleave({"ours": trial(lambda m: ours(m, batches, device, 5e-4, 32, progress=True)),
                        "bare": trial(lambda m: bare_loop(m, batches, device, 5e-4))}, repeats)
    ratio = ratio_of_medians(rates, "ours", "bare")
    note(f"train: {model} {dataset} 28 px, {images} images per trial, batch 32, {threads} thread(s): "
         f"fit {statistics.median(rates['ours']):.1f}, bare loop {statistics.median(rates['bare']):.1f} images per CPU-s")
    return report("train_loop_vs_bare", f"{ratio:.3f}x", ">= 0.95x", ratio >= 0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18d")
    parser.add_argument("--dataset", default="pneumoniamnist")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--images", type=int, default=1024, help="training images per trial")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7, help="rounds of (ours, bare) trials")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-progress", action="store_true", help="run fit without its progress bar")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 256 images, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.images, args.rounds = 256, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*official MedMNIST checksum.*")

    device = resolve_device(args.device)
    data = load_dataset(args.dataset, args.size, data_dir=settings.data_dir(), progress=False)
    train = data.splits["train"]
    n = min(args.images, len(train))
    split = train.subset(torch.arange(n).numpy()) if n < len(train) else train
    batches = Batches(split, args.batch_size, shuffle=True, seed=0, device=device,
                      channels_last=device.type == "cuda")
    torch.manual_seed(0)
    initial, _ = create_model(args.model, data.n_classes, data.n_channels)
    lr = 5e-4

    print(f"{args.model} on {args.dataset} {args.size}px: {n} images per trial, batch {args.batch_size}, "
          f"device {device}, {torch.get_num_threads()} threads, {args.rounds} rounds")
    # one untimed pass of each, so allocator and kernel caches are warm for both
    bare_loop(copy.deepcopy(initial), batches, device, lr)
    ours(copy.deepcopy(initial), batches, device, lr, args.batch_size, progress=False)

    wall: dict[str, list[float]] = {"ours": [], "bare": []}
    cpu: dict[str, list[float]] = {"ours": [], "bare": []}
    for r in range(args.rounds):
        order = ("ours", "bare") if r % 2 == 0 else ("bare", "ours")
        for name in order:
            model = copy.deepcopy(initial)
            start, start_cpu = time.perf_counter(), time.process_time()
            if name == "ours":
                seen = ours(model, batches, device, lr, args.batch_size, progress=not args.no_progress)
            else:
                seen = bare_loop(model, batches, device, lr)
            elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
            wall[name].append(seen / elapsed)
            cpu[name].append(seen / elapsed_cpu)
            print(f"round {r + 1} {name:4s}: {seen / elapsed:8.1f} images/s wall ({elapsed:.2f} s), "
                  f"{seen / elapsed_cpu:8.1f} images per CPU-s ({elapsed_cpu:.2f} CPU-s)", flush=True)
    for label, rates in (("wall-clock", wall), ("CPU-time", cpu)):
        med = {k: statistics.median(v) for k, v in rates.items()}
        ratio = med["ours"] / med["bare"]
        per_round = [o / b for o, b in zip(rates["ours"], rates["bare"], strict=True)]
        print(f"{label}: median ours {med['ours']:.1f}, bare {med['bare']:.1f}; per-round ratios "
              f"{', '.join(f'{x:.3f}' for x in per_round)}")
        print(f"{label} throughput ratio ours / bare = {ratio:.3f} (goal >= 0.95): "
              f"{'met' if ratio >= 0.95 else 'NOT met'}")


if __name__ == "__main__":
    main()
