"""No import circle in the package: neither between modules nor between folders (lazy imports,
inside functions, count too: they only hide a circle until the day they run first)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "stillmotion"


def _module_name(path: Path) -> str:
    """src/stillmotion/video/decode.py -> stillmotion.video.decode; a package's __init__.py -> the package."""
    parts = ("stillmotion", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    where = PACKAGE.parent.joinpath(*name.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def _targets(node: ast.AST) -> list[str]:
    """The package's modules an import statement loads by name: `from a.b import c` loads a.b.c
    when c is a module, else a.b (the implicit import of parent packages is left out: a module
    importing its own folder's siblings is not a circle)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "stillmotion"]
    ours = isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "stillmotion"
    if ours:
        subs = [f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}")]
        return subs + ([node.module] if len(subs) < len(node.names) else [])
    return []


def _module_imports() -> dict[str, set[str]]:
    """module -> the package's modules it imports (at any depth in its file, lazily or not)."""
    edges: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _module_name(path)
        tree = ast.parse(path.read_text())
        assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree)), f"{path}: relative import"
        edges[here] = {t for n in ast.walk(tree) for t in _targets(n) if t != here}
    return edges


def _folder_imports(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    """folder or top-level module (video, train, config, ...) -> the others its modules import."""
    top = lambda name: name.split(".")[1] if "." in name else name  # noqa: E731
    edges: dict[str, set[str]] = {}
    for here, theirs in modules.items():
        for there in theirs:
            if top(there) != top(here):
                edges.setdefault(top(here), set()).add(top(there))
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


def test_no_import_circle_between_modules():
    edges = _module_imports()
    assert "stillmotion.video.container" in edges["stillmotion.video.index"]  # the walk sees lazy and eager imports
    assert "stillmotion.train.trainer" in edges["stillmotion.cli"]  # cli imports the trainer inside a function
    found = _cycle(edges)
    assert found is None, " -> ".join(found)


def test_no_import_circle_between_folders():
    edges = _folder_imports(_module_imports())
    assert "tasks" in edges and "config" in edges["train"]  # the walk sees the package
    found = _cycle(edges)
    assert found is None, " -> ".join(found)
    assert "config" not in edges["tasks"] and "train" not in edges["model"]


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_a_from_import_of_a_module_points_at_that_module():
    parse = lambda text: _targets(ast.parse(text).body[0])  # noqa: E731
    assert parse("from stillmotion.video import decode") == ["stillmotion.video.decode"]
    assert parse("from stillmotion.video import read_frames") == ["stillmotion.video"]
    assert parse("from stillmotion.video.decode import read_frames") == ["stillmotion.video.decode"]
    assert parse("import stillmotion.video.index") == ["stillmotion.video.index"]
    assert parse("import numpy") == []


def test_nothing_large_is_tracked_outside_test_data():
    """Source, docs and small test data only: no wheel, archive or model file rides along."""
    import subprocess

    import pytest

    repo = PACKAGE.parents[1]
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    files = [repo / name for name in listed.stdout.decode().split("\0") if name]
    large = [str(f.relative_to(repo)) for f in files
             if f.is_file() and not f.is_symlink() and f.stat().st_size > 1_000_000
             and not f.relative_to(repo).parts[:2] == ("tests", "data")]
    assert large == [], f"tracked files over 1 MB outside tests/data: {large}"


def test_what_the_walkthroughs_write_is_ignored_and_no_source_is():
    import subprocess

    import pytest

    repo = PACKAGE.parents[1]
    outputs = ["clips/a.mp4", "cache/meta.json", "cache-clip/meta.json", "runs/prp/log.jsonl",
               "scenes/manifest.jsonl", "scenes-camera/s.npz", "captions/manifest.jsonl", "stillmotion-demo/report.md",
               "tracked.mp4", "preds.jsonl", "suite-run-1.log"]
    checked = subprocess.run(["git", "-C", str(repo), "check-ignore", "--no-index", *outputs], capture_output=True,
                             text=True)
    if checked.returncode == 128:
        pytest.skip("not a git checkout")
    assert sorted(checked.stdout.split()) == sorted(outputs)
    sources = ["src/stillmotion/cache/store.py", "src/stillmotion/cache/new.py", "tests/data/real-clips/x.mp4",
               "docs/stream/a.mp4", "tests/data/reference-stream/c.json"]
    kept = subprocess.run(["git", "-C", str(repo), "check-ignore", "--no-index", *sources], capture_output=True,
                          text=True)
    assert kept.stdout.split() == []
    tracked_but_ignored = subprocess.run(["git", "-C", str(repo), "ls-files", "-ci", "--exclude-standard"],
                                         capture_output=True, text=True)
    assert tracked_but_ignored.stdout.split() == []
