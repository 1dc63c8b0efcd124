"""Grid execution cost: the smoke grid's wall time on 1 and 2 workers, and the per-run overhead of
papermill + Dask against ``experiment.run_experiment`` (the same notebook code, in this process), measured side by side.

    PEPR_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_grid.py [--model M --epochs E ...]

Goal: the overhead of running a one-minute run as a notebook on a Dask worker is under 10% of it.
The direct call runs in this process after a warm-up (torch, timm, the data already imported and
cached), the most favourable baseline; the grid run pays a kernel start and the notebook's imports.
The LocalCluster's start and stop happen once per grid and are reported separately.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _smoke_wall(workers: int, threads: int | None) -> tuple[float, float, dict]:
    """Wall time of the smoke grid, and the CPU seconds its runs used (sum over grid_run.json)."""
    import json

    from pepr_utils.grid.runner import run_grid
    from pepr_utils.grid.spec import load_grid

    grid = load_grid(ROOT / "parameters" / "grids" / "smoke.yaml")
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as out:
        t0 = time.perf_counter()
        report = run_grid(grid, workers=workers, output_dir=out, progress=False, log=lambda *_: None,
                          threads_per_run=threads)
        wall = time.perf_counter() - t0
        cpu = sum(json.loads(p.read_text())["cpu_s"] or 0 for p in Path(out).glob("*/runs/*/grid_run.json"))
        return wall, cpu, dict(report.counts)


def fixed_cost(*, model: str = "mobilenetv2_050", dataset: str = "pneumoniamnist", repeats: int = 3,
               threads: int = 1) -> tuple[float, dict[str, list[float]]]:
    """Per-run fixed cost of the grid: ``execute_run`` (papermill child and kernel forked from the
    worker's fork server, the notebook's steps) minus the same tiny run called directly in this warm
    process, interleaved; CPU seconds (median difference) and the raw values. The fork server's start
    (once per worker) is measured apart, in wall seconds."""
    import torch
    from common import interleave, median

    from pepr_utils.grid.runner import _notebook_bytes, _task
    from pepr_utils.grid.spec import expand_grid
    from pepr_utils.grid.worker import execute_run
    from pepr_utils.train.experiment import run_experiment

    grid = expand_grid({"name": "bench-fixed", "defaults": {"epochs": 1, "size": 28, "fraction": 0.01},
                        "axes": {"model": [model], "dataset": [dataset]}})
    run = grid.runs[0]
    task = _task(run, _notebook_bytes(run.notebook), None, threads, runner_pid=None)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)

    # CPU seconds (this process; the papermill child and its kernel), which other jobs on a shared
    # machine disturb far less than wall time; on a quiet machine with one run per core they agree
    def direct() -> float:
        c0 = time.process_time()
        with tempfile.TemporaryDirectory() as d:
            run_experiment(run.params.as_dict(), d)
        return time.process_time() - c0

    def via_grid() -> float:
        c0 = time.process_time()
        result = execute_run(task)
        if not result.get("ok"):
            raise RuntimeError(f"grid run failed: {result.get('error')}\n{result.get('tail')}")
        return result["cpu_s"] + time.process_time() - c0

    direct()  # warm-up: imports, caches, the input-size probe
    t0 = time.perf_counter()
    via_grid()  # the worker's first run also starts its fork server (imports once, not counted below)
    first_wall = time.perf_counter() - t0
    times = interleave({"grid": via_grid, "direct": direct}, repeats)
    t0 = time.perf_counter()
    via_grid()
    times["server_start_wall"] = [first_wall - (time.perf_counter() - t0)]
    return median(times["grid"]) - median(times["direct"]), times


def goal(*, repeats: int = 3, threads: int = 1) -> tuple[str, float]:
    """``make bench``: the grid's fixed cost per run (goal <= 5 s); also returns the seconds."""
    from common import median, note, report

    cost, times = fixed_cost(repeats=repeats, threads=threads)
    note(f"grid fixed cost: a tiny run (1 epoch, 1% of PneumoniaMNIST) takes {median(times['grid']):.1f} CPU-s "
         f"via execute_run (papermill + kernel, forked from the worker's fork server) vs {median(times['direct']):.1f} "
         f"CPU-s called directly in a warm process; the fork server starts once per worker, in "
         f"{times['server_start_wall'][0]:.1f} s (its imports), before the worker's first run")
    return report("grid_fixed_cost_per_run", f"{cost:.1f} CPU-s", "<= 5 s", cost <= 5.0), cost


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18d")
    ap.add_argument("--dataset", default="pneumoniamnist")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--fraction", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=2, help="choose so that the direct run takes about a minute")
    ap.add_argument("--repeats", type=int, default=1, help="direct/grid pairs (alternated); the medians are used")
    ap.add_argument("--skip-smoke", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads per run (default: cores / workers); 1 avoids OpenMP spin-waiting on a "
                         "machine busy with other work, where CPU seconds are then a fair measure")
    args = ap.parse_args(argv)

    import statistics

    from distributed import Client, LocalCluster

    from pepr_utils.grid.runner import _cores, _notebook_bytes, _task
    from pepr_utils.grid.spec import expand_grid
    from pepr_utils.grid.worker import execute_run
    from pepr_utils.train.experiment import run_experiment

    cores = _cores()
    threads = args.threads or cores
    print(f"{cores} cores; torch threads per run: {args.threads or 'cores / workers'}")
    if not args.skip_smoke:
        for workers in (1, 2):
            wall, cpu, counts = _smoke_wall(workers, args.threads)
            print(f"smoke grid (2 runs), {workers} worker(s): {wall:6.1f} s wall, {cpu:6.1f} CPU s in the runs  {counts}")

    grid = expand_grid({"name": "bench", "defaults": {"epochs": args.epochs, "size": args.size,
                                                      "fraction": args.fraction},
                        "axes": {"model": [args.model], "dataset": [args.dataset]}})
    run = grid.runs[0]
    params = run.params.as_dict()
    import torch

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as d:  # warm-up: imports, dataset cache, input-size probe
        run_experiment({**params, "epochs": 1, "fraction": min(params["fraction"], 0.05)}, d)

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    start_s = time.perf_counter() - t0
    task = _task(run, _notebook_bytes(run.notebook), None, threads, runner_pid=os.getpid())
    direct, via_grid, direct_cpu, grid_cpu = [], [], [], []
    try:
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as d:
                t0, c0 = time.perf_counter(), time.process_time()
                run_experiment(params, d)
                direct.append(time.perf_counter() - t0)
                direct_cpu.append(time.process_time() - c0)
            t0 = time.perf_counter()
            result = client.submit(execute_run, task, pure=False).result()
            via_grid.append(time.perf_counter() - t0)
            grid_cpu.append(result["cpu_s"])
            if not result.get("ok"):
                print("grid run failed:", result.get("error"), result.get("tail"), file=sys.stderr)
                return 1
    finally:
        t0 = time.perf_counter()
        client.close()
        cluster.close()
        stop_s = time.perf_counter() - t0
    d_med, g_med = statistics.median(direct), statistics.median(via_grid)
    dc_med, gc_med = statistics.median(direct_cpu), statistics.median(grid_cpu)
    print(f"run: {args.model} on {args.dataset} {args.size}px, fraction {args.fraction:g}, {args.epochs} epoch(s), "
          f"{threads} thread(s); load average at the end {os.getloadavg()[0]:.1f}")
    print(f"direct run_experiment:       {d_med:7.1f} s wall {dc_med:7.1f} s CPU  "
          f"(wall per repeat: {', '.join(f'{x:.1f}' for x in direct)})")
    print(f"papermill on a Dask worker:  {g_med:7.1f} s wall {gc_med:7.1f} s CPU  "
          f"(wall per repeat: {', '.join(f'{x:.1f}' for x in via_grid)})")
    for what, over, base in (("wall", g_med - d_med, d_med), ("CPU", gc_med - dc_med, dc_med)):
        print(f"per-run overhead ({what:4s}):     {over:7.1f} s = {100 * over / base:5.1f}% of this run, "
              f"{100 * over / 60:5.1f}% of a one-minute run (goal < 10%: {'met' if over < 6 else 'NOT met'})")
    print(f"once per grid: LocalCluster start {start_s:.1f} s, stop {stop_s:.1f} s")
    print("(wall times depend on other load on the machine; CPU seconds do not, so prefer them on a busy machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
