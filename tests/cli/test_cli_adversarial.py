"""Bad or unusual inputs against the CLI: each gives a clear message naming the file / field / option, the exit code,
no traceback, and nothing is lost (interrupted runs resume bit-identical to an uninterrupted one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from posekit.cli import main


def _fails(capsys: pytest.CaptureFixture, argv: list[str], *needles: str, code: int = 1) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


def test_bad_override_values_name_the_override(synth_config: Path, capsys: pytest.CaptureFixture) -> None:
    _fails(capsys, ["train", str(synth_config), "TRAIN.LR=-1"], "TRAIN.LR", "TRAIN.LR=-1", "> 0")
    _fails(capsys, ["train", str(synth_config), "TRAIN.BATCH_SIZE_PER_GPU=0"], "TRAIN.BATCH_SIZE_PER_GPU=0")
    _fails(capsys, ["train", str(synth_config), "TRAIN.LR_SCHEDULE=linear"], "TRAIN.LR_SCHEDULE", "cosine")


def test_unusable_device_is_an_error_before_work(synth_config: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: --device cuda is valid here")
    _fails(capsys, ["train", str(synth_config), "--device", "cuda", "--out", str(tmp_path / "o")], "--device cuda",
           "CUDA")
    _fails(capsys, ["train", str(synth_config), "--device", "gpu0", "--out", str(tmp_path / "o")], "--device 'gpu0'")
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_output_is_found_before_training(synth_config: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        _fails(capsys, ["train", str(synth_config), "--out", str(ro / "run")], str(ro / "run"), "not writable")
    finally:
        ro.chmod(0o700)


def test_output_path_that_is_a_file_is_found_before_training(synth_config: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    _fails(capsys, ["train", str(synth_config), "--out", str(blocker / "run")], str(blocker / "run"),
           "not writable")


def test_truncated_weights_are_a_clear_error(synth_config: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(1000)}, good)
    bad = tmp_path / "cut.pth"
    bad.write_bytes(good.read_bytes()[:300])
    _fails(capsys, ["test", str(synth_config), "--weights", str(bad), "--out", str(tmp_path / "t")], str(bad))


@pytest.mark.slow
def test_auto_resume_with_changed_settings_is_refused_and_announced(synth_config: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    base = ["train", str(synth_config), "--out", str(out), "--no-progress", "AUTO_RESUME=true", "TRAIN.VAL_EVERY=0"]
    assert main([*base, "TRAIN.MAX_ITERS=1"]) == 0
    capsys.readouterr()
    recorded = (out / "config.yaml").read_text()
    _fails(capsys, [*base, "TRAIN.MAX_ITERS=2", "TRAIN.LR=0.5"], "TRAIN.LR: 0.001 -> 0.5", "checkpoint.pth")
    assert (out / "config.yaml").read_text() == recorded  # the refused settings were not recorded
    assert main([*base, "TRAIN.MAX_ITERS=2"]) == 0  # run-length keys may change: announced resume
    assert "resuming" in capsys.readouterr().out


def _train_cmd(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "posekit", "train", str(config), "--out", str(out), "--no-progress",
            "TRAIN.VAL_EVERY=0", "TRAIN.END_EPOCH=3", "TRAIN.BATCH_SIZE_PER_GPU=2", *extra]


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    start = time.monotonic()
    while not path.exists():
        assert time.monotonic() - start < timeout, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_signal_mid_epoch_loses_at_most_the_checkpoint_interval(synth_config: Path, tmp_path: Path,
                                                                sig: signal.Signals) -> None:
    """SIGTERM stops after the step with a checkpoint; SIGKILL loses at most CHECKPOINT_EVERY_ITERS steps; the
    resumed run ends bit-identical to an uninterrupted one (12 steps: 4 per epoch, killed inside epoch 0)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full"
    subprocess.run(_train_cmd(synth_config, full), check=True, capture_output=True, env=env, timeout=600)
    run = tmp_path / "cut"
    proc = subprocess.Popen(_train_cmd(synth_config, run, "TRAIN.CHECKPOINT_EVERY_ITERS=1"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(run / "checkpoint.pth")  # first periodic checkpoint: mid epoch 0
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err
    state = torch.load(run / "checkpoint.pth", weights_only=True)
    assert state["iteration"] >= 1 and not (run / "final_state.pth").exists()
    if sig == signal.SIGTERM:
        assert proc.returncode == 130
    done = subprocess.run(_train_cmd(synth_config, run, "TRAIN.CHECKPOINT_EVERY_ITERS=1", "--resume"),
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-1500:]
    a = torch.load(full / "final_state.pth", weights_only=True)["state_dict"]
    b = torch.load(run / "final_state.pth", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_config_written_is_what_ran(synth_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", str(synth_config), "--out", str(out), "--no-progress", "TRAIN.MAX_ITERS=1",
                 "TRAIN.VAL_EVERY=0", "TRAIN.LR=0.002"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["TRAIN"]["LR"] == 0.002


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_bad_image_at_batch_time_stops_with_checkpoint_or_is_skipped(synth_config: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture,
                                                                     workers: int) -> None:
    import json
    import shutil

    cfg = yaml.safe_load(synth_config.read_text())
    images = tmp_path / "images"
    shutil.copytree(cfg["DATASET"]["TRAIN_IMAGES"], images)
    ann = json.loads(Path(cfg["DATASET"]["TRAIN_ANN"]).read_text())
    victim = images / ann["images"][3]["file_name"]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    out = tmp_path / "run"
    base = ["train", str(synth_config), "--out", str(out), "--no-progress", f"WORKERS={workers}",
            f"DATASET.TRAIN_IMAGES={images}", "TRAIN.VAL_EVERY=0", "TRAIN.SHUFFLE=false", "TRAIN.BATCH_SIZE_PER_GPU=2"]
    err = _fails(capsys, base, victim.name, "checkpoint", "TRAIN.BAD_SAMPLES=skip")
    assert "DataLoader worker" not in err  # the file's own message, not torch's wrapper
    assert torch.load(out / "checkpoint.pth", weights_only=True)["epoch_iteration"] >= 1
    assert main([*base, "--resume", "TRAIN.BAD_SAMPLES=skip"]) == 0
    skipped = [json.loads(line) for line in (out / "skipped_samples.jsonl").read_text().splitlines()]
    assert skipped and all(victim.name in s["error"] for s in skipped)
    assert (out / "final_state.pth").is_file()
