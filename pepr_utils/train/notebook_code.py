"""Run a notebook's code in this process, as papermill would run it in a kernel, from its jupytext script.

The notebooks are the method; :func:`run_notebook_code` lets the benchmarks and the tests run that very
code without starting a kernel (papermill's cost is what the grid benchmark measures against it).
Markdown cells are skipped; the values given replace the tagged ``parameters`` cell's, as papermill's
injected cell does; a cell's last expression is not displayed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import PeprError

_CELL = re.compile(r"^# %%(.*)$", re.MULTILINE)


def notebook_cells(path: str | Path) -> list[tuple[str, str]]:
    """``(header, source)`` of each cell of a percent-format script; the header holds ``[markdown]`` or tags."""
    text = Path(path).read_text(encoding="utf-8")
    marks = list(_CELL.finditer(text))
    return [(m.group(1).strip(), text[m.end():(marks[i + 1].start() if i + 1 < len(marks) else len(text))])
            for i, m in enumerate(marks)]


def run_notebook_code(name: str, parameters: dict[str, Any], folder: str | Path | None = None) -> dict[str, Any]:
    """Execute notebook ``name`` (``notebooks/<name>.py``) with ``parameters``; return its namespace."""
    from ..settings import shipped

    path = Path(folder or shipped("notebooks")) / f"{name}.py"
    if not path.is_file():
        raise PeprError(f"no notebook script {path}")
    cells = notebook_cells(path)
    declared: set[str] = set()
    namespace: dict[str, Any] = {"__name__": "__notebook__"}
    for header, source in cells:
        if "[markdown]" in header:
            continue
        exec(compile(source, f"{path.name}:{header or 'cell'}", "exec"), namespace)  # noqa: S102 - our own notebook
        if "parameters" in header:
            declared = {k for k in namespace if not k.startswith("__")}
            unknown = sorted(set(parameters) - declared)
            if unknown:
                raise PeprError(f"{name} has no parameter(s) {', '.join(unknown)}; it takes {', '.join(sorted(declared))}")
            namespace.update(parameters)
    if not declared:
        raise PeprError(f"{path} has no cell tagged parameters")
    return namespace
