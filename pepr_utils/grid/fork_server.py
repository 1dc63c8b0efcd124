"""A warm process per grid worker that forks each run's papermill process, whose kernel is forked in turn.

Every run of a grid still gets a process of its own for papermill and one for its kernel (a dying run
takes no other run with it), but neither starts cold: a run used to spend 8-10 s of CPU importing
torch, timm/torchvision and medmnist/scikit-learn and 2-3 s starting papermill and the kernel, every
time. Here a worker starts one *fork server* (``python -m pepr_utils.grid.fork_server``), which imports all of
that once and then waits. For each run it forks a child (the run's papermill process), and that child
starts the notebook's kernel by forking itself instead of starting a new Python (:class:`~pepr_utils.grid.kernel.ForkedKernelManager`).
Memory is shared copy-on-write, so a fork costs milliseconds.

Fork safety: the server imports but never computes (no torch thread pool, no CUDA, no zmq context), is
single-threaded, and every child gets the worker's environment of that moment (paths, threads, the
run's id). A forked kernel resets the signal handlers it inherited and watches its papermill process
(``parent_handle``), as a kernel started by Jupyter does. Not on Windows (no fork): there the worker
starts papermill and the kernel as fresh processes, as before.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Callable

from .child import run_job, skip_slow_imports
from .kernel import _as_fresh_process, _run_then_exit

#: what the forked processes would otherwise import at every run (the notebooks' imports and papermill's)
WARM_MODULES = ("papermill", "nbclient", "jupyter_client.manager", "ipykernel.kernelapp", "IPython.display",
                "matplotlib.pyplot", "matplotlib_inline.backend_inline", "pandas", "torch", "timm", "medmnist",
                "sklearn.metrics", "scipy.stats", "safetensors.torch", "psutil", "pepr_utils.data.preparation",
                "pepr_utils.data.datasets", "pepr_utils.train.experiment", "pepr_utils.meter.meter", "pepr_utils.models.build", "pepr_utils.models.input_plan",
                "pepr_utils.params", "pepr_utils.analysis.plots", "pepr_utils.records", "pepr_utils.train.loop")


# --------------------------------------------------------------------------- the server
def _serve(child_main: Callable[[str], int]) -> int:
    """The fork server's loop: one JSON request per line on stdin, answers on stdout.

    Request ``{"job": PATH, "log": PATH, "env": {...}}``: fork a child that runs ``child_main(PATH)``
    with that environment, stdout and stderr in the log. Answers ``{"pid": N}`` at once, then
    ``{"exit": CODE, "cpu_s": S}`` when the child is gone (CPU time of the child and the kernel it reaped).
    Ends when stdin closes (the worker is gone).
    """
    requests, answers = sys.stdin.buffer, os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # stray prints go to stderr, never into the answers
    while True:
        line = requests.readline()
        if not line:
            return 0
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            answers.close()  # the child must not hold the worker's pipe open
            _run_child(child_main, request)
        told = _answer(answers, {"pid": pid})
        _, status, usage = os.wait4(pid, 0)  # reaped even when the worker is gone: no zombie left
        cpu_s = round(usage.ru_utime + usage.ru_stime, 3)
        if not (told and _answer(answers, {"exit": os.waitstatus_to_exitcode(status), "cpu_s": cpu_s})):
            os._exit(0)  # the worker is gone (Ctrl-C, kill): nobody to answer, and no BrokenPipeError traceback


def _answer(answers, message: dict) -> bool:
    """Write one answer line; False when the worker has closed the pipe (it was interrupted or killed)."""
    try:
        answers.write(json.dumps(message) + "\n")
        return True
    except (BrokenPipeError, ConnectionResetError, ValueError):  # ValueError: the file was closed
        return False


def _run_child(child_main: Callable[[str], int], request: dict) -> None:
    """In the forked child: a fresh process for one run, its output in the run's log."""
    def main() -> int:
        _as_fresh_process(request["env"], log=request["log"])
        return child_main(request["job"])

    _run_then_exit(main)


def warm_up() -> None:
    """Import what every run needs, once, without computing anything (see the module's fork-safety note)."""
    skip_slow_imports()
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # optional pieces (e.g. matplotlib_inline): the child imports what it needs
            pass


# --------------------------------------------------------------------------- the worker's side
class ServerDown(RuntimeError):
    """The fork server could not start a run (it failed to start, or died): start the run another way."""


class ForkServer:
    """The worker's handle on its fork server: start it once, run one child at a time through it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env_key = _env_key(env)
        # unbuffered: select() on the pipe must see every answer not yet read (none may wait in a buffer)
        self.proc = subprocess.Popen([sys.executable, "-m", "pepr_utils.grid.fork_server"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, start_new_session=True, bufsize=0)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, job: str, log: str, env: dict[str, str], timeout_s: float | None,
            on_timeout: Callable[[int], None]) -> tuple[int | None, float | None, bool]:
        """Run ``job`` in a forked child: (exit code, CPU s, timed out); the exit code is None when the
        server died under its child. :class:`ServerDown` when the server could not start the child."""
        try:
            self.proc.stdin.write((json.dumps({"job": job, "log": log, "env": env}) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as exc:
            raise ServerDown(f"the fork server is gone ({exc})") from exc
        started = self._answer(None)
        if not isinstance(started, dict):
            raise ServerDown(f"the fork server exited with code {self.proc.wait()} before starting the run")
        timed_out = False
        finished = self._answer(timeout_s)
        if finished == "timeout":
            timed_out = True
            on_timeout(started["pid"])
            finished = self._answer(None)
        if not isinstance(finished, dict):
            on_timeout(started["pid"])  # the server died under its child: leave nothing running
            return None, None, timed_out
        return finished["exit"], finished["cpu_s"], timed_out

    def _answer(self, timeout_s: float | None) -> dict | str | None:
        out = self.proc.stdout
        if timeout_s is not None:
            ready, _, _ = select.select([out], [], [], timeout_s)
            if not ready:
                return "timeout"
        line = out.readline()
        return json.loads(line) if line else None

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _env_key(env: dict[str, str]) -> tuple:
    """What a server fixes at its start: the thread counts and malloc settings read when libraries load."""
    return tuple(sorted((k, v) for k, v in env.items() if k.endswith("_NUM_THREADS") or k.startswith("MALLOC_")))


_servers: list[ForkServer] = []
_lock = threading.Lock()


def checkout(env: dict[str, str]) -> ForkServer:
    """An idle fork server started with ``env``'s thread and malloc settings (a new one if none is idle).

    Give the worker's environment, not a run's: the server outlives the run (its ``TMPDIR``, its id)."""
    key = _env_key(env)
    with _lock:
        for server in list(_servers):
            _servers.remove(server)
            if server.alive() and server.env_key == key:
                return server
            server.close()
    return ForkServer(env)


def checkin(server: ForkServer) -> None:
    """Keep a healthy server for the worker's next run."""
    if server.alive():
        with _lock:
            _servers.append(server)


if __name__ == "__main__":
    warm_up()
    sys.exit(_serve(run_job))
