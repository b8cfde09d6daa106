"""`posekit adapt CONFIG KEY=VALUE`: a tiny CC-SSL run (table / --json, resume), SIGTERM with a checkpoint and the
resume command, and clear errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from posekit.cli import main
from posekit.config import config_to_yaml
from posekit.engine.adapt import testbeds

BED = testbeds.TestBed("quadruped", (96, 96), num_source=10, num_target=8, num_val=6, num_human=0,
                       sequence_length=4, seed=5)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    """The shipped quadruped config, shrunk to a tiny generated test bed (64x64 crops, 2 epochs of 2 steps)."""
    from posekit.config import load_config
    from posekit.engine.adapt.testbeds import shipped_config

    root = tmp_path_factory.mktemp("cli_adapt")
    bed = testbeds.ensure(root / "bed", BED, workers=1)
    paths = []
    for split, key in (("source", "DATASET.TRAIN"), ("target_val", "DATASET.TEST"), ("target_train", "ADAPT.TARGET")):
        paths += [f"{key}_ANN={bed[split] / 'annotations.json'}", f"{key}_IMAGES={bed[split] / 'images'}"]
    cfg = load_config(shipped_config("quadruped"), [
        *paths, "MODEL.IMAGE_SIZE=[64,64]", "TRAIN.BATCH_SIZE_PER_GPU=3", "TRAIN.END_EPOCH=2", "TRAIN.CPU_AMP=false",
        "TRAIN.CHANNELS_LAST=false", "TEST.BATCH_SIZE_PER_GPU=6", "ADAPT.TARGET_BATCH=3", "ADAPT.SOURCE_EPOCHS=1",
        "ADAPT.ROUND_EVERY=1", "ADAPT.ITERS_PER_EPOCH=2", "ADAPT.NUM_TRANSFORM=2", "ADAPT.PICTURES=2"])
    path = root / "tiny.yaml"
    path.write_text(config_to_yaml(cfg))
    return path


@pytest.mark.slow
def test_adapt_cli_ccssl_and_resume(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["adapt", str(config_file), "ADAPT.TARGET_WEIGHT=2", "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "round 0: pseudo labels kept 20%" in text and "correct (hidden GT)" in text
    assert "mean" in text and "left_eye" in text
    assert (out / "pseudo_labels" / "round_00.json").is_file() and (out / "final_state.pth").is_file()
    rc = main(["adapt", str(config_file), "ADAPT.TARGET_WEIGHT=2", "TRAIN.END_EPOCH=3", "--out", str(out),
               "--resume", "--json", "--device", "cpu"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["epoch"] == 3 and 0 <= res["metrics"]["PCK@0.05"] <= 1 and len(res["rounds"]) == 2


@pytest.mark.slow
def test_adapt_cli_sigterm_writes_a_checkpoint_and_says_how_to_resume(config_file, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "posekit", "adapt", str(config_file), "TRAIN.END_EPOCH=200", "--out", str(out),
           "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("epoch 2"):
            break
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=120)
    text = "".join(lines) + rest
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: checkpoint written to" in text and "--resume" in text
    assert (out / "checkpoint.pth").is_file()
    rc = main(["adapt", str(config_file), "TRAIN.END_EPOCH=3", "--out", str(out), "--resume", "--json",
               "--device", "cpu"])
    assert rc == 0


def test_adapt_cli_errors(config_file, tmp_path, capsys):
    assert main(["adapt", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "x")]) == 1
    assert "nope.yaml" in capsys.readouterr().err
    assert main(["adapt", str(config_file), "ADAPT.SOURCE_EPOCHS=0", "--out", str(tmp_path / "y")]) == 1
    assert "untrained network" in capsys.readouterr().err
    assert main(["adapt", str(config_file), "ADAPT.NOPE=1", "--out", str(tmp_path / "y")]) == 1
    assert "ADAPT.NOPE" in capsys.readouterr().err
    assert main(["adapt", str(config_file), "--out", str(tmp_path / "z"), "--resume"]) == 1
    assert "checkpoint.pth does not exist" in capsys.readouterr().err
