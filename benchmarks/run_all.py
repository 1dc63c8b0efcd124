"""``make bench``: every performance goal in one command, one verdict line each.

Each goal is measured side by side in this one run (interleaved repetitions, medians; see
``common``), with the threads a grid run gets (cores / workers, 1 on a 2-core machine with 2 workers).
Detail goes to stderr; stdout holds the lines ``bench NAME: MEASURED (goal GOAL) ok|short``.
Sized for <= 10 minutes on a quiet 2-core machine.

    .venv/bin/python benchmarks/run_all.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from common import note, report, setup_env

setup_env()

GOALS = ("train", "data", "meter", "fixed", "medmnist", "study")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=GOALS, default=list(GOALS))
    ap.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", 2)),
                    help="the grid's workers (threads per run = cores / workers); default $WORKERS or 2")
    ap.add_argument("--fixed-s", type=float, default=None,
                    help="fixed cost per run for the projection when 'fixed' is not measured (default 5)")
    args = ap.parse_args(argv)

    from pepr_utils.grid.runner import _cores

    threads = max(1, _cores() // args.workers)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    note(f"make bench: {_cores()} cores, {args.workers} workers -> {threads} thread(s) per run; "
         f"load average {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    lines = []
    fixed_s = args.fixed_s if args.fixed_s is not None else 5.0
    for name in GOALS:
        if name not in args.only:
            continue
        t0 = time.perf_counter()
        try:
            fixed_s = _run_goal(name, threads, args.workers, fixed_s, lines)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' lines
            import traceback

            traceback.print_exc()
            lines.append(report(name, f"error ({type(exc).__name__}: {exc})", "see above", False))
        note(f"({name}: {time.perf_counter() - t0:.0f} s)")
    note(f"make bench: {len(lines)} goal(s) in {time.perf_counter() - started:.0f} s; load average "
         f"{os.getloadavg()[0]:.1f}")
    return 0  # a short goal is a finding, not an error: the lines say which


def _run_goal(name: str, threads: int, workers: int, fixed_s: float, lines: list[str]) -> float:
    """Run one goal, append its line; return the fixed cost per run for the projection."""
    if name == "train":
        import bench_train
        lines.append(bench_train.goal(threads=threads))
    elif name == "data":
        import bench_data
        lines.append(bench_data.goal(threads=threads))
    elif name == "meter":
        import bench_meter
        lines.append(bench_meter.goal(threads=threads))
    elif name == "fixed":
        import bench_grid
        line, fixed_s = bench_grid.goal(threads=threads)
        lines.append(line)
    elif name == "medmnist":
        import bench_medmnist
        lines.append(bench_medmnist.goal(threads=threads))
    elif name == "study":
        import bench_study
        lines.append(bench_study.goal(fixed_s=fixed_s, workers=workers))
    return fixed_s


if __name__ == "__main__":
    sys.exit(main())
