"""Grids: expansion and validation, and execution by papermill on a real two-worker Dask LocalCluster.

The mechanics tests (failures, timeouts, dead kernels, kill -9 of the runner, resume) run a tiny
notebook made here, which writes a real run record with ``records``, so they take seconds per run;
the real smoke grid runs notebook 02 on PneumoniaMNIST.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest
import yaml

from pepr_utils import models
from pepr_utils.cli.command import main as cli_main
from pepr_utils.errors import PeprError
from pepr_utils.grid.runner import collect_grid, grid_states, grid_status, run_grid, schedule_order
from pepr_utils.grid.spec import expand_grid, load_grid, paper_defaults
from pepr_utils.grid.timing import grid_timing
from pepr_utils.params import NAMES, RunParams, RunSettings
from pepr_utils.records import read_record, run_id
from pepr_utils.train.allocator import MALLOC_ENV

ROOT = Path(__file__).resolve().parents[1]
GRIDS = ROOT / "parameters" / "grids"
PEPR = str(Path(sys.executable).with_name("pepr"))

# The tiny notebook: the parameters of 02/03, a record written with pepr_utils.records; its seed picks
# a failure while PEPR_TEST_INJECT=1 (13 raises, 7 kills its own kernel, 99 sleeps past any timeout);
# PEPR_TEST_SLEEP_S slows every run down so the runner can be killed mid-grid.
TINY_BODY = """
import os, time
from pepr_utils.records import METRIC_FIELDS, RESOURCE_FIELDS, make_record, write_record
time.sleep(float(os.environ.get("PEPR_TEST_SLEEP_S", "0")))
inject = os.environ.get("PEPR_TEST_INJECT") == "1"
if inject and seed == 13:
    raise ValueError("injected failure for the test")
if inject and seed == 7:
    os.kill(os.getpid(), 9)
if inject and seed == 99:
    time.sleep(600)
pretrained = weights not in (None, "scratch")
params = dict(model=model, dataset=dataset, size=size, fraction=fraction, pretrained=pretrained,
              weights=weights if pretrained else None, mode=mode if pretrained else "full", epochs=epochs,
              batch_size=batch_size, lr=lr, seed=seed, device=device)
metrics = {k: 0.5 for k in METRIC_FIELDS}
metrics["history"] = [dict(epoch=1, train_loss=1.0, train_acc=0.5, val_acc=0.5, val_auc=0.5, test_acc=0.5,
                           test_auc=0.5, epoch_time_s=0.1)]
resources = {k: 0.0 for k in RESOURCE_FIELDS}
resources.update(energy_method="test", country_iso_code=country_iso_code, mem_kind="rss",
                 threads=os.environ.get("OMP_NUM_THREADS"), malloc=os.environ.get("MALLOC_MMAP_THRESHOLD_"))
record = make_record(params=params, status="ok", metrics=metrics, resources=resources,
                     model_info=dict(num_params=1, trainable_params=1, macs_per_image=1, input_size=size))
