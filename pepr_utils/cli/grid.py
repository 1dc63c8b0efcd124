"""``pepr grid run|status|collect GRID.yaml``: a study's runs executed by papermill on Dask."""

from __future__ import annotations

import argparse
import sys


def _load(args: argparse.Namespace):
    from ..grid.spec import load_grid

    return load_grid(args.grid)


def _cmd_run(args: argparse.Namespace) -> int:
    from ..errors import PeprError
    from ..grid.runner import check_scheduler_address, grid_states, run_grid
    from ..grid.spec import missing_checkpoints

    if args.scheduler is not None:
        check_scheduler_address(args.scheduler)  # before the grid folder is touched, dry run or not
    grid = _load(args)
    states = grid_states(grid, args.output_dir)
    todo = [s.run for s in states if _action(s, args.retry_failed) == "run"]
    missing = missing_checkpoints(todo)  # found now, not 20 s into the run
    if missing:
        raise PeprError(f"grid {grid.name}: {len(missing)} run(s) cannot start, nothing was run: " + "; ".join(missing))
    if args.dry_run:
        _print_plan(grid, states, args.retry_failed)
        return 0
    report = run_grid(grid, workers=args.workers, scheduler=args.scheduler, retry_failed=args.retry_failed,
                      timeout_s=args.timeout, output_dir=args.output_dir, progress=not args.no_progress)
    before = report.failed_before
    if report.to_run == 0:
        if before:
            print(f"grid {grid.name}: nothing run; {len(before)} of {report.total} runs are recorded failed and "
                  f"were not redone ({report.directory}). `pepr grid status` shows why; rerun with "
                  "--retry-failed to redo them", file=sys.stderr)
            return 1
        print(f"grid {grid.name}: all {report.total} runs already done ({report.directory}); nothing to run")
        return 0
    c = report.counts
    print(f"grid {grid.name}: ran {report.to_run} runs in {report.wall_s:.0f} s: {c['ok']} ok, "
          f"{c['incompatible']} incompatible, {c['failed']} failed; {report.already_done} were already done; "
          f"outputs in {report.directory / 'runs'}")
    for run_id, reason in report.failed:
        print(f"  failed {run_id}: {reason[:200]}")
    if before:
        print(f"  {len(before)} run(s) recorded failed earlier were not redone")
    if report.failed or before:
        print("  (`pepr grid status` shows the reasons; rerun with --retry-failed to redo them)")
    return 1 if report.failed or before else 0


def _action(state, retry_failed: bool) -> str:
    """``run`` or ``skip``: what ``grid run`` does with a run in this state."""
    done = state.state in ("ok", "incompatible") or (state.state == "failed" and not retry_failed)
    return "skip" if done else "run"


def _print_plan(grid, states, retry_failed: bool) -> None:
    from tabulate import tabulate

    rows = []
    for s in states:
        p = s.run.params.as_dict()
        action = _action(s, retry_failed)
        rows.append([s.run.run_id, s.run.label or "", s.run.notebook, p["model"], p["dataset"], p["size"],
                     p["fraction"], p["weights"] or "scratch", p["mode"], p["epochs"], p["seed"], p["device"],
                     s.state, action])
    print(tabulate(rows, headers=["run_id", "label", "notebook", "model", "dataset", "size", "fraction",
                                  "weights", "mode", "epochs", "seed", "device", "state", "action"]))
    todo = sum(r[-1] == "run" for r in rows)
    print(f"grid {grid.name}: {len(rows)} runs ({grid.duplicates} duplicate combinations merged), "
          f"{todo} would run; dry run, nothing executed")


def _cmd_status(args: argparse.Namespace) -> int:
    from ..grid.runner import grid_status
    from ..grid.timing import grid_timing

    grid = _load(args)
    status = grid_status(grid, args.output_dir)
    print("\n".join(status.lines() + grid_timing(grid, args.output_dir).lines()))
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from ..grid.runner import collect_grid

    grid = _load(args)
    if args.output:
        from .checks import check_output_file

        check_output_file(args.output)
    path, rows = collect_grid(grid, args.output_dir, args.output)
    print(f"wrote {path} ({rows} runs)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grid", help="run a grid of notebook runs (papermill on Dask), resumable",
                       description="Expand a grid file (parameters/grids/*.yaml), run its notebooks in parallel "
                                   "on Dask, resume where a previous run stopped, and collect the results.")
    gsub = p.add_subparsers(dest="grid_command", required=True)

    run = gsub.add_parser("run", help="execute the grid's pending runs",
                          description="Execute every run of GRID that has no result yet (runs recorded ok or "
                                      "incompatible are never redone). Outputs: <output-dir>/<grid>/runs/<run_id>/. "
                                      "Exit status 1 when a run failed (it is recorded; the others go on).")
    run.add_argument("grid", metavar="GRID.yaml")
    run.add_argument("--workers", type=int, default=1,
                     help="local Dask worker processes, one run each (default 1); CPU threads are split between them")
    run.add_argument("--scheduler", metavar="ADDR",
                     help="use an existing Dask cluster, e.g. tcp://host:8786 (then --workers is ignored)")
    run.add_argument("--retry-failed", action="store_true", help="also redo runs recorded as failed")
    run.add_argument("--dry-run", action="store_true", help="list the runs and what would run; execute nothing")
    run.add_argument("--timeout", type=float, default=None, metavar="S",
                     help="wall-clock limit per run in seconds; a run over it is recorded failed")
    run.add_argument("--output-dir", default=None, help="root of the outputs (default: PEPR_OUTPUT_DIR or outputs/)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=_cmd_run)

    status = gsub.add_parser("status", help="counts of ok/failed/pending runs and the failed runs' reasons")
    status.add_argument("grid", metavar="GRID.yaml")
    status.add_argument("--output-dir", default=None)
    status.set_defaults(func=_cmd_status)

    collect = gsub.add_parser("collect", help="write <output-dir>/<grid>/results.csv from the finished runs")
    collect.add_argument("grid", metavar="GRID.yaml")
    collect.add_argument("--output-dir", default=None)
    collect.add_argument("-o", "--output", default=None, help="results table (default <output-dir>/<grid>/results.csv)")
    collect.set_defaults(func=_cmd_collect)
