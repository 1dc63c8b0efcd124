"""The worker half of a grid: one run's notebook executed by papermill in a private temporary folder,
in its own process group under a wall-clock limit, and what it produced sent back as bytes.

:func:`execute_run` runs on a Dask worker (:mod:`pepr_utils.grid.runner` submits it); it starts
``python -m pepr_utils.grid.child JOB.json`` (:func:`~pepr_utils.grid.child.run_job`), which runs papermill, so that a
timeout or the worker's death can kill the whole tree (papermill and its kernel). Nothing here writes
outside the temporary folder: the runner alone writes the grid's run folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..records import now
from ..train.allocator import MALLOC_ENV
from . import fork_server, kernel
from .child import _tail

MAX_FILE_BYTES = 256 * 2**20  # files a worker sends back; larger ones are listed, not sent
TEMP_PREFIX = "pepr-run-"  # a run's private folder on its worker: <tmp>/pepr-run-<run_id>-<random>


def _failure(run_id: str, reason: str, error: str, tail: str, **extra) -> dict:
    return {"run_id": run_id, "ok": False, "reason": reason, "error": error, "tail": tail, **extra}


# --------------------------------------------------------------------------- on the worker
def execute_run(task: dict[str, Any]) -> dict[str, Any]:
    """Execute one run's notebook in a private temporary folder; return what it produced as bytes.

    Runs on a Dask worker. papermill runs in a child process group so that a timeout or the
    worker's death can kill the whole tree (papermill and its kernel).
    """
    import socket

    started_at = now()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{task['run_id']}-") as tmp_name:
        tmp = Path(tmp_name)
        out_dir = tmp / "out"
        out_dir.mkdir()
        (tmp / "input.ipynb").write_bytes(task["notebook"])
        job = {"input": str(tmp / "input.ipynb"), "output": str(tmp / "executed.ipynb"), "cwd": str(out_dir),
               "parameters": {**task["parameters"], "out_dir": str(out_dir)}, "outcome": str(tmp / "outcome.json"),
               "watch_pids": [os.getpid(), task.get("runner_pid")], "timeout_s": task.get("timeout_s")}
        (tmp / "job.json").write_text(json.dumps(job), encoding="utf-8")
        env = dict(os.environ)
        if task.get("threads"):
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
                env[var] = str(task["threads"])
        env["PEPR_GRID_RUN_ID"] = task["run_id"]
        (tmp / "tmp").mkdir()  # the kernel's connection file (mkstemp) and other temporaries go with the run's
        env["TMPDIR"] = str(tmp / "tmp")  # folder, so that cleaning up after a killed run cleans them too
        env.setdefault("MPLBACKEND", "Agg")
        for var, value in MALLOC_ENV.items():
            env.setdefault(var, value)
        timeout = task.get("timeout_s")
        returncode, cpu_s, timed_out = _start_child(tmp, env, timeout)
        outcome = _parse_outcome(tmp / "outcome.json")
        log_tail = _tail((tmp / "papermill.log").read_text(encoding="utf-8", errors="replace"))
        if timed_out:
            result = _failure(task["run_id"], "timeout", f"the run took longer than {timeout:g} s (--timeout)",
                              outcome.get("tail", "") if outcome else "")
        elif outcome is None:
            result = _failure(task["run_id"], "crashed",
                              f"papermill exited with code {returncode} without a result", log_tail)
        else:
            result = {"run_id": task["run_id"], **outcome}
        files, left_out = _read_files(out_dir, task.get("max_file_bytes", MAX_FILE_BYTES))
        executed = tmp / "executed.ipynb"
        result.update(files=files, left_out=left_out, notebook=executed.read_bytes() if executed.exists() else None,
                      started_at=started_at, wall_s=round(time.perf_counter() - t0, 3),
                      cpu_s=None if cpu_s is None else round(cpu_s, 3), worker=socket.gethostname())
        return result


def _start_child(tmp: Path, env: dict[str, str], timeout: float | None) -> tuple[int | None, float | None, bool]:
    """Run ``python -m pepr_utils.grid.child JOB.json``'s work for one run: (exit code, CPU s, timed out).

    Forked from the worker's warm fork server where the system can fork (:mod:`pepr_utils.grid.fork_server`),
    else started as a new process. Either way in a process group of its own, killed with its kernel on a
    timeout.
    """
    job, log = str(tmp / "job.json"), str(tmp / "papermill.log")
    Path(log).touch()
    if kernel.AVAILABLE:
        server = fork_server.checkout(_server_env(env))
        try:
            return server.run(job, log, env, timeout, on_timeout=_kill_tree)
        except fork_server.ServerDown as exc:  # start this run as a new process instead, and say so in its log
            with open(log, "a", encoding="utf-8") as out:
                out.write(f"pepr: {exc}; starting papermill as a new process\n")
        finally:
            fork_server.checkin(server)
    cpu0 = _children_cpu_s()
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pepr_utils.grid.child", job],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            proc.wait()
            timed_out = True
    cpu1 = _children_cpu_s()
    return proc.returncode, (cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None), timed_out


def _server_env(run_env: dict[str, str]) -> dict[str, str]:
    """The environment a worker's fork server starts with: the run's, less what belongs to one run."""
    env = {k: v for k, v in run_env.items() if k not in ("PEPR_GRID_RUN_ID", "TMPDIR")}
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


def _children_cpu_s() -> float | None:
    """CPU seconds of this process's finished children (papermill and the kernel it waited for):
    a run's compute, independent of how busy the machine was (one run per worker at a time)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _parse_outcome(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_files(out_dir: Path, max_bytes: int) -> tuple[dict[str, bytes], list[str]]:
    files, left_out = {}, []
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(out_dir).as_posix()
        if path.stat().st_size > max_bytes:
            left_out.append(f"{rel} ({path.stat().st_size} bytes > {max_bytes})")
        else:
            files[rel] = path.read_bytes()
    return files, left_out


def _kill_tree(pid: int) -> None:
    """Kill a process and all its descendants (the kernel runs in a session of its own)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


