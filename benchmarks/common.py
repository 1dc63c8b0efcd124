"""What every benchmark shares: interleaved repetitions, medians, and the one-line verdict.

On a shared 2-core machine a single timing swings by 2x, so every comparison here runs its
contenders side by side: repetition ``r`` runs all of them, in an order that rotates every
repetition (so warm-up and drift hit each alike), and the verdict uses medians of what each
repetition measured. Each goal prints exactly one line::

    bench NAME: MEASURED (goal GOAL) ok|short
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/x.py` from a checkout without an installed package
    sys.path.insert(0, str(ROOT))


def setup_env() -> None:
    """The team's data and weights when the Makefile did not set them; warnings about unofficial files off."""
    import warnings

    shared = ROOT.parent / "shared"
    for var, sub in (("PEPR_DATA_DIR", "data"), ("PEPR_WEIGHTS_DIR", "weights")):
        if not os.environ.get(var) and (shared / sub).is_dir():
            os.environ[var] = str(shared / sub)
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.filterwarnings("ignore", message=".*official MedMNIST checksum.*")


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleave(trials: dict[str, Callable[[], float | None]], repeats: int,
               log: Callable[[str], None] | None = None,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Run every trial ``repeats`` times, interleaved, the order rotating each repetition.

    A trial returns the number it measured (seconds, a rate, ...) or None, and then its duration on
    ``clock`` is used: wall seconds by default, or ``time.process_time`` (this process's CPU seconds,
    all threads), which other jobs on a shared machine disturb far less. Returns the values per
    trial name, in repetition order.
    """
    names = list(trials)
    values: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = clock()
            got = trials[name]()
            value = clock() - t0 if got is None else float(got)
            values[name].append(value)
            if log:
                log(f"  repeat {r + 1} {name}: {value:.4g}")
    return values


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio_of_medians(values: dict[str, list[float]], num: str, den: str) -> float:
    return median(values[num]) / median(values[den])


def goal_line(name: str, measured: str, goal: str, ok: bool) -> str:
    """The verdict line every goal prints (and ``run_all`` collects)."""
    return f"bench {name}: {measured} (goal {goal}) {'ok' if ok else 'short'}"


def report(name: str, measured: str, goal: str, ok: bool) -> str:
    line = goal_line(name, measured, goal, ok)
    print(line, flush=True)
    return line


def note(text: str) -> None:
    """Detail lines go to stderr, so stdout holds only the verdicts when asked."""
    print(text, file=sys.stderr, flush=True)
