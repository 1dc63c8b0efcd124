"""The package outside a checkout: `pip install .` (not editable) into a fresh venv, then run from elsewhere.

The fresh venv borrows the project's installed dependencies through a .pth line (its own site-packages
holds only pepr_utils), so the test needs no network and installs in seconds. Only the package's own
files decide the outcome: catalogues, defaults, grids and notebooks must come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import DATA_DIR, ROOT, need

pytestmark = pytest.mark.slow


def _source_copy(dest: Path) -> Path:
    """The files a build needs, copied (symlinks kept) so that building leaves the checkout untouched."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".ipynb_checkpoints")
    for name in ("pepr_utils", "parameters", "notebooks"):
        shutil.copytree(ROOT / name, dest / name, symlinks=True, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with pepr_utils installed from a wheel built out of this tree; returns its bin/."""
    tmp = tmp_path_factory.mktemp("install")
    (tmp / "src").mkdir()
    src = _source_copy(tmp / "src")
    venv = tmp / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # The project's dependencies (and pip/setuptools), without its editable pepr_utils: a plain path line
    # adds the folder, but .pth files inside it (the editable finder) are not processed.
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", str(src)], check=True, cwd=tmp)
    assert (site / "pepr_utils" / "parameters" / "grids" / "smoke.yaml").is_file()
    assert not (site / "pepr_utils" / "parameters").is_symlink()
    return venv / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    environ.update(PATH=f"{bin_dir}{os.pathsep}{environ.get('PATH', '')}", PEPR_OFFLINE="1", HF_HUB_OFFLINE="1",
                   MPLBACKEND="Agg", **env)
    return subprocess.run(list(args), cwd=cwd, env=environ, capture_output=True, text=True, timeout=900)


def test_shipped_files_are_found_outside_a_checkout(installed, tmp_path):
    code = ("import pepr_utils, pathlib; from pepr_utils import models; from pepr_utils.grid.runner import notebooks_dir;"
            "from pepr_utils.grid.spec import load_grid, shipped_grids;"
            "assert 'site-packages' in pepr_utils.__file__, pepr_utils.__file__;"
            "print(shipped_grids()); print(models.catalogue_names()); print(len(models.catalogue_models('paper131')));"
            "print(sorted(p.name for p in notebooks_dir().glob('*.ipynb'))); print(len(load_grid('quick').runs))")
    out = _run(installed, str(installed / "python"), "-c", code, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "['paper', 'quick', 'quick_pilot', 'smoke']"
    assert "paper131" in lines[1] and int(lines[2]) == 131
    assert "02_train.ipynb" in lines[3] and "04_analysis.ipynb" in lines[3]
    assert int(lines[4]) > 0
    dry = _run(installed, "pepr", "grid", "run", "smoke", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "test_resnet" in dry.stdout + dry.stderr


def test_pepr_grid_run_smoke_from_another_folder(installed, tmp_path):
    """`pepr grid run smoke` with the installed package, from a folder that is not the checkout."""
    data = need(DATA_DIR)
    out = _run(installed, "pepr", "grid", "run", "smoke", "--workers", "1", cwd=tmp_path, PEPR_DATA_DIR=str(data),
               PEPR_OUTPUT_DIR=str(tmp_path / "outputs"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    records = sorted((tmp_path / "outputs" / "smoke" / "runs").glob("*/result.json"))
    assert len(records) == 2
    assert "without encryption" not in out.stdout + out.stderr
