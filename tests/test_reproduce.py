"""Reproduce anywhere: the kernel transport, the torch build selection, the conda file, the Colab cell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, load_tool, run_one_cell_job


def test_grid_kernels_start_over_ipc_without_the_tcp_warning(tmp_path):
    outcome, proc, executed = run_one_cell_job(tmp_path, "print(x + 1)")
    assert outcome["ok"], proc.stderr
    assert "without encryption" not in proc.stdout + proc.stderr
    assert nbformat.read(executed, 4).cells[-1].outputs[0]["text"] == "42\n"
    assert not any((tmp_path / "out").iterdir())  # no socket files among the run's outputs


# --------------------------------------------------------------------------- make setup's decisions
def _setup_env():
    return load_tool("setup_env")


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


# --------------------------------------------------------------------------- the Colab cell
def _first_code_cells() -> dict[str, str]:
    cells = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells[path.name] = next(c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code")
    for path in sorted((ROOT / "notebooks").glob("*.py")):
        text = path.read_text(encoding="utf-8").split("\n# %%\n", 1)[1]
        cells[path.name] = text.split("\n\n# %%", 1)[0].strip()
    return cells


def test_every_notebook_starts_with_the_same_colab_cell():
    cells = _first_code_cells()
    assert len(cells) == 10 and len(set(cells.values())) == 1, cells
    cell = next(iter(cells.values()))
    assert "google.colab" in cell
    assert "--depth" not in cell  # pip's clone of a shallow clone stalls for minutes (tools/colab_install.py)
    from pepr_utils import __version__

    assert f'"PEPR_REF", "v{__version__}"' in cell  # the release tag of this version, not an unpinned main


@pytest.mark.slow
def test_colab_cell_in_a_fresh_venv_imports_in_the_same_process_and_is_idempotent(tmp_path):
    """Colab simulated: a fresh interpreter with a google.colab stub, the cell's code run twice, then
    pepr_utils imported in that same process. The repository is a local clone (PEPR_REPO=file://...);
    the venv borrows the project's dependencies (a .pth line), so only pepr_utils itself is installed."""
    from test_install import _source_copy

    repo = tmp_path / "repo"
    repo.mkdir()
    _source_copy(repo)
    shutil.copy2(ROOT / "requirements-lock.txt", repo / "requirements-lock.txt")
    (repo / "tools").mkdir()
    shutil.copy2(ROOT / "tools" / "colab_install.py", repo / "tools")
    from pepr_utils import __version__

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"], ["tag", f"v{__version__}"]):
        subprocess.run([*git, *args], cwd=repo, check=True)
    venv = tmp_path / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    cell = next(iter(_first_code_cells().values()))
    script = tmp_path / "colab.py"
    script.write_text(
        "import subprocess, sys, types\n"
        "sys.modules['google'] = types.ModuleType('google')\n"
        "sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
        f"CELL = {cell!r}\n"
        "exec(CELL, {})\n"
        "calls = []\n"
        "real_run = subprocess.run\n"
        "subprocess.run = lambda *a, **k: calls.append(a) or real_run(*a, **k)\n"
        "exec(CELL, {})  # the second run does nothing\n"
        "assert calls == [], calls\n"
        "import pepr_utils\n"
        "from pepr_utils.grid.spec import load_grid\n"
        "assert 'site-packages' in pepr_utils.__file__, pepr_utils.__file__\n"
        "print('OK', len(load_grid('smoke').runs))\n")
    home, content = tmp_path / "home", tmp_path / "content"
    home.mkdir(), content.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HOME=str(home), PEPR_REPO=f"file://{repo}", PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    out = subprocess.run([str(python), str(script)], cwd=content, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.strip().endswith("OK 2")
    assert (home / "pepr" / ".git").is_dir() and not any(content.iterdir())  # one clone, outside the cwd


# --------------------------------------------------------------------------- the pinned files
def _lock_tool():
    return load_tool("lock")


def test_environment_yml_is_generated_from_the_lock():
    lock = _lock_tool()
    text = (ROOT / "requirements-lock.txt").read_text(encoding="utf-8")
    env = (ROOT / "environment.yml").read_text(encoding="utf-8")
    assert env == lock.env_text(text), "environment.yml is stale: python tools/lock.py env"
    import yaml

    pip = next(d for d in yaml.safe_load(env)["dependencies"] if isinstance(d, dict))["pip"]
    pins = dict(p.split("==") for p in pip if "==" in p)
    for name in ("torch", "torchvision", "timm", "medmnist", "pandas", "dask", "seaborn"):
        assert pins[name] == lock.read_lock(text)[name], name  # Binder gets exactly the lock's versions


def test_lock_pins_exactly_what_pyproject_needs():
    lock = _lock_tool()
    assert (ROOT / "requirements-lock.txt").read_text(encoding="utf-8") == lock.lock_text(), \
        "requirements-lock.txt is stale: python tools/lock.py lock"
    pins = {n.lower() for n in lock.read_lock((ROOT / "requirements-lock.txt").read_text(encoding="utf-8"))}
    assert "codecarbon" not in pins and "typer" not in pins  # nothing imports them
    assert {"torch", "torchvision", "pooch", "seaborn"} <= pins


# --------------------------------------------------------------------------- shipped grids
def test_a_grid_is_a_yaml_path_or_a_shipped_name(tmp_path, monkeypatch):
    from pepr_utils.errors import PeprError
    from pepr_utils.grid.spec import grid_file, shipped_grids

    assert {"smoke", "quick", "paper"} <= set(shipped_grids())
    monkeypatch.chdir(tmp_path)
    assert grid_file("smoke").read_bytes() == (ROOT / "parameters" / "grids" / "smoke.yaml").read_bytes()
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    assert grid_file("mine.yaml").resolve() == tmp_path / "mine.yaml"  # a path wins
    with pytest.raises(PeprError, match=r"'nope'.*smoke"):
        grid_file("nope")
    with pytest.raises(PeprError, match="not found"):
        grid_file("missing/smoke.yaml")
