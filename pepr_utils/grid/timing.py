"""Where a grid's time went: training steps, evaluation, inference timing and per-run overhead.

Read from what every run already records, so it costs nothing and works on any finished grid:
``result.json`` holds the metered time of the epoch loop (``train_time_s``: training steps plus the
per-epoch evaluation) and the training steps alone (``train_steps_time_s``); ``grid_run.json`` holds the
worker's wall time for the whole run (kernel start, imports, data, model, metering, inference timing,
writing files). The difference is the fixed cost of a run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .runner import grid_states
from .spec import Grid


@dataclass(frozen=True)
class GridTiming:
    """Seconds summed over a grid's finished runs (worker time, not wall time of the grid)."""

    runs: int
    run_wall_s: float  # the worker's wall time per run, summed
    train_steps_s: float  # training steps (forward, backward, optimiser)
    evaluation_s: float  # val/test evaluation inside the metered loop
    overhead_s: float  # everything else in a run: kernel, imports, data, model, inference timing, files

    def lines(self) -> list[str]:
        if not self.runs:
            return ["time: no finished run records time yet"]
        per = self.overhead_s / self.runs
        return [f"time over {self.runs} finished runs (worker seconds, summed): {self.run_wall_s:,.0f} s in runs = "
                f"training {self.train_steps_s:,.0f} s ({self._share(self.train_steps_s)}) + evaluation "
                f"{self.evaluation_s:,.0f} s ({self._share(self.evaluation_s)}) + per-run overhead "
                f"{self.overhead_s:,.0f} s ({self._share(self.overhead_s)}; {per:.1f} s per run: kernel, imports, "
                "data, model, inference timing, files)"]

    def _share(self, seconds: float) -> str:
        return f"{100 * seconds / self.run_wall_s:.0f}%" if self.run_wall_s > 0 else "-"


def grid_timing(grid: Grid, output_dir: str | os.PathLike | None = None) -> GridTiming:
    """Sum the time records of the grid's runs recorded ``ok`` (failed runs have no metered loop)."""
    runs = wall = steps = metered = 0.0
    for state in grid_states(grid, output_dir):
        if state.state != "ok" or state.path is None:
            continue
        try:
            record = json.loads((state.path / "result.json").read_text(encoding="utf-8"))
            info = json.loads((state.path / "grid_run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a run written outside the grid, or an unreadable file: no worker time to add
        resources = record.get("resources") or {}
        run_wall, loop = info.get("wall_s"), resources.get("train_time_s")
        if not isinstance(run_wall, int | float) or not isinstance(loop, int | float):
            continue
        loop_steps = resources.get("train_steps_time_s")
        loop_steps = loop_steps if isinstance(loop_steps, int | float) else loop
        runs += 1
        wall += run_wall
        metered += loop
        steps += loop_steps
    return GridTiming(int(runs), wall, steps, metered - steps, max(0.0, wall - metered))

