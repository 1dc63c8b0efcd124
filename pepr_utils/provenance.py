"""Which pepr_utils a run used: the package's own version and commit, wherever it is installed.

Why not just ``git rev-parse`` next to the package: installed into a virtual environment that lies inside
some other git repository (a user's project), that names the *other* repository's commit; on Colab or
from a wheel it finds nothing. So the commit comes only from where this package itself came from:

1. an install from a VCS URL (``pip install "pepr-utils @ git+https://...@v0.1.0"``, the Colab cell):
   pip writes PEP 610's ``direct_url.json`` with the exact commit it checked out (``vcs_info.commit_id``);
2. a checkout (``make setup``'s editable install, or the source folder on ``sys.path``): git in the folder
   that holds ``pepr_utils/``, only when that folder is the repository's top level and git tracks
   ``pepr_utils/__init__.py`` there; "-dirty" when pepr_utils has uncommitted changes;
3. anything else (a wheel, ``pip install DIR``, a copied folder): no commit (None); the version names the
   release.

PEP 610 rather than setuptools-scm: nothing added to the build, it works for every pip install, and it
tells an exact VCS checkout (commit known) from a folder install (commit unknowable: the folder may have
changed since), where setuptools-scm would need a git tree at build time and put a guess in the version.
"""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__

DIST = "pepr-utils"
PACKAGE_DIR = Path(__file__).resolve().parent


def _direct_url() -> dict[str, Any] | None:
    """PEP 610 ``direct_url.json`` of the installed distribution that *is* this imported package, or None."""
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        return None
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    vcs = json.loads(text)
    if "vcs_info" in vcs and Path(str(dist.locate_file("pepr_utils/__init__.py"))).resolve().parent != PACKAGE_DIR:
        return None  # another copy's metadata (e.g. a checkout on sys.path shadows an installed wheel)
    return vcs


def _git(folder: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def checkout_commit(package_dir: Path = PACKAGE_DIR) -> str | None:
    """HEAD of the pepr checkout that holds ``package_dir`` (+ "-dirty"), or None when it is not one."""
    root = package_dir.parent
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return None  # not a repository, or the package sits inside another one (site-packages in a repo)
    if _git(root, "ls-files", "--error-unmatch", f"{package_dir.name}/__init__.py") is None:
        return None  # a repository, but not one that tracks this package
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return None
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no", "--", package_dir.name)
    return commit + ("-dirty" if dirty else "")


def package_provenance() -> dict[str, Any]:
    """``{"pepr_utils": version, "git_commit": commit or None, "pepr_source": where it came from}``.

    ``pepr_source``: ``git+URL@REVISION`` for a VCS install, ``checkout`` for a git checkout, else the
    install's URL (a folder or archive) or ``"installed"`` (a wheel, no PEP 610 record).
    """
    direct = _direct_url()
    if direct and "vcs_info" in direct:
        vcs = direct["vcs_info"]
        revision = vcs.get("requested_revision") or vcs["commit_id"]
        return {"pepr_utils": __version__, "git_commit": vcs["commit_id"],
                "pepr_source": f"{vcs.get('vcs', 'git')}+{direct['url']}@{revision}"}
    commit = checkout_commit()
    if commit is not None:
        return {"pepr_utils": __version__, "git_commit": commit, "pepr_source": "checkout"}
    return {"pepr_utils": __version__, "git_commit": None,
            "pepr_source": direct["url"] if direct else "installed"}
