"""The report's HTML pieces: tables that fit the page, verdict badges, figures with captions, folds.

The HTML report is the executed notebook exported by nbconvert, so every piece here is an HTML output
of one cell (:class:`~pepr_utils.report.writer.Report` displays them). A table is written by hand rather
than by pandas' Styler so that it fits a 1400 px page: numbers at 3 significant figures and never
wrapped, long text in a readable column that wraps, headers that may break at ``_``, and a table too
wide for the page split into column groups that each repeat its key columns. Nothing is dropped: the
CSV beside it keeps every column at full precision.
"""

from __future__ import annotations

import base64
import html

import numpy as np
import pandas as pd

from ..analysis.formatting import fmt

#: Widest a table may be, in CSS px: the notebook's output column at a 1400 px window is about 1310 px.
PAGE_PX = 1250
#: Rough width of one character (13 px sans-serif) and a cell's padding, in CSS px, to plan column groups.
CHAR_PX, PAD_PX = 7.6, 18
#: A text column whose longest value has more characters than this wraps in a column of its own width.
LONG_TEXT = 36
#: Width of a long text column, in characters (and the em of the CSS below).
LONG_CHARS = 22
#: Key columns a split table repeats in every group (those present, at most two, from the left).
KEYS = ("claim", "experiment", "model", "dataset", "comparison", "question", "file")

#: The verdicts' colours: green for a claim the runs support, red for one they reverse or contradict,
#: amber for no decision, grey for no test; white text on each (contrast above 4.5:1).
BADGE_COLOURS: dict[str, str] = {
    "supported": "#1b7a3a", "reversed": "#b3261e", "contradicted": "#b3261e", "inconclusive": "#8a5a00",
    "not robust to the choice of P": "#8a5a00", "not testable": "#5f6368",
    "not testable (models at their floor)": "#5f6368",
}

CSS = f"""
table.pepr-table {{ border-collapse: collapse; table-layout: auto; width: auto; max-width: 100%;
  margin: 0.3em auto 1em 0; font-size: 13px; line-height: 1.35; }}
table.pepr-table th {{ text-align: right; vertical-align: bottom; padding: 4px 8px; font-weight: 600;
  white-space: normal; border-bottom: 1px solid #999; max-width: none; }}
table.pepr-table td {{ text-align: right; vertical-align: top; padding: 4px 8px; white-space: nowrap;
  font-variant-numeric: tabular-nums; max-width: none; }}
table.pepr-table th.t, table.pepr-table td.t {{ text-align: left; }}
table.pepr-table td.long {{ white-space: normal; min-width: {LONG_CHARS - 6}em; max-width: {LONG_CHARS + 12}em; }}
table.pepr-table tbody tr:nth-child(odd) {{ background: #f4f6f8; }}
table.pepr-table caption {{ caption-side: top; text-align: left; font-size: 12px; color: #555; padding: 2px 0; }}
figure.pepr-figure {{ margin: 0.4em 0 1.2em 0; }}
figure.pepr-figure img {{ max-width: 100%; height: auto; display: block; }}
figure.pepr-figure figcaption {{ font-size: 13px; color: #333; max-width: 70em; margin-top: 0.3em; }}
details.pepr-details {{ margin: 0.4em 0 0.8em 0; border: 1px solid #d0d4d8; border-radius: 4px; padding: 0.3em 0.8em; }}
details.pepr-details > summary {{ cursor: pointer; font-weight: 600; padding: 0.2em 0; }}
"""


def style() -> str:
    """The ``<style>`` block every piece relies on (a Report emits it once, with its first HTML output)."""
    return f"<style>{CSS}</style>"


def badge(verdict: str) -> str:
    """A verdict as a coloured pill (inline style: it keeps its colour wherever the HTML is pasted)."""
    colour = BADGE_COLOURS.get(str(verdict), "#5f6368")
    return (f'<span class="pepr-badge" style="display:inline-block;padding:1px 8px;border-radius:10px;'
            f'background:{colour};color:#fff;font-weight:600;font-size:12px;white-space:normal">'
            f"{html.escape(str(verdict))}</span>")


