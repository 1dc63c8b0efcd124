"""The notebooks' kernel is the interpreter that runs the study, whatever kernelspecs the user has."""

from __future__ import annotations

import json
import os
import sys

import nbformat
import pytest
from conftest import run_one_cell_job

from pepr_utils.grid import kernel


@pytest.fixture
def foreign_python3_kernelspec(tmp_path, monkeypatch):
    """A ``python3`` kernelspec first on the Jupyter path, for an interpreter without pepr_utils."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(tmp_path / "other-python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (another one)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return spec


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "new-process"])
def test_the_kernel_command_is_this_interpreter_whatever_python3_means(foreign_python3_kernelspec, monkeypatch,
                                                                       fork, tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec("python3").argv[0].endswith("other-python")  # the trap is set
    monkeypatch.setattr(kernel, "AVAILABLE", fork)
    manager = kernel.kernel_options(tmp_path / "k")["kernel_manager_class"]
    km = manager(kernel_name=kernel.KERNEL_NAME)
    assert km.kernel_spec.argv[:3] == [sys.executable, "-m", "ipykernel_launcher"]


@pytest.mark.slow
def test_a_grid_run_executes_with_a_foreign_python3_kernelspec(foreign_python3_kernelspec, tmp_path):
    outcome, proc, executed = run_one_cell_job(tmp_path, "import sys, pepr_utils; print(x + 1, sys.executable)",
                                                env=os.environ)
    assert outcome["ok"], (outcome, proc.stderr[-2000:])
    printed = nbformat.read(executed, 4).cells[-1].outputs[0]["text"]
    assert printed.split()[0] == "42"


@pytest.mark.skipif(not kernel.AVAILABLE, reason="IPC kernels need fork and Unix sockets")
def test_a_socket_path_too_long_for_ipc_falls_back_to_tcp(tmp_path):
    short, deep = tmp_path / "k", tmp_path / ("d" * (kernel.MAX_SOCKET_PATH - len(str(tmp_path)))) / "k"
    assert kernel.ipc_fits(short) and not kernel.ipc_fits(deep)
    assert kernel.kernel_options(short)["kernel_manager_class"]().transport == "ipc"
    assert kernel.kernel_options(deep)["kernel_manager_class"]().transport == "tcp"


@pytest.mark.skipif(not kernel.AVAILABLE, reason="IPC kernels need fork and Unix sockets")
def test_a_run_in_a_deep_temporary_folder_still_starts_its_kernel(tmp_path):
    """A deep $TMPDIR or a long run id made the sockets' path too long: the kernel could not bind and the
    run waited out its start timeout."""
    deep = tmp_path / ("d" * (kernel.MAX_SOCKET_PATH - len(str(tmp_path))))
    deep.mkdir()
    assert not kernel.ipc_fits(deep / "input.ipynb")
    outcome, proc, executed = run_one_cell_job(deep, "print(x + 1)", env=os.environ)
    assert outcome["ok"], (outcome, proc.stderr[-2000:])
    assert nbformat.read(executed, 4).cells[-1].outputs[0]["text"].strip() == "42"
