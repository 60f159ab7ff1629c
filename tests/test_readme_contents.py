"""The README's contents list (3,100 lines are searched, not read): every section heading is
listed, in order, and every link in it points to a heading as GitHub names its anchors."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _headings(text: str) -> list[tuple[int, str]]:
    found, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        m = None if fenced else re.match(r"^(#{2,4}) (.+)$", line)
        if m:
            found.append((len(m.group(1)), m.group(2)))
    return found


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but hyphens dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _contents(text: str) -> list[tuple[int, str]]:
    block = text[text.index("\nContents:\n"):text.index("\n## ")]
    return [(len(m.group(1)) // 2 + 2, m.group(2)) for m in re.finditer(r"^( *)- \[.+?\]\(#([^)]+)\)$", block, re.M)]


def test_the_contents_list_every_heading_in_order_with_its_anchor():
    text = README.read_text()
    want = [(level, _anchor(h)) for level, h in _headings(text)]
    assert len(want) > 30
    assert _contents(text) == want
