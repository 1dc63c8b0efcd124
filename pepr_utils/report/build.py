"""``pepr report``: execute the analysis notebook on a set of run records into a report folder and
export it to one self-contained HTML file; never replace a folder that is not a previous report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import PeprError
from ..fileio import atomic_dir, atomic_write_text, clean_stale
from ..grid import kernel
from ..params import is_whole

NOTEBOOK_NAME = "04_analysis.ipynb"
HTML_NAME = "report.html"
KERNEL_TEMP_PREFIX = "pepr-kernel-"  # $TMPDIR/pepr-kernel-<pid>-*: the analysis kernel's sockets and connection file


def export_html(notebook: str | os.PathLike, html: str | os.PathLike, *, hide_code: bool = True,
                title: str = "PePR analysis report") -> Path:
    """A single HTML file that opens in any browser: images embedded, code hidden unless asked for."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    # Figures are outputs, embedded as data URIs whatever embed_images says; embed_images only inlines
    # files a Markdown cell links to (the report has none), and it re-parses every HTML block of a Markdown
    # cell on its own, which closes a <details> before the Markdown it folds.
    exporter = HTMLExporter(template_name="lab", embed_images=False, exclude_input=hide_code,
                            exclude_input_prompt=hide_code, exclude_output_prompt=hide_code)
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"path": str(Path(notebook).parent), "name": title}})
    # The template loads require.js and MathJax from a CDN; the report uses neither (no widgets, no
    # LaTeX), so drop them: the file then needs no network at all.
    body = re.sub(r'<script src="https?://[^"]*"[^>]*>\s*</script>', "", body)
    if hide_code:  # a code cell with neither code nor output shown is an empty band: the answer moves up
        body = body.replace("</head>", f"<style>{_HIDE_EMPTY_CELLS}</style>\n</head>", 1)
    return atomic_write_text(html, body)


_HIDE_EMPTY_CELLS = ".jp-CodeCell.jp-mod-noInput.jp-mod-noOutputs { display: none; }"


def notebook_path() -> Path:
    """The analysis notebook shipped with the package (a checkout's ``notebooks/`` or an installed wheel's copy)."""
    from ..settings import shipped

    path = shipped("notebooks", NOTEBOOK_NAME)
    if not path.is_file():
        raise PeprError(f"analysis notebook {str(path)!r} not found; reinstall pepr-utils (pip install .) so the "
                        "notebooks ship with it")
    return path


def default_report_dir(results: str | os.PathLike | Sequence[str | os.PathLike]) -> Path:
    """``outputs/<study>/report``: <study> is the folder holding the results.csv or the runs."""
    from ..settings import output_dir

    first = Path(results if isinstance(results, (str, os.PathLike)) else list(results)[0]).expanduser().resolve()
    study = first.parent if first.is_file() or first.suffix.lower() in (".csv", ".json") else first
    if study.name == "runs":
        study = study.parent
    return output_dir() / (study.name or "study") / "report"


#: Files a report writes besides those its manifest lists (the manifest itself, and what is added after it).
_REPORT_OWN = ("manifest.json", NOTEBOOK_NAME, HTML_NAME, "summary.md")


