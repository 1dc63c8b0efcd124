"""The cost pilot behind a study's choice of models: CPU-seconds per training epoch for each candidate.

For each candidate architecture (by default the paper's catalogue up to ``--max-params`` ImageNet
parameters, plus the models named with ``--extra``), at the study's image size and on one thread (what
each of 2 grid workers on 2 cores gets):

* the input-size policy (``models.plan_input``): runs at the data size, needs a resize, or cannot run;
* the parameters at the study's classes and channels (not timm's ImageNet count);
* CPU-seconds of this process for ``--images`` training images (Adam, batch 32, the recipe of notebook
  02 through ``train.loop.fit``), scaled to one epoch on the whole training split, and for one
  evaluation pass of val + test.

From these it prints what one run of each study cell would cost (``--cells``: fraction x epochs, val and
test evaluated every epoch) and writes the table, sorted by parameters, to ``--out`` (CSV, atomically).
CPU time rather than wall time, so that a machine shared with other jobs still gives usable numbers; it
is a per-run cost and leaves out the run's overhead (notebook, kernel, data loading), which ``pepr grid
status`` reports from a real grid.

    .venv/bin/python tools/cost_pilot.py                                  # the paper's models <= 22M
    .venv/bin/python tools/cost_pilot.py --models resnet18d lcnet_035 --images 320
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_EXTRA = ("lcnet_035", "lcnet_050", "mobilenetv3_small_050", "tinynet_e",
                 "tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2")
DEFAULT_CELLS = ("1.0x1", "0.3x3", "0.1x10")


def parse_cell(text: str) -> tuple[float, int]:
    """``"0.1x10"`` -> (0.1, 10): a training fraction and its epochs."""
    try:
        frac, epochs = text.lower().split("x")
        f, e = float(frac), int(epochs)
    except ValueError:
        raise SystemExit(f"cost_pilot: cell {text!r} is not FRACTIONxEPOCHS, e.g. 0.1x10") from None
    if not 0 < f <= 1 or e < 1:
        raise SystemExit(f"cost_pilot: cell {text!r}: the fraction must be in (0, 1] and the epochs >= 1")
    return f, e


def candidates(max_params: float, extra: list[str]) -> list[str]:
    """The paper's models up to ``max_params`` (ImageNet count), smallest first, then the extras."""
    from pepr_utils.models.catalogue import load_catalogue

    cat = load_catalogue()
    names = cat[cat["paper_num_params"] <= max_params].sort_values("paper_num_params")["model"].tolist()
    return names + [m for m in extra if m not in names]


def measure(name: str, data, size: int, images: int, threads: int, max_resize: float = 1.5) -> dict:
    """One candidate's plan, parameters and CPU-seconds per training image and per evaluated image."""
    import torch

    from pepr_utils.data.batches import Batches
    from pepr_utils.models import create_model, plan_input
    from pepr_utils.params import RunParams
    from pepr_utils.train.loop import evaluate, fit

    row: dict = {"model": name}
    plan = plan_input(name, size)
    row.update(plan_status=plan.status, run_size=plan.run_size, reason=plan.reason)
    if plan.status == "incompatible" or (plan.status == "resize" and plan.run_size > max_resize * size):
        return row  # a model resized far beyond the data costs (run_size / size)^2 times more per image
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net, _ = create_model(name, data.n_classes, data.n_channels)
    row["num_params"] = sum(p.numel() for p in net.parameters())
    train = data.splits["train"].subset(torch.arange(images).numpy())
    out = plan.run_size
    params = RunParams(model=name, dataset=data.name, epochs=1, batch_size=32, lr=5e-4)
    fit(copy.deepcopy(net), Batches(train, 32, shuffle=True, out_size=out), task=data.info.task,
        params=params, progress=False)  # warm-up: first-call allocations and kernel choices
    t0 = time.process_time()
    fit(net, Batches(train, 32, shuffle=True, out_size=out), task=data.info.task, params=params, progress=False)
    row["train_cpu_s_per_image"] = (time.process_time() - t0) / images
    held = data.splits["test"].subset(torch.arange(min(images, len(data.splits["test"].labels))).numpy())
    t0 = time.process_time()
    evaluate(net, Batches(held, 256, out_size=out), data.info.task)
    row["eval_cpu_s_per_image"] = (time.process_time() - t0) / len(held.labels)
    return row


