"""CUDA-path faults the GPU device check is about that a CPU can reproduce (no GPU, no training)."""

from __future__ import annotations

import pytest
import torch

CUDA_ABSENT = pytest.mark.filterwarnings("ignore:.*CUDA is not available")  # autocast/GradScaler made on a CPU


@CUDA_ABSENT
@pytest.mark.parametrize("capability, dtype", [((7, 5), torch.float16), ((7, 0), torch.float16),
                                               ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_bf16_only_where_the_gpu_has_it(monkeypatch, capability, dtype):
    """A T4 (7.5, Colab's) or V100 (7.0) emulates bf16, and torch.cuda.is_bf16_supported() says yes to it by
    default: those GPUs must take fp16 autocast with a GradScaler, not emulated bf16."""
    from pepr_utils.train import loop

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.version, "hip", None)
    _, got = loop.autocast_for(torch.device("cuda:0"), amp=True)
    assert got == dtype
    scaler = loop.grad_scaler("cuda:0")
    assert (scaler is not None) == (dtype == torch.float16)


@CUDA_ABSENT
def test_bf16_is_decided_by_the_runs_own_gpu(monkeypatch):
    """cuda:1 on a machine whose current GPU (0) is an A100 and GPU 1 a T4: GPU 1 decides."""
    from pepr_utils.train import loop

    caps = {0: (8, 0), 1: (7, 5)}
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: caps[0 if device is None else device])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: caps[0][0] >= 8)
    monkeypatch.setattr(torch.version, "hip", None)
    assert loop.autocast_for(torch.device("cuda:1"), amp=True)[1] == torch.float16
    assert loop.autocast_for(torch.device("cuda"), amp=True)[1] == torch.bfloat16
    assert loop.autocast_for(torch.device("cuda:1"), amp=False)[1] is None
