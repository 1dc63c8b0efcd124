"""The study's wall time, projected: every run of a grid (default ``parameters/grids/quick.yaml``)
costed from a timed sample and scheduled on the grid's workers.

For each distinct (model, input size) of the grid this times a sample here, with the
threads each run gets (cores / workers): training steps at the run's batch size and evaluation
batches of 256. A run then costs its fixed cost per run (measured by ``bench_grid``, or
``--fixed-s``) + epochs x (training images x step time per image + (val + test) images x evaluation
time per image) + the inference timing (up to 2,048 test images). Runs are placed in the grid's own
order (``schedule_order``) on the first free worker; the projection is the last worker's finish.
Goal: <= 1,800 s (the study, report excluded, within half an hour).

    .venv/bin/python benchmarks/bench_study.py [--grid parameters/grids/quick.yaml] [--workers 2] [--fixed-s 5]
"""

from __future__ import annotations

import argparse
import heapq
import os
import time

from common import ROOT, interleave, median, note, report, setup_env

setup_env()


def _per_image_costs(model_name: str, n_channels: int, n_classes: int, size: int, run_size: int,
                     batch_size: int, repeats: int) -> tuple[float, float]:
    """(seconds per training image, seconds per evaluated image), medians over interleaved repeats, in
    CPU seconds of this process (steady on a shared machine; a run has its core to itself in the grid)."""
    import torch
    import torch.nn.functional as F

    from pepr_utils.data.batches import Batches
    from pepr_utils.data.datasets import Split
    from pepr_utils.models.build import create_model
    from pepr_utils.train.loop import predict

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (256, n_channels, size, size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, n_classes, (256,), generator=g)
    split = Split(images, labels)
    torch.manual_seed(0)
    model, _ = create_model(model_name, n_classes, n_channels)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    train = Batches(split.subset(list(range(3 * batch_size))) if 3 * batch_size < 256 else split, batch_size,
                    shuffle=True, out_size=run_size)
    evaluate = Batches(split, 256, out_size=run_size)

    def steps():
        model.train()
        n = 0
        t0 = time.process_time()
        for x, y in train:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            n += len(y)
        return (time.process_time() - t0) / n

    def forward():
        t0 = time.process_time()
        predict(model, evaluate)
        return (time.process_time() - t0) / len(split)

    steps(), forward()  # warm-up
    got = interleave({"train": steps, "eval": forward}, repeats)
    return median(got["train"]), median(got["eval"])


def project(grid_path: str, workers: int, fixed_s: float, repeats: int = 2) -> tuple[float, dict]:
    """Projected wall seconds of the grid on ``workers`` workers, and the parts (summed over runs)."""
    import torch

    from pepr_utils.data.datasets import fraction_indices, load_dataset
    from pepr_utils.grid.runner import _cores, schedule_order
    from pepr_utils.grid.spec import load_grid
    from pepr_utils.models.input_plan import plan_input

    grid = load_grid(grid_path)
    threads = max(1, _cores() // workers)
    torch.set_num_threads(threads)
    sizes: dict[tuple, dict[str, int]] = {}
    costs: dict[tuple, tuple[float, float]] = {}
    per_run: list[float] = []
    parts = {"fixed": 0.0, "train": 0.0, "eval": 0.0, "infer": 0.0}
    for run in grid.runs:
        p = run.params.as_dict()
        key = (p["dataset"], p["size"], p["fraction"], p["seed"])
        if key not in sizes:
            data = load_dataset(p["dataset"], p["size"], progress=False)
            n_train = len(fraction_indices(data.splits["train"].labels.numpy(), p["fraction"], p["seed"]))
            sizes[key] = {"train": n_train, "val": len(data.splits["val"]), "test": len(data.splits["test"])}
        plan = plan_input(p["model"], p["size"])
        if plan.status == "incompatible":
            per_run.append(fixed_s)
            continue
        # one sample per model and input size: 3 channels and 7 classes stand for every dataset (the stem
        # and the head are a small part of a step), which halves the sampling time
        ckey = (p["model"], 3, 7, p["size"], plan.run_size, p["batch_size"])
        if ckey not in costs:
            costs[ckey] = _per_image_costs(*ckey, repeats=repeats)
            note(f"  sample {p['model']} {plan.run_size}px: "
                 f"{costs[ckey][0] * 1e3:.2f} ms per training image, {costs[ckey][1] * 1e3:.2f} ms per evaluated image")
        s_train, s_eval = costs[ckey]
        if p.get("mode") == "linear":  # frozen backbone: about a forward pass per image
            s_train = 1.2 * s_eval
        n = sizes[key]
        run_parts = {"fixed": fixed_s, "train": p["epochs"] * n["train"] * s_train,
                     "eval": p["epochs"] * (n["val"] + n["test"]) * s_eval,
                     "infer": (min(n["test"], 2048) + 64) * s_eval}
        for k, v in run_parts.items():
            parts[k] += v
        per_run.append(sum(run_parts.values()))
    cost_of = {id(r): c for r, c in zip(grid.runs, per_run, strict=True)}
    free = [0.0] * workers
    for run in schedule_order(list(grid.runs), workers):
        start = heapq.heappop(free)
        heapq.heappush(free, start + cost_of[id(run)])
    parts.update(runs=len(grid.runs), workers=workers, threads=threads, worker_s=sum(per_run))
    return max(free), parts


def goal(*, fixed_s: float, grid: str | None = None, workers: int | None = None, repeats: int = 2) -> str:
    """``make bench``: the projected study wall time (goal <= 1,800 s)."""
    grid = grid or str(ROOT / "parameters" / "grids" / "quick.yaml")
    workers = workers or int(os.environ.get("WORKERS", 2))
    wall, parts = project(grid, workers, fixed_s, repeats)
    note(f"study: {parts['runs']} runs of {os.path.basename(grid)} on {workers} workers x {parts['threads']} "
         f"thread(s): {parts['worker_s']:.0f} worker-s = fixed {parts['fixed']:.0f} + training {parts['train']:.0f} "
         f"+ evaluation {parts['eval']:.0f} + inference timing {parts['infer']:.0f}; load average now "
         f"{os.getloadavg()[0]:.1f} (a busy machine inflates the sample)")
    return report("study_projection", f"{wall:,.0f} s", "<= 1,800 s", wall <= 1800)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--fixed-s", type=float, default=5.0, help="fixed cost per run (default 5 s; make bench measures it)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    goal(fixed_s=args.fixed_s, grid=args.grid, workers=args.workers, repeats=args.repeats)


if __name__ == "__main__":
    main()
