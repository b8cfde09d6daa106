"""Shared test fixtures: where ../shared lives, and cache folders inside the project."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSEKIT_SHARED", ROOT.parent / "shared")).resolve()

for var, sub in (("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("MPLCONFIGDIR", "mpl"), ("XDG_CACHE_HOME", "")):
    os.environ.setdefault(var, str(ROOT / ".cache" / sub))


# the distributions whose behaviour fixtures and tolerances depend on (README: "Tested versions")
DEPENDENCIES = ("torch", "numpy", "opencv-python-headless", "opencv-python", "pycocotools", "faster-coco-eval",
                "scipy", "munkres", "orjson", "PyYAML", "onnx", "onnxscript", "onnxruntime", "turbojpeg")


def dependency_versions() -> dict[str, str]:
    """Installed version of each distribution in DEPENDENCIES ("absent" where not installed)."""
    out = {}
    for name in DEPENDENCIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def cpu_paths() -> dict[str, str]:
    """The CPU and the SIMD paths torch and OpenCV dispatch to (and the env vars that limit them)."""
    import cv2
    import torch

    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "?")
    return {"cpu": f"{platform.machine()} {model}", "torch": torch.backends.cpu.get_cpu_capability(),
            "opencv": cv2.getCPUFeaturesLine(),
            "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY", "-"),
            "OPENCV_CPU_DISABLE": os.environ.get("OPENCV_CPU_DISABLE", "-")}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def environment_lines() -> list[str]:
    """Two lines: the dependency versions and the CPU paths this run used."""
    versions = " ".join(f"{k}={v}" for k, v in dependency_versions().items() if v != "absent")
    return [f"posekit deps: python={platform.python_version()} {versions}",
            "posekit cpu: " + "; ".join(f"{k}={v}" for k, v in cpu_paths().items())]


def pytest_report_header(config) -> list[str]:
    """CI-visible record at the top of a verbose run."""
    return environment_lines()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The same record at the end, also under -q (make test): a red run says what it ran with."""
    if config.get_verbosity() < 0:
        for line in environment_lines():
            terminalreporter.write_line(line)


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
