"""A warm process per grid worker that forks each run's papermill process, whose kernel is forked in turn.

Every run of a grid still gets a process of its own for papermill and one for its kernel (a dying run
takes no other run with it), but neither starts cold: a run used to spend 8-10 s of CPU importing
torch, timm/torchvision and medmnist/scikit-learn and 2-3 s starting papermill and the kernel, every
time. Here a worker starts one *fork server* (``python -m pepr_utils.fork_server``), which imports all of
that once and then waits. For each run it forks a child (the run's papermill process), and that child
starts the notebook's kernel by forking itself instead of starting a new Python (:class:`ForkedKernelManager`).
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
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

#: what the forked processes would otherwise import at every run (the notebooks' imports and papermill's)
WARM_MODULES = ("papermill", "nbclient", "jupyter_client.manager", "ipykernel.kernelapp", "IPython.display",
                "matplotlib.pyplot", "matplotlib_inline.backend_inline", "pandas", "torch", "timm", "medmnist",
                "sklearn.metrics", "scipy.stats", "safetensors.torch", "psutil", "pepr_utils.data_report",
                "pepr_utils.datasets", "pepr_utils.experiment", "pepr_utils.meter", "pepr_utils.models",
                "pepr_utils.params", "pepr_utils.plots", "pepr_utils.records", "pepr_utils.train")
AVAILABLE = hasattr(os, "fork") and os.name == "posix"


# --------------------------------------------------------------------------- the kernel, forked
class _ForkedProcess:
    """The forked kernel, with the part of :class:`subprocess.Popen` that jupyter_client uses."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: gone
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                self.returncode = -1
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def _ipykernel_argv(cmd: list[str]) -> list[str] | None:
    """The kernel's own arguments when ``cmd`` starts this Python's ipykernel (interpreter flags such as
    ``-Xfrozen_modules=off`` allowed before ``-m``), else None."""
    if not cmd or os.path.realpath(cmd[0]) != os.path.realpath(sys.executable):
        return None
    for i in range(1, len(cmd) - 1):
        if cmd[i:i + 2] == ["-m", "ipykernel_launcher"]:
            return cmd[i + 2:]
        if not cmd[i].startswith("-X"):
            return None
    return None


def _as_fresh_process(env: dict[str, str] | None, log: str | None = None) -> None:
    """In a forked child: a session of its own (signals go to its group), stdin from /dev/null, stdout and
    stderr into ``log`` if given, ``env`` as the whole environment and ``TMPDIR`` read again."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if log is not None:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    import tempfile

    tempfile.tempdir = None


def _run_then_exit(main: Callable[[], int]) -> None:
    """Run a forked child's ``main`` and exit with its code: never return into the parent's stack."""
    code = 1
    try:
        code = main()
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc(file=sys.__stderr__)
    finally:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _kernel_child(argv: list[str], cwd: str | None, env: dict[str, str] | None) -> int:
    """In the forked child: become an IPython kernel, as ``python -m ipykernel_launcher ARGV`` would."""
    _as_fresh_process(env)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)  # papermill's event loop's, inherited
    except ValueError:
        pass
    if cwd:
        os.chdir(cwd)
    import asyncio

    asyncio.set_event_loop(asyncio.new_event_loop())  # not papermill's, inherited mid-run
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize([*argv, f"--IPKernelApp.parent_handle={os.getppid()}"])
    app.start()
    return 0


#: the kernel name the notebooks carry; whatever kernelspec has that name on this machine (a user's
#: ``python3`` may point at another interpreter, without pepr_utils), the kernel is this interpreter's
KERNEL_NAME = "python3"


def this_python_kernel_manager_class() -> type:
    """An async kernel manager whose kernel is always this interpreter's ipykernel, whatever the name.

    Why: jupyter_client looks a kernel name up among the installed kernelspecs, user-level ones first, so
    a ``python3`` spec installed for another Python makes every run fail to import pepr_utils. The study's
    kernel must run the Python that runs the study (the one pepr_utils is installed in).
    """
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class ThisPythonKernelSpecManager(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name=f"Python 3 ({sys.executable})", language="python", name=kernel_name,
                              metadata={"debugger": True})

    class ThisPythonKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("kernel_spec_manager", ThisPythonKernelSpecManager())
            super().__init__(**kwargs)

    return ThisPythonKernelManager


def forked_kernel_manager_class(ipc_folder: str | None = None) -> type:
    """An async kernel manager whose kernels are forks of this process (over IPC in ``ipc_folder``, if given).

    The kernel is this interpreter's (:func:`this_python_kernel_manager_class`), so it can be forked; a
    provisioner other than jupyter_client's default starts it as a new process.
    """
    from jupyter_client.provisioning.local_provisioner import LocalProvisioner

    class ForkedKernelProvisioner(LocalProvisioner):
        async def launch_kernel(self, cmd: list[str], **kwargs: Any):
            argv = _ipykernel_argv(cmd)
            if argv is None:
                return await super().launch_kernel(cmd, **kwargs)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _run_then_exit(lambda: _kernel_child(argv, kwargs.get("cwd"), kwargs.get("env")))
            self.process = _ForkedProcess(pid)
            self.pid = self.pgid = pid
            self.cwd = kwargs.get("cwd")
            return self.connection_info

    class ForkedKernelManager(this_python_kernel_manager_class()):
        def __init__(self, **kwargs: Any) -> None:
            if ipc_folder is not None:
                kwargs = {"transport": "ipc", "ip": ipc_folder, **kwargs}
            super().__init__(**kwargs)

        async def _async_pre_start_kernel(self, **kw: Any):
            result = await super()._async_pre_start_kernel(**kw)
            if type(self.provisioner) is LocalProvisioner:  # the default, made by jupyter_client's factory
                provisioner = ForkedKernelProvisioner(kernel_id=self.provisioner.kernel_id,
                                                      kernel_spec=self.provisioner.kernel_spec, parent=self)
                provisioner.connection_info = self.provisioner.connection_info
                provisioner.ports_cached = self.provisioner.ports_cached
                self.provisioner = provisioner
            return result

    return ForkedKernelManager


def kernel_options(ipc_folder: str | os.PathLike) -> dict[str, Any]:
    """papermill options that fork the kernel from this process and connect to it over IPC (Unix sockets
    under ``ipc_folder``; keep its path short: a socket path has a limit of about 100 characters).

    A kernel on TCP warns "Kernel is running over TCP without encryption" at every start; on one machine
    IPC needs no port and no encryption. Not on Windows (no fork, no Unix sockets): there the kernel starts
    as a new process over TCP. Either way it is this interpreter's kernel (:data:`KERNEL_NAME`).
    """
    if not AVAILABLE:
        return {"kernel_manager_class": this_python_kernel_manager_class()}
    return {"kernel_manager_class": forked_kernel_manager_class(str(ipc_folder))}


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
    from .grid_worker import skip_slow_imports

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
        self.proc = subprocess.Popen([sys.executable, "-m", "pepr_utils.fork_server"], stdin=subprocess.PIPE,
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
    from .grid_worker import _child_main

    warm_up()
    sys.exit(_serve(_child_main))
