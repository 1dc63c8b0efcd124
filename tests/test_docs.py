"""README.md and docs/*.md: the README stays a five-minute read, every docs page is reachable from it, and
every relative link (and its #anchor) leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT, load_tool

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_LIMIT = 8000  # characters

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*[\"'])?\s*\)")  # [text](target) and ![alt](target)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # https:, mailto:, ...


def prose_lines(text: str, *, keep_code: bool = False) -> list[str]:
    """The lines outside fenced code blocks; inline code spans blanked (a link there is no link), or with
    ``keep_code`` only their backticks dropped (a heading's anchor keeps the code's text)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line.replace("`", "") if keep_code else re.sub(r"`[^`]*`", "``", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces
    to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text(encoding="utf-8"), keep_code=True):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def relative_links(path: Path) -> list[str]:
    return [t for line in prose_lines(path.read_text(encoding="utf-8")) for t in _LINK.findall(line)
            if not _SCHEME.match(t)]


def test_slug_follows_github():
    assert slug("The quick study (make study)") == "the-quick-study-make-study"
    assert slug("The paper's claims, and what its published results show") == \
        "the-papers-claims-and-what-its-published-results-show"
    assert slug("Slurm, PBS and GPUs") == "slurm-pbs-and-gpus"


def test_the_readme_is_a_five_minute_read():
    text = README.read_text(encoding="utf-8")
    assert len(text) < README_LIMIT, f"README.md has {len(text):,} characters; keep it under {README_LIMIT:,}"
    assert "make study" in text and "make test" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name} (has {', '.join(sorted(anchors(dest)))})")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    assert DOCS, "docs/ has no Markdown pages"
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(README) if t.partition("#")[0]}
    missing = [p.name for p in DOCS if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {', '.join(missing)}"


def test_the_readme_keeps_the_generated_findings_block():
    """tools/study_findings.py --readme README.md replaces the block in place: it must stay in README, once."""
    tool = load_tool("study_findings")
    text = README.read_text(encoding="utf-8")
    assert text.count(tool.BEGIN) == 1 and text.count(tool.END) == 1
    assert text.index(tool.BEGIN) < text.index(tool.END)
    for page in DOCS:
        assert tool.BEGIN not in page.read_text(encoding="utf-8"), page.name
