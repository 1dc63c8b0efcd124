"""Install pepr_utils into a running Colab (or any hosted Jupyter) session without replacing its stack.

    python tools/colab_install.py SRC [PIP OPTIONS...]   # SRC: a git clone of pepr at a release tag

The notebooks' first cell runs this. Why not ``pip install -c requirements-lock.txt``: the lock pins torch
(PyPI's CUDA build: several GB of nvidia-* wheels, even on a CPU runtime) and the Jupyter stack the
session itself runs on (ipykernel, ipython, tornado, pyzmq, ...), and replacing those under a live kernel
can crash it. So the constraints are:

- the runtime's own stack (RUNTIME: torch and its CUDA libraries, numpy, pandas, the Jupyter/IPython
  kernel stack), where installed: pinned at the installed version, never replaced (the record states the
  torch version that ran);
- the study's own libraries (pyproject's dependencies outside RUNTIME: timm, medmnist, papermill, dask,
  ...) and anything not installed yet: the lock's versions;
- other packages already installed: left as they are unless a pinned library needs another version.

The package is installed from ``git+file://SRC@<commit>``, so pip records the commit (PEP 610) and each
run record names it (pepr_utils.provenance). Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

#: the hosted runtime's own stack (canonical names): kept at the installed version where present
RUNTIME = frozenset({
    "torch", "torchvision", "torchaudio", "triton", "numpy", "pandas",
    "ipykernel", "ipython", "ipywidgets", "jupyter-client", "jupyter-core", "jupyter-server", "notebook",
    "nbformat", "nbconvert", "nbclient", "tornado", "pyzmq", "prompt-toolkit", "traitlets", "comm", "debugpy",
    "matplotlib-inline", "widgetsnbextension", "jupyterlab-widgets",
})
_CUDA = re.compile(r"^(nvidia-(?!ml-py$)|cuda-)")  # torch's CUDA libraries (not NVML's Python binding)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(text: str) -> str:
    return canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text).group(1))


def read_lock(text: str) -> dict[str, str]:
    """``{canonical name: version}`` from requirements-lock.txt."""
    return {canonical(n): v.strip() for n, v in (line.split("==") for line in text.splitlines()
                                                   if "==" in line and not line.startswith("#"))}


def installed_versions() -> dict[str, str]:
    """``{canonical name: version}`` of the distributions this interpreter sees."""
    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def constraints(lock: dict[str, str], study: set[str], installed: dict[str, str]) -> dict[str, str]:
    """``{name: version}`` for pip's ``-c``: the runtime kept as installed, the study and anything missing
    at the lock's version, other installed packages unconstrained."""
    def runtime(name: str) -> bool:
        return name in RUNTIME or bool(_CUDA.match(name))

    # a runtime package that is missing stays free too: pip picks one that fits the installed torch
    out = {n: v for n, v in lock.items() if not runtime(n) and (n not in installed or n in study)}
    out.update({n: v for n, v in installed.items() if runtime(n)})
    out.pop("pepr-utils", None)
    return out


def study_libraries(pyproject: Path) -> set[str]:
    """pyproject's direct dependencies outside the runtime's stack (the libraries the study is made of)."""
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return {_requirement_name(d) for d in deps} - RUNTIME


def pip_command(src: Path, constraints_file: Path, extra: list[str]) -> list[str]:
    commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    return [sys.executable, "-m", "pip", "install", "-q", "-c", str(constraints_file), *extra,
            f"pepr-utils @ git+{src.resolve().as_uri()}@{commit}"]


def unshallow(src: Path) -> str | None:
    """Make a shallow clone (``git clone --depth``) whole; None, or the one line that says why it cannot be
    (not a git clone at all, or its history out of reach).

    pip clones the source again with ``--filter=blob:none``; from a shallow source git (2.39 seen here) then
    fetches the missing history from inside that clone and stalls for minutes before it goes on."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True, timeout=600)

    shallow = git("rev-parse", "--is-shallow-repository")
    if shallow.returncode != 0:
        return (f"colab_install: {src} is not a git clone of pepr (pip installs it from git, so that each run "
                "record names its commit); clone it with git clone --branch <release tag>")
    if shallow.stdout.strip() != "true":
        return None
    try:
        done = git("fetch", "-q", "--unshallow")
    except subprocess.TimeoutExpired:
        why = "git fetch --unshallow took over 10 minutes"
    else:
        if done.returncode == 0:
            return None
        why = (done.stderr.strip().splitlines() or ["git fetch --unshallow failed"])[-1]
    return (f"colab_install: {src} is a shallow clone and its history cannot be fetched ({why}); "
            f"clone it again without --depth")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    src = Path(argv[0]).expanduser()
    problem = unshallow(src)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    pins = constraints(read_lock((src / "requirements-lock.txt").read_text(encoding="utf-8")),
                       study_libraries(src / "pyproject.toml"), installed_versions())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "constraints.txt"
        path.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())), encoding="utf-8")
        return subprocess.run(pip_command(src, path, argv[1:])).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
