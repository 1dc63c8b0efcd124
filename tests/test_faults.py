"""Issue 14, defect by defect: each test reproduces one defect found by trying bad inputs and faults
(the number in each test's docstring), and checks what happens now. The CLI-wide table of bad inputs
lives in test_cli_errors.py; these look at the library functions and the files left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from test_cli_errors import run_dir, tiny_npz

from pepr_utils.cli.command import main
from pepr_utils.errors import PeprError
from pepr_utils.fileio import atomic_dir
from pepr_utils.grid.runner import check_scheduler_address, clean_leftovers, grid_status, run_grid
from pepr_utils.grid.spec import load_grid
from pepr_utils.score import parse_pairs, pepr


def tree(root: Path) -> dict[str, bytes | None]:
    return {p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


# --------------------------------------------------------------------------- 1: report output folder
def test_report_never_replaces_a_folder_or_file_it_did_not_write(tmp_path, capsys):
    """1. `pepr report -o DIR` deleted DIR and everything in it; `-o FILE` hid the file as .FILE.old-PID."""
    runs = run_dir(tmp_path)
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "thesis.tex").write_text("years of work")
    (mine / "sub" / "data.csv").write_text("a,b\n1,2\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    before = tree(tmp_path)
    for target, needle in ((mine, "holds 'sub/data.csv' and 1 more"), (notes, "is a file")):
        assert main(["report", str(runs), "-o", str(target)]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
    assert tree(tmp_path) == before  # nothing removed, nothing hidden, nothing added


def test_a_previous_report_folder_may_be_replaced(tmp_path):
    """1. ...but a folder whose manifest lists its files is a pepr report, and rebuilding it is allowed."""
    from pepr_utils.report.build import check_report_dir

    old = tmp_path / "report"
    (old / "figures").mkdir(parents=True)
    (old / "figures" / "a.png").write_bytes(b"png")
    (old / "report.html").write_text("<html>")
    (old / "manifest.json").write_text(json.dumps({"files": [{"path": "figures/a.png", "bytes": 3}]}))
    assert check_report_dir(old) == old
    assert check_report_dir(tmp_path / "new") == tmp_path / "new"
    (old / "my_notes.txt").write_text("added by hand")  # not listed: the folder is no longer only ours
    with pytest.raises(PeprError, match="my_notes.txt"):
        check_report_dir(old)


def test_atomic_dir_refuses_to_replace_a_file(tmp_path):
    """1. atomic_dir moved a file aside as .NAME.old-PID and could not remove it."""
    target = tmp_path / "results.csv"
    target.write_text("precious")
    with pytest.raises(PeprError, match="not a folder"), atomic_dir(target) as tmp:
        (tmp / "x").write_text("new")
    assert target.read_text() == "precious" and sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


# --------------------------------------------------------------------------- 2, 3: score
def test_infinite_resource_is_refused():
    """2. An inf resource made every other R_n 0 and ranked the infinite model first."""
    df = pd.DataFrame({"acc": [0.9, 0.8, 0.7], "energy": [1.0, 2.0, np.inf]})
    with pytest.raises(PeprError, match=r"'energy' has infinite values \(e.g. inf in row 2\)"):
        pepr(df, "acc", {"e": "energy"})
    with pytest.raises(PeprError, match="performance column 'acc' has infinite"):
        pepr(df.assign(acc=[0.9, np.inf, 0.7], energy=[1.0, 2.0, 3.0]), "acc", {"e": "energy"})
    nan = pepr(df.assign(energy=[1.0, 2.0, np.nan]), "acc", {"e": "energy"})  # NaN stays "missing", not an error
    assert nan["e_n"].tolist()[:2] == [0.0, 1.0] and np.isnan(nan["pepr_e"].iloc[2])


def test_performance_must_lie_in_0_1_or_be_scaled():
    """3. Accuracy given as 80 instead of 0.80 was accepted."""
    df = pd.DataFrame({"acc": [90.0, 80.0], "energy": [1.0, 2.0]})
    with pytest.raises(PeprError, match=r"above 1.*90.*--perf-scale 100"):
        pepr(df, "acc", {"e": "energy"})
    scaled = pepr(df, "acc", {"e": "energy"}, perf_scale=100)
    assert scaled["pepr_e"].tolist() == pytest.approx([0.9, 0.4])
    for bad in (0, -1, float("nan"), True):
        with pytest.raises(PeprError, match="scale"):
            pepr(df, "acc", {"e": "energy"}, perf_scale=bad)


def test_cli_perf_scale(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("acc,energy\n90,1\n80,2\n")
    assert main(["score", str(src), "--perf", "acc", "-r", "e=energy", "--perf-scale", "100",
                 "-o", str(tmp_path / "out.csv")]) == 0
    assert pd.read_csv(tmp_path / "out.csv")["pepr_e"].tolist() == pytest.approx([0.9, 0.4])


def test_a_resource_name_given_twice_is_refused():
    """3. `-r e=energy -r e=time` silently kept the last."""
    with pytest.raises(PeprError, match="'e' given twice"):
        parse_pairs(["e=energy", "e=time"], "--resource")
    assert parse_pairs(["e=energy", "t=time"], "--resource") == {"e": "energy", "t": "time"}


# --------------------------------------------------------------------------- 4, 10: data files
@pytest.mark.parametrize("split, values, shown", [("train", [0, 1, 9], "9"), ("val", [0, -1], "-1"),
                                                  ("test", [0.0, np.nan], "nan"), ("train", [0.0, 0.5], "0.5")])
def test_labels_out_of_range_fail_on_load(tmp_path, split, values, shown):
    """4. Label 9 of a 2-class dataset passed `data prepare` and crashed training; -1 or NaN crashed bincount."""
    from pepr_utils.data.datasets import load_dataset

    n = {"train": 40, "val": 10, "test": 10}[split]
    tiny_npz(tmp_path / "pneumoniamnist.npz", {f"{split}_labels": np.resize(np.asarray(values), n).reshape(-1, 1)})
    with pytest.raises(PeprError) as exc, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        load_dataset("pneumoniamnist", data_dir=tmp_path, cache_dir=tmp_path / "cache", offline=True)
    msg = str(exc.value)
    assert "\n" not in msg and f"pneumoniamnist.npz: {split}_labels" in msg and shown in msg and "0..1" in msg


def test_check_labels_multi_label_and_valid_labels():
    from pepr_utils.data.datasets import check_labels, dataset_info

    chest = dataset_info("chestmnist")
    ok = check_labels(np.eye(chest.n_classes, dtype=np.uint8), chest, "x")
    assert ok.dtype == np.int64 and ok.shape == (chest.n_classes, chest.n_classes)
    with pytest.raises(PeprError, match="hold 2 "):
        check_labels(np.full((3, chest.n_classes), 2), chest, "x")
    derma = dataset_info("dermamnist")
    assert check_labels(np.arange(7, dtype=np.uint8).reshape(-1, 1), derma, "x").tolist() == list(range(7))
    with pytest.raises(PeprError, match=r"shape \(7, 2\)"):
        check_labels(np.zeros((7, 2)), derma, "x")


def test_data_prepare_with_an_empty_split_writes_nothing(tmp_path):
    """10. An empty test split raised IndexError and left split_table.csv and samples.png without a manifest."""
    from pepr_utils.data.preparation import prepare

    tiny_npz(tmp_path / "data" / "pneumoniamnist.npz", n=(40, 10, 0))
    with pytest.raises(PeprError, match="test split has no images"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prepare("pneumoniamnist", data_dir=tmp_path / "data", out_dir=tmp_path / "prep",
                cache_dir=tmp_path / "cache", offline=True, progress=False)
    assert not (tmp_path / "prep").exists()


def test_data_prepare_is_all_or_nothing(tmp_path, monkeypatch):
    """10. A failure after the first file was written left a half-written folder."""
    from pepr_utils.data import preparation

    tiny_npz(tmp_path / "data" / "pneumoniamnist.npz")
    kwargs = dict(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", offline=True, progress=False)

    def broken(ds):
        raise RuntimeError("late failure")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        monkeypatch.setattr(preparation, "pixel_stats", broken)
        with pytest.raises(RuntimeError):
            preparation.prepare("pneumoniamnist", out_dir=tmp_path / "prep", **kwargs)
        assert not (tmp_path / "prep").exists()
        monkeypatch.undo()
        done = preparation.prepare("pneumoniamnist", out_dir=tmp_path / "prep", **kwargs)
    names = sorted(p.name for p in done.out_dir.iterdir())
    assert names == ["manifest.json", "pixel_stats.csv", "samples.png", "split_table.csv"]
    assert json.loads((done.out_dir / "manifest.json").read_text())["splits"]["test"]["n"] == 10
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- 5, 8, 12, 13: grids
def one_run_grid(tmp_path: Path, name: str = "g") -> tuple[Path, str]:
    spec = {"name": name, "defaults": {"dataset": "pneumoniamnist", "epochs": 1}, "axes": {"model": ["test_resnet"]}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, load_grid(path).runs[0].run_id


def test_status_names_an_unreadable_record(tmp_path, capsys):
    """5. A truncated result.json was counted as pending without a word."""
    path, rid = one_run_grid(tmp_path)
    record = tmp_path / "out" / "g" / "runs" / rid / "result.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"run_id": rid, "status": "ok"})[:-6])  # cut off mid-write
    status = grid_status(load_grid(path), tmp_path / "out")
    assert status.counts == {"pending": 1} and [p for p, _ in status.unreadable] == [str(record)]
    assert main(["grid", "status", str(path), "--output-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert f"unreadable record {record}" in out and "JSONDecodeError" in out and "redoes it" in out


def test_scheduler_address_is_checked_before_anything_is_created(tmp_path):
    """8. `--scheduler nonsense` printed a 48-line ValueError and left a grid folder and .lock."""
    path, _ = one_run_grid(tmp_path)
    for bad in ("nonsense", "tcp://host", "tcp://host:0", "tcp://host:99999", "http://host:8786", "tcp://:8786", ""):
        with pytest.raises(PeprError, match="not a Dask scheduler address"):
            run_grid(path, scheduler=bad, output_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    for good in ("tcp://10.0.0.5:8786", "host:8786", "tls://node-1.cluster.local:8786", "tcp://[::1]:8786",
                 "inproc://10.0.0.5/4242/1"):
        assert check_scheduler_address(good) == good


def test_rerun_with_failed_runs_exits_non_zero(tmp_path, capsys):
    """12. After a failed run, a plain rerun exited 0 with 'all runs already done'."""
    path, rid = one_run_grid(tmp_path)
    record = tmp_path / "out" / "g" / "runs" / rid / "result.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"run_id": rid, "status": "failed", "error": "kernel died"}))
    rc = main(["grid", "run", str(path), "--output-dir", str(tmp_path / "out"), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1 and "1 of 1 runs are recorded failed" in captured.err and "--retry-failed" in captured.err
    assert "already done" not in captured.out
    report = run_grid(path, output_dir=tmp_path / "out", progress=False)
    assert report.to_run == 0 and report.failed_before == [rid] and not report.failed
    record.write_text(json.dumps({"run_id": rid, "status": "ok"}))
    assert main(["grid", "run", str(path), "--output-dir", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "already done" in capsys.readouterr().out


def test_leftover_temporary_folders_of_the_grid_are_removed(tmp_path, monkeypatch):
    """13. After kill -9, Ctrl-C, a timeout or a dead worker, pepr-run-* folders stayed in $TMPDIR."""
    path, rid = one_run_grid(tmp_path)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        def leftover(run_id: str, suffix: str, runner: int | None, age_s: float = 3600) -> Path:
            folder = tmpdir / f"pepr-run-{run_id}-{suffix}"
            (folder / "tmp").mkdir(parents=True)
            (folder / "tmp" / "tmpk3rn3l.json").write_text("{}")  # a kernel connection file
            if runner is not None:
                (folder / "job.json").write_text(json.dumps({"runner_pid": runner}))
            os.utime(folder, (time.time() - age_s, time.time() - age_s))
            return folder

        killed = leftover(rid, "a1", dead.pid)  # its runner is gone: a leftover
        no_job = leftover(rid, "b2", None)  # an old folder without a job file: a leftover
        in_use = leftover(rid, "c3", alive.pid)  # another runner still works in it
        fresh = leftover(rid, "d4", None, age_s=0)  # being set up right now
        just_killed = leftover(rid, "f6", dead.pid, age_s=0)  # 19.13: a rerun within 60 s of the kill
        (just_killed / "job.json").write_text(json.dumps({"watch_pids": [dead.pid, dead.pid]}))  # the worker's job.json (read by grid.child)
        other = leftover("0123456789ab", "e5", dead.pid)  # not this grid's run
        # the grid's rerun (nothing left to run) cleans up its own leftovers only
        record = tmp_path / "out" / "g" / "runs" / rid / "result.json"
        record.parent.mkdir(parents=True)
        record.write_text(json.dumps({"run_id": rid, "status": "ok"}))
        run_grid(path, output_dir=tmp_path / "out", progress=False)
        assert not killed.exists() and not no_job.exists() and not just_killed.exists()
        assert in_use.exists() and fresh.exists() and other.exists()
        run_grid(path, output_dir=tmp_path / "out", dry_run=True, progress=False)  # a dry run touches nothing
        assert in_use.exists() and fresh.exists()
    finally:
        alive.kill()
        alive.wait()
    assert clean_leftovers(load_grid(path), tmpdir) == [in_use]  # its runner is gone now


# --------------------------------------------------------------------------- 9: checkpoints
def test_a_bad_safetensors_checkpoint_is_one_line(tmp_path):
    """9. A checkpoint named .safetensors that is not one raised a raw SafetensorError."""
    from pepr_utils.models.build import create_model

    for name, data in (("fake.safetensors", b"\xff" * 64), ("empty.safetensors", b""),
                       ("text.safetensors", b"not a checkpoint at all")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(PeprError) as exc:
            create_model("test_resnet", num_classes=2, in_chans=1, weights=tmp_path / name)
        msg = str(exc.value)
        assert "\n" not in msg and name in msg and "safetensors" in msg


# --------------------------------------------------------------------------- 14: the docs say it
def test_readme_says_a_run_counts_once_recorded():
    """14. A finished but unrecorded run is redone after kill -9 of the runner: documented (the README's
    "Scaling out" lives in docs/scaling.md)."""
    text = " ".join((ROOT / "docs" / "scaling.md").read_text().split())
    assert "A run counts only once it is recorded" in text and "--retry-failed" in text


# --------------------------------------------------------------------------- issue 19
def test_a_yaml_key_given_twice_is_refused_in_block_and_flow_mappings(tmp_path):
    """19.8 a grid key given twice was dropped without a word; in a flow mapping (both on one line) too."""
    from pepr_utils.fileio import load_yaml

    for text, where in (("a: 1\nb:\n  e: 1\n  e: 2\n", "lines 3 and 4"), ("d: {epochs: 1, epochs: 2}\n", "line 1")):
        (tmp_path / "g.yaml").write_text(text)
        with pytest.raises(PeprError, match=f"key 'e(pochs)?' given twice \\({where}\\)"):
            load_yaml(tmp_path / "g.yaml", "grid file")
    (tmp_path / "g.yaml").write_text("base: &b {x: 1}\nother:\n  <<: *b\n  x: 2\n")  # a merge key overrides
    assert load_yaml(tmp_path / "g.yaml", "grid file")["other"] == {"x": 2}


def test_a_study_of_one_run_is_reported(tmp_path):
    """19.1 `pepr report` on one run (one model, one experiment) failed in cell 10: 'No objects to concatenate'."""
    out = tmp_path / "report"
    assert main(["report", str(run_dir(tmp_path)), "-o", str(out), "--n-boot", "10"]) == 0
    summary = (out / "summary.md").read_text()
    assert "min-max PePR is undefined" in summary  # the sections that need two models say so
    assert (out / "report.html").is_file() and (out / "tables" / "top5_pepr_e.csv").is_file()


def test_analysis_notebook_checks_its_parameters_before_writing(tmp_path):
    """19.4, 19.10 04_analysis through papermill with n_boot=-1 died in numpy after writing 46 files; top_k=0
    after 12 tables. The parameter cell is checked first, as 02/03 check theirs, with the CLI's message."""
    import papermill as pm

    from pepr_utils.report.build import notebook_path

    runs, out = run_dir(tmp_path), tmp_path / "report"
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(notebook_path()), str(tmp_path / "run.ipynb"), cwd=str(tmp_path), progress_bar=False,
                            parameters={"results": str(runs), "out_dir": str(out), "top_k": 0, "n_boot": -1})
    assert err.value.ename == "PeprError"
    assert "top_k 0 must be an integer >= 1" in err.value.evalue and "n_boot -1" in err.value.evalue
    assert not out.exists()


