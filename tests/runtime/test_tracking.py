"""Tracker behaviour (identities through crossings, exits and re-entries; births) and One-Euro smoothing math."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.data.synth import SynthConfig, render_track_frame
from posekit.errors import ConfigError
from posekit.evaluation.tracking import TrackFrame, box_mot
from posekit.runtime.tracking import (
    OneEuro,
    Tracker,
    TrackerConfig,
    flow_keypoints,
    greedy_match,
)

# A standing COCO-17 template, unit height (x right, y down), centred on the pelvis.
TEMPLATE = np.array([[0, -0.45], [-0.03, -0.48], [0.03, -0.48], [-0.06, -0.46], [0.06, -0.46], [-0.12, -0.3],
                     [0.12, -0.3], [-0.15, -0.1], [0.15, -0.1], [-0.16, 0.08], [0.16, 0.08], [-0.07, 0.0],
                     [0.07, 0.0], [-0.08, 0.25], [0.08, 0.25], [-0.08, 0.5], [0.08, 0.5]])


def person(x: float, y: float, height: float, score: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [17,3] and xywh box of a template person with pelvis at (x, y)."""
    k = np.c_[TEMPLATE * height + [x, y], np.full(17, score)]
    return k, np.array([x - 0.2 * height, y - 0.5 * height, 0.4 * height, height])


def run(tracker: Tracker, frames: list[list[tuple[np.ndarray, np.ndarray]]]) -> list[list[int]]:
    ids = []
    for people in frames:
        k = np.array([p[0] for p in people]).reshape(len(people), 17, 3)
        b = np.array([p[1] for p in people]).reshape(-1, 4)
        got, _ = tracker.update(k, b, np.full(len(people), 0.9))
        ids.append(got.tolist())
    return ids


@pytest.mark.parametrize("similarity", ["oks", "iou"])
def test_crossing_people_keep_their_ids(similarity):
    """A walks right, B (farther, smaller) walks left behind A and is hidden for 4 frames at the crossing."""
    frames = []
    for t in range(40):
        a = person(40 + 4 * t, 120, 100)
        bx = 200 - 4 * t
        people = [a]
        if abs(bx - (40 + 4 * t)) > 16:  # B hidden while it is behind A
            people.append(person(bx, 110, 70))
        frames.append(people)
    ids = run(Tracker(TrackerConfig(similarity=similarity)), frames)
    assert all(f[0] == 0 for f in ids)
    assert [f[1] for f in ids if len(f) == 2] == [1] * sum(len(f) == 2 for f in ids)
    assert any(len(f) == 1 for f in ids[10:30])  # B really was hidden for a while


def test_reentry_within_memory_keeps_the_id_and_after_it_does_not():
    def frames(gap):
        out = []
        for t in range(10):  # walk to the right border
            out.append([person(200 + 5 * t, 120, 90)])
        out += [[] for _ in range(gap)]  # out of the frame
        for t in range(10):  # come back in where they left
            out.append([person(245 - 5 * t, 120, 90)])
        return out
    ids = run(Tracker(TrackerConfig(memory=8)), frames(8))
    assert {i for f in ids for i in f} == {0}
    ids = run(Tracker(TrackerConfig(memory=8)), frames(9))
    assert ids[0] == [0] and ids[-1] == [1]  # gone longer than the memory: a new identity


def test_births_need_a_score_and_ids_are_never_reused():
    tracker = Tracker(TrackerConfig(birth_score=0.5, memory=0))
    k, b = person(50, 50, 60)
    ids, _ = tracker.update(k[None], b[None], np.array([0.3]))
    assert ids.tolist() == [-1] and not tracker.tracks
    ids, _ = tracker.update(k[None], b[None], np.array([0.6]))
    assert ids.tolist() == [0]
    tracker.update(np.zeros((0, 17, 3)), np.zeros((0, 4)), np.zeros(0))  # unmatched once: memory 0 -> deleted
    ids, _ = tracker.update(k[None], b[None], np.array([0.6]))
    assert ids.tolist() == [1]