def check_report_dir(out: str | os.PathLike) -> Path:
    """``out`` if a report may be written there: a new or empty folder, or a previous pepr report.

    A report replaces its folder in one rename, so it must never be pointed at a folder holding
    anything it did not write: a folder counts as a previous report only when its ``manifest.json``
    (written by every report) lists the files in it. A file, or any other non-empty folder, is a
    PeprError naming the path and the first foreign file; nothing is touched.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise PeprError(f"report folder {str(out)!r} is a file; pass -o a new or empty folder, "
                        "or a previous report's folder")
    if not out.is_dir():
        return out
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir())
    if not files:
        return out
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        listed = {str(e["path"]) for e in manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        raise PeprError(f"report folder {str(out)!r} holds {files[0]!r}"
                        + (f" and {len(files) - 1} more file(s)" if len(files) > 1 else "")
                        + " but no readable manifest.json, so it is not a previous pepr report; pass -o a new or "
                        "empty folder so nothing of yours is replaced") from None
    tolerated = (".png", ".pdf", ".csv", ".md")
    foreign = [f for f in files if f not in listed and f not in _REPORT_OWN
               and not (f.split("/")[0] in ("figures", "tables") and f.endswith(tolerated))]
    if foreign:
        raise PeprError(f"report folder {str(out)!r} holds {foreign[0]!r}, which no pepr report wrote"
                        + (f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else "")
                        + "; pass -o a new or empty folder so nothing of yours is replaced")
    return out


def check_options(*, top_k: object, n_boot: object, seed: object, budget: Mapping | None = None,
                  reference: Mapping | None = None) -> None:
    """The analysis options (``pepr report``'s and notebook 04's parameters), checked before anything is written.

    One rule set for both ways in: the notebook's first cell after its parameters calls this, so a
    papermill run with ``n_boot = -1`` fails there with the same one-line message as the CLI, not deep
    in numpy after half the report's tables are written.
    """
    from ..analysis.tables import parse_budget, parse_reference

    problems = [f"{name} {value!r} must be an integer >= {minimum}{hint}"
                for name, value, minimum, hint in (("top_k", top_k, 1, " (models per experiment in the top-k tables)"),
                                                   ("n_boot", n_boot, 1, " (bootstrap replicates, e.g. 1000)"),
                                                   ("seed", seed, 0, ""))
                if not is_whole(value, minimum)]
    if problems:
        raise PeprError("; ".join(problems))
    for name, value in (("budget", budget), ("reference", reference)):
        if value is not None and not isinstance(value, Mapping):
            raise PeprError(f"{name} {value!r} must be a mapping of resource to number, e.g. {{'energy_kwh': 0.01}}")
    parse_budget(budget)
    parse_reference(reference)


def build_report(
    results: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    *,
    budget: Mapping[str, float] | None = None,
    reference: Mapping[str, float] | None = None,
    top_k: int = 5,
    n_boot: int = 1000,
    seed: int = 0,
    hide_code: bool = True,
    timeout_s: int = 1800,
    kernel_name: str = kernel.KERNEL_NAME,  # any name: the kernel is always this interpreter's
) -> Path:
    """Execute ``04_analysis`` on ``results`` and write the whole report folder at once; return it.

    The results and options are checked first (one-line errors); a notebook that fails is kept as
    ``<out_dir>.failed.ipynb`` for inspection and nothing else is written.
    """
    import papermill as pm

    from ..analysis.results import load_results, require_scorable, split_runs
    from ..analysis.tables import available_resources

    items = [results] if isinstance(results, (str, os.PathLike)) else list(results)
    paths = [str(Path(p).expanduser().resolve()) for p in items]
    out = check_report_dir(Path(out_dir).expanduser() if out_dir else default_report_dir(paths))  # before any work
    runs = load_results(paths)  # fail fast, with one-line errors, before starting a kernel
    ok, _ = split_runs(runs)
    require_scorable(runs, ok, available_resources(ok))
    check_options(top_k=top_k, n_boot=n_boot, seed=seed, budget=budget, reference=reference)
    if not is_whole(timeout_s, 1):
        raise PeprError(f"--timeout {timeout_s!r} must be a whole number of seconds >= 1 per notebook cell")
    source = notebook_path()
    params = {"results": paths if len(paths) > 1 else paths[0], "out_dir": ".", "budget": dict(budget or {}),
              "reference": dict(reference or {}), "top_k": int(top_k), "n_boot": int(n_boot), "seed": int(seed)}
    start = time.perf_counter()
    with atomic_dir(out) as tmp, _kernel_folder() as sockets:
        executed = tmp / NOTEBOOK_NAME
        try:
            pm.execute_notebook(str(source), str(executed), parameters=params, cwd=str(tmp),
                                kernel_name=kernel_name, progress_bar=False, log_output=False,
                                execution_timeout=timeout_s, **kernel.kernel_options(Path(sockets) / "k"))
        except pm.PapermillExecutionError as exc:
            kept = out.with_name(out.name + ".failed.ipynb")
            shutil.copyfile(executed, kept)
            raise PeprError(f"analysis notebook failed in cell {exc.exec_count}: {exc.ename}: "
                            f"{str(exc.evalue).splitlines()[0] if exc.evalue else ''}; executed notebook kept at {kept}"
                            ) from exc
        export_html(executed, tmp / HTML_NAME, hide_code=hide_code)
        _add_to_manifest(tmp, [NOTEBOOK_NAME, HTML_NAME], time.perf_counter() - start)
    return out


@contextmanager
def _kernel_folder() -> Iterator[Path]:
    """A private folder for the analysis kernel's sockets and its connection file (jupyter_client makes it
    with mkstemp: ``$TMPDIR/tmp*.json``), named with this pid: a report killed with -9 leaves only this
    folder, and the next report removes it (:func:`~pepr_utils.fileio.clean_stale`)."""
    clean_stale(tempfile.gettempdir(), KERNEL_TEMP_PREFIX)
    with tempfile.TemporaryDirectory(prefix=f"{KERNEL_TEMP_PREFIX}{os.getpid()}-") as folder:
        saved, tempfile.tempdir = tempfile.tempdir, folder  # mkstemp's default folder, for this block only
        try:
            yield Path(folder)
        finally:
            tempfile.tempdir = saved


def _add_to_manifest(folder: Path, names: Sequence[str], elapsed_s: float) -> None:
    manifest = folder / "manifest.json"
    data = json.loads(manifest.read_text()) if manifest.is_file() else {"files": []}
    known = {e["path"] for e in data["files"]}
    for name in names:
        if name not in known and (folder / name).is_file():
            data["files"].append({"path": name, "bytes": (folder / name).stat().st_size})
    data["build_time_s"] = round(elapsed_s, 2)
    atomic_write_text(manifest, json.dumps(data, indent=2) + "\n")
