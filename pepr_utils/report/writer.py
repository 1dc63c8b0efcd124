"""The report's writer: every figure, table and paragraph of notebook 04 (and 00) goes through :class:`Report`.

Each figure goes to ``figures/<name>.png|pdf``, each table to ``tables/<name>.csv|md`` (every column, full
precision in the CSV), each paragraph to ``summary.md``, and ``manifest.json`` lists them all. In the
notebook, and so in the exported ``report.html``, each item is shown as it goes: tables that fit the page,
figures with their captions (:mod:`~pepr_utils.report.html`). :meth:`Report.details` folds what it wraps:
one ``<details>`` in the HTML, one part of the ``Details`` section closing ``summary.md``; the answer stays
on top and the evidence one click below. The methods return nothing, so a notebook cell ending in one shows
its item once (not again as a printed return value); the files written are in :attr:`Report.files`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ..errors import PeprError
from ..fileio import atomic_write_text
from . import html


class Report:
    """Collects a report's files under ``out_dir`` and shows each item in the notebook as it goes."""

    def __init__(self, out_dir: str | os.PathLike, *, show: bool = True):
        self.out_dir = Path(out_dir)
        self.figures_dir = self.out_dir / "figures"
        self.tables_dir = self.out_dir / "tables"
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        self.show = show
        self.files: list[Path] = []
        self.paragraphs: list[str] = []  # summary.md, in order
        self.details_paragraphs: list[str] = []  # summary.md's closing Details section
        self._fold: list[str] | None = None  # the HTML of the items inside an open details() block
        self._styled = False

    # ------------------------------------------------------------------------------------ items
    def figure(self, fig, name: str, *, caption: str = "") -> None:
        """Show ``fig`` with its ``caption`` (what to see in it), write it as PNG and PDF, close it.

        ``fig`` may be a function making the figure: if it raises :class:`PeprError` (nothing to
        draw, e.g. no paired runs), the report says the figure was skipped and why, and goes on.
        """
        from ..analysis.plots import save_figure

        if callable(fig):
            try:
                fig = fig()
            except PeprError as exc:
                self.text(f"*(Figure `{name}` skipped: {exc}.)*")
                return
        paths = save_figure(fig, self.figures_dir, name)  # closes fig, so the notebook shows it once
        self.files += paths
        png = paths[0].read_bytes()
        width, height = _png_size(png)
        shown = min(1100, width * 2 // 3)  # saved at 150 dpi: 2/3 of the pixels is the figure's size at 100 dpi
        self._markdown(f"![{name}](figures/{name}.png)" + (f"\n\n*Figure {name}.* {caption}" if caption else ""))
        self._html(html.figure_html(png, caption, width=shown, height=round(height * shown / max(width, 1))))

    def table(self, df: pd.DataFrame, name: str, *, show: bool | int = True, digits: int = 3,
              badges: str | None = None, summary: bool = False) -> None:
        """Write ``df`` as CSV (full precision) and Markdown; show it at ``digits`` significant figures
        (``show=n``: the first n rows; ``badges``: a verdict column drawn as coloured pills).

        ``summary`` also puts the shown rows into ``summary.md`` (tables in a :meth:`details` block always
        go there, into its Details section)."""
        from ..analysis.plots import save_table

        paths = save_table(df, self.tables_dir, name, floatfmt=".4g")
        self.files += paths
        if show is not False and len(df):
            shown = df.head(show) if show is not True else df
            more = f" (first {len(shown)} of {len(df)} rows; all in `tables/{name}.csv`)" if len(shown) < len(df) else ""
            if summary or self._fold is not None:
                self._markdown(html.table_markdown(shown, digits=digits) + (f"\n\n{more.strip(' ()')}" if more else ""))
            self._html(html.table_html(shown, digits=digits, badges=badges, css_class=f"pepr-{name}")
                       + (f'<p style="font-size:12px;color:#555">{more.strip()}</p>' if more else ""))

    def text(self, markdown: str) -> None:
        """Show a paragraph and keep it for ``summary.md``."""
        if markdown:
            self._markdown(markdown)
            if self._fold is not None:
                self._fold.append(html.markdown_html(markdown))
            elif self.show:
                _display_markdown(markdown)

    @contextmanager
    def details(self, summary: str) -> Iterator[Report]:
        """Fold what is written inside the block under ``summary``: one ``<details>`` in the HTML (shown
        when the block ends), a ``### summary`` part of ``summary.md``'s Details section."""
        if self._fold is not None:
            raise PeprError("Report.details blocks do not nest")
        self._fold = []
        self.details_paragraphs.append(f"### {summary}")
        try:
            yield self
        finally:
            body, self._fold = self._fold, None
            self._html(html.details_html(summary, "\n".join(body)))

    # ------------------------------------------------------------------------------------ files
    def finish(self, title: str = "PePR analysis report") -> Path:
        """Write ``summary.md`` (every paragraph, then the folded ones under ``## Details``) and
        ``manifest.json`` (every file, with its size)."""
        summary = self.out_dir / "summary.md"
        details = ("\n\n## Details\n\n" + "\n\n".join(self.details_paragraphs)) if self.details_paragraphs else ""
        atomic_write_text(summary, f"# {title}\n\n" + "\n\n".join(self.paragraphs) + details + "\n")
        self.files.append(summary)
        manifest = self.out_dir / "manifest.json"
        entries = [{"path": str(p.relative_to(self.out_dir)), "bytes": p.stat().st_size}
                   for p in dict.fromkeys(self.files) if p.exists()]
        atomic_write_text(manifest, json.dumps({"files": entries}, indent=2) + "\n")
        return manifest

    def listing(self) -> pd.DataFrame:
        """The files written so far (for the report's last section)."""
        rows = [{"file": str(p.relative_to(self.out_dir)), "kB": round(p.stat().st_size / 1024, 1)}
                for p in dict.fromkeys(self.files) if p.exists()]
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------------------------ output
    def _markdown(self, text: str) -> None:
        (self.details_paragraphs if self._fold is not None else self.paragraphs).append(text)

    def _html(self, fragment: str) -> None:
        """Show an HTML fragment, or keep it for the open details block; the first carries the style."""
        if self._fold is not None:
            self._fold.append(fragment)
            return
        if not self.show:
            return
        if not self._styled:
            fragment, self._styled = html.style() + fragment, True
        _display_html(fragment)


def _png_size(png: bytes) -> tuple[int, int]:
    """Pixel width and height from a PNG header."""
    head = png[16:24]
    if len(head) < 8:
        return 1200, 800
    return int.from_bytes(head[:4], "big"), int.from_bytes(head[4:], "big")


def _display_html(fragment: str) -> None:
    try:
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return
    display(HTML(fragment))


def _display_markdown(text: str) -> None:
    try:
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover
        return
    display(Markdown(text))