write_record(out_dir, record)
open(os.path.join(out_dir, "extra.txt"), "w").write("small file")
"""
TINY_PARAMS = """model = "resnet18"
dataset = "pneumoniamnist"
size = 28
fraction = 1.0
epochs = 1
batch_size = 32
lr = 5e-4
seed = 0
device = "cpu"
data_dir = None
out_dir = "."
country_iso_code = "DNK"
weights = None
mode = "full"
weights_dir = None
"""


@pytest.fixture(scope="module")
def tiny_notebook(tmp_path_factory) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(TINY_PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(TINY_BODY)]
    path = tmp_path_factory.mktemp("nb") / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def tiny_grid(tmp_path: Path, notebook: Path, seeds: list[int], name: str = "tiny") -> Path:
    spec = {"name": name, "notebook": str(notebook), "defaults": {"epochs": 1, "dataset": "pneumoniamnist"},
            "axes": {"model": ["resnet18"], "seed": seeds}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# --------------------------------------------------------------------------- expansion and validation
def test_expansion_axes_experiments_include_exclude():
    grid = expand_grid({
        "name": "g",
        "defaults": {"epochs": 2, "size": 28},
        "axes": {"models": ["resnet18", "mobilenetv2_050"], "pretrained": [False, True]},
        "experiments": [{"name": "derma", "dataset": "dermamnist"},
                        {"name": "derma_small", "dataset": "dermamnist", "fraction": 0.1}],
        "exclude": [{"model": "mobilenetv2_050", "pretrained": True}],
        "include": [{"model": "resnet18", "dataset": "lidc", "weights": ["imagenet"], "mode": ["full", "linear"]}],
    })
    assert len(grid) == 3 * 2 + 2
    by = {(r.params.model, r.label, r.params.weights, r.params.mode, r.params.dataset): r for r in grid.runs}
    scratch = by[("resnet18", "derma_small", None, "full", "dermamnist")]
    assert scratch.notebook == "02_train" and scratch.params.fraction == 0.1 and not scratch.params.pretrained
    assert by[("resnet18", "derma", "imagenet", "full", "dermamnist")].notebook == "03_finetune"
    assert ("mobilenetv2_050", "derma", "imagenet", "full", "dermamnist") not in by
    assert by[("resnet18", None, "imagenet", "linear", "lidc")].params.epochs == 2
    for run in grid.runs:  # fully resolved, and the id is the records module's hash of exactly these
        assert isinstance(run.params, RunParams) and tuple(run.params.as_dict()) == NAMES
        assert run.run_id == run_id(run.params.as_dict())
        assert run.params.batch_size == 32 and run.params.lr == 5e-4  # the paper's recipe by default
    nb = by[("resnet18", None, "imagenet", "linear", "lidc")].notebook_parameters(out_dir="/x")
    assert set(nb) == {"model", "dataset", "size", "fraction", "epochs", "batch_size", "lr", "seed", "device",
                       "data_dir", "out_dir", "country_iso_code", "weights", "mode", "weights_dir",
                       "eval_every_epoch"}
    assert "weights" not in scratch.notebook_parameters(out_dir="/x")


def test_schedule_longest_first_with_a_diverse_first_wave():
    grid = expand_grid({"name": "g", "axes": {"model": ["resnet18", "mobilenetv2_050"],
                                              "dataset": ["pneumoniamnist", "lidc", "dermamnist"],
                                              "fraction": [0.1, 1.0]}})
    order = schedule_order(grid.runs, workers=2)
    assert sorted(r.run_id for r in order) == sorted(r.run_id for r in grid.runs)
    assert [r.params.dataset for r in order[:2]] == ["lidc", "dermamnist"]  # the two costliest datasets
    assert all(order[i].cost >= order[i + 1].cost for i in range(2, len(order) - 1))


def test_scratch_ignores_mode_and_duplicates_merge():
    grid = expand_grid({"name": "g", "axes": {"model": ["resnet18"], "dataset": ["dermamnist"],
                                              "weights": ["scratch", "imagenet"], "mode": ["full", "linear"]}})
    assert sorted((r.params.weights or "scratch", r.params.mode) for r in grid.runs) == [
        ("imagenet", "full"), ("imagenet", "linear"), ("scratch", "full")]
    assert grid.duplicates == 1
    again = expand_grid({"name": "g", "axes": {"dataset": ["dermamnist"], "model": ["resnet18"],
                                               "weights": ["imagenet", "scratch"], "mode": ["linear", "full"]}})
    assert {r.run_id for r in grid.runs} == {r.run_id for r in again.runs}  # order-free ids


def test_bad_grid_lists_every_problem_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PEPR_OUTPUT_DIR", str(tmp_path / "out"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({
        "name": "bad", "colour": "red",
        "defaults": {"epochs": 0, "lr": -1, "batch_size": 2.5},
        "axes": {"models": ["resnt18", "resnet18"], "dataset": ["dermamnst", "lidc"], "fraction": [1.5, 0.1],
                 "size": [28, 30], "weights": ["imagenet", "foo.bin"], "mode": ["half"], "device": ["gpu"]},
    }))
    with pytest.raises(PeprError) as info:
        load_grid(bad)
    msg = str(info.value)
    assert "\n" not in msg and "nothing was run" in msg
    for needle in ["unknown key 'colour'", "epochs 0", "lr -1", "batch_size 2.5", "unknown model 'resnt18'",
                   "did you mean 'resnet18'", "unknown dataset 'dermamnst'", "fraction 1.5", "size 30",
                   "weights 'foo.bin'", "mode 'half'", "device 'gpu'"]:
        assert needle in msg, needle
    out = subprocess.run([PEPR, "grid", "run", str(bad), "--workers", "2"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown model 'resnt18'" in out.stderr
    assert not (tmp_path / "out").exists()  # nothing was started, nothing written


@pytest.mark.parametrize("spec, needle", [
    ({"name": "x", "axes": {"dataset": ["dermamnist"]}}, "no model given"),
    ({"name": "a b", "axes": {"model": ["resnet18"], "dataset": ["lidc"]}}, "name: 'a b'"),
    ({"name": "x", "axes": {"model": {"catalog": "paper131"}, "dataset": ["lidc"]}}, "catalogue"),
    ({"name": "x", "defaults": {"model": ["resnet18"]}, "axes": {"dataset": ["lidc"]}}, "lists go in axes"),
    ({"name": "x", "axes": {"model": ["resnet18"], "dataset": ["lidc"]}, "exclude": [{"model": "resnet18"}]},
     "no runs left"),
])
def test_validation_messages(spec, needle):
    with pytest.raises(PeprError, match=needle):
        expand_grid(spec)


def test_defaults_file_is_the_papers_recipe():
    d = paper_defaults()
    config, settings = RunParams(model="m", dataset="d"), RunSettings()  # the notebooks' and the grid's recipe
    assert (config.epochs, config.batch_size, config.lr, settings.eval_every_epoch) == \
        (d["epochs"], d["batch_size"], d["lr"], d["eval_every_epoch"])
    assert (d["epochs"], d["batch_size"], d["lr"], d["weights"], d["fraction"]) == (10, 32, 5e-4, "scratch", 1.0)


def test_shipped_grids_are_valid():
    pytest.importorskip("pepr_utils.models.build")
    smoke, quick, paper = (load_grid(GRIDS / f"{n}.yaml") for n in ("smoke", "quick", "paper"))
    assert len(smoke) == 2 and {r.params.epochs for r in smoke.runs} == {1}
    # the quick study is designed for evidence (issue 17: a laptop study whose models learn; issue 25: with
    # the power to decide: 12+ architectures from scratch per experiment, 9+ of them the paper's, 30x+ in size)
    runs = pd.DataFrame([{**r.params.as_dict(), **r.settings.as_dict()} for r in quick.runs])
    assert set(runs["dataset"]) == {"pneumoniamnist"} and {1.0, 0.1} <= set(runs["fraction"])
    assert runs["fraction"].nunique() >= 3  # a data-efficiency curve needs three fractions
    config = ["model", "dataset", "fraction", "pretrained"]
    assert (runs.groupby(config)["seed"].nunique() == runs["seed"].nunique()).all()  # every seed everywhere
    per_experiment = runs.groupby(["dataset", "fraction", "pretrained", "seed"])["model"].nunique()
    assert per_experiment.xs(False, level="pretrained").min() >= 12  # every scratch experiment: 12+ models
    assert per_experiment.xs(True, level="pretrained").min() >= 3  # each pretrained experiment: 3 models
    scratch = runs.loc[~runs["pretrained"], "model"].unique()
    assert len(set(scratch) & set(models.catalogue_models())) >= 9  # they join the paper's published rows
    sizes = [sum(p.numel() for p in models.create_model(m, 2, 1)[0].parameters()) for m in scratch]
    assert max(sizes) / min(sizes) >= 30
    tuned = set(runs.loc[runs["pretrained"], "model"])
    for f in set(runs["fraction"]):  # each pretrained model paired with itself from scratch, at every fraction
        at = runs[runs["fraction"] == f]
        assert set(at.loc[at["pretrained"], "model"]) <= set(at.loc[~at["pretrained"], "model"])
    assert len(tuned) >= 3
    steps = runs["fraction"] * runs["epochs"]  # equal compute: ~1 epoch-equivalent on all the data each
    assert steps.between(0.85, 1.0).all()
    assert runs["eval_every_epoch"].all()  # per-epoch history: learning curves and cost to a target
    assert len(paper) == 131 * 8
    assert {r.label for r in paper.runs} == {"derma", "derma_pt", "derma_small", "derma_smallest", "lidc",
                                             "lidc_small", "pneumonia", "pneumonia_small"}
    p = paper.runs[0].params
    assert (p.epochs, p.batch_size, p.lr) == (10, 32, 5e-4)


# --------------------------------------------------------------------------- execution mechanics
@pytest.mark.slow
def test_failures_are_isolated_recorded_and_retried(tmp_path, tiny_notebook, monkeypatch, capsys):
    """Two workers; one run raises, one kills its kernel, one times out; the other finishes."""
    path = tiny_grid(tmp_path, tiny_notebook, [0, 13, 7, 99])
    grid = load_grid(path)
    out = tmp_path / "out"
    monkeypatch.setenv("PEPR_TEST_INJECT", "1")
    assert cli_main(["grid", "run", str(path), "--dry-run", "--output-dir", str(out)]) == 0
    assert "4 would run" in capsys.readouterr().out and not out.exists()
    rc = cli_main(["grid", "run", str(path), "--workers", "2", "--timeout", "30", "--output-dir", str(out),
                   "--no-progress"])
    assert rc == 1 and "1 ok, 0 incompatible, 3 failed" in capsys.readouterr().out
    by_seed = {s.run.params.seed: s for s in grid_states(grid, out)}
    assert by_seed[0].state == "ok"
    assert "injected failure for the test" in by_seed[13].error and by_seed[13].error.startswith("raised")
    assert "ValueError" in by_seed[13].error  # the tail of the traceback is kept
    assert by_seed[7].error.startswith("kernel died")
    assert by_seed[99].error.startswith("timeout")
    for seed in (13, 7, 99):  # failed records are valid records, with the run's params
        rec = read_record(by_seed[seed].path)
        assert rec["status"] == "failed" and rec["params"]["seed"] == seed and rec["run_id"] == by_seed[seed].run.run_id
    ok_dir = by_seed[0].path
    assert (ok_dir / "tiny.ipynb").exists() and (ok_dir / "history.csv").exists()
    assert (ok_dir / "extra.txt").read_text() == "small file"
    info = json.loads((ok_dir / "grid_run.json").read_text())
    assert info["run_id"] == by_seed[0].run.run_id and info["cpu_s"] > 0 and info["wall_s"] >= info["cpu_s"] / 2
    kernel_env = read_record(ok_dir)["resources"]
    assert kernel_env["threads"] == str(max(1, len(os.sched_getaffinity(0)) // 2))  # cores split between workers
    assert kernel_env["malloc"] == MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]
    assert not [p for p in (out / "tiny" / "runs").iterdir() if p.name.startswith(".")]

    status = grid_status(grid, out)
    assert status.counts == {"ok": 1, "failed": 3} and len(status.failed) == 3
    assert cli_main(["grid", "status", str(path), "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 ok, 0 incompatible, 3 failed, 0 pending" in printed and "injected failure" in printed
    assert "time over 1 finished runs" in printed  # where the time went; the tiny notebook meters 0 s
    timing = grid_timing(grid, out)
    assert timing.runs == 1 and timing.train_steps_s == 0 and timing.overhead_s == pytest.approx(info["wall_s"])
    assert cli_main(["grid", "collect", str(path), "--output-dir", str(out)]) == 0
    table = pd.read_csv(out / "tiny" / "results.csv")
    assert sorted(table["status"]) == ["failed"] * 3 + ["ok"]

    # the same command again: nothing to do; --retry-failed redoes only the failed ones (now fixed)
    monkeypatch.delenv("PEPR_TEST_INJECT")
    mtime = (ok_dir / "result.json").stat().st_mtime_ns
    again = run_grid(grid, workers=2, output_dir=out, progress=False, log=lambda *_: None)
    assert again.to_run == 0
    retried = run_grid(grid, workers=2, retry_failed=True, output_dir=out, progress=False, log=lambda *_: None)
    assert retried.to_run == 3 and retried.counts == {"ok": 3}
    assert (ok_dir / "result.json").stat().st_mtime_ns == mtime
    assert [s.state for s in grid_states(grid, out)] == ["ok"] * 4
    table_path, rows = collect_grid(grid, out)
    table = pd.read_csv(table_path)
    assert rows == 4 and set(table["run_id"]) == {r.run_id for r in grid.runs} and set(table["status"]) == {"ok"}


def test_existing_cluster_by_address_with_gpu_resources(tmp_path, tiny_notebook):
    """--scheduler ADDR: runs go to a cluster started elsewhere; cuda runs ask for its GPU resource."""
    from distributed import Client, LocalCluster

    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump({"name": "remote", "notebook": str(tiny_notebook),
                                    "defaults": {"dataset": "pneumoniamnist", "device": "cuda"},
                                    "axes": {"model": ["resnet18"], "seed": [0]}}))
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0",
                      resources={"GPU": 1}) as cluster, Client(cluster) as client:
        report = run_grid(path, scheduler=cluster.scheduler_address, output_dir=tmp_path / "out", progress=False,
                          log=lambda *_: None)
        assert report.counts == {"ok": 1}
        assert client.scheduler_info()["workers"]  # the cluster is still up: the runner does not own it


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def _cmdline(process: psutil.Process) -> str:
    """A process's command line, or "" once it has exited (a finished run's kernel may be a zombie meanwhile)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


