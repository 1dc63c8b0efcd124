"""CPU speed options for training and evaluation, each measured for speed and for unchanged results.

Side by side, interleaved, medians (see ``common``); 28 px PneumoniaMNIST/DermaMNIST, batch 32:

- ``eval``: ``predict`` over a test split with evaluation batches of 32, 256 (the default) and 1024;
  the scores must agree to float32 rounding;
- ``channels_last``: training steps with channels-last model and input vs the default layout;
- ``bf16``: training steps under CPU bf16 autocast (this CPU has no native bf16 when AVX-512-BF16/AMX
  are absent: emulated, so expected slower) and how far the loss moves;
- ``compile``: ``torch.compile`` of the model: compile time, then step speed, and the break-even
  against a 3-epoch 28 px run;
- ``layout``: two 1-thread processes in parallel vs one 2-thread process doing the same two jobs in turn.

    .venv/bin/python benchmarks/bench_options.py [eval channels_last bf16 compile layout] [--model M]

Measured 2026-11-29 on the 2-core AMD EPYC (AVX2, no AVX-512/AMX, so no native bf16), resnet18d,
1 thread, the machine shared with other jobs (load 5-10), medians of interleaved repetitions:

- evaluation batch 32 / 256 (default) / 1024 over DermaMNIST test: 1.05x / 1.00x / 0.78x the default's
  speed, scores bit-identical at every batch size: no change (evaluation already runs under
  ``torch.inference_mode``);
- channels_last on CPU: 0.67x, and the loss differs in the 5th digit: not used on CPU (kept on CUDA);
- bf16 autocast on CPU: 0.04x (emulated bf16 on AVX2), loss 0.7201 vs 0.7177: not used;
- torch.compile: about 310 s to compile on a cold cache, 36 s with inductor's on-disk cache warm, then
  1.11x per step; last digits change; a 3-epoch 28 px run would save about 5% after a warm compile and
  lose far more on a cold one: not used;
- 2 workers x 1 thread vs 1 worker x 2 threads, same two jobs: 2 x 1 gives 2.74x the throughput on a
  busy machine (OpenMP teams stall when cores are oversubscribed): the grid's default stays
  cores / workers threads with workers = cores.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import time

from common import interleave, median, note, setup_env

setup_env()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from pepr_utils.data.batches import Batches  # noqa: E402
from pepr_utils.data.datasets import load_dataset  # noqa: E402
from pepr_utils.models.build import create_model  # noqa: E402
from pepr_utils.train.loop import predict  # noqa: E402


def _split(dataset: str, name: str, n: int | None = None):
    data = load_dataset(dataset, 28, progress=False)
    split = data.splits[name]
    if n is not None and n < len(split):
        split = split.subset(torch.arange(n).numpy())
    return data, split


def steps(model, batches, *, channels_last=False, bf16=False, opt=None) -> float:
    """One pass of training steps; returns the mean loss (a result to compare)."""
    model.train()
    opt = opt or torch.optim.Adam(model.parameters(), lr=5e-4)
    total, n = 0.0, 0
    for x, y in batches:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(y)
        n += len(y)
    return total / n


def bench_eval(args) -> None:
    data, test = _split("dermamnist", "test")
    torch.manual_seed(0)
    model = create_model(args.model, data.n_classes, data.n_channels).net.eval()
    scores = {}

    def trial(bs):
        def run():
            scores[bs] = predict(model, Batches(test, bs), device="cpu")[1]
        return run

    vals = interleave({f"eval batch {bs}": trial(bs) for bs in (32, 256, 1024)}, args.repeats)
    base = median(vals["eval batch 256"])
    for k, v in vals.items():
        note(f"{args.model} predict dermamnist test ({len(test)} images), {k}: {median(v):.2f} s "
             f"= {base / median(v):.2f}x the default's speed")
    for bs in (32, 1024):
        diff = float(abs(torch.from_numpy(scores[bs]) - torch.from_numpy(scores[256])).max())
        same = (scores[bs].argmax(1) == scores[256].argmax(1)).all()
        note(f"  eval batch {bs} vs 256: max |score diff| {diff:.2e}, same predicted labels: {bool(same)}")


def _train_pair(args, label, kw_a, kw_b, prep_b=None):
    data, train = _split("pneumoniamnist", "train", args.images)
    torch.manual_seed(0)
    initial, _ = create_model(args.model, data.n_classes, data.n_channels)
    batches = Batches(train, 32, shuffle=True, seed=0)
    losses: dict[str, list[float]] = {"default": [], label: []}

    def trial(name, kw, prep):
        def run():
            model = copy.deepcopy(initial)
            if prep:
                model = prep(model)
            batches.set_epoch(0)
            t0 = time.perf_counter()
            losses[name].append(steps(model, batches, **kw))
            return time.perf_counter() - t0
        return run

    vals = interleave({"default": trial("default", kw_a, None), label: trial(label, kw_b, prep_b)}, args.repeats)
    ratio = median(vals["default"]) / median(vals[label])
    note(f"{args.model} {len(train)} images x 1 epoch, {torch.get_num_threads()} thread(s): default "
         f"{median(vals['default']):.2f} s, {label} {median(vals[label]):.2f} s -> {label} speed {ratio:.2f}x")
    note(f"  mean train loss default {losses['default'][0]:.6f}, {label} {losses[label][0]:.6f} "
         f"(identical: {losses['default'][0] == losses[label][0]})")
    return vals, losses


def bench_channels_last(args) -> None:
    _train_pair(args, "channels_last", {}, {"channels_last": True},
                lambda m: m.to(memory_format=torch.channels_last))


def bench_bf16(args) -> None:
    _train_pair(args, "bf16 autocast", {}, {"bf16": True})


def bench_compile(args) -> None:
    data, train = _split("pneumoniamnist", "train", args.images)
    torch.manual_seed(0)
    initial, _ = create_model(args.model, data.n_classes, data.n_channels)
    batches = Batches(train, 32, shuffle=True, seed=0, drop_last=True)
    eager = copy.deepcopy(initial)
    compiled_model = copy.deepcopy(initial)
    compiled = torch.compile(compiled_model)
    t0 = time.perf_counter()
    batches.set_epoch(0)
    first_loss = steps(compiled, batches)
    first = time.perf_counter() - t0
    opt_e = torch.optim.Adam(eager.parameters(), lr=5e-4)
    opt_c = torch.optim.Adam(compiled_model.parameters(), lr=5e-4)
    batches.set_epoch(0)
    eager_loss = steps(eager, batches, opt=opt_e)
    vals = interleave({"eager": lambda: steps(eager, batches, opt=opt_e) and None,  # None: time the call
                       "compiled": lambda: steps(compiled, batches, opt=opt_c) and None}, args.repeats)
    e, c = median(vals["eager"]), median(vals["compiled"])
    compile_s = first - c
    full = 3 * 4708 / len(train) * e  # a 3-epoch PneumoniaMNIST 100% run at 28 px, eager
    note(f"{args.model} torch.compile, {len(train)} images per pass: first pass {first:.1f} s "
         f"(compile about {compile_s:.1f} s), then eager {e:.2f} s vs compiled {c:.2f} s per pass "
         f"-> {e / c:.2f}x; a 3-epoch 28 px PneumoniaMNIST run (about {full:.0f} s eager) would take "
         f"{compile_s + full * c / e:.0f} s compiled")
    note(f"  first-pass mean loss eager {eager_loss:.9f}, compiled {first_loss:.9f} "
         f"(identical: {eager_loss == first_loss}); a second process reuses inductor's on-disk cache")


_LAYOUT_JOB = """
import sys, time, torch
sys.path.insert(0, {root!r})
from common import setup_env; setup_env()
import torch.nn.functional as F
from pepr_utils.data.batches import Batches
from pepr_utils.data.datasets import load_dataset
from pepr_utils.models.build import create_model
torch.set_num_threads({threads})
data = load_dataset('pneumoniamnist', 28, progress=False)
split = data.splits['train'].subset(torch.arange({images}).numpy())
torch.manual_seed(0)
model, _ = create_model({model!r}, 2, 1); opt = torch.optim.Adam(model.parameters(), lr=5e-4)
t0 = time.perf_counter()
for _ in range({jobs}):
    for x, y in Batches(split, 32, shuffle=True, seed=0):
        opt.zero_grad(); F.cross_entropy(model(x), y).backward(); opt.step()