def test_os_errors_name_the_users_path_not_a_temporary(tmp_path, capsys):
    """19.14 a read-only -o named the hidden '.scored.csv.xxxx.tmp'; a full disk named no path at all."""
    import errno

    from test_cli_errors import readonly_dir

    from pepr_utils.fileio import atomic_path

    target = tmp_path / "full.csv"
    with pytest.raises(OSError) as err, atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")  # what a write on a full disk raises
    assert err.value.filename == str(target) and not list(tmp_path.iterdir())
    (tmp_path / "in.csv").write_text("acc,e\n0.9,1\n0.8,2\n")
    out = readonly_dir(tmp_path) / "scored.csv"
    assert main(["score", str(tmp_path / "in.csv"), "--perf", "acc", "-r", "e=e", "-o", str(out)]) == 2
    err_line = capsys.readouterr().err
    assert f"{str(out)!r}" in err_line and ".tmp" not in err_line


def test_fork_server_exits_quietly_when_its_worker_is_gone(tmp_path):
    """19.5 after Ctrl-C of `pepr grid run` a fork server printed a BrokenPipeError traceback answering a worker
    that was gone. Now it reaps its child and exits 0 without a word."""
    code = "import sys; from pepr_utils.grid import fork_server as f; sys.exit(f._serve(lambda job: 0))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the worker is gone before the answer
    request = {"job": "job.json", "log": str(tmp_path / "log"), "env": dict(os.environ)}
    proc.stdin.write((json.dumps(request) + "\n").encode())
    proc.stdin.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_failed_run_keeps_only_its_record_and_notebook(tmp_path):
    """19.12 a run recorded failed (its kernel killed) kept model.safetensors, predictions.npz and history.csv."""
    from pepr_utils.grid.runner import write_run
    from pepr_utils.records import read_record

    path, rid = one_run_grid(tmp_path)
    run = load_grid(path).runs[0]
    files = {"model.safetensors": b"weights", "predictions.npz": b"npz", "history.csv": b"epoch\n1\n"}
    target = tmp_path / "runs" / rid
    status, _ = write_run(target, run, {"ok": False, "reason": "killed", "error": "the kernel died", "files": files,
                                        "notebook": b"{}"})
    assert status == "failed" and read_record(target)["status"] == "failed"
    assert sorted(p.name for p in target.iterdir()) == ["02_train.ipynb", "grid_run.json", "result.json"]
    assert json.loads((target / "grid_run.json").read_text())["dropped_as_failed"] == sorted(files)


