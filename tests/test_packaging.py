"""pyproject.toml's dependency ranges: the installed versions (the ones the suite runs with, printed in its header)
lie inside them, and every library whose arithmetic or metric the reference fixtures pin has a major upper bound."""

from __future__ import annotations

import importlib.metadata

import pytest
import tomllib

from tests.conftest import ROOT

requirements = pytest.importorskip("packaging.requirements")

PINNED_BY_FIXTURES = ("numpy", "opencv-python-headless", "pycocotools", "faster-coco-eval", "scipy", "munkres",
                      "onnx", "onnxruntime")


def declared() -> list:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(meta["dependencies"]) + [r for extra in meta["optional-dependencies"].values() for r in extra]
    return [requirements.Requirement(line) for line in lines]


def test_installed_versions_satisfy_pyproject():
    for req in declared():
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an extra this environment did not install
        assert req.specifier.contains(version, prereleases=True), f"{req.name} {version} outside {req.specifier}"


def test_fixture_dependent_libraries_have_a_major_upper_bound():
    specs = {req.name.lower(): req.specifier for req in declared()}
    assert str(specs["torch"]) == "==2.13.0"
    for name in PINNED_BY_FIXTURES:
        assert any(s.operator == "<" for s in specs[name]), f"{name}: no upper bound in pyproject.toml"
