"""Multi-object tracking metrics: box CLEAR MOT (MOTA, MOTP, ID switches), IDF1, and PoseTrack keypoint MOTA.

Conventions (those of py-motmetrics, the library of record, which the tests compare against):
- A video is a list of `TrackFrame`s (ids, boxes xywh, optionally keypoints [N,K,3] and, for the ground truth,
  PoseTrack head sizes); several videos are scored apart and their counts pooled (motmetrics' OVERALL row).
- Per frame, a distance matrix (ground truth x hypotheses, NaN = may not pair). Boxes: 1 - IoU, NaN where
  1 - IoU > 1 - iou_threshold (IoU 0.5 by default). Matching as in CLEAR MOT (Bernardin & Stiefelhagen 2008) and
  motmetrics' MOTAccumulator.update: pairs matched in an earlier frame stay matched while their distance is finite;
  the rest are assigned by a minimum-cost assignment (scipy's solver, non-pairs replaced by a cost larger than any
  feasible one); a ground truth matched to another hypothesis than its last one is an ID switch.
- MOTA = 1 - (misses + false positives + switches) / ground truths; MOTP = mean distance of the matches.
- IDF1 = 2 IDTP / (ground truths + hypotheses), IDTP from the one-to-one track assignment that maximises the
  frames in which a ground-truth track and a hypothesis track are within the threshold (Ristani et al. 2016).
- Keypoint MOTA (PoseTrack, poseval): per joint j, the ground truths are the people whose joint j is labelled
  (v > 0), the hypotheses the predicted people whose joint j is present (score > score_threshold), and the distance
  is ||pred - gt|| / head_size with head_size = 0.6 x the diagonal of the head box, NaN above 0.5 (PCKh@0.5);
  MOTA per joint from the CLEAR MOT counts over all videos, `kp_mota` their mean over joints with ground truth.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from posekit.errors import DataError

HEAD_FACTOR = 0.6  # PoseTrack / MPII: head size = 0.6 x head-box diagonal
KEYPOINT_THRESHOLD = 0.5  # PCKh@0.5


@dataclass
class TrackFrame:
    """The people of one frame: track ids [N], boxes [N,4] xywh, keypoints [N,K,3] (x, y, v or score)."""

    ids: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray | None = None
    head_sizes: np.ndarray | None = None  # [N] px, ground truth only (keypoint MOTA)

    @staticmethod
    def empty(num_keypoints: int = 17) -> TrackFrame:
        """A frame with nobody in it."""
        return TrackFrame(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros((0, num_keypoints, 3)), np.zeros(0))


@dataclass
class MotCounts:
    """CLEAR MOT and identity counts of one or more videos."""

    num_objects: int = 0
    num_predictions: int = 0
    num_matches: int = 0
    num_misses: int = 0
    num_false_positives: int = 0
    num_switches: int = 0
    total_distance: float = 0.0
    idtp: int = 0
    num_frames: int = 0
    mostly_tracked: int = 0  # ground-truth tracks matched in >= 80 % of their frames
    num_tracks: int = 0

    def __add__(self, other: MotCounts) -> MotCounts:
        return MotCounts(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    @property
    def mota(self) -> float:
        """1 - (misses + false positives + switches) / ground truths (nan without ground truth)."""
        errors = self.num_misses + self.num_false_positives + self.num_switches
        return 1.0 - errors / self.num_objects if self.num_objects else float("nan")

    @property
    def motp(self) -> float:
        """Mean distance of the matched pairs."""
        return self.total_distance / self.num_matches if self.num_matches else float("nan")

    @property
    def idf1(self) -> float:
        """2 IDTP / (ground truths + hypotheses)."""
        total = self.num_objects + self.num_predictions
        return 2.0 * self.idtp / total if total else float("nan")

    def summary(self) -> dict[str, float]:
        """The metrics as a flat dict."""
        return {"mota": self.mota, "motp": self.motp, "idf1": self.idf1, "num_switches": self.num_switches,
                "num_misses": self.num_misses, "num_false_positives": self.num_false_positives,
                "num_objects": self.num_objects, "num_predictions": self.num_predictions,
                "mostly_tracked": self.mostly_tracked, "num_tracks": self.num_tracks}


@dataclass
class _State:
    last: dict = field(default_factory=dict)  # ground-truth id -> the hypothesis id it was last matched to
    pair_frames: Counter = field(default_factory=Counter)  # (gt id, hyp id) -> frames within the threshold
    gt_frames: Counter = field(default_factory=Counter)
    hyp_frames: Counter = field(default_factory=Counter)
    gt_matched: Counter = field(default_factory=Counter)


def _assign(dist: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost assignment where NaN/inf entries may not pair (replaced by a cost no optimum can afford)."""
    valid = np.isfinite(dist)
    if not valid.any():
        return []
    cost = dist
    if not valid.all():
        big = 2 * min(dist.shape) * (np.abs(dist[valid]).max() + 1) + 1
        cost = np.where(valid, dist, big)
    rows, cols = linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if valid[i, j]]