def test_greedy_match_takes_best_pairs_first():
    sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    # greedy: (0,0) first, then row 1 may only take column 1, below the threshold
    assert greedy_match(sim, 0.5) == [(0, 0)]
    assert greedy_match(sim, 0.05) == [(0, 0), (1, 1)]


def test_propagated_boxes_follow_the_joints_motion():
    tracker = Tracker(TrackerConfig())
    k, b = person(100, 100, 80)
    tracker.update(k[None], b[None], np.array([0.9]))
    k2 = k.copy()
    k2[:, :2] += [3.0, -1.0]
    k2[0, :2] += 40.0  # one wild joint does not move the median
    b2 = b + [5.0, 5.0, 0.0, 0.0]  # the box the second pose was estimated in
    tracker.update(k2[None], b2[None], np.array([0.9]))
    (box,) = tracker.boxes()
    lo, hi = k2[:, :2].min(axis=0), k2[:, :2].max(axis=0)
    size = ((hi - lo) * 1.2 + b2[2:]) / 2  # between the joints' box x 1.2 and the box the pose came from
    centre = (lo + hi) / 2 + [3.0, -1.0]  # moved on by the joints' median motion
    np.testing.assert_allclose(box, np.r_[centre - size / 2, size])
    # walking in at the left border: the box's left side stays on the border, the rest follows the person
    tracker = Tracker(TrackerConfig())
    k, b = person(10, 100, 80)
    b = np.array([0.0, b[1], b[0] + b[2], b[3]])
    tracker.update(k[None], b[None], np.array([0.9]))
    (box,) = tracker.boxes(np.zeros((200, 200, 3), np.uint8))
    assert box[0] == 0.0 and box[1] >= 0


def test_flow_moves_keypoints_with_the_image():
    rng = np.random.default_rng(0)
    import cv2

    tex = cv2.GaussianBlur((rng.random((160, 160)) * 255).astype(np.uint8), (0, 0), 2.0)
    shifted = np.roll(tex, (3, 5), axis=(0, 1))  # content moves 5 px right, 3 px down
    kps = np.array([[[60.0, 60.0, 0.9], [90.0, 70.0, 0.9], [80.0, 100.0, 0.1]]])
    moved = flow_keypoints(tex, shifted, kps, 0.2)
    np.testing.assert_allclose(moved[0, :2, :2], kps[0, :2, :2] + [5, 3], atol=0.3)
    np.testing.assert_array_equal(moved[0, 2], kps[0, 2])  # low score: not moved


def test_one_euro_without_speed_term_is_the_first_order_low_pass():
    """beta = 0: x_hat_n = a x_n + (1 - a) x_hat_{n-1}, a = 1 / (1 + fps / (2 pi f_c)); a unit step from 0 gives
    x_hat_n = 1 - (1 - a)^n."""
    f = OneEuro(min_cutoff=2.0, beta=0.0)
    a = 1.0 / (1.0 + 30.0 / (2 * np.pi * 2.0))
    assert f(np.zeros(1), 0.0)[0] == 0.0
    got = [f(np.ones(1), n / 30.0)[0] for n in range(1, 8)]
    np.testing.assert_allclose(got, [1 - (1 - a) ** n for n in range(1, 8)], rtol=1e-12)


def test_one_euro_noise_variance_matches_the_closed_form():
    """White noise of variance s^2 through the low-pass above has variance a / (2 - a) s^2 (geometric series)."""
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1.0, (4000, 64))
    f = OneEuro(min_cutoff=1.0, beta=0.0)
    y = np.stack([f(v, n / 30.0) for n, v in enumerate(x)])
    a = 1.0 / (1.0 + 30.0 / (2 * np.pi))
    # 256k samples with correlation time ~1/a ~ 5.8: relative standard error of the variance ~ 0.7 %
    assert y[200:].var() == pytest.approx(a / (2 - a), rel=0.05)


