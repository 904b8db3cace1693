"""The import graph between the project's rooms, read from the source (ast; nothing is imported).

    python tools/import_graph.py            # package edges, then `ok` or what is wrong (exit 1)
    python tools/import_graph.py --modules  # also every module-level edge

Every import counts, also those inside functions or under `if TYPE_CHECKING:`: a deferred import is
still a dependency. It fails on an edge between rooms that the layering forbids (arrows point down
only: detector_cli -> detector_bench -> analysis -> train -> detector, experiments beside detector_cli, with
the exceptions in SHARED), on a cycle between modules, and, inside the library, on an import from a higher
layer or on a library module outside the layers. The layers are the subpackages of detector/ (LAYERS:
core -> lm -> text -> features -> decision -> model -> facade -> io -> workflows -> integrations).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Each room and the rooms it may import; `detector` is the library and imports no other room.
ALLOWED = {
    "detector": set(),
    "train": {"detector"},
    "analysis": {"detector", "train"},
    "detector_bench": {"detector", "train", "analysis"},
    "detector_cli": {"detector", "train", "analysis", "detector_bench"},
    # Experiments and benchmarks no `detector` command runs: a folder of the checkout, not of the wheel.
    "experiments": {"detector", "train", "analysis", "detector_bench"},
}
# Modules any room may import although they live higher up, each with why; they may import only
# `detector`, so no cycle can pass through them.
SHARED = {
    "analysis.plots": "the figures: train/ logs its evaluation plots and detector_bench/ draws its own with them",
}


# The library's layers are its subpackages (folders of detector/), lowest first. A module may import its
# own layer and those below it, never one above. The package itself (`detector/__init__.py`, which
# re-exports Detector) sits in the facade's layer; a module directly in detector/, or in a folder not
# named here, fails the check until it is moved into a layer's folder (or its folder is named here).
LAYERS = ("core", "lm", "text", "features", "decision", "model", "facade", "io", "workflows", "integrations")
PACKAGE_LAYER = "facade"
LIBRARY = "detector"


def layer_of(module: str) -> str | None:
    """The layer of a library module: the folder it is in (`detector.integrations.serve.app` is in
    `integrations`), PACKAGE_LAYER for the package itself, or None."""
    parts = module.split(".")[1:]
    if not parts:
        return PACKAGE_LAYER
    return parts[0] if parts[0] in LAYERS else None


def check_layers(graph: dict[str, set[str]]) -> tuple[list[str], list[str]]:
    """(lines to print, problems): the layer graph inside the library with edge counts, and every
    upward edge or undeclared module."""
    order = list(LAYERS)
    edges: dict[tuple[str, str], int] = defaultdict(int)
    problems = []
    library = {m: t for m, t in graph.items() if room(m) == LIBRARY}
    for module in sorted(library):
        if layer_of(module) is None:
            problems.append(f"{module} is in no layer: move it into one of detector/{{{','.join(LAYERS)}}}/")
    for source, targets in sorted(library.items()):
        for target in sorted(t for t in targets if room(t) == LIBRARY):
            low, high = layer_of(source), layer_of(target)
            if low is None or high is None or low == high:
                continue
            edges[low, high] += 1
            if order.index(high) > order.index(low):
                problems.append(f"upward edge: {source} ({low}) imports {target} ({high})")
    lines = []
    for name in reversed(order):
        present = sorted(m.partition(".")[2] or "(package)" for m in library if layer_of(m) == name)
        down = [f"{target} ({n})" for (s, target), n in sorted(edges.items(), key=lambda e: -order.index(e[0][1]))
                if s == name]
        lines.append(f"  {name:<13} [{', '.join(present) or '-'}] -> {', '.join(down) or '(nothing)'}")
    return lines, problems


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of every room."""
    out = {}
    for room in ALLOWED:
        for path in sorted((root / room).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules that module `name` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import mod` imports a module; `from mod import name` the module itself.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a module a.b: the deepest known one
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def room(module: str) -> str:
    return module.split(".")[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check(root: Path = ROOT, show_modules: bool = False) -> tuple[list[str], list[str]]:
    """(lines to print, problems): the room graph with edge counts, and every forbidden edge or cycle."""
    known = modules(root)
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    rooms: dict[tuple[str, str], int] = defaultdict(int)
    problems = []
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            if room(source) != room(target):
                rooms[room(source), room(target)] += 1
                if room(target) not in ALLOWED[room(source)] and target not in SHARED:
                    problems.append(f"forbidden edge: {source} imports {target}")
    for shared in SHARED:
        problems += [f"shared module {shared} imports {t} (only detector allowed)"
                     for t in sorted(graph.get(shared, ())) if room(t) != "detector"]
    lines = []
    for source in ALLOWED:
        edges = [f"{target} ({n})" for (s, target), n in sorted(rooms.items()) if s == source]
        present = any(room(m) == source for m in known)
        lines.append(f"{source:<13} -> {', '.join(edges) or '(nothing)'}" + ("" if present else "  [no such room]"))
    if show_modules:
        lines += ["", *(f"{s} -> {', '.join(sorted(t))}" for s, t in sorted(graph.items()) if t)]
    problems += [f"import cycle: {' <-> '.join(group)}" for group in cycles(graph)]
    layer_lines, layer_problems = check_layers(graph)
    lines += ["", "layers inside detector/, highest first (each imports only its own and lower ones):",
              *layer_lines]
    return lines, problems + layer_problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="also print every module's project imports")
    args = parser.parse_args(argv)
    lines, problems = check(show_modules=args.modules)
    print("\n".join(lines))
    print(f"shared: {', '.join(SHARED)}")
    print("\n".join(problems) or "ok: no forbidden edge, no cycle, no upward layer edge")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
