"""The notebooks' kernel is the interpreter that runs the study, whatever kernelspecs the user has."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from pepr_utils import fork_server


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
    monkeypatch.setattr(fork_server, "AVAILABLE", fork)
    manager = fork_server.kernel_options(tmp_path / "k")["kernel_manager_class"]
    km = manager(kernel_name=fork_server.KERNEL_NAME)
    assert km.kernel_spec.argv[:3] == [sys.executable, "-m", "ipykernel_launcher"]


@pytest.mark.slow
def test_a_grid_run_executes_with_a_foreign_python3_kernelspec(foreign_python3_kernelspec, tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
               nbformat.v4.new_code_cell("import sys, pepr_utils; print(x + 1, sys.executable)")],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
                  "language_info": {"name": "python"}})
    nbformat.write(nb, tmp_path / "input.ipynb")
    (tmp_path / "out").mkdir()
    job = {"input": str(tmp_path / "input.ipynb"), "output": str(tmp_path / "executed.ipynb"),
           "cwd": str(tmp_path / "out"), "parameters": {"x": 41}, "outcome": str(tmp_path / "outcome.json"),
           "runner_pid": None, "timeout_s": 120}
    (tmp_path / "job.json").write_text(json.dumps(job))
    proc = subprocess.run([sys.executable, "-m", "pepr_utils.grid", str(tmp_path / "job.json")], env=os.environ,
                          capture_output=True, text=True, timeout=300)
    outcome = json.loads((tmp_path / "outcome.json").read_text())
    assert outcome["ok"], (outcome, proc.stderr[-2000:])
    printed = nbformat.read(tmp_path / "executed.ipynb", 4).cells[-1].outputs[0]["text"]
    assert printed.split()[0] == "42"
