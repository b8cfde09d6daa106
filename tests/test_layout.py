"""The package's import graph follows DESIGN.md "Who may import whom": no import circles, no arrow pointing up.

Every `import` / `from ... import` statement in posekit/ counts, module-level and inside functions alike (a lazy
import still ties the modules together). `from a import b` counts as an import of module a.b when that is a
module, else of a. Implicit parent-package imports do not count.

The layers, top down (an arrow may skip layers; the vocabulary modules are below everything):
    face (posekit, __main__) > cli, bench > inference > engine > runtime > export, modelspec > data > losses >
    codecs, models, evaluation, vis, config > vocabulary (errors, skeletons, geometry, camera, _version)
Doors: `inference` may import the task table `engine.tasks` (and only that part of the engine); `runtime` may
import the image reader `data.images` (and only that part of `data`); `bench` may import `cli.tables`.
Where this file adds an arrow that DESIGN.md does not draw, the arrow still points down (listed in EXTRA).
The face `posekit` is imported by nothing: its lazy `PoseEstimator` re-export is the one documented exception.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import posekit

# DESIGN.md's arrows: layer -> what it may import directly (and, through them, what those may import)
ALLOWED: dict[str, set[str]] = {
    "face": {"cli", "inference"},
    "cli": {"bench", "inference", "engine", "evaluation", "vis", "export"},
    "bench": {"cli.tables", "inference", "engine", "evaluation", "vis", "export"},
    "inference": {"runtime", "engine.tasks", "modelspec", "vis"},
    "engine": {"runtime", "data", "models", "losses", "codecs", "evaluation", "vis", "config", "modelspec"},
    "runtime": {"models", "codecs", "export", "data.images"},
    "export": {"models"},
    "vis": set(),
    "data": {"codecs"},
    "codecs": set(),
    "models": set(),
    "losses": {"codecs"},
    "evaluation": set(),
    "modelspec": set(),
    "config": set(),
}
# arrows DESIGN.md does not draw, each pointing down: the model spec builds its codec and network and reads weights
# files; runtime reads specs and uses the official rescoring; export writes a spec-carrying file; bearpaw's PCK
# takes its codec's heatmap argmax
EXTRA: dict[str, set[str]] = {
    "modelspec": {"config", "models", "codecs"},
    "runtime": {"modelspec", "evaluation"},
    "export": {"modelspec"},
    "evaluation": {"codecs"},
}
VOCABULARY = {"errors", "skeletons", "geometry", "camera", "_version"}
DOORS = ("engine.tasks", "cli.tables", "data.images")  # a door lets one part of a layer in, not what is behind it


def layer_rules() -> dict[str, set[str]]:
    """ALLOWED with EXTRA's arrows added."""
    return {k: v | EXTRA.get(k, set()) for k, v in ALLOWED.items()}


def reachable(layer: str, rules: dict[str, set[str]]) -> set[str]:
    """Every layer (or door) `layer` may import: its arrows and, transitively, theirs (not through doors)."""
    seen: set[str] = set()
    todo = [layer]
    while todo:
        for nxt in rules.get(todo.pop(), set()):
            if nxt not in seen:
                seen.add(nxt)
                if nxt not in DOORS:
                    todo.append(nxt)
    return seen


