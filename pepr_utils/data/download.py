"""Downloads with a checksum, retries and mirrors (through pooch), cached, and never in offline mode.

Every file pepr fetches has a known checksum; a download that does not match is deleted and
reported, never used. Air-gapped users put the same file in a local folder instead (that path does
not come here at all). Each URL is tried ``RETRIES + 1`` times, then each mirror in turn: Zenodo,
which serves MedMNIST, has outages, and a checksum makes any mirror as good as the original.

Mirrors: ``MIRRORS`` maps a URL prefix to alternative prefixes; ``PEPR_MIRRORS`` adds more, as
space-separated ``PREFIX=ALTERNATIVE`` pairs (e.g. a lab's copy of the MedMNIST files:
``PEPR_MIRRORS="https://zenodo.org/records/10519652/files/=https://files.mylab.org/medmnist/"``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PeprError
from ..fileio import file_digest
from ..settings import offline as offline_setting

RETRIES = 2
#: URL prefix -> alternative prefixes serving the same files (checked against the same checksum).
MIRRORS: dict[str, tuple[str, ...]] = {
    # GitHub raw files (the paper's CSVs at a pinned commit) are also served by jsDelivr's GitHub CDN.
    "https://raw.githubusercontent.com/saintslab/PePR/": ("https://cdn.jsdelivr.net/gh/saintslab/PePR@",),
}


def mirror_urls(url: str, env: str | None = None) -> list[str]:
    """``url`` followed by the same file at every known mirror, in the order they are tried."""
    table = {k: list(v) for k, v in MIRRORS.items()}
    for pair in (os.environ.get("PEPR_MIRRORS", "") if env is None else env).split():
        prefix, _, alternative = pair.partition("=")
        if not alternative:
            raise PeprError(f"PEPR_MIRRORS entry {pair!r} is not PREFIX=ALTERNATIVE")
        table.setdefault(prefix, []).append(alternative)
    urls = [url]
    for prefix, alternatives in table.items():
        if url.startswith(prefix):
            urls += [alt + url[len(prefix):] for alt in alternatives]
    return urls


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    offline: bool | None = None,
    timeout: float = 60.0,
) -> Path:
    """Return ``dest``, downloading ``url`` (or a mirror of it) there first if it is missing or fails its checksum.

    Raises PeprError in offline mode (naming the file and where to put it), or when every URL failed
    (each one's reason listed; a checksum mismatch is one of them, and its file is discarded).
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
    import pooch

    pooch.get_logger().setLevel("WARNING")
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for candidate in mirror_urls(url):
        store = pooch.create(path=dest.parent, base_url="", registry={dest.name: f"{algorithm}:{expected}"},
                             urls={dest.name: candidate}, retry_if_failed=RETRIES)
        try:
            store.fetch(dest.name, downloader=pooch.HTTPDownloader(progressbar=True, timeout=timeout))
            return dest
        except ValueError as exc:  # pooch: hash mismatch (its temporary file is already gone)
            message = " ".join(str(exc).split())
            failures.append(f"{candidate}: checksum mismatch ({message}); the file was discarded")
        except Exception as exc:  # noqa: BLE001 - requests/OS errors: try the next mirror, report them all
            failures.append(f"{candidate}: {type(exc).__name__}: {exc}")
    raise PeprError(f"could not download {dest.name} ({algorithm} {expected}): " + "; ".join(failures))
