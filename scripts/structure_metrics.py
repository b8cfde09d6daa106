"""Structure metrics for posekit: import circles, upward imports, long functions, largest modules.

Usage: python scripts/structure_metrics.py [REPO]   (default: this checkout)
Imports are read with ast: module-level AND function-level (every Import/ImportFrom node in the file,
TYPE_CHECKING blocks included). `from a import b` counts as an import of module a.b when a/b.py exists,
else of a. A circle = a strongly connected component of more than one module (or a self import).
Amendments to DESIGN.md's arrows (all point down; none makes a circle): bench -> cli.tables (peers at the
top), runtime -> modelspec and evaluation (official rescoring), modelspec -> models, codecs, config (it builds
what a weights file says), evaluation -> codecs (bearpaw's heatmap argmax). The face `posekit` is importable
only by itself (its lazy PoseEstimator re-export is the documented exception).
Layers: DESIGN.md "Who may import whom"; modules of the old layout are put in the layer their move-list
destination has (runtime.py, backends.py, hardware.py, bottomup.py -> runtime; tables.py -> cli;
vis3d.py -> vis), so the same rules score the tree before and after.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
PKG = ROOT / "posekit"

VOCAB = {"errors", "skeletons", "geometry", "camera", "_version"}
# direct "may import" per layer (DESIGN.md); the closure over it is what a layer may reach
DIRECT = {
    "face": {"cli", "bench", "inference", "engine", "evaluation", "vis", "export", "runtime", "data", "models",
             "losses", "codecs", "config", "modelspec"},
    "cli": {"bench", "inference", "engine", "evaluation", "vis", "export", "config", "modelspec"},
    "bench": {"cli.tables", "inference", "engine", "evaluation", "vis", "export"},
    "inference": {"runtime", "engine.tasks", "modelspec", "vis"},
    "engine": {"runtime", "data", "models", "losses", "codecs", "evaluation", "vis", "config", "modelspec"},
    "runtime": {"models", "codecs", "export", "data.images", "modelspec", "evaluation"},
    "export": {"models"},
    "vis": set(),
    "data": {"codecs"},
    "codecs": set(),
    "models": set(),
    "losses": {"codecs"},
    "evaluation": {"codecs"},
    "modelspec": {"config", "models", "codecs"},
    "config": set(),
}
OLD_LAYER = {"runtime": "runtime", "backends": "runtime", "hardware": "runtime", "bottomup": "runtime",
             "tables": "cli.tables", "vis3d": "vis", "__init__": "face", "__main__": "face"}


def closure(layer: str) -> set[str]:
    """Every layer `layer` may reach (following DESIGN.md arrows; 'engine.tasks' is a door, not a path)."""
    seen: set[str] = set()
    todo = [layer]
    while todo:
        cur = todo.pop()
        for nxt in DIRECT.get(cur, set()):
            if nxt not in seen:
                seen.add(nxt)
                if nxt not in ("engine.tasks", "cli.tables", "data.images"):
                    todo.append(nxt)
    return seen


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported posekit module, line) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("posekit"):
                    out.append((_resolve(alias.name, known), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("posekit"):
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                out.append((sub if sub in known else _resolve(mod, known), node.lineno))
    return [(m, ln) for m, ln in out if m != name or True]


def _resolve(mod: str, known: set[str]) -> str:
    while mod not in known and "." in mod:
        mod = mod.rsplit(".", 1)[0]
    return mod


def layer_of(mod: str, as_target: bool = False) -> str:
    parts = mod.split(".")
    if len(parts) == 1:
        return "face"
    top = parts[1]
    if len(parts) == 2 and top in OLD_LAYER:
        return OLD_LAYER[top] if as_target else OLD_LAYER[top].split(".")[0]
    if top in VOCAB:
        return "vocab"
    if as_target and len(parts) >= 3 and f"{top}.{parts[2]}" in ("engine.tasks", "cli.tables", "data.images"):
        return f"{top}.{parts[2]}"
    if as_target and top == "engine" and parts[2:3] and parts[2].endswith("_task"):
        return "engine.tasks"  # old layout: engine/*_task.py + tasks.py + tasks_registry.py are the table
    if as_target and mod in ("posekit.engine.tasks_registry",):
        return "engine.tasks"
    return top


def graph() -> dict[str, list[tuple[str, int]]]:
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def circles(g: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected components (Tarjan) of size > 1, or with a self edge."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w, _ in g.get(v, []):
            if w not in g:
                continue
            if w not in index:
                visit(w)
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
            if len(comp) > 1 or any(t == v for t, _ in g[v]):
                out.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    return out


def upward(g: dict[str, list[tuple[str, int]]]) -> list[str]:
    bad = []
    for src, targets in g.items():
        ls = layer_of(src)
        if ls == "face":
            continue
        for dst, line in targets:
            lt = layer_of(dst, as_target=True)
            if lt in ("vocab",) or lt == ls or lt.split(".")[0] == ls:
                continue
            if ls == "vocab":
                if lt != "vocab":
                    bad.append(f"{src}:{line} -> {dst}  ({ls} -> {lt})")
                continue
            if lt == "face" and ls != "face":
                bad.append(f"{src}:{line} -> {dst}  ({ls} -> face)")
                continue
            if lt not in closure(ls) and lt.split(".")[0] not in closure(ls):
                bad.append(f"{src}:{line} -> {dst}  ({ls} -> {lt})")
    return sorted(set(bad))


def functions() -> list[tuple[int, str]]:
    out = []
    for path in modules().values():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(out, reverse=True)


def main() -> None:
    g = graph()
    cs = circles(g)
    print(f"import circles: {len(cs)}")
    for c in cs:
        print(f"  ({len(c)}) " + " ".join(c))
    up = upward(g)
    print(f"upward (layer-violating) imports: {len(up)}")
    for u in up:
        print("  " + u)
    fs = functions()
    over = [f for f in fs if f[0] > 80 and "/data/synth/" not in f[1]]
    print(f"functions over 80 lines outside data/synth: {len(over)}")
    print("longest functions:")
    for n, where in fs[:12]:
        print(f"  {n:4d} {where}")
    sizes = sorted(((len(p.read_text().splitlines()), str(p.relative_to(ROOT))) for p in PKG.rglob("*.py")),
                   reverse=True)
    print("largest modules (lines):")
    for n, p in sizes[:10]:
        print(f"  {n:5d} {p}")


if __name__ == "__main__":
    main()
