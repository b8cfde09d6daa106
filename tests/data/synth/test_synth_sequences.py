"""Synthetic ordered sequences: same subject, small smooth motion, deterministic; plain output unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from posekit.data.synth import SynthConfig, generate, render_sample
from posekit.errors import ConfigError


def _digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def test_existing_options_are_byte_identical(tmp_path):
    """Digest of the output of the generator before sequences existed (commit 0f2178a), default options; the
    annotation file's info has gained "size_range" since (so a split's settings can be checked), which is left out."""
    h = hashlib.sha256()
    for kind, style in (("quadruped", "A"), ("human", "B")):
        d = tmp_path / kind
        generate(d, 3, kind=kind, style=style, seed=5, workers=1, image_size=(96, 96))
        for p in sorted(d.rglob("*")):
            if p.is_file():
                h.update(p.name.encode())
                data = p.read_bytes()
                if p.name == "annotations.json":
                    ann = json.loads(data)
                    assert ann["info"].pop("size_range") == [0.35, 0.9]
                    data = json.dumps(ann, separators=(",", ":")).encode()
                h.update(data)
    assert h.hexdigest()[:16] == "b456b51b14e30b4d"


def test_frames_follow_one_subject_with_small_motion():
    cfg = SynthConfig(kind="quadruped", style="B", max_subjects=1, image_size=(128, 128), sequence_length=6)
    frames = [render_sample(3, i, cfg) for i in range(6)]
    plain = render_sample(3, 0, SynthConfig(kind="quadruped", style="B", max_subjects=1, image_size=(128, 128)))
    # frame 0 of sequence 0 is the image a plain Generator seeded (seed, 0) gives
    np.testing.assert_array_equal(frames[0].image, plain.image)
    kps = [f.instances[0].keypoints for f in frames]
    for a, b in zip(kps, kps[1:]):
        both = (a[:, 2] > 0) & (b[:, 2] > 0)
        step = np.linalg.norm(a[both, :2] - b[both, :2], axis=1)
        assert 0 < np.median(step) < 10, step  # moves, but by a few pixels per frame
    assert not np.array_equal(frames[0].image, frames[1].image)
    # the same subject: its 3-D limb lengths stay within a few percent
    def limbs(f):
        k3 = f.figures[0].keypoints
        return np.linalg.norm(k3[[5, 6, 11, 12]] - k3[[6, 7, 12, 13]], axis=1)
    np.testing.assert_allclose(limbs(frames[-1]), limbs(frames[0]), rtol=0.1)
    # frame 0 of the next sequence is another subject
    other = render_sample(3, 6, cfg).instances[0].keypoints
    assert np.linalg.norm(other[:, :2] - kps[-1][:, :2], axis=1).mean() > 10


def test_sequence_dataset_is_deterministic_and_labels_frames(tmp_path):
    a = generate(tmp_path / "a", 6, kind="quadruped", style="B", max_subjects=1, seed=1, workers=1,
                 image_size=(64, 64), sequence_length=3)
    generate(tmp_path / "b", 6, kind="quadruped", style="B", max_subjects=1, seed=1, workers=2,
             image_size=(64, 64), sequence_length=3)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    data = json.loads(Path(a["ann_file"]).read_text())
    assert [(im["sequence_id"], im["frame_index"]) for im in data["images"]] == [(0, 0), (0, 1), (0, 2), (1, 0),
                                                                                 (1, 1), (1, 2)]
    assert data["info"]["sequence_length"] == 3


def test_sequence_options_are_validated():
    with pytest.raises(ConfigError, match="max_subjects 1"):
        SynthConfig(kind="quadruped", max_subjects=3, sequence_length=4)
    with pytest.raises(ConfigError, match="sequence_length"):
        SynthConfig(sequence_length=0)
