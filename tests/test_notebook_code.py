"""02_train and 03_finetune come from one template; their code runs in-process for benchmarks and tests."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import NOTEBOOKS, ROOT

from pepr_utils.errors import PeprError
from pepr_utils.train.notebook_code import notebook_cells, run_notebook_code


def test_train_notebooks_are_generated_from_one_template():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "train_notebooks.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_method_is_in_the_notebook():
    code = "".join(src for head, src in notebook_cells(NOTEBOOKS / "02_train.py") if "[markdown]" not in head)
    for step in ("RunParams.of(", "load_dataset(", "create_model(", "torch.optim.Adam(", "with meter:",
                 "for epoch in range(", "ex.train_one_epoch(", "ex.evaluate(", "ex.make_record(", "ex.save_run("):
        assert step in code, step
    scratch = [src for _, src in notebook_cells(NOTEBOOKS / "02_train.py")]
    tuned = [src for _, src in notebook_cells(NOTEBOOKS / "03_finetune.py")]
    assert len(scratch) == len(tuned)
    differ = [i for i, (a, b) in enumerate(zip(scratch, tuned, strict=True)) if a != b]
    assert len(differ) <= 7  # title, parameters, imports, params, model (text and code), plot: fine-tuning


def test_unknown_notebook_parameters_are_refused(tmp_path):
    with pytest.raises(PeprError, match="no parameter"):
        run_notebook_code("02_train", {"optimiser": "sgd"})


@pytest.mark.parametrize("name", ["02_train", "03_finetune"])
def test_notebook_parameter_defaults_are_the_run_defaults(name):
    """The parameters cell spells parameters/defaults.yaml's values (one recipe, however a run starts)."""
    import ast

    from pepr_utils.params import defaults

    cell = next(src for head, src in notebook_cells(NOTEBOOKS / f"{name}.py") if "parameters" in head)
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell).body
              if isinstance(node, ast.Assign)}
    expected = defaults()
    # A user's notebook uses the GPU it has (device "auto", resolved before the run_id is made); grids run
    # on defaults.yaml's device and pass it explicitly, so their run ids do not depend on the machine.
    assert values["device"] == "auto" and expected["device"] == "cpu"
    for key, value in values.items():
        if key in expected and key != "device" and not (key == "weights" and name == "03_finetune"):
            assert value == expected[key], key  # 03 starts from imagenet


@pytest.mark.parametrize("name", ["00_paper_results", "01_data_prep", "02_train", "03_finetune", "04_analysis"])
def test_papermill_reads_every_parameter_of_the_parameters_cell(name):
    """papermill's own parser sees each parameter: a comment it cannot parse (an '=' inside it) hid
    03's ``model`` and made every 03 run warn 'Passed unknown parameter: model'."""
    import ast

    import papermill as pm

    cell = next(src for head, src in notebook_cells(NOTEBOOKS / f"{name}.py") if "parameters" in head)
    names = [node.targets[0].id for node in ast.parse(cell).body if isinstance(node, ast.Assign)]
    assert list(pm.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))) == names
