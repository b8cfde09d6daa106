"""The renderer's labels are exact: projection, visibility against the part-id buffer, bbox/area from the mask."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from posekit.data.synth import SynthConfig, render_sample
from posekit.data.synth.render import PARTS_PER_SUBJECT

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools

CASES = [(kind, style) for kind in ("human", "quadruped") for style in ("A", "B")]


def _samples(kind: str, style: str, n: int = 10):
    cfg = SynthConfig(kind=kind, style=style, truncation=0.5)
    return cfg, [render_sample(3, i, cfg) for i in range(n)]


@pytest.mark.parametrize(("kind", "style"), CASES)
def test_projected_3d_joints_equal_2d_keypoints(kind, style):
    cfg, samples = _samples(kind, style)
    w, h = cfg.image_size
    seen = {0: 0, 1: 0, 2: 0}
    for s in samples:
        cam = s.camera
        for inst in s.instances:
            X, Y, Z = inst.keypoints_3d.T
            assert (Z > 0).all()
            u, v = cam.f * X / Z + cam.cx, cam.f * Y / Z + cam.cy
            vis = inst.keypoints[:, 2]
            for val in (0, 1, 2):
                seen[val] += int((vis == val).sum())
            lab = vis > 0
            np.testing.assert_allclose(inst.keypoints[lab, 0], u[lab], atol=0.011)
            np.testing.assert_allclose(inst.keypoints[lab, 1], v[lab], atol=0.011)
            # v = 0 exactly when the joint's pixel (of the 0.01-px rounded position) falls outside the image;
            # its 2-D entry is then (0, 0, 0)
            px, py = np.floor(np.round(u, 2) + 0.5), np.floor(np.round(v, 2) + 0.5)
            outside = (px < 0) | (px >= w) | (py < 0) | (py >= h)
            np.testing.assert_array_equal(outside, vis == 0)
            assert (inst.keypoints[vis == 0] == 0).all()
    assert seen[1] > 0 and seen[2] > 0  # the set exercises both visible and occluded joints


@pytest.mark.parametrize(("kind", "style"), CASES)
def test_visibility_follows_the_part_id_buffer(kind, style):
    cfg, samples = _samples(kind, style)
    spec = cfg.spec
    reasons = {"other_subject": 0, "own_part": 0, "surface": 0}
    for s in samples:
        for inst in s.instances:
            fig = s.figures[inst.subject]
            rays = fig.keypoints / np.linalg.norm(fig.keypoints, axis=1, keepdims=True)
            for k, (x, y, v) in enumerate(inst.keypoints):
                if v == 0:
                    continue
                pid = int(s.ids[int(np.floor(y + 0.5)), int(np.floor(x + 0.5))])
                assert pid != 0, "a labelled keypoint must lie on a rendered body part"
                subject, part = (pid - 1) // PARTS_PER_SUBJECT, (pid - 1) % PARTS_PER_SUBJECT
                own_adjacent = subject == inst.subject and part in spec.adjacency[k]
                if v == 2:
                    assert own_adjacent, f"visible joint {k} is under part {part} of subject {subject}"
                    if part == spec.surface[k]:
                        assert np.dot(fig.normals[k], rays[k]) < spec.facing[k]
                elif subject != inst.subject:
                    reasons["other_subject"] += 1
                elif not own_adjacent:
                    reasons["own_part"] += 1
                else:  # on its own surface part, which faces away from the camera at the joint
                    assert part == spec.surface[k]
                    assert np.dot(fig.normals[k], rays[k]) >= spec.facing[k]
                    reasons["surface"] += 1
    assert reasons["surface"] > 0 and reasons["own_part"] + reasons["other_subject"] > 0


@pytest.mark.parametrize(("kind", "style"), CASES)
def test_face_keypoints_hidden_by_the_head_are_on_its_far_side(kind, style):
    cfg, samples = _samples(kind, style, n=16)
    face = [0, 1, 2] if kind == "human" else [2]  # nose + eyes (round human head) / nose (AP-10K)
    head = cfg.spec.parts.index("head")
    checked = 0
    for s in samples:
        for inst in s.instances:
            fig = s.figures[inst.subject]
            head_pts = np.concatenate([fig.pts[p.i0:p.i1] for p in fig.prims
                                       if p.part == head and p.shape == "blob" and p.layer == 0])
            center = head_pts.mean(axis=0)
            for k in face:
                x, y, v = inst.keypoints[k]
                if v != 1:
                    continue
                pid = int(s.ids[int(np.floor(y + 0.5)), int(np.floor(x + 0.5))])
                if pid - 1 == inst.subject * PARTS_PER_SUBJECT + head:
                    ray = fig.keypoints[k] / np.linalg.norm(fig.keypoints[k])
                    assert np.dot(fig.keypoints[k] - center, ray) > 0  # farther than the head centre
                    checked += 1
    assert checked > 0


@pytest.mark.parametrize(("kind", "style"), CASES)
def test_bbox_and_area_agree_with_the_rendered_mask(kind, style):
    cfg, samples = _samples(kind, style, n=8)
    for s in samples:
        owner = np.where(s.ids > 0, (s.ids.astype(np.int64) - 1) // PARTS_PER_SUBJECT, -1)
        annotated = {inst.subject for inst in s.instances}
        for subject in range(len(s.figures)):
            if subject not in annotated:
                assert not (owner == subject).any()
        for inst in s.instances:
            mask = owner == inst.subject
            ys, xs = np.nonzero(mask)
            assert inst.area == len(xs) > 0
            assert inst.bbox == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            np.testing.assert_array_equal(mask_utils.decode(inst.rle).astype(bool), mask)
            assert inst.num_keypoints == int((inst.keypoints[:, 2] > 0).sum())


@pytest.mark.parametrize("kind", ["human", "quadruped"])
def test_flat_style_background_is_untouched_outside_the_figures(kind):
    _, samples = _samples(kind, "B", n=4)
    for s in samples:
        bg = s.ids == 0
        assert bg.any() and (~bg).any()
        np.testing.assert_array_equal(s.image[bg], s.background[bg])
        # figures are drawn: their pixels differ from the background behind them
        diff = np.abs(s.image[~bg].astype(int) - s.background[~bg].astype(int)).sum(axis=1)
        assert (diff > 0).mean() > 0.8


def test_same_seed_same_sample_and_styles_differ():
    a = render_sample(5, 2, SynthConfig())
    b = render_sample(5, 2, SynthConfig())
    np.testing.assert_array_equal(a.image, b.image)
    c = render_sample(6, 2, SynthConfig())
    assert not np.array_equal(a.image, c.image)
    d = render_sample(5, 2, SynthConfig(style="B"))
    assert np.abs(a.image.astype(int) - d.image.astype(int)).mean() > 10
