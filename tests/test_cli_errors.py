"""The ``pepr`` command on bad input: a table of mistakes a new user makes, and faults of the environment.

For every row: a non-zero exit status, exactly one line on stderr that names the bad value, no
traceback, and nothing written (the folder tree is the same before and after). Each command runs in
this process through ``pepr_utils.cli.command`` (an uncaught exception, i.e. a traceback, fails the
test); the console script itself is run once per kind of output at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import DATA_DIR, need

import pepr_utils
from pepr_utils.cli.command import main

PEPR = str(Path(sys.executable).with_name("pepr"))
GOOD_CSV = "model,acc,energy,time,exp\nm1,0.9,1.0,10,a\nm2,0.8,2.0,20,a\n"


# --------------------------------------------------------------------------- helpers
def readonly_dir(tmp: Path) -> Path:
    """A folder nobody may write into: chmod 500 for a normal user; root ignores modes, so /sys."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp / "readonly"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o500)
    return folder


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its kind, size and modification time (the cache excluded)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel == "cache" or rel.startswith("cache/"):
            continue
        st = p.lstat()
        out[rel] = (p.is_dir(), 0 if p.is_dir() else st.st_size, st.st_mtime_ns)
    return out


def tiny_npz(path: Path, labels: dict[str, np.ndarray] | None = None, n=(40, 10, 10)) -> Path:
    """A slice of the real PneumoniaMNIST file (the first n images of each split), labels replaceable."""
    src = need(DATA_DIR / "pneumoniamnist.npz")
    with np.load(src, allow_pickle=False) as z:
        arrays = {}
        for split, k in zip(("train", "val", "test"), n, strict=True):
            arrays[f"{split}_images"] = z[f"{split}_images"][:k]
            arrays[f"{split}_labels"] = z[f"{split}_labels"][:k]
    for key, value in (labels or {}).items():
        arrays[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def write_grid(tmp: Path, name: str = "g", **defaults) -> Path:
    spec = {"name": name, "defaults": {"dataset": "pneumoniamnist", "epochs": 1, **defaults},
            "axes": {"model": ["test_resnet"]}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_dir(tmp: Path, status: str = "ok") -> Path:
    """A folder holding one scorable run record (for `pepr report`)."""
    from pepr_utils.records import METRIC_FIELDS, RESOURCE_FIELDS, make_record, write_record

    params = dict(model="resnet18", dataset="pneumoniamnist", size=28, fraction=1.0, pretrained=False,
                  weights=None, mode="full", epochs=1, batch_size=32, lr=5e-4, seed=0, device="cpu")
    metrics = {k: 0.8 for k in METRIC_FIELDS}
    metrics["history"] = []
    resources = {k: 1.0 for k in RESOURCE_FIELDS}
    resources.update(energy_method="test", country_iso_code="DNK", mem_kind="rss")
    folder = tmp / "runs" / "r1"
    write_record(folder, make_record(params=params, status=status, metrics=metrics, resources=resources,
                                     model_info=dict(num_params=1, trainable_params=1, macs_per_image=1,
                                                     input_size=28)))
    return tmp / "runs"


@pytest.fixture
def tmp(tmp_path, monkeypatch):
    """A working folder with a good CSV, a data dir holding a small real-data slice, and env settings."""
    (tmp_path / "in.csv").write_text(GOOD_CSV)
    tiny_npz(tmp_path / "data" / "pneumoniamnist.npz")
    monkeypatch.setenv("PEPR_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("PEPR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PEPR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PEPR_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def score(*args: str, csv: str = "in.csv", out: str = "scored.csv") -> list[str]:
    return ["score", csv, *args, "-o", out]


def csv_file(tmp: Path, text: str, name: str = "bad.csv") -> str:
    (tmp / name).write_text(text)
    return name


def bad_labels(tmp: Path, split: str, values) -> list[str]:
    n = {"train": 40, "val": 10, "test": 10}[split]
    labels = np.resize(np.asarray(values), n).reshape(-1, 1)
    tiny_npz(tmp / "bad" / "pneumoniamnist.npz", {f"{split}_labels": labels})
    return ["data", "prepare", "--dataset", "pneumoniamnist", "--data-dir", "bad", "--no-progress"]


def empty_split(tmp: Path) -> list[str]:
    tiny_npz(tmp / "bad" / "pneumoniamnist.npz", n=(40, 10, 0))
    return ["data", "prepare", "--dataset", "pneumoniamnist", "--data-dir", "bad", "--out-dir", "prep",
            "--no-progress"]


def corrupt_npz(tmp: Path) -> list[str]:
    (tmp / "bad").mkdir()
    (tmp / "bad" / "pneumoniamnist.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    return ["data", "prepare", "--dataset", "pneumoniamnist", "--data-dir", "bad", "--no-progress"]


def foreign_report_dir(tmp: Path) -> list[str]:
    runs = run_dir(tmp)
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("years of work")
    return ["report", str(runs), "-o", "mine"]


def failed_rerun(tmp: Path) -> list[str]:
    from pepr_utils.grid.spec import load_grid

    path = write_grid(tmp, "rerun")
    rid = load_grid(path).runs[0].run_id
    record = tmp / "out" / "rerun" / "runs" / rid / "result.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"status": "failed", "error": "kernel died"}))
    return ["grid", "run", str(path), "--no-progress"]


# (id, argv or a function of the tmp folder returning argv, text the one stderr line must contain)
CASES: list[tuple[str, Callable[[Path], list[str]] | list[str], str]] = [
    # -- the command line itself
    ("unknown command", ["frobnicate"], "'frobnicate'"),
    ("unknown option", score("--perf", "acc", "-r", "e=energy", "--bogus"), "--bogus"),
    ("missing required options", ["score", "in.csv"], "--perf"),
    # -- pepr score
    ("score: input missing", score("--perf", "acc", "-r", "e=energy", csv="nofile.csv"), "nofile.csv"),
    ("score: input not a CSV", lambda t: score("--perf", "acc", "--resource", "e=energy",
                                               csv=csv_file(t, "\x00\x01\x02\xff\xfe", "bin.csv")), "'bin.csv'"),
    ("score: input not UTF-8 (19.3)", lambda t: (t / "raw.csv").write_bytes(b"acc,energy\n0.9,1\xff\n") and
     score("--perf", "acc", "--resource", "e=energy", csv="raw.csv"), "not UTF-8 text"),
    ("score: input a folder (19.14)", lambda t: (t / "d.csv").mkdir() or
     score("--perf", "acc", "--resource", "e=energy", csv="d.csv"), "'d.csv' is a folder"),
    ("score: TRUE/FALSE accuracy (19.6)", lambda t: score("--perf", "acc", "--resource", "e=energy",
                                                         csv=csv_file(t, "acc,energy\nTRUE,1\nFALSE,2\n")),
     "true/false"),
    ("score: a column named twice (19.6)", lambda t: score("--perf", "acc", "--resource", "e=energy",
                                                          csv=csv_file(t, "acc,acc,energy\n0.9,0.1,1\n0.8,0.2,2\n")),
     "'acc' more than once"),
    ("score: empty group cell (19.6)", lambda t: score("--perf", "acc", "--resource", "e=energy", "--group", "exp",
                                                      csv=csv_file(t, "model,acc,energy,exp\nm1,0.9,1,a\n"
                                                                      "m2,0.8,2,\nm3,0.7,3,\n")), "row 1"),
    ("score: a model twice in a group (19.6)", lambda t: score("--perf", "acc", "--resource", "e=energy", "--group",
                                                              "exp", csv=csv_file(t, GOOD_CSV + "m1,0.7,3,30,a\n")),
     "'m1'"),
    ("score: header only (19.6)", lambda t: score("--perf", "acc", "--resource", "e=energy",
                                                 csv=csv_file(t, "acc,energy\n")), "no rows"),
    ("score: accuracy a hair above 1 (19.14)", lambda t: score("--perf", "acc", "--resource", "e=energy",
                                                              csv=csv_file(t, "acc,energy\n1.0000001,1\n0.8,2\n")),
     "1.0000001 in row 0); P must lie in [0, 1]"),
    ("score: input empty", lambda t: score("--perf", "acc", "--resource", "e=energy",
                                          csv=csv_file(t, "", "empty.csv")), "empty.csv"),
    ("score: perf column missing", score("--perf", "accuracy", "--resource", "e=energy"), "'accuracy'"),
    ("score: resource column missing", score("--perf", "acc", "--resource", "e=joules"), "'joules'"),
    ("score: resource not NAME=COL", score("--perf", "acc", "--resource", "energy"), "'energy'"),
    ("score: resource name twice (3)", score("--perf", "acc", "--resource", "e=energy", "--resource", "e=time"),
     "'e'"),
    ("score: infinite resource (2)", lambda t: score("--perf", "acc", "--resource", "e=energy",
                                                     csv=csv_file(t, "acc,energy\n0.9,1\n0.8,inf\n")), "inf"),
    ("score: negative resource", lambda t: score("--perf", "acc", "--resource", "e=energy",
                                                 csv=csv_file(t, "acc,energy\n0.9,1\n0.8,-3\n")), "-3"),
    ("score: non-numeric resource", lambda t: score("--perf", "acc", "--resource", "e=energy",
                                                    csv=csv_file(t, "acc,energy\n0.9,1\n0.8,lots\n")), "'lots'"),
    ("score: accuracy in percent (3)", lambda t: score("--perf", "acc", "--resource", "e=energy",
                                                       csv=csv_file(t, "acc,energy\n90,1\n80,2\n")), "90"),
    ("score: perf-scale not a number", score("--perf", "acc", "--resource", "e=energy", "--perf-scale", "pct"),
     "'pct'"),
    ("score: perf-scale zero", score("--perf", "acc", "--resource", "e=energy", "--perf-scale", "0"), "0.0"),
    ("score: reference not positive", score("--perf", "acc", "--resource", "e=energy", "--reference", "e=-2"),
     "-2.0"),
    ("score: reference not a number", score("--perf", "acc", "--resource", "e=energy", "--reference", "e=big"),
     "'big'"),
    ("score: reference for unknown resource", score("--perf", "acc", "--resource", "e=energy",
                                                    "--reference", "zz=1"), "zz"),
    ("score: group column missing", score("--perf", "acc", "--resource", "e=energy", "--group", "site"), "'site'"),
    ("score: -o an existing folder (7)", lambda t: (t / "outdir").mkdir() or
     score("--perf", "acc", "--resource", "e=energy", out="outdir"), "'outdir'"),
    ("score: -o under a file", score("--perf", "acc", "--resource", "e=energy", out="in.csv/x.csv"), "in.csv"),
    ("score: -o read-only folder (6)", lambda t: score("--perf", "acc", "--resource", "e=energy",
                                                       out=str(readonly_dir(t) / "scored.csv")),
     "scored.csv"),
    # -- pepr data prepare
    ("data: unknown dataset", ["data", "prepare", "--dataset", "nosuchmnist"], "'nosuchmnist'"),
    ("data: unsupported size", ["data", "prepare", "--dataset", "pneumoniamnist", "--size", "30"], "30"),
    ("data: fraction above 1", ["data", "prepare", "--dataset", "pneumoniamnist", "--fractions", "2"], "2.0"),
    ("data: fraction not a number", ["data", "prepare", "--dataset", "pneumoniamnist", "--fractions", "half"],
     "'half'"),
    ("data: seed not an integer", ["data", "prepare", "--dataset", "pneumoniamnist", "--seed", "x1"], "'x1'"),
    ("data: negative seed (19.2)", ["data", "prepare", "--dataset", "pneumoniamnist", "--seed", "-5",
                                    "--no-progress"], "seed -5 must be an integer >= 0"),
    ("data: label 9 of 2 classes (4)", lambda t: bad_labels(t, "train", [0, 1, 9]), "9"),
    ("data: label -1 (4)", lambda t: bad_labels(t, "val", [0, -1]), "-1"),
    ("data: label NaN (4)", lambda t: bad_labels(t, "test", [0.0, np.nan]), "nan"),
    ("data: empty test split (10)", empty_split, "test"),
    ("data: corrupt npz", corrupt_npz, "pneumoniamnist.npz"),
    ("data: file missing offline", ["data", "prepare", "--dataset", "dermamnist", "--no-progress"],
     "dermamnist.npz"),
    ("data: --out-dir is a file", ["data", "prepare", "--dataset", "pneumoniamnist", "--out-dir", "in.csv",
                                   "--no-progress"], "in.csv"),
    ("data: --out-dir read-only (6)", lambda t: ["data", "prepare", "--dataset", "pneumoniamnist", "--no-progress",
                                                 "--out-dir", str(readonly_dir(t) / "prep")], str(Path("/sys"))
     if os.geteuid() == 0 else "readonly"),
    # -- pepr grid
    ("grid: file missing", ["grid", "run", "nosuch.yaml"], "nosuch"),
    ("grid: not YAML", lambda t: ["grid", "run", csv_file(t, "name: [unclosed\n", "broken.yaml")], "broken.yaml"),
    ("grid: not UTF-8 (19.3)", lambda t: (t / "raw.yaml").write_bytes(b"name: raw\n\xff\xfe junk\n") and
     ["grid", "run", "raw.yaml", "--dry-run"], "'raw.yaml' is not UTF-8 text"),
    ("grid: a key given twice (19.8)", lambda t: csv_file(t, "name: twice\ndefaults:\n  dataset: pneumoniamnist\n"
                                                              "  epochs: 1\n  epochs: 2\naxes:\n  model: [test_resnet]\n",
                                                           "twice.yaml") and ["grid", "run", "twice.yaml", "--dry-run"],
     "'epochs' given twice"),
    ("grid: exclude matches nothing (19.8)", lambda t: csv_file(t, "name: ex\ndefaults: {dataset: pneumoniamnist}\n"
                                                                  "axes: {model: [test_resnet]}\n"
                                                                  "exclude: [{model: test_resnet_typo}]\n", "ex.yaml")
     and ["grid", "run", "ex.yaml", "--dry-run"], "matches no run"),
    ("grid: checkpoint missing (19.8)", lambda t: ["grid", "run", str(write_grid(t, weights=str(t / "gone.safetensors"),
                                                                                  mode="full")), "--dry-run"],
     "gone.safetensors"),
    ("grid: unknown dataset", lambda t: ["grid", "run", str(write_grid(t, dataset="nosuchmnist"))], "nosuchmnist"),
    ("grid: workers 0", lambda t: ["grid", "run", str(write_grid(t)), "--workers", "0"], "0"),
    ("grid: workers not a number", lambda t: ["grid", "run", str(write_grid(t)), "--workers", "many"], "'many'"),
    ("grid: negative timeout", lambda t: ["grid", "run", str(write_grid(t)), "--timeout", "-5"], "-5"),
    ("grid: scheduler nonsense (8)", lambda t: ["grid", "run", str(write_grid(t)), "--scheduler", "nonsense"],
     "'nonsense'"),
    ("grid: scheduler port out of range (8)", lambda t: ["grid", "run", str(write_grid(t)), "--scheduler",
                                                          "tcp://localhost:99999"], "99999"),
    ("grid: output dir read-only (6)", lambda t: ["grid", "run", str(write_grid(t)), "--no-progress",
                                                  "--output-dir", str(readonly_dir(t) / "o")], "/o"),
    ("grid: collect with nothing run", lambda t: ["grid", "collect", str(write_grid(t, "empty"))], "'empty'"),
    ("grid: rerun with a failed run (12)", failed_rerun, "--retry-failed"),
    # -- pepr report
    ("report: results missing", ["report", "nothing.csv"], "nothing.csv"),
    ("report: -o a folder of someone else's (1)", foreign_report_dir, "thesis.tex"),
    ("report: -o a file (1)", lambda t: ["report", str(run_dir(t)), "-o", "in.csv"], "in.csv"),
    ("report: negative timeout (19.9)", lambda t: ["report", str(run_dir(t)), "-o", "r", "--timeout", "-1"], "-1"),
    ("report: negative seed (19.9)", lambda t: ["report", str(run_dir(t)), "-o", "r", "--seed", "-3"], "-3"),
    ("report: n-boot zero", lambda t: ["report", str(run_dir(t)), "-o", "r", "--n-boot", "0"], "n_boot 0"),
    # -- pepr models
    ("grid: collect -o a folder", lambda t: (t / "res").mkdir() or ["grid", "collect", str(write_grid(t)),
                                                                   "-o", "res"], "'res'"),
    ("models: size too small", ["models", "check", "--size", "3"], "'3'"),
    ("models: -o a folder", lambda t: (t / "res").mkdir() or ["models", "check", "--models", "test_resnet",
                                                              "-o", "res"], "'res'"),
    ("models: unknown model", ["models", "check", "--models", "nosuchnet_xl"], "nosuchnet_xl"),
]


def test_the_table_is_big_enough():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("argv, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(tmp, capsys, argv, needle):
    argv = argv(tmp) if callable(argv) else argv
    capsys.readouterr()
    before = snapshot(tmp)
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc not in (0, None), f"exit status {rc}; stdout {out!r}"
    assert len(lines) == 1, f"stderr should be one line: {err!r}"
    assert needle in lines[0], f"{needle!r} not named in {lines[0]!r}"
    assert "Traceback" not in err + out
    assert snapshot(tmp) == before, "something was written or removed"
    assert not [p for p in (tmp / "cache").rglob("*.tmp")] if (tmp / "cache").exists() else True


def test_the_console_script_prints_one_line_and_no_traceback(tmp):
    """The installed `pepr` itself (not only main()): a bad value, a bad option."""
    for args, needle in ((["score", "in.csv", "--perf", "acc", "-r", "e=energy", "-r", "e=time", "-o", "x.csv"],
                          "given twice"),
                         (["grid", "run", "g.yaml", "--workers", "many"], "'many'")):
        proc = subprocess.run([PEPR, *args], capture_output=True, text=True, cwd=tmp, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr
    assert not (tmp / "x.csv").exists()


def test_version():
    proc = subprocess.run([PEPR, "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"pepr {pepr_utils.__version__}"
