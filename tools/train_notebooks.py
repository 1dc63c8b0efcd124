"""Generate notebooks/02_train.py and 03_finetune.py from one source, tools/train_notebooks.in.

Why generated: the two notebooks are one method from two starting points (random or pretrained weights).
Each must read whole on its own (papermill runs it, a user opens it on Colab), so 03 cannot just call 02;
and two hand-kept copies drift. So the steps are written once, in the template; lines between
``#>> NAME`` and ``#<<`` go only to notebook NAME (the title, the weights and freezing, their
parameters), all other lines to both. ``#% colab`` keeps the notebook's own first cell (the Colab
install cell, the same in every notebook and owned by tests/test_reproduce.py). Each .ipynb twin is then
re-created with ``jupytext --sync`` (outputs stripped).

    python tools/train_notebooks.py          # write the notebooks
    python tools/train_notebooks.py --check  # exit 1 when a notebook differs from the template
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "tools" / "train_notebooks.in"
NOTEBOOKS = ("02_train", "03_finetune")
_COLAB = re.compile(r"^# %%\n# On Google Colab.*?(?=^# %%)", re.MULTILINE | re.DOTALL)


def colab_cell(folder: Path) -> str:
    """The Colab cell as the data-prep notebook has it (the same in every notebook)."""
    match = _COLAB.search((folder / "01_data_prep.py").read_text(encoding="utf-8"))
    if match is None:
        raise SystemExit("no Colab cell found in notebooks/01_data_prep.py")
    return match.group(0).rstrip("\n")


def render(name: str, template: str, colab: str) -> str:
    """The percent script of notebook ``name``."""
    out, only = [], None
    for line in template.splitlines():
        if line.startswith("#>> "):
            only = line[4:].strip()
        elif line.strip() == "#<<":
            only = None
        elif only in (None, name):
            out.append(colab if line.strip() == "#% colab" else line)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = ROOT / "notebooks"
    template, colab = TEMPLATE.read_text(encoding="utf-8"), colab_cell(folder)
    stale = []
    for name in NOTEBOOKS:
        path = folder / f"{name}.py"
        text = render(name, template, colab)
        if path.read_text(encoding="utf-8") != text:
            stale.append(name)
            if "--check" not in argv:
                path.write_text(text, encoding="utf-8")
                subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(path)], check=True)
    if stale and "--check" in argv:
        print(f"out of date with {TEMPLATE.name}: {', '.join(stale)} (run python tools/train_notebooks.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
