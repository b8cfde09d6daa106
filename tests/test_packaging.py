"""The package as a user installs it: the wheel ships the demo config, and `posekit demo` runs outside the source
tree from the unpacked wheel alone (no repository files); pyproject.toml's dependency ranges hold the installed
versions (the ones the suite runs with, printed in its header) and bound every library whose arithmetic or metric
the reference fixtures pin."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, text=True, cwd=out)
    (found,) = out.glob("posekit-*.whl")
    return found


@pytest.mark.slow
def test_wheel_ships_the_demo_config(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "posekit/configs/demo.yaml" in names
    assert "posekit/engine/demo.py" in names and not any(n.startswith(("tests/", "configs/")) for n in names)


@pytest.mark.slow
def test_demo_runs_from_the_installed_package_outside_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    code = ("import sys, posekit; assert posekit.__file__.startswith(sys.argv[1]), posekit.__file__; "
            "from posekit.cli import main; sys.exit(main(['demo', '--out', 'out', '--data', 'data', '--minutes', "
            "'0.05', '--num-train', '6', '--num-val', '2', '--eval-every', '0', '--no-progress', '--json']))")
    run = subprocess.run([sys.executable, "-c", code, str(site)], cwd=work, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    printed = json.loads(run.stdout.strip().splitlines()[-1])
    assert printed["iterations"] > 0 and (work / "out" / "model.pth").is_file()


PINNED_BY_FIXTURES = ("numpy", "opencv-python-headless", "pycocotools", "faster-coco-eval", "scipy", "munkres",
                      "onnx", "onnxruntime")


def declared() -> list:
    tomllib = pytest.importorskip("tomllib", reason="Python >= 3.11 reads pyproject.toml with tomllib")
    requirements = pytest.importorskip("packaging.requirements")
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = list(meta["dependencies"]) + [r for extra in meta["optional-dependencies"].values() for r in extra]
    return [requirements.Requirement(line) for line in lines]


def test_installed_versions_satisfy_pyproject() -> None:
    for req in declared():
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an extra this environment did not install
        assert req.specifier.contains(version, prereleases=True), f"{req.name} {version} outside {req.specifier}"


def test_fixture_dependent_libraries_have_a_major_upper_bound() -> None:
    specs = {req.name.lower(): req.specifier for req in declared()}
    assert str(specs["torch"]) == "==2.13.0"
    for name in PINNED_BY_FIXTURES:
        assert any(s.operator == "<" for s in specs[name]), f"{name}: no upper bound in pyproject.toml"
