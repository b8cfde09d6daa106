"""`posekit infer --track`: ids in the PoseTrack-style JSON and the annotated video, a stream simulated by a video
file (frames dropped and counted), and Ctrl-C keeping every finished frame.

Truths: the frames written by the test (their count, their index painted into the pixels), and the files the run
leaves behind. The network has random weights (the keypoints are meaningless; tracking still runs on them).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.cli import main

MODEL = "hrnet_w16_tiny_128x96"
ROOT = Path(__file__).resolve().parents[2]


def _video(path: Path, n: int, fps: float, size: int = 96) -> Path:
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 256, (12, 12, 3)).astype(np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    for i in range(n):
        w.write(np.roll(base, i, axis=1))
    w.release()
    return path


def _run(args: list[str]) -> int:
    return main(["infer", "--model", MODEL, "--random-weights", "--no-flip", "--backend", "torch", *args])


def test_track_writes_ids_json_and_video(tmp_path):
    video = _video(tmp_path / "walk.avi", 12, 25.0)
    out = tmp_path / "out"
    assert _run([str(video), "--track", "--box", "10,10,60,80", "--box", "40,5,50,85", "--smooth", "--out",
                 str(out)]) == 0
    data = json.loads((out / "walk_tracks.json").read_text())
    assert [im["frame_id"] for im in data["images"]] == list(range(12))
    # random weights: scores may be below the birth score (id -1); the ids themselves are tested in tests/runtime
    assert len(data["annotations"]) >= 12 and all(isinstance(a["track_id"], int) for a in data["annotations"])
    frame_of = {im["id"]: im["frame_id"] for im in data["images"]}
    assert {frame_of[a["image_id"]] for a in data["annotations"]} == set(range(12))
    assert {"track_id", "keypoints", "bbox", "score", "image_id"} <= set(data["annotations"][0])
    cap = cv2.VideoCapture(str(out / "walk_track.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()


def test_stream_simulated_by_a_video_file_drops_and_counts_frames(tmp_path, capsys):
    """A 400 frames/s 'camera': the model cannot keep up, so frames are dropped, and every frame is either in the
    JSON or counted as dropped."""
    video = _video(tmp_path / "cam.avi", 80, 400.0)
    out = tmp_path / "out"
    assert _run([str(video), "--track", "--live", "--no-draw", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    dropped = int(re.search(r"(\d+) frames dropped \(live\)", printed).group(1))
    frames = [im["frame_id"] for im in json.loads((out / "cam_tracks.json").read_text())["images"]]
    assert dropped > 0 and len(frames) + dropped == 80
    assert frames == sorted(frames) and frames[-1] == 79


@pytest.mark.slow
def test_ctrl_c_keeps_the_frames_done(tmp_path):
    video = _video(tmp_path / "long.avi", 400, 20.0)  # 20 s when read live
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "posekit", "infer", "--model", MODEL, "--random-weights",
                             "--no-flip", "--backend", "torch", str(video), "--track", "--live", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stream = out / "long_tracks.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not stream.exists() or len(stream.read_text().splitlines()) < 5):
        time.sleep(0.2)
    assert stream.exists(), proc.communicate(timeout=30)
    done_before = len(stream.read_text().splitlines())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "interrupted" in err
    data = json.loads((out / "long_tracks.json").read_text())
    frames = [im["frame_id"] for im in data["images"]]
    assert len(frames) >= done_before and frames == sorted(frames) and frames[-1] < 399
    assert not stream.exists()
    cap = cv2.VideoCapture(str(out / "long_track.mp4"))  # the annotated video was closed properly too
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= done_before - 1
    cap.release()
