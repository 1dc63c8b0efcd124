"""What a user who installs the package relies on: declared dependencies, license, citation, one version."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from importlib.metadata import packages_distributions

import yaml
from conftest import NOTEBOOKS, ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _top_level_imports(path) -> set[str]:
    """Absolute imports anywhere in a file (functions included: a lazy import is still needed at run time)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def _with_extras(requirements: list[str]) -> set[str]:
    """The declared names plus what their extras add (``dask[distributed]`` declares ``distributed``)."""
    out = _names(requirements)
    for req in map(Requirement, requirements):
        for sub in map(Requirement, metadata.requires(req.name) or []):
            if sub.marker and any(sub.marker.evaluate({"extra": e}) for e in req.extras):
                out.add(canonicalize_name(sub.name))
    return out


def test_every_import_of_the_package_and_its_notebooks_is_a_declared_dependency():
    core = _with_extras(PYPROJECT["project"]["dependencies"])
    optional = {m: "dask-jobqueue" for m in ("dask_jobqueue",)}  # imported only where [cluster] is asked for
    dists = packages_distributions()
    missing = {}
    for path in [*sorted((ROOT / "pepr_utils").glob("*.py")), *sorted(NOTEBOOKS.glob("*.py"))]:
        for module in _top_level_imports(path) - set(sys.stdlib_module_names) - {"pepr_utils", "__future__"}:
            if module in optional:
                continue
            names = {canonicalize_name(d) for d in dists.get(module, [module])}
            if not names & core:
                missing.setdefault(module, []).append(path.name)
    assert not missing, f"imported but not in pyproject's dependencies: {missing}"


def test_jupytext_is_for_development_only():
    assert "jupytext" not in _names(PYPROJECT["project"]["dependencies"])
    assert "jupytext" in _names(PYPROJECT["project"]["optional-dependencies"]["dev"])


def test_one_version_source():
    """pyproject reads the version from pepr_utils.__version__; no second copy to forget."""
    import pepr_utils

    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pepr_utils.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", pepr_utils.__version__)
    assert "version" not in yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))


def test_license_is_mit_and_the_build_backend_understands_its_spdx_string():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    setuptools = next(Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools"))
    assert setuptools.specifier.contains("77") and not setuptools.specifier.contains("76.9")  # PEP 639 needs 77
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # PEP 639: the expression only


def test_metadata_names_authors_classifiers_urls_and_ships_py_typed():
    project = PYPROJECT["project"]
    assert project["authors"] and project["classifiers"] and "Typing :: Typed" in project["classifiers"]
    assert {"Homepage", "Issues", "Paper"} <= set(project["urls"])
    assert (ROOT / "pepr_utils" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["pepr_utils"]


def test_citation_cites_the_paper_and_this_project():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["authors"]
    assert cff["license"] == PYPROJECT["project"]["license"]
    paper = cff["preferred-citation"]
    assert paper["title"] == "Equity through Access: A Case for Small-scale Deep Learning" and paper["year"] == 2024
    assert [a["family-names"] for a in paper["authors"]] == ["Selvan", "Pepin", "Igel", "Samuel", "Dam"]


def test_binder_pins_nvidia_ml_py_although_it_starts_with_nvidia():
    """tools/lock.py leaves the CUDA build's libraries out of environment.yml, never a dependency of ours."""
    pip = next(d for d in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
               if isinstance(d, dict))["pip"]
    lock = dict(line.split("==") for line in (ROOT / "requirements-lock.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert f"nvidia-ml-py=={lock['nvidia-ml-py']}" in pip
    assert not any(p.startswith(("nvidia-cu", "nvidia-cudnn", "triton")) for p in pip)  # still CPU-only


def test_the_readme_and_makefile_say_how_to_get_cpu_or_cuda_12_torch():
    """PyPI's Linux torch is the CUDA-13 build: the pip and make paths must name the alternatives (the
    README's install details live in docs/install.md, which it links)."""
    install, makefile = (ROOT / "docs" / "install.md").read_text(), (ROOT / "Makefile").read_text()
    assert "docs/install.md" in (ROOT / "README.md").read_text()
    cpu, cu12 = "https://download.pytorch.org/whl/cpu", "https://download.pytorch.org/whl/cu12"
    pip_section = install.split("## Without a checkout", 1)[1].split("\n## ", 1)[0]
    assert f"--extra-index-url {cpu}" in pip_section and f"--extra-index-url {cu12}" in pip_section
    assert "make setup TORCH_INDEX=" + cu12 in install and "TORCH_INDEX=" + cu12 in makefile
    assert "@v" in pip_section  # a release tag, not whatever main is today
