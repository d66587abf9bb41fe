"""docs/DESIGN.md describes the code as it is: every path it names exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "DESIGN.md"
#: Where a relative name in the module map may live (the folders the map indents under).
BASES = [ROOT, ROOT / "python" / "fastcb", ROOT / "rust", ROOT / "rust" / "core", ROOT / "rust" / "py"]
_EXT = r"(?:py|pyi|rs|toml|md|yml|so)"
PATH = re.compile(rf"(?<![\w./-])((?:\.?[\w-]+/)+(?:[\w-]+\.{_EXT})?|[\w-]+\.{_EXT})(?![\w/-])")


def named_paths(text):
    """The file and folder paths `text` names (`a/b.py`, `folder/`, `name.rs`)."""
    return sorted(set(PATH.findall(text)))


def _exists(name):
    if "/" in name:
        return any((base / name).exists() for base in BASES)
    return any(True for p in ROOT.rglob(name) if not {"target", ".git"} & set(p.relative_to(ROOT).parts))


def test_the_extraction_finds_paths():
    found = named_paths("see `rust/py/mod.rs`, python/fastcb/ and loop.py; not torch.optim or 1/2")
    assert found == ["loop.py", "python/fastcb/", "rust/py/mod.rs"]


def test_every_path_in_the_design_doc_exists():
    paths = named_paths(DOC.read_text())
    assert len(paths) > 20, paths  # the layout and the module map are there
    missing = [p for p in paths if not _exists(p)]
    assert not missing, f"docs/DESIGN.md names paths that don't exist: {missing}"


def _notes(files, note):
    return [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in files
            for i, line in enumerate(p.read_text().splitlines(), 1) if note.search(line)]


def test_no_issue_numbers_or_process_notes_in_code_stubs_or_docs():
    docs = [*(ROOT / "python").rglob("*.py"), *(ROOT / "python").rglob("*.pyi"), *(ROOT / "rust").rglob("*.rs"),
            *(ROOT / "docs").rglob("*.md"), *(ROOT / "benches").rglob("*.md"), ROOT / "README.md"]
    hits = _notes(docs, re.compile(r"\bissues? #?\d+|\bissue-level\b|\(#\d+\)|\bsessions?\b", re.IGNORECASE))
    # tests and benchmarks: pytest's "session" scope is a fixture word there, not a note
    code = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "benches").rglob("*.py")]
    hits += _notes(code, re.compile(r"\bissues? #?\d+|\(#\d+\)", re.IGNORECASE))
    assert not hits, "\n".join(hits)
