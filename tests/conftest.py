"""Shared test fixtures: where ../shared lives, and cache folders inside the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSEKIT_SHARED", ROOT.parent / "shared")).resolve()

for var, sub in (("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("MPLCONFIGDIR", "mpl"), ("XDG_CACHE_HOME", "")):
    os.environ.setdefault(var, str(ROOT / ".cache" / sub))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the shared reference fixtures / data, absent in a plain clone)")
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference: outputs of the official implementations."""
    return _need(SHARED / "reference")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data: small real annotated samples."""
    return _need(SHARED / "data")


@pytest.fixture()
def out_dir() -> Path:
    """out/test-artifacts: where tests leave pictures for a person to look at."""
    path = ROOT / "out" / "test-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path
