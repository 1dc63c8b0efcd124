"""The notebook's kernel, started by forking the process that asks for it, and this interpreter's kernel spec.

papermill starts a run's kernel through jupyter_client; :func:`kernel_options` gives it a kernel manager
whose provisioner forks the calling (already warm) process instead of starting a new Python, and talks
to it over Unix sockets. The report's build and every grid run use it (:data:`KERNEL_NAME`: the kernel
of the interpreter running pepr, never another one found on the machine). Not on Windows (no fork):
there the kernel starts as a new process over TCP.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

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


def _max_socket_path() -> int:
    """The longest IPC path ZMQ binds (``sun_path`` less its NUL): 107 bytes on Linux, 103 on macOS/BSD."""
    try:
        import zmq

        return int(zmq.IPC_PATH_MAX_LEN)
    except (ImportError, AttributeError):  # pragma: no cover - pyzmq is a dependency of the kernel
        return 107 if sys.platform.startswith("linux") else 103


MAX_SOCKET_PATH = _max_socket_path()


def ipc_fits(ipc_folder: str | os.PathLike) -> bool:
    """Whether the kernel's sockets (``{ipc_folder}-1`` .. ``-5``, jupyter_client's names) fit in a socket path."""
    return len(os.fsencode(os.path.abspath(ipc_folder))) + len("-99") <= MAX_SOCKET_PATH


def kernel_options(ipc_folder: str | os.PathLike) -> dict[str, Any]:
    """papermill options that fork the kernel from this process and connect to it over IPC (Unix sockets
    named after ``ipc_folder``).

    A kernel on TCP warns "Kernel is running over TCP without encryption" at every start; on one machine
    IPC needs no port and no encryption. Where the sockets' path would be too long for a Unix socket (a
    deep ``$TMPDIR``, a long run id) the forked kernel listens on TCP on localhost instead: it starts
    either way. Not on Windows (no fork, no Unix sockets): there the kernel starts as a new process over
    TCP. Either way it is this interpreter's kernel (:data:`KERNEL_NAME`).
    """
    if not AVAILABLE:
        return {"kernel_manager_class": this_python_kernel_manager_class()}
    folder = os.path.abspath(ipc_folder)  # absolute: the forked kernel changes directory before it binds
    return {"kernel_manager_class": forked_kernel_manager_class(folder if ipc_fits(folder) else None)}
