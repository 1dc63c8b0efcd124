"""Reproduce anywhere: the kernel transport, the torch build selection, the conda file, the Colab cell."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat


def test_grid_kernels_start_over_ipc_without_the_tcp_warning(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
               nbformat.v4.new_code_cell("print(x + 1)")],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
                  "language_info": {"name": "python"}})
    nbformat.write(nb, tmp_path / "input.ipynb")
    (tmp_path / "out").mkdir()
    job = {"input": str(tmp_path / "input.ipynb"), "output": str(tmp_path / "executed.ipynb"),
           "cwd": str(tmp_path / "out"), "parameters": {"x": 41}, "outcome": str(tmp_path / "outcome.json"),
           "runner_pid": None, "timeout_s": 120}
    (tmp_path / "job.json").write_text(json.dumps(job))
    proc = subprocess.run([sys.executable, "-m", "pepr_utils.grid", str(tmp_path / "job.json")],
                          capture_output=True, text=True, timeout=300)
    assert json.loads((tmp_path / "outcome.json").read_text())["ok"], proc.stderr
    assert "without encryption" not in proc.stdout + proc.stderr
    assert nbformat.read(tmp_path / "executed.ipynb", 4).cells[-1].outputs[0]["text"] == "42\n"
    assert not any((tmp_path / "out").iterdir())  # no socket files among the run's outputs
