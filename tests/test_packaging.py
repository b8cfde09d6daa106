"""The package as a user installs it: the wheel ships the demo config, and `posekit demo` runs outside the source
tree from the unpacked wheel alone (no repository files)."""

from __future__ import annotations

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