@pytest.mark.slow
def test_kill_9_of_the_runner_loses_nothing_and_resumes(tmp_path, tiny_notebook):
    seeds = list(range(4))
    path = tiny_grid(tmp_path, tiny_notebook, seeds, name="resume")
    out = tmp_path / "out"
    runs_dir = out / "resume" / "runs"
    env = {**os.environ, "PEPR_OUTPUT_DIR": str(out), "PEPR_TEST_SLEEP_S": "3"}

    def finished() -> list[Path]:
        return [p for p in runs_dir.glob("*/result.json")] if runs_dir.is_dir() else []

    runner = subprocess.Popen([PEPR, "grid", "run", str(path), "--workers", "2", "--no-progress"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: len(finished()) >= 1, 150, "a finished run")
        tree = psutil.Process(runner.pid).children(recursive=True)
        # runs in flight: papermill processes (forked from a worker's fork server, or started as `python -m pepr_utils.grid.child`)
        assert sum(any(m in _cmdline(p) for m in ("pepr_utils.grid.fork_server", "pepr_utils.grid.child")) for p in tree) >= 2
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    finally:
        if runner.poll() is None:
            runner.kill()
    done_first = {p.parent.name: p.stat().st_mtime_ns for p in finished()}
    assert 1 <= len(done_first) < len(seeds)
    # no orphans: workers, papermill and kernels all go away with the runner
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, [_cmdline(p) for p in alive]
    # whatever was in flight left no folder that counts as done
    grid = load_grid(path)
    assert sum(s.state == "ok" for s in grid_states(grid, out)) == len(done_first)

    rerun = subprocess.run([PEPR, "grid", "run", str(path), "--workers", "2", "--no-progress"],
                           env={**env, "PEPR_TEST_SLEEP_S": "0"}, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{len(done_first)} were already done" in rerun.stdout
    states = grid_states(grid, out)
    assert [s.state for s in states] == ["ok"] * len(seeds)
    folders = sorted(p.name for p in runs_dir.iterdir())
    assert folders == sorted(r.run_id for r in grid.runs)  # the full set, no duplicates, no leftovers
    assert {k: (runs_dir / k / "result.json").stat().st_mtime_ns for k in done_first} == done_first
    records = [json.loads((runs_dir / f / "result.json").read_text()) for f in folders]
    assert sorted(r["params"]["seed"] for r in records) == seeds


# --------------------------------------------------------------------------- the real smoke grid
@pytest.mark.slow
def test_smoke_grid_runs_notebook_02_on_two_workers(tmp_path, data_dir, monkeypatch):
    if not (ROOT / "notebooks" / "02_train.ipynb").exists():
        pytest.skip("notebooks/02_train.ipynb not there yet")
    monkeypatch.setenv("PEPR_DATA_DIR", str(data_dir))
    grid = load_grid(GRIDS / "smoke.yaml")
    report = run_grid(grid, workers=2, output_dir=tmp_path, progress=False, log=lambda *_: None)
    assert report.counts == {"ok": len(grid)}, grid_status(grid, tmp_path).lines()
    for state in grid_states(grid, tmp_path):
        record = read_record(state.path)
        assert record["status"] == "ok" and record["run_id"] == state.run.run_id
        assert record["params"] == state.run.params.as_dict()
        assert 0 <= record["metrics"]["test_acc"] <= 1 and (state.path / "02_train.ipynb").exists()
        assert (state.path / "history.csv").exists() and (state.path / "predictions.npz").exists()


def test_papermill_child_skips_the_rfc3987_grammar_and_still_validates_notebooks():
    """The papermill child's start (a fixed cost of every run) without jsonschema's slow optional import."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from pepr_utils.grid.child import skip_slow_imports\n"
            "skip_slow_imports()\n"
            "import nbformat, papermill\n"
            "assert sys.modules['rfc3987_syntax'] is None\n"
            "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1 + 1')])\n"
            "nbformat.validate(nb)\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
