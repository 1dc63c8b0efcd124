"""A record says which pepr ran: the package's own version and commit, and the device it chose."""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
from pathlib import Path

import pytest
from conftest import ROOT, bare_venv

from pepr_utils import __version__, records
from pepr_utils.provenance import checkout_commit

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main",
       "-c", "advice.detachedHead=false"]


def _repo(folder: Path) -> str:
    """``folder`` committed as a new git repository; returns its HEAD."""
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*GIT, *args], cwd=folder, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_the_checkout_names_its_own_commit_and_a_folder_inside_another_repository_none(tmp_path):
    assert checkout_commit().split("-")[0] == subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    other = tmp_path / "project"
    (other / "venv" / "site-packages" / "pepr_utils").mkdir(parents=True)
    (other / "README").write_text("someone else's project\n")
    (other / ".gitignore").write_text("venv/\n")
    _repo(other)
    assert checkout_commit(other / "venv" / "site-packages" / "pepr_utils") is None


@pytest.mark.slow
def test_a_record_from_an_installed_package_inside_another_repository_names_the_package(tmp_path):
    """pip install (a folder, then a git tag) into a venv that lies inside an unrelated git repository:
    the record names pepr's version and, for the git install, pepr's commit; never the other repository's."""
    from test_install import _source_copy

    src = tmp_path / "src"
    src.mkdir()
    _source_copy(src)
    pepr_head = _repo(src)
    subprocess.run([*GIT, "tag", f"v{__version__}"], cwd=src, check=True)
    project = tmp_path / "project"
    project.mkdir()
    (project / "analysis.py").write_text("print('unrelated')\n")
    (project / ".gitignore").write_text("venv/\n")
    project_head = _repo(project)
    venv = project / "venv"
    python, site = bare_venv(venv)
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")  # the project's dependencies
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    show = [python, "-c", "import json; from pepr_utils.records import environment_info; "
                          "print(json.dumps(environment_info('cpu')))"]

    subprocess.run([*pip, str(src)], cwd=project, env=env, check=True)
    folder = json.loads(subprocess.run(show, cwd=project, env=env, check=True, capture_output=True,
                                       text=True).stdout)
    assert folder["pepr_utils"] == __version__
    assert folder["git_commit"] is None  # unknowable for a folder install; never the project's commit
    assert folder["pepr_source"] == src.as_uri()
    # the wheel carries what a user relies on: py.typed, the license, the one version
    dist = next(site.glob("pepr_utils-*.dist-info"))
    assert (site / "pepr_utils" / "py.typed").is_file()
    meta = (dist / "METADATA").read_text()
    assert "License-Expression: MIT" in meta and f"Version: {__version__}" in meta
    assert any(dist.rglob("LICENSE"))

    subprocess.run([*pip, "--force-reinstall", f"pepr-utils @ git+{src.as_uri()}@v{__version__}"], cwd=project,
                   env=env, check=True)
    tagged = json.loads(subprocess.run(show, cwd=project, env=env, check=True, capture_output=True,
                                       text=True).stdout)
    assert tagged["git_commit"] == pepr_head != project_head
    assert tagged["pepr_source"] == f"git+{src.as_uri()}@v{__version__}"


def test_environment_info_keeps_the_requested_device():
    env = records.environment_info("cpu", device_requested="auto")
    assert env["device"] == "cpu" and env["device_requested"] == "auto"


@pytest.mark.slow
def test_a_notebook_run_on_auto_uses_this_machines_device_and_says_so(data_dir, tmp_path):
    from pepr_utils.devices import resolve_device
    from pepr_utils.train.experiment import run_experiment

    record = run_experiment(dict(model="test_resnet", dataset="pneumoniamnist", fraction=0.02, epochs=1,
                                 device="auto", batch_size=64), tmp_path, data_dir=data_dir,
                            eval_every_epoch=False)
    assert record["params"]["device"] == resolve_device("auto").type  # the run_id hashes the real device
    assert record["run_id"] == records.run_id(record["params"])
    assert record["env"]["device_requested"] == "auto"