def test_a_report_killed_with_kill_9_leaves_nothing_a_rerun_does_not_clean(tmp_path, monkeypatch, request):
    """19.11 kill -9 of `pepr report` left a hidden .report.xxxx.tmp (300 KB) beside the target that no later
    report removed, and $TMPDIR/pepr-kernel-* and tmp*.json (the kernel's connection file)."""
    import signal

    # TMPDIR short, so that the kernel's IPC sockets (left behind by kill -9) live under it: under pytest-xdist
    # tmp_path is about 70 characters and the kernel would fall back to TCP, leaving no socket to clean
    runs, out = run_dir(tmp_path), tmp_path / "report"
    tmpdir = Path(tempfile.mkdtemp(prefix="pk-", dir="/tmp" if os.path.isdir("/tmp") else None))
    request.addfinalizer(lambda: shutil.rmtree(tmpdir, ignore_errors=True))
    env = {**os.environ, "TMPDIR": str(tmpdir), "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("pepr")), "report", str(runs), "-o", str(out),
                             "--n-boot", "10"], env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # stdin: not an xdist worker's channel
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".report.*.tmp/tables/*.csv")):
        time.sleep(0.2)  # killed while the notebook writes its tables
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(tmp_path.glob(".report.*.tmp")) and list(tmpdir.iterdir()), "killed too late to test anything"
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    assert main(["report", str(runs), "-o", str(out), "--n-boot", "10"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "runs"]
    assert not list(tmpdir.iterdir())  # neither pepr-kernel-* nor tmp*.json


def test_a_pickled_checkpoint_is_refused_in_one_whole_sentence(tmp_path):
    """19.14 the error for a pickled .pt checkpoint was torch's advice cut off mid-sentence ("Do it only if")."""
    import torch

    from pepr_utils.models.build import _read_checkpoint

    path = tmp_path / "model.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "when": ROOT}, path)  # a Path: a pickled object
    with pytest.raises(PeprError) as err:
        _read_checkpoint(path)
    message = str(err.value)
    assert str(path) in message and "pickled Python objects" in message and message.endswith("file")
    assert "\n" not in message


def test_data_prepare_warns_of_one_class_and_shows_pixels_on_one_scale(tmp_path, capsys):
    """19.7 a training split of one class passed without a word; 19.14 the pixel table mixed 0..1 (mean, std)
    with 0..255 (min, median, max)."""
    tiny_npz(tmp_path / "data" / "pneumoniamnist.npz", {"train_labels": np.zeros((40, 1), dtype=np.uint8)})
    argv = ["data", "prepare", "--dataset", "pneumoniamnist", "--data-dir", str(tmp_path / "data"),
            "--out-dir", str(tmp_path / "prep"), "--fractions", "1", "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: pneumoniamnist: every training label is class 0 (of 2 classes)" in err
    stats = pd.read_csv(tmp_path / "prep" / "pixel_stats.csv")
    values = stats[["mean", "std", "min", "median", "max"]]
    assert values.ge(0).all().all() and values.le(1).all().all() and (stats["max"] > 0.5).all()
