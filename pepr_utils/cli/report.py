"""``pepr report RESULTS``: the analysis notebook executed on a set of run records, exported to HTML."""

from __future__ import annotations

import argparse

from ..resources import RESOURCES


def _cmd_report(args: argparse.Namespace) -> int:
    from ..report.build import HTML_NAME, build_report
    from ..score import parse_pairs

    out = build_report(
        args.results, args.out_dir,
        budget=parse_pairs(args.budget, "--budget", float),
        reference=parse_pairs(args.reference, "--reference", float),
        top_k=args.top_k, n_boot=args.n_boot, seed=args.seed, hide_code=not args.show_code,
        timeout_s=args.timeout,
    )
    print(f"report: {out / HTML_NAME} (figures/, tables/, summary.md and the executed notebook in {out})")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="PePR report over a set of run records (tables, figures, tests, HTML)",
        description="Execute notebooks/04_analysis on RESULTS (a results.csv from `pepr grid collect`, or run "
                    "folders holding result.json files) and write figures (PNG, PDF), tables (CSV, Markdown), "
                    "the executed notebook and a self-contained report.html into OUT_DIR.")
    p.add_argument("results", nargs="+", metavar="RESULTS", help="results.csv or run folder(s)")
    p.add_argument("-o", "--out-dir", default=None,
                   help="report folder (default: outputs/<study>/report, <study> = the folder holding RESULTS)")
    p.add_argument("--budget", action="append", default=[], metavar="RESOURCE=LIMIT",
                   help="resource limit for the 'which model should I use' table, RESOURCE one of "
                        f"{', '.join(r.column for r in RESOURCES)}, e.g. energy_kwh=0.01 (repeatable; "
                        "default: the study's median energy)")
    p.add_argument("--reference", action="append", default=[], metavar="RESOURCE=VALUE",
                   help=f"fixed reference R_ref for PePR = P/(1 + R/R_ref), RESOURCE one of "
                        f"{', '.join(r.key for r in RESOURCES)}, e.g. e=0.01 (repeatable; "
                        "default: the study-wide median of each resource)")
    p.add_argument("--top-k", type=int, default=5, help="models per experiment in the top-k tables (default 5)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for top-rank stability")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--show-code", action="store_true", help="keep the notebook's code in report.html")
    p.add_argument("--timeout", type=int, default=1800, help="seconds allowed per notebook cell")
    p.set_defaults(func=_cmd_report)