def run_cost(row: dict, n_train: int, n_eval: int, fraction: float, epochs: int) -> float:
    """CPU-seconds of one run: ``epochs`` passes over ``fraction`` of the training split, val+test each epoch."""
    per_epoch = math.ceil(fraction * n_train) * row["train_cpu_s_per_image"] + n_eval * row["eval_cpu_s_per_image"]
    return epochs * per_epoch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="pneumoniamnist")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--max-params", type=float, default=22e6, help="largest ImageNet parameter count taken "
                        "from the paper's catalogue (default 22e6)")
    parser.add_argument("--extra", nargs="*", default=list(DEFAULT_EXTRA), help="models beyond the paper's")
    parser.add_argument("--models", nargs="*", help="measure exactly these (instead of catalogue + extras)")
    parser.add_argument("--images", type=int, default=256, help="training images timed per model (default 256)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: 2 workers on 2 cores)")
    parser.add_argument("--cells", nargs="*", default=list(DEFAULT_CELLS), help="study cells FRACTIONxEPOCHS")
    parser.add_argument("--max-resize", type=float, default=1.5, help="time a model that needs a resize only up to "
                        "this factor of the data size (default 1.5: 28 -> 42 px; 256 px models are not timed)")
    parser.add_argument("--out", default="outputs/pilot/cost_pilot.csv")
    args = parser.parse_args(argv)
    cells = [parse_cell(c) for c in args.cells]
    if args.images < 32:
        raise SystemExit(f"cost_pilot: --images {args.images} is too few; at least 32 (one batch)")

    import pandas as pd
    from tqdm.auto import tqdm

    from pepr_utils import settings
    from pepr_utils.data import load_dataset
    from pepr_utils.fileio import atomic_write_csv

    warnings.filterwarnings("ignore")
    data = load_dataset(args.dataset, args.size, data_dir=settings.data_dir(), progress=False)
    n_train = len(data.splits["train"].labels)
    n_eval = len(data.splits["val"].labels) + len(data.splits["test"].labels)
    names = args.models or candidates(args.max_params, args.extra)
    rows = []
    for name in (bar := tqdm(names, desc="cost pilot", unit="model")):
        bar.set_postfix_str(name)
        try:
            rows.append(measure(name, data, args.size, args.images, args.threads, args.max_resize))
        except Exception as exc:  # a candidate that breaks is a finding of the pilot, not its end
            rows.append({"model": name, "plan_status": "error", "reason": f"{type(exc).__name__}: {exc}"[:200]})
    table = pd.DataFrame(rows)
    timed = table["train_cpu_s_per_image"].notna() if "train_cpu_s_per_image" in table else table["model"].isna()
    table.loc[timed, "epoch_cpu_s"] = table.loc[timed, "train_cpu_s_per_image"] * n_train
    for frac, epochs in cells:
        col = f"run_cpu_s_{frac:g}x{epochs}"
        table.loc[timed, col] = [run_cost(r, n_train, n_eval, frac, epochs) for r in table[timed].to_dict("records")]
    table = table.sort_values("num_params", na_position="last") if "num_params" in table else table
    from pepr_utils.models.catalogue import catalogue_models

    table.insert(1, "in_paper", table["model"].isin(catalogue_models()))
    atomic_write_csv(args.out, table)
    shown = [c for c in ("model", "in_paper", "plan_status", "run_size", "num_params", "epoch_cpu_s",
                         *[f"run_cpu_s_{f:g}x{e}" for f, e in cells]) if c in table]
    print(f"{args.dataset} {args.size} px, {args.threads} thread(s), {args.images} images timed per model; "
          f"epoch = {n_train} training images; eval = {n_eval} val+test images per epoch")
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
