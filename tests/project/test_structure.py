"""Package structure: the library never imports the CLI, and the import graph has no cycle.

The graph counts every import statement, also the ones inside functions and inside a module-level
``__getattr__`` (PEP 562): lazy imports still tie modules together.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import spinlens

SRC = Path(spinlens.__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted((SRC / "spinlens").rglob("*.py")):
        parts = f.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def _imported_names(name: str, path: Path) -> set[str]:
    """Every module name an import statement in ``path`` refers to (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - child.level + 1]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in child.names)
            visit(child)

    visit(tree)
    return found


def _resolve(mod: str) -> str | None:
    while mod and mod not in MODULES:
        mod = mod.rpartition(".")[0]
    return mod or None


@functools.lru_cache(maxsize=1)
def _graph() -> dict[str, set[str]]:
    g = {}
    for name, path in MODULES.items():
        deps = {_resolve(m) for m in _imported_names(name, path)}
        g[name] = {d for d in deps if d and d != name}
    return g


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    return out


def test_library_never_imports_the_cli():
    offenders = {
        name: sorted(m for m in _imported_names(name, path) if m == "spinlens.cli" or m.startswith("spinlens.cli."))
        for name, path in MODULES.items()
        if not (name == "spinlens.cli" or name.startswith("spinlens.cli."))
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"library modules importing spinlens.cli: {offenders}"


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle():
    # the checker itself can fail: a planted circle a -> b -> c -> a is reported
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_graph_sees_module_getattr_imports(tmp_path):
    # an import inside a module-level __getattr__ is an edge like any other
    f = tmp_path / "m.py"
    f.write_text("def __getattr__(name):\n    from spinlens.models import checkpoint\n    return checkpoint\n")
    assert "spinlens.models.checkpoint" in _imported_names("spinlens.m", f)


def test_graph_sees_lazy_imports():
    # models.checkpoint imports the zoo only inside functions; the graph must still see that edge
    assert "spinlens.models.zoo" in _graph()["spinlens.models.checkpoint"]


def test_docs_refer_only_to_the_repository():
    # no reference to notes outside the repository (internal briefs, issue numbers) in code, docs, examples,
    # benchmarks or tests
    import re

    root = SRC.parent
    words = ["BRI" + "EF", "INT" + "ERP.md", "THE" + "ORY.md", "ST" + "YLE.md", "the bri" + "ef", "sha" + "red/"]
    pattern = re.compile("|".join(re.escape(w) for w in words) + r"|issue \d")
    files = [*(root / "src").rglob("*.py"), *(root / "docs").rglob("*.md"), *(root / "examples").rglob("*.py")]
    files += [*(root / "benchmarks").rglob("*.py"), *(root / "tests").rglob("*.py"), root / "README.md"]
    hits = [f"{f.relative_to(root)}:{i}" for f in files if f.is_file()
            for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_every_plot_function_returns_its_figure():
    """A ``plot_*`` function of spinlens.plotting hands its figure back (the commands save what it returns)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "src" / "spinlens" / "plotting"
    silent = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("plot_"):
                own = [n for n in ast.walk(node) if isinstance(n, ast.Return) and n.value is not None]
                if not own:
                    silent.append(f"{path.name}:{node.lineno} {node.name}")
    assert not silent, "plot functions without a returned figure: " + ", ".join(silent)
