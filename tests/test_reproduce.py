"""Reproduce anywhere: the kernel transport, the torch build selection, the conda file, the Colab cell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import nbformat
import pytest
from conftest import ROOT


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


# --------------------------------------------------------------------------- make setup's decisions
def _setup_env():
    import importlib.util

    spec = importlib.util.spec_from_file_location("setup_env", ROOT / "tools" / "setup_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_torch_build_selection():
    se = _setup_env()
    up, down = (lambda url: True), (lambda url: False)
    cpu = ["--index-url", se.CPU_INDEX, "--extra-index-url", se.PYPI]
    assert se.torch_pip_args(gpu=False, system="Linux", probe=up)[0] == cpu  # a CPU laptop: no CUDA wheels
    assert se.torch_pip_args(gpu=False, system="Windows", probe=up)[0] == cpu
    assert se.torch_pip_args(gpu=True, system="Linux", probe=up)[0] == []  # PyPI's Linux wheels are CUDA
    assert se.torch_pip_args(gpu=False, system="Darwin", probe=up)[0] == []
    assert se.torch_pip_args("cuda", gpu=False, system="Linux", probe=up)[0] == []  # overrides
    assert se.torch_pip_args("cpu", gpu=True, system="Linux", probe=up)[0] == cpu
    url = "https://mirror.example/torch-cpu"
    assert se.torch_pip_args("cuda", url, gpu=True, system="Linux", probe=up)[0][:2] == ["--index-url", url]
    assert se.torch_pip_args("cpu", "pypi", gpu=False, system="Linux", probe=up)[0] == []
    args, note = se.torch_pip_args(gpu=False, system="Linux", probe=down)  # unreachable: the current path
    assert args == [] and "not reachable" in note and "falling back" in note
    with pytest.raises(SystemExit, match="TORCH_VARIANT"):
        se.torch_index("rocm", gpu=False, system="Linux")


def test_torch_args_command_runs_and_falls_back_offline():
    env = {**os.environ, "TORCH_VARIANT": "cpu", "TORCH_INDEX": "http://127.0.0.1:9/"}
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "setup_env.py"), "torch-args"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "" and "falling back" in out.stderr


def test_python_version_message_and_makefile_agree_with_pyproject():
    se = _setup_env()
    spec = se.requires_python()
    assert spec == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert se.python_problem(sys.version_info[:3], spec) is None
    message = se.python_problem((3, 10, 12), spec)
    assert "\n" not in message and "3.10.12" in message and spec in message
    assert f"Python {spec} (pyproject.toml requires-python)" in (ROOT / "Makefile").read_text()
    assert se.python_problem((3, 13, 0), ">=3.11,<3.13") is not None
