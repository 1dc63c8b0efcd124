"""The ``pepr`` command: score, data, models, grid and report.

Each subcommand is a thin wrapper over a library function. Problems the user can fix raise
:class:`~pepr_utils.errors.PeprError`, printed here as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import PeprError


# --------------------------------------------------------------------------- score
def _cmd_score(args: argparse.Namespace) -> int:
    import pandas as pd

    from .fileio import atomic_path
    from .score import parse_pairs, pepr

    src = Path(args.input)
    if not src.is_file():
        raise PeprError(f"input file {str(src)!r} not found; expected a CSV file with a performance and resource columns")
    try:
        df = pd.read_csv(src)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise PeprError(f"cannot read {str(src)!r} as CSV: {str(exc).splitlines()[0]}") from exc
    resources = parse_pairs(args.resource, "--resource")
    reference = parse_pairs(args.reference, "--reference", float)
    group = args.group if args.group else None
    scored = pepr(df, args.perf, resources, group=group, reference=reference)
    with atomic_path(args.output) as tmp:
        scored.to_csv(tmp, index=False)
    print(f"wrote {args.output} ({len(scored)} rows; columns added: "
          + ", ".join(c for r in resources for c in (f"{r}_n", f"pepr_{r}")) + ")")
    return 0


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="add PePR columns to a results table",
                       description="PePR_R = P / (1 + R_n), R_n min-max normalised within each group "
                                   "(or R / R_ref with --reference).")
    p.add_argument("input", help="CSV file with one row per model (and experiment)")
    p.add_argument("--perf", required=True, help="performance column, e.g. test_acc")
    p.add_argument("--resource", action="append", required=True, metavar="NAME=COL",
                   help="a resource and its column, e.g. e=energy_kwh (repeatable)")
    p.add_argument("--group", action="append", metavar="COL",
                   help="column(s) defining one experiment for min-max normalisation (repeatable)")
    p.add_argument("--reference", action="append", default=[], metavar="NAME=VALUE",
                   help="fixed-reference normalisation R_n = R / VALUE for that resource")
    p.add_argument("-o", "--output", required=True, help="output CSV (written atomically)")
    p.set_defaults(func=_cmd_score)


# --------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pepr", description="Performance per resource of medical-image classifiers.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_score(sub)
    for add in _EXTRA_COMMANDS:
        add(sub)
    return parser


def _extra_commands() -> list:
    """Subcommands defined beside their own modules (``pepr_utils/cli_*.py``)."""
    import importlib
    import pkgutil

    from . import __path__ as pkg_path

    adders = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg_path) if m.name.startswith("cli_")):
        adders.append(importlib.import_module(f"pepr_utils.{mod}").add_commands)
    return adders


_EXTRA_COMMANDS: list = []


def main(argv: list[str] | None = None) -> int:
    global _EXTRA_COMMANDS
    _EXTRA_COMMANDS = _extra_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PeprError as exc:
        print(f"pepr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pepr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
