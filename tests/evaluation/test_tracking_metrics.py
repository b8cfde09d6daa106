"""Tracking metrics equal py-motmetrics (the library of record) on hand-made and generated cases.

motmetrics 1.4.0's distances.iou_matrix calls np.asfarray (gone in numpy 2): the reference distance matrices are
computed here with plain numpy (IoU of xywh boxes, written out independently of posekit) and fed to its
MOTAccumulator; its metrics then run unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

from posekit.errors import DataError
from posekit.evaluation.tracking import (
    TrackFrame,
    box_mot,
    clear_mot,
    head_size,
    iou_distance,
    keypoint_mota,
    videos_from_coco,
)

mm = pytest.importorskip("motmetrics", reason="motmetrics (the library of record, dev extra) is not installed")
METRICS = ["mota", "motp", "idf1", "num_switches", "num_misses", "num_false_positives", "num_objects",
           "num_predictions", "mostly_tracked"]


def _ref_iou_dist(a, b, thr=0.5):
    out = np.full((len(a), len(b)), np.nan)
    for i, (x, y, w, h) in enumerate(a):
        for j, (u, v, p, q) in enumerate(b):
            iw = max(0.0, min(x + w, u + p) - max(x, u))
            ih = max(0.0, min(y + h, v + q) - max(y, v))
            inter = iw * ih
            iou = inter / (w * h + p * q - inter)
            if 1 - iou <= 1 - thr:
                out[i, j] = 1 - iou
    return out


def _ref(videos):
    """motmetrics' OVERALL row over videos given as lists of (oids, hids, dists)."""
    accs = []
    for frames in videos:
        acc = mm.MOTAccumulator(auto_id=True)
        for o, h, d in frames:
            acc.update(list(o), list(h), np.asarray(d, float).reshape(len(o), len(h)))
        accs.append(acc)
    mh = mm.metrics.create()
    df = mh.compute_many(accs, metrics=METRICS, names=[str(i) for i in range(len(accs))], generate_overall=True)
    return df.loc["OVERALL"]


def _check(counts, ref):
    s = counts.summary()
    for name in METRICS:
        np.testing.assert_allclose(s[name], float(ref[name]), rtol=1e-12, atol=1e-12, err_msg=name)


def test_hand_made_switch_miss_false_positive():
    # frame 0: gt 1<->10, 2<->11; frame 1: swapped (2 switches); frame 2: both missed, 10 and 12 false positives
    frames = [([1, 2], [10, 11], [[0.1, np.nan], [np.nan, 0.2]]),
              ([1, 2], [10, 11], [[np.nan, 0.1], [0.3, np.nan]]),
              ([1, 2], [10, 12], [[np.nan, np.nan], [np.nan, np.nan]])]
    counts = clear_mot(frames)
    assert (counts.num_switches, counts.num_misses, counts.num_false_positives) == (2, 2, 2)
    assert counts.mota == pytest.approx(1 - 6 / 6)
    _check(counts, _ref([frames]))


def test_continuation_beats_a_cheaper_new_pair():
    # frame 1: gt 1 stays with its hypothesis 10 although 11 is closer (CLEAR MOT keeps established matches)
    frames = [([1], [10], [[0.1]]), ([1], [10, 11], [[0.4, 0.0]])]
    counts = clear_mot(frames)
    assert counts.num_switches == 0 and counts.num_false_positives == 1
    _check(counts, _ref([frames]))


def test_iou_distance_matches_a_plain_computation():
    rng = np.random.default_rng(0)
    a = np.c_[rng.uniform(0, 50, (6, 2)), rng.uniform(5, 40, (6, 2))]
    b = np.c_[a[:, :2] + rng.normal(0, 6, (6, 2)), a[:, 2:] * rng.uniform(0.7, 1.3, (6, 2))]
    np.testing.assert_allclose(iou_distance(a, b), _ref_iou_dist(a, b), rtol=1e-12, atol=1e-12)


def _random_videos(seed, num_videos=3, frames=40, people=5):
    """Ground-truth boxes walking with noise; hypotheses that miss, add false positives and swap ids."""
    rng = np.random.default_rng(seed)
    gt, pred = [], []
    for _ in range(num_videos):
        start = rng.uniform(0, 200, (people, 2))
        vel = rng.normal(0, 3, (people, 2))
        size = rng.uniform(20, 60, (people, 2))
        life = np.sort(rng.integers(0, frames, (people, 2)), axis=1)
        perm = np.arange(people) + 100
        g_video, p_video = [], []
        for t in range(frames):
            alive = (life[:, 0] <= t) & (t <= life[:, 1])
            ids = np.nonzero(alive)[0]
            boxes = np.c_[start[ids] + vel[ids] * t, size[ids]]
            g_video.append(TrackFrame(ids, boxes))
            if rng.random() < 0.1:  # an identity swap in the tracker
                i, j = rng.choice(people, 2, replace=False)
                perm[[i, j]] = perm[[j, i]]
            keep = rng.random(len(ids)) > 0.15
            pb = boxes[keep] + rng.normal(0, 4, (int(keep.sum()), 4))
            pid = perm[ids[keep]]
            if rng.random() < 0.3:  # a false positive
                pb = np.r_[pb, [[rng.uniform(0, 200), rng.uniform(0, 200), 30, 30]]]
                pid = np.r_[pid, 999]
            p_video.append(TrackFrame(pid, pb))
        gt.append(g_video)
        pred.append(p_video)
    return gt, pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_box_metrics_equal_motmetrics_on_generated_videos(seed):
    gt, pred = _random_videos(seed)
    ref = _ref([[(g.ids, p.ids, _ref_iou_dist(g.boxes, p.boxes)) for g, p in zip(gv, pv)]
                for gv, pv in zip(gt, pred)])
    counts = box_mot(gt, pred)
    assert counts.num_switches > 0 and counts.num_misses > 0 and counts.num_false_positives > 0
    _check(counts, ref)


