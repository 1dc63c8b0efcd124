"""Downloads with a checksum, cached, and never in offline mode.

Every file pepr fetches has a known checksum; a download that does not match is deleted and
reported, never used. Air-gapped users put the same file in a local folder instead.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .errors import PeprError
from .fileio import atomic_path, file_digest
from .settings import offline as offline_setting


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    offline: bool | None = None,
    timeout: float = 60.0,
) -> Path:
    """Return ``dest``, downloading ``url`` there first if it is missing or fails its checksum.

    Raises PeprError in offline mode (naming the file and where to put it) or on a checksum mismatch.
    """
    dest = Path(dest)
    if sha256 is None and md5 is None:
        raise PeprError(f"refusing to download {url} without a checksum")
    algorithm, expected = ("sha256", sha256) if sha256 else ("md5", md5)
    if dest.exists() and file_digest(dest, algorithm) == expected:
        return dest
    if offline_setting(offline):
        raise PeprError(f"{dest.name} is not available locally and offline mode forbids downloading it "
                        f"(looked for {dest}); put the file there or in the local data/weights/reference dir")
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}", leave=False) as bar:
                    while block := resp.read(1 << 20):
                        out.write(block)
                        bar.update(len(block))
            got = file_digest(tmp, algorithm)
            if got != expected:
                raise PeprError(f"checksum mismatch for {url}: {algorithm} {got}, expected {expected}; the file was discarded")
    except PeprError:
        raise
    except OSError as exc:
        raise PeprError(f"could not download {url}: {exc}") from exc
    return dest
