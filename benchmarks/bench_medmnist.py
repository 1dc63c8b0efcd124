"""One epoch of our training (with its evaluation) vs MedMNIST's reference script, side by side.

The reference is ``MedMNIST/experiments/MedMNIST2D/train_and_eval_pytorch.py``'s loop reimplemented
faithfully: ``medmnist``'s dataset class (``PneumoniaMNIST`` over the same npz file) with
``transforms.Compose([ToTensor(), Normalize(mean=[.5], std=[.5])])``, ``torch.utils.data.DataLoader``
(batch 32, shuffled for training; ``train_loader_at_eval``, val and test loaders unshuffled), Adam,
``CrossEntropyLoss`` with ``torch.squeeze(targets, 1).long()``, then per epoch ``test()`` on train, val
and test (``model.eval()``, ``torch.no_grad()``, softmax, the loss, ``medmnist.Evaluator``'s AUC/ACC).
Ours is one epoch of :func:`pepr_utils.train.loop.fit` over :class:`~pepr_utils.data.batches.Batches`, with the
evaluation our runs do every epoch (val and test: ACC, AUC, balanced accuracy, macro-F1; the train
accuracy comes from the training pass). Same model (the same initial weights), same images, batch 32,
same threads. Goal: ours >= 2x.

    .venv/bin/python benchmarks/bench_medmnist.py [--keep 0.15] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import interleave, median, note, report, setup_env
from torch import nn


def _subset_npz(src: Path, dst: Path, keep: float) -> None:
    """The first ``keep`` share of every split of a MedMNIST npz (the same images both loops see)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k][: max(1, int(len(z[k]) * keep))] for k in z.files}
    np.savez(dst, **arrays)


def reference_epoch(model: nn.Module, root: str, flag: str = "pneumoniamnist", batch_size: int = 32,
                    lr: float = 5e-4) -> float:
    """One epoch of MedMNIST's ``train_and_eval_pytorch.py`` (train, then test() on train/val/test)."""
    import medmnist
    import torch.utils.data as data
    import torchvision.transforms as transforms
    from medmnist import INFO, Evaluator

    info = INFO[flag]
    DataClass = getattr(medmnist, info["python_class"])
    data_transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=[.5], std=[.5])])
    train_dataset = DataClass(split="train", transform=data_transform, download=False, root=root)
    train_dataset_at_eval = DataClass(split="train", transform=data_transform, download=False, root=root)
    val_dataset = DataClass(split="val", transform=data_transform, download=False, root=root)
    test_dataset = DataClass(split="test", transform=data_transform, download=False, root=root)
    train_loader = data.DataLoader(dataset=train_dataset, batch_size=batch_size, shuffle=True)
    train_loader_at_eval = data.DataLoader(dataset=train_dataset_at_eval, batch_size=batch_size, shuffle=False)
    val_loader = data.DataLoader(dataset=val_dataset, batch_size=batch_size, shuffle=False)
    test_loader = data.DataLoader(dataset=test_dataset, batch_size=batch_size, shuffle=False)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    device = torch.device("cpu")

    model.train()
    total_loss = []
    for inputs, targets in train_loader:
        optimizer.zero_grad()
        outputs = model(inputs.to(device))
        targets = torch.squeeze(targets, 1).long().to(device)
        loss = criterion(outputs, targets)
        total_loss.append(loss.item())
        loss.backward()
        optimizer.step()

    def test(split, loader):
        evaluator = Evaluator(flag, split, root=root)
        model.eval()
        losses = []
        y_score = torch.tensor([]).to(device)
        with torch.no_grad():
            for inputs, targets in loader:
                outputs = model(inputs.to(device))
                targets = torch.squeeze(targets, 1).long().to(device)
                losses.append(criterion(outputs, targets).item())
                outputs = nn.Softmax(dim=1)(outputs).to(device)
                y_score = torch.cat((y_score, outputs), 0)
            y_score = y_score.detach().cpu().numpy()
            auc, acc = evaluator.evaluate(y_score)
        return sum(losses) / len(losses), auc, acc

    for split, loader in (("train", train_loader_at_eval), ("val", val_loader), ("test", test_loader)):
        test(split, loader)
    return sum(total_loss) / len(total_loss)


def our_epoch(model: nn.Module, data) -> float:
    from pepr_utils.data.batches import Batches
    from pepr_utils.params import RunParams
    from pepr_utils.train.loop import fit

    result = fit(model, Batches(data.splits["train"], 32, shuffle=True, seed=0),
                 val_batches=Batches(data.splits["val"], 256), test_batches=Batches(data.splits["test"], 256),
                 task=data.info.task,
                 params=RunParams(model="bench", dataset=data.info.name, epochs=1), progress=False)
    return result.history[0]["train_loss"]


def goal(*, model_name: str = "resnet18d", keep: float = 0.15, repeats: int = 3, threads: int = 1) -> str:
    """``make bench``: one epoch with evaluation, ours vs the reference (goal >= 2x)."""
    from pepr_utils import settings
    from pepr_utils.data.datasets import load_dataset
    from pepr_utils.models.build import create_model

    setup_env()
    torch.set_num_threads(threads)
    flag = "pneumoniamnist"
    src = Path(settings.data_dir()) / f"{flag}.npz"
    with tempfile.TemporaryDirectory(prefix="bench-medmnist-") as root:
        _subset_npz(src, Path(root) / f"{flag}.npz", keep)
        data = load_dataset(flag, 28, data_dir=root, cache_dir=os.path.join(root, "cache"), progress=False)
        torch.manual_seed(0)
        initial, _ = create_model(model_name, data.n_classes, data.n_channels)
        # medmnist's classes assert the official split sizes: declare the subset's for this benchmark
        from medmnist import INFO

        official = INFO[flag]["n_samples"]
        INFO[flag]["n_samples"] = {k: len(v) for k, v in data.splits.items()}
        try:
            our_epoch(copy.deepcopy(initial), data)  # warm-up of both (allocator, kernels, imports)
            reference_epoch(copy.deepcopy(initial), root)
            times = interleave({"ours": lambda: our_epoch(copy.deepcopy(initial), data) and None,
                                "reference": lambda: reference_epoch(copy.deepcopy(initial), root) and None},
                               repeats, clock=time.process_time)
        finally:
            INFO[flag]["n_samples"] = official
    ratio = median(times["reference"]) / median(times["ours"])
    n = {k: len(v) for k, v in data.splits.items()}
    note(f"medmnist: {model_name}, {flag} 28 px ({n['train']}/{n['val']}/{n['test']} images, {keep:.0%} of each "
         f"split), batch 32, {threads} thread(s): ours {median(times['ours']):.1f}, MedMNIST's loop "
         f"{median(times['reference']):.1f} CPU-s per epoch with evaluation")
    return report("epoch_vs_medmnist_script", f"{ratio:.2f}x", ">= 2x", ratio >= 2)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18d")
    ap.add_argument("--keep", type=float, default=0.15, help="share of every split used (default 0.15)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    goal(model_name=args.model, keep=args.keep, repeats=args.repeats, threads=args.threads)


if __name__ == "__main__":
    main()