def test_one_euro_speed_term_by_hand():
    """Two steps computed by hand: the cutoff rises with the filtered speed."""
    f = OneEuro(min_cutoff=1.0, beta=0.5, d_cutoff=1.0)
    f(np.array([0.0]), 0.0)
    dt = 0.1
    ad = 1 / (1 + 1 / (2 * np.pi * 1.0) / dt)
    dx1 = ad * (2.0 / dt)
    a1 = 1 / (1 + 1 / (2 * np.pi * (1.0 + 0.5 * dx1)) / dt)
    x1 = a1 * 2.0
    assert f(np.array([2.0]), dt)[0] == pytest.approx(x1, rel=1e-12)
    dx2 = ad * ((3.0 - x1) / dt) + (1 - ad) * dx1
    a2 = 1 / (1 + 1 / (2 * np.pi * (1.0 + 0.5 * abs(dx2))) / dt)
    assert f(np.array([3.0]), 2 * dt)[0] == pytest.approx(a2 * 3.0 + (1 - a2) * x1, rel=1e-12)


def test_smoothing_is_applied_per_track():
    tracker = Tracker(TrackerConfig(smooth=True, min_cutoff=1.0, beta=0.0, score_ref=0.5))  # scores 0.9: c = 1
    k, b = person(100, 100, 80)
    tracker.update(k[None], b[None], np.array([0.9]))
    k2 = k.copy()
    k2[:, 0] += 3.0
    _, out = tracker.update(k2[None], b[None], np.array([0.9]))
    a = 1.0 / (1.0 + 30.0 / (2 * np.pi))
    np.testing.assert_allclose(out[0, :, 0], k[:, 0] + 3.0 * a)
    np.testing.assert_array_equal(out[0, :, 2], k2[:, 2])


def test_ground_truth_poses_of_synthetic_sequences_are_tracked_without_switches():
    """People of `synth --tracks` sequences (crossing, occluding, entering, leaving), their true poses as input."""
    cfg = SynthConfig(max_subjects=3, image_size=(128, 128), sequence_length=40, tracks=True)
    gt, pred = [], []
    for seq in range(3):
        tracker = Tracker()
        g_video, p_video = [], []
        for f in range(40):
            inst = [i for i in render_track_frame(9, seq * 40 + f, cfg).instances if i.num_keypoints >= 3]
            k = np.array([np.c_[i.keypoints[:, :2], (i.keypoints[:, 2] > 0) * 0.9] for i in inst]).reshape(-1, 17, 3)
            b = np.array([i.bbox for i in inst]).reshape(-1, 4)
            ids, _ = tracker.update(k, b, np.full(len(inst), 0.9))
            g_video.append(TrackFrame(np.array([i.track_id for i in inst]), b))
            p_video.append(TrackFrame(ids, b))
        gt.append(g_video)
        pred.append(p_video)
    counts = box_mot(gt, pred)
    assert counts.num_switches == 0 and counts.num_misses == 0
    assert counts.num_tracks >= 5


def test_config_is_validated():
    with pytest.raises(ConfigError, match="similarity"):
        TrackerConfig(similarity="flow")
    with pytest.raises(ConfigError, match="memory"):
        TrackerConfig(memory=-1)


def test_one_euro_confidence_scales_the_cutoff():
    """beta = 0: a sample of confidence c is filtered with cutoff c x min_cutoff."""
    f = OneEuro(min_cutoff=4.0, beta=0.0)
    f(np.zeros(2), 0.0)
    got = f(np.ones(2), 1 / 30.0, np.array([1.0, 0.25]))
    np.testing.assert_allclose(got, [OneEuro.alpha(4.0, 1 / 30.0), OneEuro.alpha(1.0, 1 / 30.0)], rtol=1e-12)
