"""The house rules import-linter cannot state: the plugin files sit on top of the layers (below
the tool), no
module of ours imports another inside a function (only optional libraries are imported late),
and there is no import cycle at all, inside a layer included. The layer contracts themselves
are in setup.cfg and run by ``lint-imports`` in CI (and by the last test here)."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

COMMON = ROOT / "common"
PLUGINS = ("azurevision.py", "azureclassification.py", "azureobjectdetection.py")
# The one layer above the plugin files.
TOOL = "pixstor_azure.tool"
# Imported inside a function on purpose: optional extras, loaded only by the mode that needs
# them, and a module that exists only on some platforms.
LATE = {
    "numpy",
    "onnxruntime",
    "rapidocr_onnxruntime",
    "pwd",
    "OpenImageIO",
    "PyOpenColorIO",
    "cv2",
    "tqdm",
    "psycopg",
    "psycopg2",
    "fileseq",
}


def modules():
    for path in sorted(COMMON.rglob("*.py")):
        parts = path.relative_to(COMMON).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ".".join(("pixstor_azure", *parts))


def imported(path, name):
    """(module imported, inside a function?) for each import of the file, made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    functions = [
        n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    inside = {id(n) for f in functions for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in inside
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                ours = full if _is_module(full) else base
                yield ours, id(node) in inside


def _is_module(name):
    if not name.startswith("pixstor_azure"):
        return False
    rel = Path(*name.split(".")[1:])
    return (COMMON / rel).with_suffix(".py").is_file() or (COMMON / rel / "__init__.py").is_file()


def graph():
    found = {}
    for path, name in modules():
        found[name] = {m for m, _ in imported(path, name) if m.startswith("pixstor_azure")}
        found[name].discard(name)
    return found


def test_the_plugin_files_import_the_runner_and_never_the_tool():
    for plugin in PLUGINS:
        ours = [m for m, _ in imported(ROOT / plugin, plugin[:-3]) if m.startswith("pixstor_azure")]
        assert "pixstor_azure.runner" in ours, plugin
        assert [m for m in ours if m.startswith(TOOL)] == [], plugin


def test_no_module_of_ours_is_imported_inside_a_function():
    late = []
    for path, name in modules():
        for module, inside in imported(path, name):
            if inside and module.split(".")[0] not in LATE:
                late.append(f"{path.relative_to(ROOT)}: {module}")
    assert late == []


def test_there_is_no_import_cycle():
    edges = graph()
    cycles = []
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_the_cycle_check_sees_a_cycle(tmp_path, monkeypatch):
    """The check above can fail: a graph with a circle is reported."""
    monkeypatch.setitem(globals(), "graph", lambda: {"a": {"b"}, "b": {"c"}, "c": {"a"}})
    with pytest.raises(AssertionError, match="a -> b -> c -> a"):
        test_there_is_no_import_cycle()


@pytest.mark.skipif(sys.version_info < (3, 8), reason="import-linter needs Python 3.8 or newer")
def test_the_layer_contracts_hold():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(lint).exists():
        pytest.skip("import-linter is not installed (the test extra installs it)")
    result = subprocess.run(
        [lint, str(ROOT / "setup.cfg")],
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
    )
    assert result.returncode == 0, result.stdout
