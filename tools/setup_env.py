"""`make setup`'s decisions, as small functions with tests (tests/test_reproduce.py).

    python tools/setup_env.py check-python   # exit 1 with one line when this Python is not supported
    python tools/setup_env.py torch-args     # pip options for the torch/torchvision install

Which torch build: PyTorch's CPU wheels (no 3 GB of CUDA libraries) on a machine without an NVIDIA GPU,
the default PyPI build (CUDA on Linux) with one. Overrides: TORCH_VARIANT=cpu|cuda|auto, or TORCH_INDEX=URL
(an index URL wins over everything; TORCH_INDEX=pypi means the default PyPI build). The versions always
come from requirements-lock.txt (pip's -c); only the index changes. When the chosen index cannot be
reached (a mirror-only or air-gapped machine), setup says so and falls back to the default index.
Runs on any Python 3 (no third-party imports), so it can judge an interpreter that is too old.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYPI = "https://pypi.org/simple"
VARIANTS = ("auto", "cpu", "cuda")


# --------------------------------------------------------------------------- Python version
def requires_python(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """pyproject's ``requires-python`` (read with a regex: tomllib needs 3.11)."""
    match = re.search(r'^requires-python\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8"), re.M)
    if not match:
        raise SystemExit(f"no requires-python in {pyproject}")
    return match.group(1)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def python_problem(found: tuple[int, ...], spec: str) -> str | None:
    """None when ``found`` satisfies ``spec`` (clauses like ``>=3.11``, ``<3.14``), else the one-line reason."""
    ops = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
           "<": lambda a, b: a < b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
    for clause in (c.strip() for c in spec.split(",") if c.strip()):
        op, version = re.match(r"(>=|<=|==|!=|>|<)\s*([\d.]+)", clause).groups()
        want = _version_tuple(version)
        if not ops[op](tuple(found[:len(want)]), want):
            return (f"pepr needs Python {spec} (pyproject.toml requires-python), found "
                    f"{'.'.join(map(str, found))} at {sys.executable}; install a supported Python and run "
                    f"`make setup PYTHON=python3.11` (or another supported version)")
    return None


# --------------------------------------------------------------------------- torch build
def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is present (nvidia-smi on PATH, or the Linux driver's /proc entry)."""
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia/version").exists()


def reachable(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url.rstrip("/") + "/torch/", method="HEAD"),
                                    timeout=timeout):
            return True
    except Exception:  # noqa: BLE001 - any failure means: not usable from here
        return False


def torch_index(variant: str = "auto", index: str = "", *, gpu: bool, system: str) -> str | None:
    """The index to install torch/torchvision from; None means pip's default (PyPI or the user's config)."""
    if index:
        return None if index.lower() in ("pypi", "default") else index
    variant = (variant or "auto").lower()
    if variant not in VARIANTS:
        raise SystemExit(f"TORCH_VARIANT={variant!r}: expected one of {', '.join(VARIANTS)}")
    if variant == "auto":
        # PyPI's Linux wheels are the CUDA build; macOS wheels are CPU/MPS already (no CPU index needed).
        variant = "cuda" if gpu or system == "Darwin" else "cpu"
    return CPU_INDEX if variant == "cpu" else None


def torch_pip_args(variant: str = "auto", index: str = "", *, gpu: bool, system: str,
                   probe=reachable) -> tuple[list[str], str]:
    """pip options for the torch install and a one-line note saying which build and why."""
    chosen = torch_index(variant, index, gpu=gpu, system=system)
    if chosen is None:
        return [], f"torch: default index ({'NVIDIA GPU found' if gpu else 'as asked or macOS'})"
    if not probe(chosen):
        return [], f"torch: {chosen} is not reachable from here; falling back to the default index"
    # torch's own dependencies (sympy, networkx, ...) still come from PyPI, pinned by the lock.
    return ["--index-url", chosen, "--extra-index-url", PYPI], f"torch: {chosen}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["check-python"]:
        problem = python_problem(sys.version_info[:3], requires_python())
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    if argv[:1] == ["torch-args"]:
        args, note = torch_pip_args(os.environ.get("TORCH_VARIANT", "auto"), os.environ.get("TORCH_INDEX", ""),
                                    gpu=has_nvidia_gpu(), system=platform.system())
        print(note, file=sys.stderr)
        print(" ".join(args))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
