"""``pepr models ...``: list a model catalogue, and check which models run at a given input size."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import PeprError


def _parse_size(text: str) -> int:
    from ..models.input_plan import MAX_SIZE, MIN_SIZE

    try:
        size = int(str(text).strip())
    except ValueError:
        size = None
    if size is None or not MIN_SIZE <= size <= MAX_SIZE:
        raise PeprError(f"--size {text!r} is not valid; expected an integer number of pixels from {MIN_SIZE} to {MAX_SIZE}")
    return size


def _names(args: argparse.Namespace) -> tuple[list[str], str]:
    """The models to check and a label for the output file name."""
    from ..models.catalogue import catalogue_models, resolve_model

    if args.models:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
        if not names:
            raise PeprError(f"--models {args.models!r} names no model; expected a comma-separated list of timm names")
        for n in names:
            resolve_model(n)  # unknown names fail here, before any work, with close names suggested
        return names, "selected"
    return catalogue_models(args.catalogue), args.catalogue


def _cmd_check(args: argparse.Namespace) -> int:
    size = _parse_size(args.size)
    if args.threads is not None and args.threads < 1:
        raise PeprError(f"--threads {args.threads} is not valid; expected a positive integer")
    names, label = _names(args)

    import torch
    from tabulate import tabulate

    from ..fileio import atomic_path
    from ..models.check import check_models
    from ..settings import output_dir
    from .checks import check_output_file

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.output) if args.output else output_dir() / "models" / f"check_{label}_{size}px.csv"
    check_output_file(out)  # a folder or a path under a file fails now, not after checking every model
    df = check_models(names, size, progress=not args.no_progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)

    shown = df[["model", "status", "run_size", "reason", "num_params", "params_match_paper", "check_s"]].copy()
    shown["reason"] = shown["reason"].str.slice(0, 70)
    print(tabulate(shown, headers="keys", showindex=False, tablefmt="simple", missingval="-"))
    counts = df["status"].value_counts()
    print(f"\n{int(counts.get('ok', 0))} of {len(df)} models run at {size} px; "
          f"{int(counts.get('resize', 0))} need another size; {int(counts.get('incompatible', 0))} incompatible "
          f"({df['check_s'].sum():.0f} s, {torch.get_num_threads()} threads). Wrote {out}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..models.catalogue import load_catalogue

    df = load_catalogue(args.catalogue)
    shown = df[["model", "type", "efficient", "paper_num_params", "timm_name"]].astype(object)
    print(tabulate(shown.where(shown.notna(), ""), headers="keys", showindex=False))
    print(f"\n{len(df)} models in catalogue {args.catalogue!r}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="model catalogues: list them, check which models run at a size")
    msub = models.add_subparsers(dest="models_command", required=True)

    check = msub.add_parser(
        "check", help="build each model and run a forward and backward pass at one input size",
        description="Build each model with timm (random init, 3 channels, 2 classes), run forward and backward "
                    "on 2 images at --size px, and report per model: exists in this timm, parameter count, and "
                    "ok or why not (e.g. needs exactly 256 px). Prints a table and writes a CSV.")
    check.add_argument("--size", default="28", help="input size in pixels (default 28)")
    which = check.add_mutually_exclusive_group()
    which.add_argument("--catalogue", default="paper131", help="catalogue in parameters/models (default paper131)")
    which.add_argument("--models", help="comma-separated timm model names instead of a catalogue")
    check.add_argument("-o", "--output", help="CSV to write (default <output dir>/models/check_<catalogue>_<size>px.csv)")
    check.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    check.add_argument("--no-progress", action="store_true", help="no progress bar")
    check.set_defaults(func=_cmd_check)

    lst = msub.add_parser("list", help="show a model catalogue")
    lst.add_argument("--catalogue", default="paper131", help="catalogue in parameters/models (default paper131)")
    lst.set_defaults(func=_cmd_list)