def _frame(st: _State, counts: MotCounts, oids: Sequence, hids: Sequence, dist: np.ndarray) -> None:
    """Add one frame's events (see the module docstring)."""
    dist = np.array(dist, np.float64).reshape(len(oids), len(hids))
    counts.num_frames += 1
    counts.num_objects += len(oids)
    counts.num_predictions += len(hids)
    st.gt_frames.update(oids)
    st.hyp_frames.update(hids)
    for i, j in zip(*np.nonzero(np.isfinite(dist))):
        st.pair_frames[(oids[i], hids[j])] += 1
    free_o, free_h = np.ones(len(oids), bool), np.ones(len(hids), bool)
    hid_index = {h: j for j, h in enumerate(hids)}
    for i, o in enumerate(oids):  # 1. matches carried over from earlier frames
        j = hid_index.get(st.last.get(o, None), -1)
        if j >= 0 and free_h[j] and np.isfinite(dist[i, j]):
            free_o[i], free_h[j] = False, False
            counts.num_matches += 1
            counts.total_distance += float(dist[i, j])
            st.gt_matched[o] += 1
    rest = dist.copy()
    rest[~free_o, :] = np.nan
    rest[:, ~free_h] = np.nan
    for i, j in _assign(rest):  # 2. the rest by minimum cost
        o, h = oids[i], hids[j]
        if o in st.last and st.last[o] != h:
            counts.num_switches += 1
        st.last[o] = h
        free_o[i], free_h[j] = False, False
        counts.num_matches += 1
        counts.total_distance += float(dist[i, j])
        st.gt_matched[o] += 1
    counts.num_misses += int(free_o.sum())
    counts.num_false_positives += int(free_h.sum())


def _identity(st: _State, counts: MotCounts) -> None:
    """IDTP from the optimal one-to-one assignment of ground-truth to hypothesis tracks; track-level counts."""
    gts, hyps = sorted(st.gt_frames), sorted(st.hyp_frames)
    counts.num_tracks += len(gts)
    counts.mostly_tracked += sum(st.gt_matched[o] >= 0.8 * st.gt_frames[o] for o in gts)
    if not gts or not hyps:
        return
    gi, hi = {o: i for i, o in enumerate(gts)}, {h: j for j, h in enumerate(hyps)}
    tp = np.zeros((len(gts), len(hyps)))
    for (o, h), n in st.pair_frames.items():
        tp[gi[o], hi[h]] = n
    rows, cols = linear_sum_assignment(-tp)
    counts.idtp += int(tp[rows, cols].sum())


def clear_mot(frames: Iterable[tuple[Sequence, Sequence, np.ndarray]]) -> MotCounts:
    """CLEAR MOT + identity counts of one video given per frame (ground-truth ids, hypothesis ids, distances)."""
    st, counts = _State(), MotCounts()
    for oids, hids, dist in frames:
        oids, hids = list(oids), list(hids)
        if len(set(oids)) != len(oids) or len(set(hids)) != len(hids):
            raise DataError(f"tracking: a frame repeats a track id (ground truth {oids}, hypotheses {hids})")
        _frame(st, counts, oids, hids, dist)
    _identity(st, counts)
    return counts


