"""The package's modules import each other without cycles: Python (function-level imports
included) and the Rust bindings (`rust/py`), whose modules `py/mod.rs` alone registers."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "fastcb"
BINDINGS = ROOT / "rust" / "py"


def _python_modules():
    """`{dotted name: (path, is_package)}` for every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _type_checking_only(tree):
    """The nodes under `if TYPE_CHECKING:` (imports for annotations: never run)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def python_import_graph():
    """Module -> the package's modules it imports, at any level of the file (functions included).

    `from .x import y` is an edge to `x` (and to `x.y` when that is a module); importing a
    submodule is not an edge to its enclosing packages (Python imports those first anyway).
    """
    modules = _python_modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_only(tree)
        edges = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
                edges.update(subs)
                if len(subs) < len(node.names) and target in modules:
                    edges.add(target)
        edges.discard(name)
        graph[name] = edges
    return graph


def rust_use_graph():
    """Binding file -> the binding files it uses (`super::x`, `crate::py::x`)."""
    names = {p.stem for p in BINDINGS.glob("*.rs")} - {"mod"}
    graph = {}
    for name in names:
        text = (BINDINGS / f"{name}.rs").read_text()
        used = set(re.findall(r"\bsuper::(\w+)", text)) | set(re.findall(r"\bcrate::py::(\w+)", text))
        graph[name] = (used & names) - {name}
    return graph


def find_cycle(graph):
    """One cycle of `graph` as a list of nodes (first node repeated at the end), or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path)
                if found:
                    return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_function_level_imports():
    graph = python_import_graph()
    # the lazy `fastcb` package imports nothing by itself; the CLI imports its commands in functions
    assert graph["fastcb"] == set()
    assert "fastcb.demo" in graph["fastcb.cli"]


def test_no_python_import_cycle():
    cycle = find_cycle(python_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_standard_callbacks_sit_below_the_learner():
    graph = python_import_graph()
    for name, edges in graph.items():
        if name.startswith("fastcb.callbacks"):
            assert "fastcb.learner" not in edges, name


def test_no_rust_binding_cycle():
    graph = rust_use_graph()
    assert graph, "no binding files found"
    cycle = find_cycle(graph)
    assert cycle is None, "use cycle in rust/py: " + " -> ".join(cycle)


def test_mod_rs_registers_every_binding_module():
    registering = {p.stem for p in BINDINGS.glob("*.rs") if re.search(r"\bfn register\b", p.read_text())}
    mod = (BINDINGS / "mod.rs").read_text()
    for name in registering:
        assert f"{name}::register(" in mod, f"rust/py/mod.rs does not register {name}"
    for path in BINDINGS.glob("*.rs"):
        if path.stem != "mod":
            assert not re.search(r"\w+::register\(", path.read_text()), f"{path.name} registers another module"


@pytest.mark.parametrize("module", ["fastcb.callbacks", "fastcb.inference", "fastcb.loop"])
def test_modules_import_first(module):
    # a fresh interpreter: the import order of a test session can't hide a cycle
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr


def test_training_and_testing_do_not_import_matplotlib():
    code = ("import sys, fastcb.testing, fastcb.learner, fastcb.preview\nfrom fastcb import *\n"
            "print(sorted(m for m in sys.modules if m == 'matplotlib' or m.startswith('matplotlib.')))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "[]"


def test_one_table_of_shape_names():
    from fastcb import _core, anneal
    from fastcb.testing import shape_of

    assert _core.SHAPES == anneal.SHAPES == ("no", "linear", "exp", "cos", "poly")
    for name in _core.SHAPES:
        _core.Schedule.anneal(name, 1.0, 0.5, 2.0 if name == "poly" else None)  # the core reads each name
        if name != "poly":
            assert shape_of(getattr(anneal, f"annealing_{name}")) == name
    assert shape_of(anneal.annealing_poly(2.0)) == "poly" and shape_of(len) is None
    with pytest.raises(ValueError, match="'no', 'linear', 'exp', 'cos', 'poly'"):
        _core.Schedule.anneal("sine", 1.0, 0.5)
