"""Synthetic multi-person sequences with identities: deterministic, static scene, people keep their bodies and
move along their paths, PoseTrack-style fields; the default output stays byte-identical (test_synth_sequences)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from posekit.data.synth import SynthConfig, generate, render_track_frame
from posekit.data.synth.tracks import Walker, walkers
from posekit.errors import ConfigError

CFG = SynthConfig(max_subjects=3, image_size=(128, 128), sequence_length=30, tracks=True)


def test_frames_share_scene_and_people_move_along_their_paths():
    frames = [render_track_frame(4, i, CFG) for i in range(30)]
    # static camera: the background layer is the same in every frame
    np.testing.assert_array_equal(frames[0].background, frames[-1].background)
    people = walkers(4, 0, CFG)
    assert 2 <= len(people) <= 3
    seen = {i.track_id for f in frames for i in f.instances}
    assert seen and seen <= set(range(len(people)))
    for tid in seen:
        track = [(t, next(i for i in f.instances if i.track_id == tid)) for t, f in enumerate(frames)
                 if any(i.track_id == tid for i in f.instances)]
        for (t0, a), (t1, b) in zip(track, track[1:]):
            if t1 != t0 + 1:
                continue
            both = (a.keypoints[:, 2] > 0) & (b.keypoints[:, 2] > 0)
            if both.sum() >= 3:  # a few pixels per frame: speed <= 1.6 % of 128 px plus the limbs' drift
                step = np.linalg.norm(a.keypoints[both, :2] - b.keypoints[both, :2], axis=1)
                assert np.median(step) < 8, (tid, t0, step)
            assert b.head_box is not None and b.head_box[2] > 0 and b.head_box[3] > 0
    # frame 10 is the same image whether rendered alone or in order
    np.testing.assert_array_equal(render_track_frame(4, 10, CFG).image, frames[10].image)


def test_walker_turns_around_and_grows():
    w = Walker(u0=10.0, v0=50.0, speed=2.0, turn=5, size0=0.5, growth=0.01, yaw=0.5)
    assert w.at(3)[:2] == (16.0, 50.0) and w.at(3)[3] == 1.0
    assert w.at(7)[0] == 16.0 and w.at(7)[3] == -1.0  # back where it was at frame 3, heading left
    assert w.at(10)[2] == pytest.approx(0.5 * 1.01 ** 10)


def test_tracks_dataset_has_posetrack_fields_and_is_deterministic(tmp_path):
    a = generate(tmp_path / "a", 12, seed=2, workers=1, image_size=(96, 96), sequence_length=6, tracks=True)
    generate(tmp_path / "b", 12, seed=2, workers=2, image_size=(96, 96), sequence_length=6, tracks=True)
    for name in ("annotations.json", "images/000007.jpg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    data = json.loads(Path(a["ann_file"]).read_text())
    assert data["info"]["tracks"] is True
    assert [(im["vid_id"], im["frame_id"], im["nframes"]) for im in data["images"][5:7]] == [(0, 5, 6), (1, 0, 6)]
    frame_of = {im["id"]: (im["vid_id"], im["frame_id"]) for im in data["images"]}
    keys = [(frame_of[an["image_id"]], an["track_id"]) for an in data["annotations"]]
    assert len(keys) == len(set(keys))  # one annotation per person and frame
    assert all(len(an["bbox_head"]) == 4 for an in data["annotations"])


def test_tracks_options_are_validated():
    with pytest.raises(ConfigError, match="tracks"):
        SynthConfig(tracks=True)
    with pytest.raises(ConfigError, match="max_subjects 1"):
        SynthConfig(max_subjects=3, sequence_length=4)


def test_cli_tracks(tmp_path):
    out = tmp_path / "t"
    subprocess.run([sys.executable, "-m", "posekit", "synth", "--out", str(out), "--num-images", "4", "--tracks",
                    "--sequence-length", "2", "--size", "64x64", "--workers", "1", "--no-progress"], check=True,
                   capture_output=True)
    data = json.loads((out / "annotations.json").read_text())
    assert data["info"]["sequence_length"] == 2 and {im["vid_id"] for im in data["images"]} == {0, 1}
