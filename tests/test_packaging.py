"""What a fresh clone ships: the licence it declares, the extras it documents, an ignore list
for what the demo writes, and tests that write only into their temporary folders."""

import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_the_license_file_is_the_declared_apache_2_0():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole text, not a pointer to it
    assert "License :: OSI Approved :: Apache Software License" in project["classifiers"]


def test_metadata_a_user_looks_for():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["urls"] and project["authors"]
    minor = int(project["requires-python"].removeprefix(">=3."))
    assert f"Programming Language :: Python :: 3.{minor}" in project["classifiers"]
    extras = project["optional-dependencies"]
    assert any(d.startswith("hypothesis") for d in extras["testing"])
    assert {"mkdocs", "mkdocs-material", "mkdocstrings[python]"} <= {d.split(">")[0] for d in extras["docs"]}


def test_gitignore_covers_what_the_commands_write():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/fastcb-demo/" in ignored and "/site/" in ignored


def test_temporary_files_go_under_pytests_folder(tmp_path):
    assert Path(tempfile.gettempdir()).parent == tmp_path.parent  # both in pytest's base folder


def test_ci_removes_its_environment_and_runs_the_main_job_and_the_docs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "trap 'rm -rf \"$work\"' EXIT" in ci
    assert "fastcb demo " in ci and "mkdocs build --strict" in ci and "FASTCB_REQUIRE_DOCS_TOOLS=1" in ci
