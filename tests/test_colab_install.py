"""The Colab install keeps the runtime's torch and Jupyter stack and pins only the study's own libraries.

Colab is simulated offline: a venv whose "preinstalled" torch, torchvision and ipykernel are other versions
than the lock's (metadata only), and a local index of stand-in wheels, one per lock entry, carrying the
real packages' requirements. pip resolves the real pepr-utils (built from a git clone) against them with
``--dry-run --report``: the report lists what the cell would install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from conftest import ROOT, bare_venv, load_tool

COLAB = {"torch": "2.6.0", "torchvision": "0.21.0", "ipykernel": "6.17.1", "ipython": "7.34.0"}


def _tool():
    return load_tool("colab_install")


def test_constraints_keep_the_runtime_and_pin_the_study():
    tool = _tool()
    lock = tool.read_lock((ROOT / "requirements-lock.txt").read_text())
    study = tool.study_libraries(ROOT / "pyproject.toml")
    installed = {**COLAB, "requests": "2.0.0", "dask": "2024.1.0", "nvidia-cudnn-cu12": "9.1.0"}
    pins = tool.constraints(lock, study, installed)
    assert {n: pins[n] for n in COLAB} == COLAB and pins["nvidia-cudnn-cu12"] == "9.1.0"  # kept as installed
    assert pins["timm"] == lock["timm"] and pins["medmnist"] == lock["medmnist"]  # the study's libraries
    assert pins["dask"] == lock["dask"]  # a study library is pinned even when the runtime has one
    assert "requests" not in pins  # another preinstalled package is left alone
    assert not any(n.startswith("nvidia-cu") and n not in installed for n in pins)  # no CUDA wheels asked for
    assert {"timm", "medmnist", "papermill", "dask", "seaborn"} <= study and not {"torch", "ipykernel"} & study


def _dist_info(folder: Path, name: str, version: str, requires: list[str] = (), extras: list[str] = ()) -> Path:
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             *(f"Provides-Extra: {e}" for e in extras), *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    return info


def _stand_in_wheel(index: Path, name: str, version: str) -> None:
    """A wheel with no code and the real distribution's requirements (from this environment's metadata)."""
    try:
        dist = metadata.distribution(name)
        requires, extras = dist.requires or [], dist.metadata.get_all("Provides-Extra") or []
    except metadata.PackageNotFoundError:
        requires, extras = [], []
    tag = name.replace("-", "_")
    info = f"{tag}-{version}.dist-info"
    with zipfile.ZipFile(index / f"{tag}-{version}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{info}/METADATA", "\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
                                                    *(f"Provides-Extra: {e}" for e in extras),
                                                    *(f"Requires-Dist: {r}" for r in requires)]) + "\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")


@pytest.mark.slow
def test_the_colab_install_leaves_preinstalled_torch_and_ipykernel_untouched(tmp_path):
    from test_install import _source_copy

    tool = _tool()
    src = tmp_path / "pepr"
    src.mkdir()
    _source_copy(src)
    shutil.copy2(ROOT / "requirements-lock.txt", src)
    (src / "tools").mkdir()
    shutil.copy2(ROOT / "tools" / "colab_install.py", src / "tools")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "release"]):
        subprocess.run([*git, *args], cwd=src, check=True)
    index = tmp_path / "index"
    index.mkdir()
    for name, version in tool.read_lock((ROOT / "requirements-lock.txt").read_text()).items():
        _stand_in_wheel(index, name, version)
    # "Colab": a venv with its own torch, torchvision, ipykernel, ipython (metadata only) and, for pip to
    # run and build, only pip, setuptools and wheel from this environment
    venv = tmp_path / "colab"
    python, site = bare_venv(venv)
    for name, version in COLAB.items():
        _dist_info(site, name, version)
    tooling = tmp_path / "tooling"
    tooling.mkdir()
    here = Path(sysconfig.get_path("purelib"))
    for entry in here.iterdir():
        if entry.name.split("-")[0] in ("pip", "setuptools", "wheel", "_distutils_hack"):
            (tooling / entry.name).symlink_to(entry)
    (site / "tooling.pth").write_text(f"{tooling}\n")
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_CONSTRAINT")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_BUILD_ISOLATION="0")
    out = subprocess.run([python, str(src / "tools" / "colab_install.py"), str(src), "--dry-run", "--report",
                          str(report), "--no-index", "--find-links", str(index)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    install = {tool.canonical(i["metadata"]["name"]): i["metadata"]["version"]
               for i in json.loads(report.read_text())["install"]}
    assert not set(COLAB) & set(install), {n: install[n] for n in set(COLAB) & set(install)}  # untouched
    assert not [n for n in install if n.startswith(("nvidia-cu", "nvidia-cudnn", "triton"))]  # no CUDA wheels
    lock = tool.read_lock((ROOT / "requirements-lock.txt").read_text())
    assert install["timm"] == lock["timm"] and install["papermill"] == lock["papermill"]  # the study: the lock's
    assert "pepr-utils" in install


def _git_repo(path: Path) -> Path:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    path.mkdir()
    for n in range(3):  # three commits: a --depth 1 clone of it is shallow
        (path / "f.txt").write_text(str(n))
        for args in ([] if n else [["init", "-q"]]) + [["add", "-A"], ["commit", "-q", "-m", str(n)]]:
            subprocess.run([*git, *args], cwd=path, check=True)
    return path


def test_a_shallow_source_is_made_whole_before_pip_clones_it(tmp_path):
    """pip's blobless clone of a shallow local clone stalls for minutes (git 2.39): the history is fetched first."""
    tool = _tool()
    origin = _git_repo(tmp_path / "origin")
    src = tmp_path / "pepr"
    subprocess.run(["git", "clone", "-q", "--depth", "1", origin.as_uri(), str(src)], check=True)

    def shallow() -> str:
        return subprocess.run(["git", "-C", str(src), "rev-parse", "--is-shallow-repository"],
                              capture_output=True, text=True, check=True).stdout.strip()

    assert shallow() == "true"
    assert tool.unshallow(src) is None and shallow() == "false"
    assert tool.unshallow(src) is None  # a whole clone is left as it is


def test_a_shallow_source_whose_history_cannot_be_fetched_stops_with_one_line(tmp_path):
    origin = _git_repo(tmp_path / "origin")
    src = tmp_path / "pepr"
    subprocess.run(["git", "clone", "-q", "--depth", "1", origin.as_uri(), str(src)], check=True)
    shutil.rmtree(origin)  # offline: the history is nowhere to be had
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "colab_install.py"), str(src)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    (line,) = out.stderr.strip().splitlines()
    assert str(src) in line and "shallow clone" in line and "without --depth" in line


def test_a_source_that_is_not_a_git_clone_stops_with_one_line(tmp_path):
    (tmp_path / "pepr").mkdir()
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "colab_install.py"), str(tmp_path / "pepr")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    (line,) = out.stderr.strip().splitlines()
    assert "is not a git clone of pepr" in line