def module_files(root: Path, package: str = "posekit") -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package under root."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported module of the package, line) for every import statement in the file, at any depth."""
    root = name.split(".")[0]
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(_known_prefix(a.name, known), node.lineno) for a in node.names
                      if a.name.split(".")[0] == root]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = base[: len(base) - node.level + 1]
                mod = ".".join(pkg + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != root:
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                found.append((sub if sub in known else _known_prefix(mod, known), node.lineno))
    return found


def _known_prefix(mod: str, known: set[str]) -> str:
    while mod not in known and "." in mod:
        mod = mod.rsplit(".", 1)[0]
    return mod


def import_graph(root: Path, package: str = "posekit") -> dict[str, list[tuple[str, int]]]:
    """Module -> [(imported module, line)] over the package."""
    files = module_files(root, package)
    known = set(files)
    return {name: imports_of(name, path, known) for name, path in files.items()}


def circles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """The import circles: strongly connected components with more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:  # iterative Tarjan
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w, _ in it:
                if w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph[w])))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1 or any(t == v for t, _ in graph[v]):
                        found.append(sorted(comp))
    return found


def layer_of(module: str) -> str:
    """The layer of a module (or the door it is behind); '' for a top-level module no layer names."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "face"
    if parts[1] in VOCABULARY:
        return "vocabulary"
    door = ".".join(parts[1:3])
    if door in DOORS:
        return door
    return parts[1] if parts[1] in ALLOWED else ""


def upward_imports(graph: dict[str, list[tuple[str, int]]]) -> list[str]:
    """Every import against the layer rules, as 'importer:line -> imported (layer -> layer)'."""
    rules = layer_rules()
    bad = []
    for src, targets in graph.items():
        src_layer = layer_of(src).split(".")[0]
        for dst, line in targets:
            dst_layer = layer_of(dst)
            if dst_layer == "vocabulary" or dst_layer.split(".")[0] == src_layer and src_layer != "face":
                continue
            if src_layer == "vocabulary" or dst_layer == "face" or (
                    dst_layer not in reachable(src_layer, rules) and dst_layer.split(".")[0] not in reachable(
                        src_layer, rules)):
                bad.append(f"{src}:{line} -> {dst} ({src_layer or '?'} -> {dst_layer or '?'})")
    return sorted(set(bad))


ROOT = Path(posekit.__file__).resolve().parent.parent


def test_every_module_is_in_a_layer():
    unplaced = [m for m in module_files(ROOT) if not layer_of(m)]
    assert not unplaced, f"top-level modules no layer names (add them to ALLOWED, DESIGN.md): {unplaced}"


def test_no_import_circles():
    found = circles(import_graph(ROOT))
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_import_points_up():
    bad = upward_imports(import_graph(ROOT))
    assert not bad, "imports against DESIGN.md 'Who may import whom':\n" + "\n".join(bad)


def test_extra_arrows_point_down():
    """EXTRA only adds arrows to layers that cannot reach back (else it would allow a circle of layers)."""
    rules = layer_rules()
    for src, targets in EXTRA.items():
        for dst in targets:
            assert src not in reachable(dst, rules), f"{src} -> {dst}: {dst} reaches {src}"


# --- the checker itself, on planted trees -------------------------------------------------------------------------

def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / "posekit" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [p for p in (tmp_path / "posekit").rglob("*") if p.is_dir()] + [tmp_path / "posekit"]:
        (folder / "__init__.py").touch()
    return tmp_path


def test_checker_finds_a_planted_function_level_circle(tmp_path):
    root = _tree(tmp_path, {"codecs/a.py": "from posekit.codecs import b\n",
                            "codecs/b.py": "def f():\n    from posekit.codecs.a import x\n",
                            "codecs/c.py": "from . import b\n"})
    assert circles(import_graph(root)) == [["posekit.codecs.a", "posekit.codecs.b"]]


def test_checker_finds_planted_upward_imports(tmp_path):
    root = _tree(tmp_path, {
        "models/net.py": "def f():\n    from posekit.data.coco import load\n",  # models -> data: up
        "engine/train.py": "import posekit.inference\n",  # engine -> inference: up
        "data/coco.py": "from posekit.codecs import msra\nfrom posekit.errors import DataError\n",  # fine
        "runtime/topdown.py": "from posekit.data.images import read\nfrom posekit.data import topdown\n",
        "inference.py": "from posekit.engine.tasks import task_for\nfrom posekit.engine import train\n",
        "export.py": "import posekit\n",  # the face: up
        "codecs/msra.py": "", "errors.py": "", "data/images.py": "", "data/topdown.py": "", "engine/tasks/base.py": "",
    })
    bad = upward_imports(import_graph(root))
    assert [b.split(" ")[0] for b in bad] == ["posekit.engine.train:1", "posekit.export:1", "posekit.inference:2",
                                              "posekit.models.net:2", "posekit.runtime.topdown:2"], bad
    assert "posekit.runtime.topdown:2 -> posekit.data.topdown (runtime -> data)" in bad  # past the door: refused


def test_checker_places_every_layer_of_a_planted_tree(tmp_path):
    root = _tree(tmp_path, {"newthing.py": "x = 1\n", "engine/tasks/topdown.py": "", "cli/tables.py": ""})
    assert layer_of("posekit.newthing") == ""
    assert layer_of("posekit.engine.tasks.topdown") == "engine.tasks" and layer_of("posekit.cli.tables") == "cli.tables"
    assert "posekit.newthing" in [m for m in module_files(root) if not layer_of(m)]


@pytest.mark.parametrize("layer,reaches,not_reaches", [
    ("inference", {"runtime", "engine.tasks", "models", "data.images", "vis"}, {"engine", "data", "cli"}),
    ("engine", {"runtime", "data", "models", "codecs", "evaluation", "export"}, {"inference", "cli", "bench"}),
    ("models", set(), {"data", "engine", "codecs"}),
    ("codecs", set(), {"models", "data"}),
])
def test_reachability_matches_design(layer, reaches, not_reaches):
    got = reachable(layer, layer_rules())
    assert reaches <= got and not (not_reaches & got), (layer, got)