def cell_text(value, digits: int = 3) -> str:
    """One cell as the reader sees it: numbers at ``digits`` significant figures, '–' for missing."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "–"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return fmt(value, digits)
    return str(value)


def _header(name: str) -> str:
    """A column name that may break after ``_`` (``p_<wbr>holm``) instead of widening its column."""
    return html.escape(str(name)).replace("_", "_<wbr>")


def _plan(cells: pd.DataFrame, numeric_columns: set[str]) -> tuple[dict[str, float], set[str]]:
    """Each column's narrowest width (CSS px, as the browser lays out a table that must shrink) and the
    long text columns among them."""
    widths, long = {}, set()
    for col in cells.columns:
        values, numeric = cells[col], col in numeric_columns
        longest = max((len(v) for v in values), default=0)
        header = max((len(w) for w in str(col).replace("_", "_ ").split()), default=0)
        if not numeric and longest > LONG_TEXT:
            long.add(col)
            chars = LONG_CHARS - 6  # the CSS min-width of a long column, in em (about 2 characters each)
            widths[col] = max(header * CHAR_PX, chars * 13) + PAD_PX
        else:
            words = [len(w) for v in values for w in (v.split() if not numeric else [v])] or [0]
            widths[col] = max(header, max(words)) * CHAR_PX + PAD_PX
    return widths, long


def key_columns(columns: list[str]) -> list[str]:
    """The columns a split table repeats in every part: its leading :data:`KEYS` (at most two), else its first."""
    return [c for c in columns if c in KEYS][:2] if columns and columns[0] in KEYS else columns[:1]


def _groups(columns: list[str], widths: dict[str, float], page_px: float) -> list[list[str]]:
    """Consecutive column groups that each fit ``page_px`` with the key columns repeated in front."""
    keys = key_columns(columns)
    rest = [c for c in columns if c not in keys]
    if sum(widths[c] for c in columns) <= page_px or not rest:
        return [columns]
    groups, current, used = [], [], sum(widths[c] for c in keys)
    for col in rest:
        if current and used + widths[col] > page_px:
            groups.append(keys + current)
            current, used = [], sum(widths[c] for c in keys)
        current.append(col)
        used += widths[col]
    groups.append(keys + current)
    return groups


def table_html(df: pd.DataFrame, *, digits: int = 3, badges: str | None = None, css_class: str = "",
               page_px: float = PAGE_PX) -> str:
    """``df`` as one HTML table, or several (column groups repeating the key columns) when it would be
    wider than ``page_px``. ``badges`` names a verdict column drawn as :func:`badge` pills."""
    columns = [str(c) for c in df.columns]
    frame = df.set_axis(columns, axis=1)
    numeric = {c for c in columns
               if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])}
    cells = pd.DataFrame({c: [cell_text(v, digits) for v in frame[c]] for c in columns}, index=range(len(frame)))
    widths, long = _plan(cells, numeric)
    groups, keys = _groups(columns, widths, page_px), key_columns(columns)
    parts = []
    for i, group in enumerate(groups):
        caption = (f"<caption>part {i + 1} of {len(groups)}: split by columns to fit the page, "
                   f"{html.escape(' and '.join(keys))} repeated in each part</caption>" if len(groups) > 1 else "")
        head = "".join(f'<th class="{"" if c in numeric else "t"}">{_header(c)}</th>' for c in group)
        rows = []
        for r in range(len(cells)):
            tds = []
            for c in group:
                cls = "" if c in numeric else ("t long" if c in long else "t")
                text = badge(cells.at[r, c]) if c == badges else html.escape(cells.at[r, c])
                tds.append(f'<td class="{cls}">{text}</td>')
            rows.append("<tr>" + "".join(tds) + "</tr>")
        parts.append(f'<table class="{f"pepr-table {css_class}".strip()}">{caption}<thead><tr>{head}</tr></thead>'
                     f'<tbody>{"".join(rows)}</tbody></table>')
    return "\n".join(parts)


def table_markdown(df: pd.DataFrame, *, digits: int = 3) -> str:
    """``df`` as a Markdown table with the same cell texts as :func:`table_html` (for ``summary.md``)."""
    cells = df.apply(lambda col: col.map(lambda v: cell_text(v, digits)))
    return cells.to_markdown(index=False)


def figure_html(png: bytes, caption: str, *, width: int, height: int) -> str:
    """A figure with its caption: the PNG embedded (the file opens offline), at ``width`` x ``height`` CSS px
    so the page does not move while it decodes."""
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{markdown_html(caption, inline=True)}</figcaption>" if caption else ""
    return (f'<figure class="pepr-figure"><img src="data:image/png;base64,{data}" width="{width}" '
            f'height="{height}" alt="{html.escape(caption[:200])}">{cap}</figure>')


def details_html(summary: str, body: str, *, open_: bool = False) -> str:
    """A folded section: ``summary`` is the line the reader clicks, ``body`` what unfolds."""
    return (f'<details class="pepr-details"{" open" if open_ else ""}><summary>{markdown_html(summary, inline=True)}'
            f"</summary>\n{body}\n</details>")


def markdown_html(text: str, *, inline: bool = False) -> str:
    """Markdown to HTML with the renderer nbconvert itself uses (mistune), so text reads the same inside
    a fold as in the page; ``inline`` drops the enclosing paragraph."""
    import mistune

    out = mistune.html(text).strip()
    if inline and out.startswith("<p>") and out.endswith("</p>") and out.count("<p>") == 1:
        out = out[3:-4]
    return out
