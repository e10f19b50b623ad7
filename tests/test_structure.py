"""No import circle between the package's folders and top-level modules (lazy imports count)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "stillmotion"


def _imports() -> dict[str, set[str]]:
    """folder or top-level module -> the others it imports (at any depth, lazily or not)."""
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        here = parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "stillmotion":
                names = [node.module] if "." in node.module else [f"stillmotion.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("stillmotion.")]
            for name in names:
                there = name.split(".")[1]
                if there != here:
                    edges.setdefault(here, set()).add(there)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_circle_between_folders():
    edges = _imports()
    assert "tasks" in edges and "config" in edges["train"]  # the walk sees the package
    assert _cycle(edges) is None, " -> ".join(_cycle(edges))
    assert "config" not in edges["tasks"] and "train" not in edges["model"]


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
