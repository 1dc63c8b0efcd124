"""Does the report read at a glance? ``report.html`` rendered by headless Chromium at 1400 x 900 px, measured.

    .venv/bin/python benchmarks/bench_report_browser.py REPORT_HTML [REPORT_HTML ...] [--screenshots DIR]
    .venv/bin/python benchmarks/bench_report_browser.py --synthetic [--screenshots DIR]

Two goals per report, one line each (``bench NAME: MEASURED (goal GOAL) ok|short``); any short goal
exits 1 with what failed, so a script or CI step fails loudly:

* ``report_width``: the page's scroll width, and the right edge of its widest table (every ``<details>``
  unfolded for the measure), within the 1400 px window; no output area scrolls sideways.
* ``report_first_screen``: the verdict table (the page's first table, with a ``verdict`` column) and the
  headline figure end within the first 900 px, the window's height.

The measures come from the page itself: a copy of the report with a small script that, on load, writes
them as JSON into the DOM, read back with ``chromium --dump-dom``. ``--screenshots DIR`` also writes
``DIR/report_first_screen.png`` (1400 x 900) and ``DIR/report_full_page.png`` (the whole page as a reader
first sees it, folds closed, at half scale) of the first report. ``--synthetic`` builds and checks two
reports from the synthetic study of ``tests/test_analysis.py``: the default shape (4 experiments, 3 seeds
in one, 2 failed and 1 incompatible run) and a one-experiment study.

Needs Chromium (Debian: ``apt-get install -y chromium``), so it is not part of ``make test``;
``tests/test_report_layout.py`` checks the report's structure without a browser.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, note, report

WINDOW = (1400, 900)
MEASURES_ID = "pepr-measures"

#: Runs in the report's page on load: the first screen as the reader sees it (folds closed), then the
#: widths with every fold open (a table inside a closed <details> has no width to measure).
MEASURE_JS = """
<script>
window.addEventListener('load', function () {
  const box = e => { const r = e.getBoundingClientRect(); return {top: r.top + scrollY, bottom: r.bottom + scrollY,
                                                                  right: r.right + scrollX, width: r.width}; };
  const first = document.querySelector('table');
  const head = first ? Array.from(first.querySelectorAll('thead th')).map(t => t.textContent.trim()) : [];
  const figure = document.querySelector('figure img');
  const out = {window_width: innerWidth, window_height: innerHeight,
               closed_scroll_height: document.documentElement.scrollHeight,
               first_table: first ? box(first) : null, first_table_columns: head,
               headline_figure: figure ? box(figure) : null};
  const folds = Array.from(document.querySelectorAll('details'));
  folds.forEach(d => { d.open = true; });
  const tables = Array.from(document.querySelectorAll('table'));
  let widest = null;
  tables.forEach(t => { const b = box(t); if (!widest || b.right > widest.right) widest = Object.assign(b, {
    cls: t.className, head: Array.from(t.querySelectorAll('th')).slice(0, 3).map(x => x.textContent).join('|')}); });
  const sideways = Array.from(document.querySelectorAll('.jp-OutputArea-output, .jp-RenderedHTMLCommon, pre, details'))
    .filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => (e.className || e.tagName) + ': ' + e.scrollWidth + ' > ' + e.clientWidth + ' px: '
              + e.textContent.trim().slice(0, 80));
  Object.assign(out, {scroll_width: document.documentElement.scrollWidth, client_width:
                      document.documentElement.clientWidth, tables: tables.length, folds: folds.length,
                      widest_table: widest, sideways: sideways});
  folds.forEach(d => { d.open = false; });
  const pre = document.createElement('pre');
  pre.id = '""" + MEASURES_ID + """';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("bench_report_browser: no Chromium found; install it (Debian: apt-get install -y chromium)")


def run_chromium(args: list[str], *, timeout: int = 180) -> str:
    """One headless Chromium run with a fresh profile, nothing fetched from the network; its stdout."""
    with tempfile.TemporaryDirectory(prefix="pepr-chromium-") as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"chromium failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def measure(html: Path) -> dict:
    """The page's measures at 1400 x 900 px (see :data:`MEASURE_JS`)."""
    page = html.read_text(encoding="utf-8")
    if "</body>" not in page:
        raise SystemExit(f"{html}: no </body>; not an HTML report")
    with tempfile.TemporaryDirectory(prefix="pepr-measure-") as tmp:
        probe = Path(tmp) / "report.html"
        probe.write_text(page.replace("</body>", MEASURE_JS + "</body>", 1), encoding="utf-8")
        dom = run_chromium([f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=20000", "--dump-dom",
                            probe.as_uri()])
    found = re.search(rf'<pre id="{MEASURES_ID}">(.*?)</pre>', dom, re.S)
    if not found:
        raise SystemExit(f"{html}: the page's measuring script left no result (Chromium's DOM: {len(dom)} chars)")
    import html as html_lib

    return json.loads(html_lib.unescape(found.group(1)))


def check(name: str, m: dict) -> list[str]:
    """Print the two goal lines of one report; return what fell short."""
    width, height = WINDOW
    short = []
    widest = m["widest_table"] or {"right": 0, "cls": "", "head": ""}
    # the page's own width, inside the vertical scroll bar a reader's browser shows (client width)
    fits = m["scroll_width"] <= m["client_width"] and widest["right"] <= m["client_width"] and not m["sideways"]
    report(f"report_width[{name}]", f"scroll width {m['scroll_width']} px in a {m['window_width']} px window "
           f"({m['client_width']} px inside its scroll bar), widest "
           f"of {m['tables']} tables ends at {widest['right']:.0f} px ({m['folds']} folds opened), "
           f"{len(m['sideways'])} sideways scrollers", f"<= {width} px, 0 scrollers", fits)
    if not fits:
        short.append(f"{name}: too wide: scroll width {m['scroll_width']}, widest table {widest}, "
                     f"sideways: {m['sideways'][:3]}")
    first, fig = m["first_table"], m["headline_figure"]
    is_verdicts = bool(first) and any(c.startswith("verdict") for c in m["first_table_columns"])
    on_screen = (is_verdicts and first["bottom"] <= height and len(m["first_table_columns"]) <= 6
                 and bool(fig) and fig["bottom"] <= height)
    where = (f"verdict table at y {first['top']:.0f}-{first['bottom']:.0f} px ({len(m['first_table_columns'])} "
             f"columns)" if is_verdicts else f"first table is not the verdict table ({m['first_table_columns']})")
    where += (f", headline figure at y {fig['top']:.0f}-{fig['bottom']:.0f} px" if fig else ", no figure")
    report(f"report_first_screen[{name}]", where, f"both end <= {height} px, <= 6 columns", on_screen)
    if not on_screen:
        short.append(f"{name}: first screen: {where}")
    return short


def screenshots(html: Path, out: Path, full_height: int) -> list[Path]:
    """The first screen at 1400 x 900 and the whole page (folds closed) at half scale, as PNG in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    first, full = out / "report_first_screen.png", out / "report_full_page.png"
    run_chromium([f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={first}", html.resolve().as_uri()])
    run_chromium([f"--window-size={WINDOW[0]},{full_height}", "--force-device-scale-factor=0.5", "--hide-scrollbars",
                  f"--screenshot={full}", html.resolve().as_uri()])
    for path in (first, full):
        _shrink(path)
    return [first, full]


def _shrink(path: Path) -> None:
    """A 256-colour palette PNG: the screenshots are text and flat colour, and the repository keeps them."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


# ------------------------------------------------------------------------------- synthetic reports
def synthetic_reports(root: Path) -> dict[str, Path]:
    """Two reports of the synthetic study of tests/test_analysis.py: its default shape, and one experiment."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_analysis import ACC, ENERGY, MODELS, PARAMS, _record, write_study

    from pepr_utils import records
    from pepr_utils.report.build import build_report

    default = write_study(root / "default")
    one = root / "one" / "runs"
    for i, model in enumerate(MODELS):
        for seed, noise in enumerate((-0.004, 0.004)):
            rec = _record(model, seed=seed, acc=ACC[i] + noise, energy=ENERGY[i] * (1 + noise), params=PARAMS[i])
            records.write_record(one / rec["run_id"], rec)
    out = {}
    for name, runs in (("synthetic", default), ("one experiment", one)):
        note(f"building the {name} report ...")
        out[name] = build_report(runs, root / f"report-{name.replace(' ', '-')}", budget={"energy_kwh": 0.01},
                                 n_boot=200) / "report.html"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="*", type=Path, help="report.html files (default with --synthetic: built here)")
    ap.add_argument("--synthetic", action="store_true", help="build and check the two synthetic reports")
    ap.add_argument("--screenshots", type=Path, help="write the first report's two screenshots into this folder")
    ap.add_argument("--keep", type=Path, help="with --synthetic: build the reports here (default: a temp folder)")
    args = ap.parse_args(argv)
    if not args.reports and not args.synthetic:
        ap.error("give report.html files, or --synthetic")
    chromium()  # before any long build: fail at once without a browser
    for var, sub in (("PEPR_REFERENCE_DIR", "reference/saintslab-pepr"),):
        if not os.environ.get(var) and (ROOT.parent / "shared" / sub).is_dir():
            os.environ[var] = str(ROOT.parent / "shared" / sub)
    os.environ.setdefault("MPLBACKEND", "Agg")
    tmp = None
    reports = {str(p): p for p in args.reports}
    if args.synthetic:
        base = args.keep or Path(tmp := tempfile.mkdtemp(prefix="pepr-bench-report-"))
        reports.update(synthetic_reports(base))
    short = []
    try:
        for i, (name, html) in enumerate(reports.items()):
            if not html.is_file():
                raise SystemExit(f"{html}: no such report (make study writes outputs/quick/report/report.html)")
            m = measure(html)
            note(f"{name}: {json.dumps(m)[:600]}")
            short += check(name, m)
            if args.screenshots and i == 0:
                for path in screenshots(html, args.screenshots, m["closed_scroll_height"]):
                    note(f"screenshot: {path} ({path.stat().st_size / 1024:.0f} kB)")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if short:
        print("bench_report_browser: FAILED\n  " + "\n  ".join(short), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
