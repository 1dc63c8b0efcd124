"""The fork server's two forks: a kernel forked from a warm process, and a run forked from the server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import types

import pytest

from pepr_utils.grid import fork_server, kernel

pytestmark = pytest.mark.skipif(not kernel.AVAILABLE, reason="no fork on this system")


async def _run_in_forked_kernel(code: str, folder: str, cwd: str, env: dict[str, str]) -> tuple[list[str], int]:
    km = kernel.forked_kernel_manager_class(str(folder))(kernel_name="python3")
    await km.start_kernel(cwd=cwd, env=env)
    kc = km.client()
    kc.start_channels()
    out: list[str] = []
    try:
        await kc.wait_for_ready(timeout=60)
        reply = await kc.execute_interactive(
            code, timeout=60, output_hook=lambda msg: out.append(msg["content"].get("text", "")))
        assert reply["content"]["status"] == "ok", reply["content"]
        pid = km.provisioner.pid
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
    return out, pid


def test_a_forked_kernel_starts_warm_in_its_own_process_with_the_run_s_folder_and_environment(tmp_path):
    sys.modules["pepr_warm_marker"] = types.ModuleType("pepr_warm_marker")  # "imported" before the fork
    try:
        code = ("import os, sys\n"
                "print(os.getpid(), 'pepr_warm_marker' in sys.modules, os.getcwd(), os.environ['PEPR_RUN_MARK'])")
        t0 = time.perf_counter()
        out, pid = asyncio.run(_run_in_forked_kernel(code, str(tmp_path / "k"), str(tmp_path),
                                                     {**os.environ, "PEPR_RUN_MARK": "run-7"}))
        elapsed = time.perf_counter() - t0
    finally:
        del sys.modules["pepr_warm_marker"]
    kernel_pid, warm, cwd, mark = "".join(out).split()
    assert int(kernel_pid) == pid != os.getpid()
    assert warm == "True" and os.path.samefile(cwd, tmp_path) and mark == "run-7"
    assert elapsed < 30, elapsed  # generous: a cold kernel start is what would be slow, not wrong


def test_a_kernel_that_dies_is_seen_dead(tmp_path):
    async def scenario() -> bool:
        km = kernel.forked_kernel_manager_class(str(tmp_path / "k"))(kernel_name="python3")
        await km.start_kernel(cwd=str(tmp_path))
        os.kill(km.provisioner.pid, 9)
        for _ in range(50):
            if not await km.is_alive():
                break
            await asyncio.sleep(0.1)
        alive = await km.is_alive()
        await km.shutdown_kernel(now=True)
        return alive

    assert asyncio.run(scenario()) is False


def test_the_server_forks_each_job_and_reports_exit_and_cpu_or_a_timeout(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = fork_server.ForkServer(env)
    try:
        bad_job = tmp_path / "missing.json"  # the child's main fails to read it: exit code 1, a traceback in the log
        code, cpu_s, timed_out = server.run(str(bad_job), str(tmp_path / "a.log"), env, 120, on_timeout=lambda pid: None)
        assert (code, timed_out) == (1, False) and cpu_s is not None and cpu_s >= 0
        assert "missing.json" in (tmp_path / "a.log").read_text()
        # a notebook that never ends: on_timeout kills the run's tree (papermill and its forked kernel)
        import nbformat
        import psutil

        from pepr_utils.grid.worker import _kill_tree

        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(600)")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / "hang.ipynb")
        job = tmp_path / "job.json"
        job.write_text(json.dumps({"input": str(tmp_path / "hang.ipynb"), "output": str(tmp_path / "out.ipynb"),
                                   "cwd": str(tmp_path), "parameters": {}, "outcome": str(tmp_path / "o.json"),
                                   "watch_pids": [os.getpid()]}))
        tree: list[psutil.Process] = []

        def kill(pid: int) -> None:
            tree.extend([psutil.Process(pid), *psutil.Process(pid).children(recursive=True)])
            _kill_tree(pid)

        code, _, timed_out = server.run(str(job), str(tmp_path / "b.log"), env, 8, on_timeout=kill)
        assert timed_out and code == -9 and not (tmp_path / "o.json").exists()
        assert len(tree) >= 2, "the kernel was not running under the run's papermill process"
        _, alive = psutil.wait_procs(tree, timeout=10)
        assert not alive
        assert server.alive()  # the server outlives its children
    finally:
        server.close()
    assert not server.alive()


def test_a_server_that_is_gone_says_so_so_the_worker_can_start_the_run_another_way(tmp_path):
    server = fork_server.ForkServer(dict(os.environ))
    server.proc.kill()
    server.proc.wait()
    with pytest.raises(fork_server.ServerDown, match="fork server"):
        server.run(str(tmp_path / "job.json"), str(tmp_path / "log"), dict(os.environ), 5, on_timeout=lambda pid: None)
    assert not server.alive()
