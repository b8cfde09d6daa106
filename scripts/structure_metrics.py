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
import importlib.util
import sys
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
PKG = ROOT / "posekit"


def _layout_test():
    """tests/test_layout.py of this checkout: the one import walker (module files, import graph, circles)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "test_layout.py"
    spec = importlib.util.spec_from_file_location("posekit_test_layout", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_LAYOUT = _layout_test()

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
    for path in _LAYOUT.module_files(ROOT).values():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(out, reverse=True)


def main() -> None:
    g = _LAYOUT.import_graph(ROOT)
    cs = _LAYOUT.circles(g)
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
