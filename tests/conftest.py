"""Shared test settings: the real files in ../shared, reached through the project's own settings."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PEPR_SHARED", ROOT.parent / "shared"))
DATA_DIR = SHARED / "data"
WEIGHTS_DIR = SHARED / "weights"
REFERENCE_DIR = SHARED / "reference" / "saintslab-pepr"
NOTEBOOKS = ROOT / "notebooks"

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PEPR_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def need(path: Path) -> Path:
    """Skip a test (with the reason) when a shared file is absent on this machine."""
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture
def data_dir() -> Path:
    return need(DATA_DIR)


@pytest.fixture
def weights_dir() -> Path:
    return need(WEIGHTS_DIR)


@pytest.fixture
def reference_dir() -> Path:
    return need(REFERENCE_DIR)


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """One decoded-dataset cache for the whole session, so LIDC's PNGs are decoded once: under
    pytest-xdist, one folder beside the workers' own (their tests share an xdist group, below)."""
    if os.environ.get("PEPR_TEST_CACHE"):
        return Path(os.environ["PEPR_TEST_CACHE"])
    if os.environ.get("PYTEST_XDIST_WORKER"):
        path = tmp_path_factory.getbasetemp().parent / "pepr-cache"
        path.mkdir(exist_ok=True)
        return path
    return tmp_path_factory.mktemp("pepr-cache")


#: Session fixtures that cost a minute or more to build: their tests run on one xdist worker, which builds
#: the fixture once (a session fixture is otherwise built once per worker).
SHARED_FIXTURES = ("synthetic_report", "session_cache")


def pytest_collection_modifyitems(config, items):
    """``make test`` runs on every core (pytest-xdist, ``--dist loadgroup``): the tests of one expensive
    session fixture go to one worker, and the tests marked ``slow`` are handed out first, so that no
    worker is left with a long test at the end while the other idles."""
    for item in items:
        for name in SHARED_FIXTURES:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))
                break
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: slow first, in file order


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a module (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_one_cell_job(folder: Path, code: str, **run_options) -> tuple[dict, subprocess.CompletedProcess, Path]:
    """Execute a two-cell notebook (parameters ``x = 1``, then ``code``, with ``x = 41``) the way a grid worker
    does (``python -m pepr_utils.grid.child job.json``): the outcome, the process and the executed notebook."""
    import nbformat

    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(code)],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
                  "language_info": {"name": "python"}})
    nbformat.write(nb, folder / "input.ipynb")
    (folder / "out").mkdir()
    job = {"input": str(folder / "input.ipynb"), "output": str(folder / "executed.ipynb"),
           "cwd": str(folder / "out"), "parameters": {"x": 41}, "outcome": str(folder / "outcome.json"),
           "runner_pid": None, "timeout_s": 120}
    (folder / "job.json").write_text(json.dumps(job))
    proc = subprocess.run([sys.executable, "-m", "pepr_utils.grid.child", str(folder / "job.json")],
                          capture_output=True, text=True, timeout=300, **run_options)
    return json.loads((folder / "outcome.json").read_text()), proc, folder / "executed.ipynb"


def bare_venv(folder: Path) -> tuple[str, Path]:
    """A venv without pip at ``folder``: its python and its site-packages."""
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(folder)],
                   check=True)
    python = str(folder / "bin" / "python")
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    return python, site


@pytest.fixture(scope="session")
def synthetic_report(tmp_path_factory) -> tuple[Path, str, float]:
    """The report of test_analysis's synthetic study (``write_study``), built once for every test that reads
    it: its folder, what the build wrote to stderr (fd 2, the kernel's too) and how long it took."""
    import time

    from test_analysis import write_study

    from pepr_utils.report.build import build_report

    folder = tmp_path_factory.mktemp("synthetic-report")
    runs = write_study(folder / "study")
    err = folder / "stderr.txt"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(err, "w") as sink:
            os.dup2(sink.fileno(), 2)
            start = time.perf_counter()
            out = build_report(runs, folder / "report", budget={"energy_kwh": 0.01}, n_boot=200)
            elapsed = time.perf_counter() - start
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
    return out, err.read_text(), elapsed