print(time.perf_counter() - t0)
"""


def bench_layout(args) -> None:
    from common import ROOT

    def job(threads, jobs):
        code = _LAYOUT_JOB.format(root=str(ROOT / "benchmarks"), threads=threads, images=args.images,
                                  model=args.model, jobs=jobs)
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                env={**__import__("os").environ, "OMP_NUM_THREADS": str(threads)})

    def two_by_one():
        procs = [job(1, 1), job(1, 1)]
        return max(float(p.communicate()[0]) for p in procs)

    def one_by_two():
        return float(job(2, 2).communicate()[0])

    vals = interleave({"2 workers x 1 thread": two_by_one, "1 worker x 2 threads": one_by_two}, args.repeats)
    a, b = median(vals["2 workers x 1 thread"]), median(vals["1 worker x 2 threads"])
    note(f"{args.model}, two jobs of {args.images} images x 1 epoch (training time, imports excluded): "
         f"2 x 1 thread {a:.1f} s, 1 x 2 threads {b:.1f} s -> 2 x 1 is {b / a:.2f}x the throughput")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", nargs="*", default=["eval", "channels_last", "bf16", "compile", "layout"])
    ap.add_argument("--model", default="resnet18d")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in args.which:
        globals()[f"bench_{name}"](args)


if __name__ == "__main__":
    main()
