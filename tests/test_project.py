"""Project conventions that users and CI rely on: notebook pairs, parameters, the Colab cell, packaging."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib

import jupytext
import nbformat
import pytest
from conftest import NOTEBOOKS, ROOT

# The design's contract: each notebook's papermill parameters.
TRAIN_PARAMS = {"model", "dataset", "size", "fraction", "epochs", "batch_size", "lr", "seed", "device",
                "data_dir", "out_dir", "country_iso_code"}
EXPECTED_PARAMETERS = {
    "00_paper_results": {"reference_dir", "out_dir"},
    "01_data_prep": {"dataset", "size", "fractions", "seed", "data_dir", "out_dir"},
    "02_train": TRAIN_PARAMS,
    "03_finetune": TRAIN_PARAMS | {"weights", "mode", "weights_dir"},
    "04_analysis": {"results", "out_dir"},
}
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_every_expected_notebook_exists_as_a_pair():
    for name in EXPECTED_PARAMETERS:
        assert (NOTEBOOKS / f"{name}.ipynb").exists(), f"{name}.ipynb missing"
        assert (NOTEBOOKS / f"{name}.py").exists(), f"{name}.py (jupytext twin) missing"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebook_pair_is_in_sync(path):
    def sources(nb):
        return [(c.cell_type, c.source.strip()) for c in nb.cells]

    ipynb = nbformat.read(path, as_version=4)
    script = jupytext.read(path.with_suffix(".py"))
    assert sources(ipynb) == sources(script), f"{path.name} and its .py differ: run `make notebooks`"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebook_starts_with_colab_cell_then_parameters(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "google.colab" in code[0].source, "first code cell must be the Colab install cell"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    names = {t.id for node in ast.parse(tagged[0].source).body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)}
    expected = EXPECTED_PARAMETERS.get(path.stem)
    if expected is not None:
        assert expected <= names, f"{path.name} lacks parameters {sorted(expected - names)}"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_console_script_and_help():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["pepr"] == "pepr_utils.cli.command:main"
    out = subprocess.run([sys.executable, "-m", "pepr_utils.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("score", "data", "models", "grid", "report"):
        assert command in out.stdout


def test_outputs_are_ignored_by_git():
    out = subprocess.run(["git", "check-ignore", "-q", "outputs/x/result.json"], cwd=ROOT)
    assert out.returncode == 0