def iou_distance(gt: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """1 - IoU of xywh boxes [N,4] x [M,4]; NaN where IoU < iou_threshold (motmetrics' iou_matrix)."""
    a = np.asarray(gt, np.float64).reshape(-1, 4)
    b = np.asarray(pred, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    dist = 1.0 - np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    dist[dist > 1.0 - iou_threshold] = np.nan
    return dist


def _videos(gt: Sequence[Sequence[TrackFrame]], pred: Sequence[Sequence[TrackFrame]]) -> None:
    if len(gt) != len(pred) or any(len(g) != len(p) for g, p in zip(gt, pred)):
        raise DataError(f"tracking: ground truth has {[len(g) for g in gt]} frames per video, predictions "
                        f"{[len(p) for p in pred]}: expected the same videos and frames")


def box_mot(gt: Sequence[Sequence[TrackFrame]], pred: Sequence[Sequence[TrackFrame]],
            iou_threshold: float = 0.5) -> MotCounts:
    """Box MOTA / MOTP / IDF1 / switches pooled over videos (lists of frames, ground truth and predictions)."""
    _videos(gt, pred)
    total = MotCounts()
    for g, p in zip(gt, pred):
        total = total + clear_mot((a.ids, b.ids, iou_distance(a.boxes, b.boxes, iou_threshold)) for a, b in zip(g, p))
    return total


def keypoint_distance(gt: TrackFrame, pred: TrackFrame, joint: int, score_threshold: float = 0.0,
                      threshold: float = KEYPOINT_THRESHOLD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gt rows, pred rows, head-normalised distances) of one joint; NaN beyond `threshold` (see the docstring)."""
    if gt.keypoints is None or gt.head_sizes is None or pred.keypoints is None:
        raise DataError("tracking: keypoint MOTA needs keypoints and head sizes in the ground truth, keypoints "
                        "in the predictions")
    rows = np.nonzero(gt.keypoints[:, joint, 2] > 0)[0]
    cols = np.nonzero(pred.keypoints[:, joint, 2] > score_threshold)[0]
    d = np.linalg.norm(gt.keypoints[rows, None, joint, :2] - pred.keypoints[None, cols, joint, :2], axis=2)
    d = d / np.maximum(gt.head_sizes[rows], 1e-9)[:, None]
    d[d > threshold] = np.nan
    return rows, cols, d


def keypoint_mota(gt: Sequence[Sequence[TrackFrame]], pred: Sequence[Sequence[TrackFrame]],
                  score_threshold: float = 0.0, threshold: float = KEYPOINT_THRESHOLD) -> dict[str, object]:
    """PoseTrack keypoint MOTA: {"kp_mota": mean over joints, "per_joint": [K] MOTA, "counts": [K] MotCounts}."""
    _videos(gt, pred)
    k = next((f.keypoints.shape[1] for v in gt for f in v if f.keypoints is not None), 0)
    per_joint = []
    for j in range(k):
        total = MotCounts()
        for g, p in zip(gt, pred):
            def frames(g=g, p=p, j=j):
                for a, b in zip(g, p):
                    rows, cols, d = keypoint_distance(a, b, j, score_threshold, threshold)
                    yield a.ids[rows], b.ids[cols], d
            total = total + clear_mot(frames())
        per_joint.append(total)
    motas = [c.mota for c in per_joint]
    valid = [m for m in motas if np.isfinite(m)]
    return {"kp_mota": float(np.mean(valid)) if valid else float("nan"), "per_joint": motas, "counts": per_joint}


def head_size(head_box: Sequence[float]) -> float:
    """PoseTrack head size: 0.6 x the diagonal of an xywh head box."""
    return HEAD_FACTOR * float(np.hypot(head_box[2], head_box[3]))


def videos_from_coco(data: dict | str | os.PathLike, min_keypoints: int = 0,
                     min_score: float | None = None) -> dict[object, list[TrackFrame]]:
    """PoseTrack-style JSON (images with vid_id / frame_id, annotations with track_id) -> {vid_id: frames}.

    Images without vid_id form one video ordered by image id; frames with nobody are kept (empty). Annotations
    with fewer than `min_keypoints` labelled joints, or a `score` below `min_score`, are left out.
    """
    if not isinstance(data, dict):
        data = json.loads(open(data).read())
    try:
        images = sorted(data["images"], key=lambda im: (str(im.get("vid_id", "")), im.get("frame_id", im["id"])))
        anns = data["annotations"]
    except (KeyError, TypeError) as e:
        raise DataError(f"tracking: expected PoseTrack-style JSON with images and annotations ({e})") from None
    by_image: dict[object, list[dict]] = {}
    for a in anns:
        if "track_id" not in a:
            raise DataError(f"tracking: annotation {a.get('id', '?')} of image {a.get('image_id')} has no track_id")
        if min_score is not None and a.get("score", 1.0) < min_score:
            continue
        kps = np.asarray(a.get("keypoints", []), np.float64).reshape(-1, 3)
        if int((kps[:, 2] > 0).sum()) < min_keypoints:
            continue
        by_image.setdefault(a["image_id"], []).append(a)
    videos: dict[object, list[TrackFrame]] = {}
    for im in images:
        videos.setdefault(im.get("vid_id", 0), []).append(_frame_of(by_image.get(im["id"], [])))
    return videos


def _frame_of(anns: list[dict]) -> TrackFrame:
    kps = [np.asarray(a.get("keypoints", []), np.float64).reshape(-1, 3) for a in anns]
    k = max((len(x) for x in kps), default=17)
    if any(len(x) != k for x in kps):
        raise DataError(f"tracking: annotations of image {anns[0].get('image_id')} have different keypoint counts")
    heads = [head_size(a["bbox_head"]) if "bbox_head" in a else np.nan for a in anns]
    return TrackFrame(np.array([a["track_id"] for a in anns], np.int64),
                      np.array([a.get("bbox", [0, 0, 0, 0]) for a in anns], np.float64).reshape(-1, 4),
                      np.stack(kps) if kps else np.zeros((0, k, 3)), np.array(heads, np.float64))


def track_metrics(gt: dict[object, list[TrackFrame]], pred: dict[object, list[TrackFrame]],
                  iou_threshold: float = 0.5, score_threshold: float = 0.0) -> dict[str, float]:
    """Box MOTA / MOTP / IDF1 / switches and keypoint MOTA of predictions for the ground truth's videos."""
    missing = [v for v in gt if v not in pred]
    if missing:
        raise DataError(f"tracking: predictions lack videos {missing[:5]}")
    g, p = [gt[v] for v in gt], [pred[v] for v in gt]
    out = box_mot(g, p, iou_threshold).summary()
    out["kp_mota"] = keypoint_mota(g, p, score_threshold)["kp_mota"]
    return out
