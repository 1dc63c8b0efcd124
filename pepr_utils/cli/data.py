"""``pepr data ...``: list the datasets, and prepare one at one size (what notebook 01 does)."""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import PeprError


def _parse_size(text: str) -> int:
    from ..data.datasets import check_size

    try:
        value: object = int(str(text).strip())
    except ValueError:
        value = text
    return check_size(value)


def _parse_fractions(texts: list[str]) -> list[float]:
    from ..data.preparation import check_fractions

    values = []
    for text in texts:
        try:
            values.append(float(text))
        except ValueError:
            raise PeprError(f"--fractions {text!r} is not a number; expected values in (0, 1], e.g. 1.0 0.1 0.01") from None
    return check_fractions(values)


def _cmd_prepare(args: argparse.Namespace) -> int:
    from ..data.datasets import dataset_info

    dataset_info(args.dataset)  # unknown names fail before any work, listing the valid ones
    size = _parse_size(args.size)
    fractions = _parse_fractions(args.fractions)
    from ..params import check_param

    seed = check_param("seed", args.seed)  # the grid's rule: an integer >= 0

    from tabulate import tabulate

    from ..data.preparation import prepare

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = prepare(args.dataset, size, fractions, seed, data_dir=args.data_dir, out_dir=args.out_dir,
                         cache_dir=args.cache_dir, progress=not args.no_progress)
    for w in caught:  # a non-official file, a one-class training split: one line each, not a traceback-style warning
        one_class = "one class" in str(w.message)  # a split no model can learn from: a warning, on stderr
        print(f"{'warning' if one_class else 'note'}: {w.message}", file=sys.stderr if one_class else sys.stdout)
    src = result.dataset.source
    print(f"{args.dataset} at {size} px from {src['path']} ({src['origin']}, "
          f"{'official' if src['official'] else 'NOT the official file'}"
          + (f", resized from {src['resized_from']} px" if src.get("resized_from") else "") + ")")
    print(tabulate(result.split_table, headers="keys", showindex=False, tablefmt="simple"))
    print()
    print(tabulate(result.pixel_stats, headers="keys", showindex=False, tablefmt="simple"))
    print(f"\nwrote {result.out_dir}/ (manifest.json, split_table.csv, pixel_stats.csv, samples.png)")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..data.datasets import dataset_info, dataset_names

    rows = []
    for name in dataset_names():
        info = dataset_info(name)
        n = sum(info.n_samples.values()) if info.n_samples else None
        rows.append({"dataset": name, "task": info.task, "channels": info.n_channels, "classes": info.n_classes,
                     "images": n, "official sizes": " ".join(map(str, sorted(info.files))) or "-"})
    print(tabulate(rows, headers="keys", tablefmt="simple", missingval="-"))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="list datasets; prepare one dataset at one size (notebook 01)")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    p = data_sub.add_parser("prepare", help="load a dataset at a size; write class counts, samples, pixel stats, manifest",
                            description="Load (or download) a dataset at one size, then write split/fraction class "
                                        "counts, a sample grid, pixel statistics and a manifest.json to --out-dir.")
    p.add_argument("--dataset", required=True, help="a MedMNIST 2D flag (dermamnist, pneumoniamnist, ...) or lidc")
    p.add_argument("--size", default="28", help="image size in px: 28, 64, 128, 224 or 256 (default 28)")
    p.add_argument("--fractions", nargs="+", default=["1.0", "0.1", "0.01"], metavar="F",
                   help="training fractions in (0, 1] (default 1.0 0.1 0.01)")
    p.add_argument("--seed", default="0", help="seed of the training fractions (default 0)")
    p.add_argument("--data-dir", default=None, help="local dataset files (default PEPR_DATA_DIR)")
    p.add_argument("--out-dir", default=None, help="where to write (default <PEPR_OUTPUT_DIR>/data/<dataset>-<size>px)")
    p.add_argument("--cache-dir", default=None, help="downloads and decoded data (default PEPR_CACHE_DIR)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_prepare)

    ls = data_sub.add_parser("list", help="the dataset names, tasks and official sizes")
    ls.set_defaults(func=_cmd_list)
