"""The layout docs/architecture.md describes, kept true: packages, sizes, thin hooks, one-way imports,
no import circles.

Read from the source with ``ast``; nothing is imported or run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "npuperf"
MAX_CLASS_LINES = 250
MAX_FUNCTION_LINES = 60
MAX_HOOK_LINES = 10
# A longer function says why in the comment right above it.
REASON = "# Over 60 lines on purpose:"

# Layers, lowest first: a module may import its own layer and the ones below, never above.
LOW = {"npuperf", "npuperf.judge.stats", "npuperf.engines.base", "npuperf.prompts", "npuperf.service.api"}
LOW |= {"npuperf.npu.htp", "npuperf.atomic", "npuperf.machine.device", "npuperf.models.files"}
# Modules that may stay at npuperf/'s top level: the glue, the settings, and what every package shares.
TOP_LEVEL = {"__init__", "__main__", "plugin", "settings", "measure", "prompts", "atomic"}
GLUE = {"npuperf.plugin"}


def layer(module: str) -> int:
    """0 low, 1 the work (measure, verdict, engines, probes, server, report...), 2 suite sections, 3 plugin."""
    if module in GLUE:
        return 3
    if module.startswith("npuperf.suite"):
        return 2
    if module in LOW:
        return 0
    return 1


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(path: Path) -> set[str]:
    """Every npuperf module (and pytest) the file imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    known = set(modules()) | {"pytest", "_pytest"}
    return {m for m in found if m in known or m.split(".")[0] in ("pytest", "_pytest")}


def lengths(path: Path) -> list[tuple[str, str, int, bool]]:
    """(kind, name, lines, has a reason) of every class and function in the file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            above = first - 2  # the comment block right above the definition
            reason = False
            while above >= 0 and lines[above].strip().startswith("#"):
                reason = reason or lines[above].strip().startswith(REASON)
                above -= 1
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            out.append((kind, node.name, node.end_lineno - node.lineno + 1, reason))  # type: ignore[operator]
    return out


def test_the_layer_rule_sees_the_real_modules() -> None:
    """The checks below are only as good as the module list they read."""
    found = modules()
    assert {"npuperf.plugin", "npuperf.suite.latency", "npuperf.server.app", "npuperf.npu.qnn"} <= set(found)
    assert "npuperf.suite.run" in imports(found["npuperf.suite.latency"])
    assert "pytest" in imports(found["npuperf.plugin"])


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_run_one_way(module: str) -> None:
    mine = layer(module)
    upward = sorted(m for m in imports(modules()[module]) if m in modules() and layer(m) > mine)
    assert not upward, f"{module} (layer {mine}) imports from a higher layer: {upward}"


@pytest.mark.parametrize("module", sorted(modules()))
def test_only_the_glue_imports_pytest(module: str) -> None:
    if layer(module) >= 2:
        return
    uses = sorted(m for m in imports(modules()[module]) if m.split(".")[0] in ("pytest", "_pytest"))
    assert not uses, f"{module} imports {uses}: only npuperf/plugin.py, npuperf/suite/ and perf_tests/ may"


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_class_or_function_is_too_long(module: str) -> None:
    too_long = [
        f"{kind} {name}: {n} lines"
        for kind, name, n, reason in lengths(modules()[module])
        if not reason and n > (MAX_CLASS_LINES if kind == "class" else MAX_FUNCTION_LINES)
    ]
    assert not too_long, f"{module}: {too_long} (split it, or say why on the line above: {REASON!r})"


def test_plugin_hooks_are_thin() -> None:
    hooks = [(name, n) for kind, name, n, _ in lengths(modules()["npuperf.plugin"]) if name.startswith("pytest_")]
    assert len(hooks) >= 8
    thick = [f"{name}: {n} lines" for name, n in hooks if n > MAX_HOOK_LINES + 2]  # + signature and decorator
    assert not thick, f"hooks in plugin.py must hand over to the sections: {thick}"


def test_the_suite_talks_to_sections_not_to_a_session_god_object() -> None:
    """perf_tests/ reads as npuperf_session.<section>.<action>(...)."""
    calls = set()
    for path in (ROOT / "perf_tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "npuperf_session"
            ):
                calls.add(node.attr)
    assert calls == {"latency", "npu", "service"}, calls


def import_graph() -> dict[str, set[str]]:
    """Module -> the npuperf modules it names in an import (at any depth: a function-level import
    counts too). A package's own __init__ running first is Python's doing, not an edge."""
    known = modules()
    return {name: {m for m in imports(path) if m in known and m != name} for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles() -> None:
    """Two modules importing each other (even inside a function) cannot be read, tested or moved
    apart; shared helpers belong in a third module both import."""
    assert cycles(import_graph()) == []


def test_the_top_level_holds_only_the_shared_modules() -> None:
    """Everything else lives in a package named for its concern (docs/architecture.md)."""
    loose = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert set(loose) <= TOP_LEVEL, f"move {sorted(set(loose) - TOP_LEVEL)} into a package"
    assert len(TOP_LEVEL - {"__init__", "__main__"}) <= 8


def test_the_architecture_page_names_every_package() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    packages = sorted(p.parent.relative_to(PACKAGE).as_posix() for p in PACKAGE.glob("*/__init__.py"))
    missing = [name for name in packages if f"{name}/" not in page]
    assert not missing, f"docs/architecture.md does not show {missing}"
