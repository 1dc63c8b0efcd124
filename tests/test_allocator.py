"""The glibc malloc settings: freed large buffers are kept and reused instead of page-faulted back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pepr_utils.train.allocator import MALLOC_ENV, keep_freed_memory

# Allocate and free a 64 MB buffer (as a training step does with its activations), then ask glibc
# (mallinfo2) how much freed memory the process still holds for reuse.
PROBE = """
import ctypes, json, sys
import numpy as np
from pepr_utils.train.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "tune" else False
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
if not hasattr(libc, "mallinfo2"):
    print(json.dumps({"skip": True})); sys.exit()
libc.mallinfo2.restype = MallInfo2
a = np.ones(8 * 2**20)  # 64 MB, above glibc's default mmap threshold
del a
print(json.dumps({"applied": applied, "kept": libc.mallinfo2().fordblks}))
"""


def _probe(mode: str, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**base, **env}, capture_output=True,
                         text=True, check=True)
    result = json.loads(out.stdout)
    if result.get("skip"):
        pytest.skip("this C library has no mallinfo2")
    return result


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_memory_is_kept_for_reuse():
    size = 64 * 2**20
    default, tuned = _probe("default"), _probe("tune")
    assert tuned["applied"] is True
    assert default["kept"] < size // 2  # glibc unmapped the buffer: the next batch faults it back in
    assert tuned["kept"] >= size        # kept in the process for the next allocation
    assert _probe("default", **MALLOC_ENV)["kept"] >= size  # the grid's way: the same settings from start


def test_the_users_own_settings_win(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert keep_freed_memory() is False
