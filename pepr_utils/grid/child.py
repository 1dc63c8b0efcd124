"""A run's papermill process: execute one notebook from its job file and write the outcome as JSON.

The worker starts it as ``python -m pepr_utils.grid.child JOB.json``, or the fork server forks it
(:func:`run_job` is what either runs). It watches the processes that started it and exits when they are
gone, so a killed grid leaves no orphan behind.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path

from .kernel import KERNEL_NAME, kernel_options

TAIL_LINES = 25
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(_ANSI.sub("", text).rstrip().splitlines()[-lines:])


def _watch_parents(pids: list[int], interval_s: float = 1.0) -> None:
    """In the papermill process: if our parent (the worker or its fork server), the worker or the runner
    dies, kill our tree (the kernel)."""
    import psutil

    parent = os.getppid()
    pids = [pid for pid in pids if pid]

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            gone = os.getppid() != parent or not all(psutil.pid_exists(pid) for pid in pids)
            if gone:
                me = psutil.Process()
                for child in me.children(recursive=True):
                    try:
                        child.kill()
                    except psutil.NoSuchProcess:
                        pass
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="pepr-watch-parent").start()


def skip_slow_imports() -> None:
    """Keep papermill's import from building a grammar no run needs (the fixed cost of every run).

    papermill -> nbformat -> jsonschema imports ``rfc3987_syntax`` when it is installed (it is, via
    jupyter-events) only to check the JSON-schema formats "iri"/"iri-reference", which the notebook
    schema does not use; that import compiles a Lark grammar: measured here 17-21 s of the papermill
    child's start on a busy 2-core machine (about 2-3 s quiet), 0.7-3.6 s without it. Marking the module
    absent makes jsonschema skip that one format checker, exactly as when the package is not installed.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def run_job(job_path: str) -> int:
    """``python -m pepr_utils.grid.child JOB.json``: execute one notebook, write the outcome as JSON."""
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    _watch_parents(job.get("watch_pids") or [])
    skip_slow_imports()
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    try:
        pm.execute_notebook(job["input"], job["output"], parameters=job["parameters"],
                            kernel_name=KERNEL_NAME,
                            cwd=job["cwd"], progress_bar=False, log_output=False,
                            execution_timeout=job.get("timeout_s"),
                            **kernel_options(Path(job["input"]).parent / "kernel"))
        outcome = {"ok": True, "reason": None}
    except pm.PapermillExecutionError as exc:
        trace = "\n".join(exc.traceback or [])
        outcome = {"ok": False, "reason": "raised", "error": f"{exc.ename}: {_ANSI.sub('', str(exc.evalue))}",
                   "tail": _tail(trace)}
    except DeadKernelError as exc:
        outcome = {"ok": False, "reason": "kernel died",
                   "error": f"the notebook's kernel died (killed by the system, e.g. out of memory): {exc}",
                   "tail": ""}
    except CellTimeoutError as exc:
        outcome = {"ok": False, "reason": "timeout", "error": _ANSI.sub("", str(exc)).splitlines()[0], "tail": ""}
    except Exception as exc:  # noqa: BLE001 - anything else papermill raises: report it, do not hide it
        import traceback

        outcome = {"ok": False, "reason": "error", "error": f"{type(exc).__name__}: {exc}",
                   "tail": _tail(traceback.format_exc())}
    tmp = Path(job["outcome"] + ".tmp")
    tmp.write_text(json.dumps(outcome), encoding="utf-8")
    os.replace(tmp, job["outcome"])
    return 0


if __name__ == "__main__":
    sys.exit(run_job(sys.argv[1]))
