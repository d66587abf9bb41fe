"""Every fenced ```python block of README.md and of the documentation pages runs, so none can rot.

A block that is not meant to run alone (a fragment of a larger program) is marked by a
`<!-- fragment -->` line just before its fence; every other block must be self-contained.
"""

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")  # figures are saved, never shown

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
FRAGMENT = "<!-- fragment -->"


def blocks(page):
    """`(line, code, is_fragment)` for each python block of `page`."""
    text = page.read_text(encoding="utf-8")
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip().splitlines()
        yield text.count("\n", 0, m.start()) + 1, m.group(1), bool(before) and before[-1].strip() == FRAGMENT


CASES = [(page, line, code) for page in PAGES for line, code, fragment in blocks(page) if not fragment]


def test_the_readme_and_the_guides_have_runnable_blocks():
    assert sum(page.name == "README.md" for page, _, _ in CASES) >= 7
    assert len({page for page, _, _ in CASES}) >= 5


@pytest.mark.parametrize("page, line, code", CASES,
                         ids=[f"{p.relative_to(ROOT)}:{line}" for p, line, _ in CASES])
def test_block_runs(tmp_path, monkeypatch, page, line, code):
    monkeypatch.chdir(tmp_path)  # files a block writes land here
    exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), {"__name__": "__snippet__"})


def test_fragments_are_marked_and_rare():
    fragments = [(page.name, line) for page in PAGES for line, _, fragment in blocks(page) if fragment]
    assert len(fragments) <= len(CASES) // 3, fragments