def _ref_kp_mota(gt, pred, joint):
    videos = []
    for gv, pv in zip(gt, pred):
        frames = []
        for g, p in zip(gv, pv):
            rows = [i for i in range(len(g.ids)) if g.keypoints[i, joint, 2] > 0]
            cols = [j for j in range(len(p.ids)) if p.keypoints[j, joint, 2] > 0]
            d = np.full((len(rows), len(cols)), np.nan)
            for a, i in enumerate(rows):
                for b, j in enumerate(cols):
                    e = np.hypot(*(g.keypoints[i, joint, :2] - p.keypoints[j, joint, :2])) / g.head_sizes[i]
                    d[a, b] = e if e <= 0.5 else np.nan
            frames.append(([g.ids[i] for i in rows], [p.ids[j] for j in cols], d))
        videos.append(frames)
    return float(_ref(videos)["mota"])


def test_keypoint_mota_equals_per_joint_motmetrics():
    gt, pred = _random_videos(5, num_videos=2, frames=25)
    rng = np.random.default_rng(7)
    for gv, pv in zip(gt, pred):
        for g, p in zip(gv, pv):
            g.keypoints = np.concatenate([g.boxes[:, None, :2] + rng.uniform(0, 30, (len(g.ids), 4, 2)),
                                          rng.integers(0, 3, (len(g.ids), 4, 1)).astype(float)], axis=2)
            g.head_sizes = np.full(len(g.ids), 12.0)
            p.keypoints = np.concatenate([p.boxes[:, None, :2] + rng.uniform(0, 30, (len(p.ids), 4, 2)),
                                          rng.uniform(0, 1, (len(p.ids), 4, 1))], axis=2)
    out = keypoint_mota(gt, pred)
    ref = [_ref_kp_mota(gt, pred, j) for j in range(4)]
    np.testing.assert_allclose(out["per_joint"], ref, rtol=1e-12)
    assert out["kp_mota"] == pytest.approx(np.mean(ref))


def test_videos_from_coco_reads_posetrack_fields():
    data = {"images": [{"id": 2, "vid_id": 0, "frame_id": 1}, {"id": 1, "vid_id": 0, "frame_id": 0},
                       {"id": 3, "vid_id": 1, "frame_id": 0}],
            "annotations": [{"image_id": 1, "track_id": 4, "bbox": [0, 0, 10, 10], "keypoints": [1, 1, 2] * 17,
                             "bbox_head": [0, 0, 3, 4]}]}
    videos = videos_from_coco(data)
    assert [len(v) for v in videos.values()] == [2, 1]
    first = videos[0][0]
    assert first.ids.tolist() == [4] and first.head_sizes[0] == pytest.approx(head_size([0, 0, 3, 4])) == 3.0
    assert len(videos[0][1].ids) == 0
    del data["annotations"][0]["track_id"]
    with pytest.raises(DataError, match="track_id"):
        videos_from_coco(data)


def test_repeated_ids_in_a_frame_are_an_error():
    with pytest.raises(DataError, match="repeats a track id"):
        clear_mot([([1, 1], [2], [[0.1], [0.2]])])


def test_metrics_on_a_synthetic_tracks_dataset_equal_motmetrics(tmp_path):
    """Ground truth from `posekit synth --tracks`; predictions: the truth with jitter, drops and relabelled ids."""
    import json

    from posekit.data.synth import generate

    summary = generate(tmp_path, 24, seed=3, workers=1, image_size=(96, 96), sequence_length=12, tracks=True)
    data = json.loads(open(summary["ann_file"]).read())
    rng = np.random.default_rng(1)
    pred = {"images": data["images"], "annotations": []}
    for a in data["annotations"]:
        if rng.random() < 0.1:
            continue
        k = np.asarray(a["keypoints"], float).reshape(-1, 3)
        k[:, :2] += rng.normal(0, 1.5, (len(k), 2))
        k[:, 2] = rng.uniform(0.1, 1, len(k))
        tid = a["track_id"] + (50 if a["image_id"] % 12 > 7 else 0)  # a new id late in each video
        pred["annotations"].append({"image_id": a["image_id"], "track_id": tid, "keypoints": k.ravel().tolist(),
                                    "bbox": list(np.asarray(a["bbox"]) + rng.normal(0, 2, 4))})
    gt_v, pred_v = videos_from_coco(data), videos_from_coco(pred)
    gt, pr = [gt_v[v] for v in gt_v], [pred_v[v] for v in gt_v]
    ref = _ref([[(g.ids, p.ids, _ref_iou_dist(g.boxes, p.boxes)) for g, p in zip(gv, pv)] for gv, pv in zip(gt, pr)])
    counts = box_mot(gt, pr)
    assert counts.num_switches > 0
    _check(counts, ref)
    np.testing.assert_allclose(keypoint_mota(gt, pr)["per_joint"], [_ref_kp_mota(gt, pr, j) for j in range(17)],
                               rtol=1e-12)
