"""The ``pepr`` command: score, data, models, grid and report.

Each subcommand is a thin wrapper over a library function. Problems the user can fix raise
:class:`~pepr_utils.errors.PeprError`, printed here as one line with exit status 2. So are bad
command lines (argparse's usage block is replaced by one line and a pointer to ``--help``) and
environment problems such as a read-only output folder (an ``OSError`` naming the path): the CLI
never prints a raw traceback for a user's mistake.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PeprError
from .checks import check_output_file

if TYPE_CHECKING:
    import pandas as pd


# --------------------------------------------------------------------------- score
def _cmd_score(args: argparse.Namespace) -> int:
    from ..fileio import atomic_path
    from ..score import check_rows, parse_pairs, pepr

    src = Path(args.input)
    if src.is_dir():
        raise PeprError(f"input {str(src)!r} is a folder; expected a CSV file with performance and resource columns")
    if not src.is_file():
        raise PeprError(f"input file {str(src)!r} not found; expected a CSV file with a performance and resource columns")
    out = check_output_file(args.output)
    try:
        perf_scale = float(args.perf_scale)
    except ValueError:
        raise PeprError(f"--perf-scale {args.perf_scale!r} is not a number; expected e.g. 100 for percentages") from None
    df = _read_input_csv(src)
    resources = parse_pairs(args.resource, "--resource")
    reference = parse_pairs(args.reference, "--reference", float)
    group = args.group if args.group else None
    check_rows(df, group=group, model=args.model)
    scored = pepr(df, args.perf, resources, group=group, reference=reference, perf_scale=perf_scale)
    with atomic_path(out) as tmp:
        scored.to_csv(tmp, index=False)
    print(f"wrote {args.output} ({len(scored)} rows; columns added: "
          + ", ".join(c for r in resources for c in (f"{r}_n", f"pepr_{r}")) + ")")
    return 0


def _read_input_csv(src: Path) -> pd.DataFrame:
    """The input table: UTF-8 text, each column named once (pandas would rename a second ``acc`` to
    ``acc.1`` and score the first without a word), at least one row."""
    import csv
    import io

    import pandas as pd

    from ..fileio import read_text

    text = read_text(src, "input file")
    header = next(csv.reader(io.StringIO(text)), [])
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise PeprError(f"input file {str(src)!r} names column(s) {', '.join(map(repr, repeated))} more than once "
                        "in its header; give each column one name")
    try:
        df = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PeprError(f"cannot read {str(src)!r} as CSV: {str(exc).splitlines()[0]}") from exc
    if not len(df):
        raise PeprError(f"input file {str(src)!r} has a header but no rows; expected one row per model")
    return df


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="add PePR columns to a results table",
                       description="PePR_R = P / (1 + R_n), R_n min-max normalised within each group "
                                   "(or R / R_ref with --reference).")
    p.add_argument("input", help="CSV file with one row per model (and experiment)")
    p.add_argument("--perf", required=True, help="performance column, e.g. test_acc (values in [0, 1])")
    p.add_argument("--perf-scale", default="1", metavar="S",
                   help="divide the performance column by S first, e.g. 100 when it holds percentages (default 1)")
    p.add_argument("-r", "--resource", action="append", required=True, metavar="NAME=COL",
                   help="a resource and its column, e.g. e=energy_kwh (repeatable)")
    p.add_argument("--group", action="append", metavar="COL",
                   help="column(s) defining one experiment for min-max normalisation (repeatable)")
    p.add_argument("--model", default="model", metavar="COL",
                   help="column naming the model; a model may appear once per group (default: model, when present)")
    p.add_argument("--reference", action="append", default=[], metavar="NAME=VALUE",
                   help="fixed-reference normalisation R_n = R / VALUE for that resource")
    p.add_argument("-o", "--output", required=True, help="output CSV (written atomically)")
    p.set_defaults(func=_cmd_score)


# --------------------------------------------------------------------------- entry point
class _Parser(argparse.ArgumentParser):
    """argparse, with a bad command line reported as one line (and where to look) instead of a usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="pepr", description="Performance per resource of medical-image classifiers.")
    parser.add_argument("--version", action="version", version=f"pepr {__version__}",
                        help="print the version of pepr_utils and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_score(sub)
    for add in _EXTRA_COMMANDS:
        add(sub)
    return parser


def _extra_commands() -> list:
    """The subcommands defined beside their own work: ``data``, ``grid``, ``models`` and ``report``."""
    from . import data, grid, models, report

    return [data.add_commands, grid.add_commands, models.add_commands, report.add_commands]


_EXTRA_COMMANDS: list = []


def main(argv: list[str] | None = None) -> int:
    global _EXTRA_COMMANDS
    _EXTRA_COMMANDS = _extra_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PeprError as exc:
        print(f"pepr {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # the environment, not a bug: a read-only folder, a full disk, a path that is a folder
        print(f"pepr {args.command}: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pepr {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _os_error(exc: OSError) -> str:
    """``cannot write '/x/y': Permission denied`` style: the path and the reason, one line."""
    reason = exc.strerror or type(exc).__name__
    if exc.filename is None:
        return _one_line(f"{reason}: {exc}")
    where = f"{str(exc.filename)!r}" + (f" -> {str(exc.filename2)!r}" if exc.filename2 else "")
    hint = {"PermissionError": "; choose a folder you can write to (e.g. --output-dir, -o, PEPR_OUTPUT_DIR)",
            "IsADirectoryError": "; expected a file path, not a folder",
            "NotADirectoryError": "; a part of that path is a file, not a folder"}.get(type(exc).__name__, "")
    return _one_line(f"{reason}: {where}{hint}")


if __name__ == "__main__":
    sys.exit(main())
