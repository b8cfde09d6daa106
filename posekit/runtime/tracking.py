"""Online multi-person tracking of poses: greedy association, birth and death rules, box propagation, smoothing.

The tracking half of "Simple Baselines for Human Pose Estimation and Tracking" (Xiao et al. 2018), which the
official code never released, with these choices:
- Association (every frame): the similarity of each new pose to each live track is OKS (COCO sigmas, over the
  joints scored above `keypoint_threshold` in both poses, the track's box area as the scale) or box IoU; a lost
  track (unmatched for k >= 1 frames) is compared at its last pose and at that pose moved on by its last velocity
  times k (the better of the two). Pairs are taken greedily in decreasing similarity, each pose and track once,
  down to `threshold` (the paper's greedy matching).
- Flow (option `flow`): before association, the poses of the tracks matched in the previous frame are moved to the
  current frame by sparse pyramidal Lucas-Kanade optical flow (OpenCV) of their keypoints, the paper's flow-based
  pose similarity (the paper uses dense FlowNet 2.0 flow); a keypoint whose flow fails keeps its position.
- Birth: an unmatched pose whose score is at least `birth_score` starts a track with the next unused id (ids count
  up from 0 and are never reused). Unmatched poses below it get id -1.
- Death: a track unmatched for more than `memory` consecutive frames is deleted; until then it can be matched again
  and keeps its id (a person who leaves and re-enters within the memory keeps the id).
- Propagated boxes (`Tracker.boxes()`): the people of the next frame from the tracks matched in the last frame:
  centred on the box of the joints scored above `keypoint_threshold` in the track's last pose, moved on by the
  track's motion (the median frame-to-frame displacement of the joints confident in both of its last two poses;
  with flow on, the poses were already moved by the flow instead), of the mean size of that joints' box enlarged by
  `box_scale` and the track's last box (the one the pose was estimated in: a box rebuilt from the joints alone
  drifts and shrinks, a fixed one does not follow a person who turns or walks in); clipped to the image, and a side
  of the last box that touched the image border stays on it (people walking in or out). A caller runs a full
  detection every N frames and these boxes in between. (Variants measured on synthetic tracks sequences of seed
  2000 with detections every 10 frames, IDF1: joints' box x 1.2, 0.866; last box moved, 0.816, with the border
  rule 0.842; joints' box x 1.2 with the border rule 0.885; this mean, 0.892.)
- Smoothing (option `smooth`): a One-Euro filter (Casiez et al. 2012) per track on every keypoint coordinate, with
  time in frames divided by `fps`; a track's filter state persists across its unmatched frames (dt grows). Each
  keypoint's cutoff is multiplied by its confidence clip(score / score_ref, 0, 1) ** score_power: confident joints
  follow the network closely (no lag to cost AP), doubtful ones (where nearly all of the frame-to-frame jitter is:
  left/right confusions, occluded joints) are smoothed strongly. The defaults (10 Hz, beta 1, 0.3, 8) were chosen
  on synthetic tracks sequences of seed 2000 with the demo model; `posekit bench track` reports held-out numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from posekit.skeletons import COCO17

SIMILARITIES = ("oks", "iou")


@dataclass(frozen=True)
class TrackerConfig:
    """Association, birth/death and smoothing settings (see the module docstring)."""

    similarity: str = "oks"
    threshold: float = 0.2  # minimum similarity of a match
    memory: int = 30  # frames a track survives unmatched
    birth_score: float = 0.2  # minimum person score that starts a track
    keypoint_threshold: float = 0.2  # joints scored above this count for OKS and propagated boxes
    flow: bool = False
    box_scale: float = 1.2  # propagated boxes: the joints' box is enlarged by this before averaging (docstring)
    smooth: bool = False
    fps: float = 30.0
    min_cutoff: float = 10.0  # One-Euro: Hz
    beta: float = 1.0  # One-Euro: cutoff increase (Hz) per px/s of speed
    d_cutoff: float = 1.0  # One-Euro: Hz, for the speed estimate
    score_ref: float = 0.3  # a keypoint's cutoff is multiplied by clip(score / score_ref, 0, 1) ** score_power
    score_power: float = 8.0

    def __post_init__(self) -> None:
        from posekit.errors import ConfigError

        if self.similarity not in SIMILARITIES:
            raise ConfigError(f"tracker similarity: expected one of {SIMILARITIES}, got {self.similarity!r}")
        if self.memory < 0:
            raise ConfigError(f"tracker memory: expected >= 0 frames, got {self.memory}")
        if self.fps <= 0 or self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ConfigError("tracker smoothing: expected fps, min_cutoff, d_cutoff > 0 and beta >= 0, got "
                              f"{self.fps}, {self.min_cutoff}, {self.d_cutoff}, {self.beta}")


class OneEuro:
    """One-Euro filter of an array signal (every element filtered on its own), x_hat = a x + (1 - a) x_hat_prev with
    a = 1 / (1 + tau / dt), tau = 1 / (2 pi cutoff), cutoff = min_cutoff + beta |dx_hat| (Casiez et al. 2012)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t = 0.0

    @staticmethod
    def alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        """Smoothing factor of a first-order low-pass with this cutoff (Hz) at sampling interval dt (s)."""
        tau = 1.0 / (2.0 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float, confidence: np.ndarray | float = 1.0) -> np.ndarray:
        """The filtered value of sample x taken at time t (s); the first sample passes unchanged. `confidence`
        (broadcast to x, clipped to [0.01, 1]) multiplies the cutoff: a doubtful sample moves the estimate less."""
        x = np.asarray(x, np.float64)
        if self.x is None or self.dx is None:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = max(float(t) - self.t, 1e-9)
        dx = (x - self.x) / dt
        a_d = self.alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1.0 - a_d) * self.dx
        conf = np.clip(confidence, 0.01, 1.0)
        a = self.alpha((self.min_cutoff + self.beta * np.abs(self.dx)) * conf, dt)
        self.x = a * x + (1.0 - a) * self.x
        self.t = float(t)
        return self.x.copy()


@dataclass
class Track:
    """One identity: its last pose (keypoints [K,3], box xywh), velocity and filter."""

    id: int
    keypoints: np.ndarray
    box: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # px per frame: median joint motion
    matched: np.ndarray | None = None  # the pose at its last match (keypoints may since be moved by flow)
    missed: int = 0  # consecutive unmatched frames
    age: int = 1  # matched frames
    filter: OneEuro | None = None


def _centre(box: np.ndarray) -> np.ndarray:
    return np.asarray(box[:2], np.float64) + np.asarray(box[2:4], np.float64) / 2


def _at_border(box: np.ndarray, last: np.ndarray, w: int, h: int) -> np.ndarray:
    """A moved box clipped to the image, whose sides that touched the image border stay there (a person walking in
    shows more of the body each frame; one walking out, less)."""
    x0, y0, x1, y1 = box[0], box[1], box[0] + box[2], box[1] + box[3]
    if last[0] <= 1:
        x0 = 0.0
    if last[1] <= 1:
        y0 = 0.0
    if last[0] + last[2] >= w - 1:
        x1 = float(w)
    if last[1] + last[3] >= h - 1:
        y1 = float(h)
    x0, x1 = np.clip([x0, x1], 0.0, float(w))
    y0, y1 = np.clip([y0, y1], 0.0, float(h))
    return np.array([x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0)])


def oks_similarity(a: np.ndarray, b: np.ndarray, area: float, sigmas: np.ndarray, threshold: float) -> float:
    """OKS of poses a and b [K,3] over the joints scored above `threshold` in both (0 when none is)."""
    both = (a[:, 2] > threshold) & (b[:, 2] > threshold)
    if not both.any():
        return 0.0
    d2 = ((a[both, :2] - b[both, :2]) ** 2).sum(axis=1)
    return float(np.exp(-d2 / (2.0 * max(area, 1.0) * (2.0 * sigmas[both]) ** 2)).mean())


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two xywh boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def greedy_match(similarity: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) taken in decreasing similarity, each row and column once, while similarity >= threshold."""
    pairs = []
    used_r, used_c = set(), set()
    order = np.argsort(-similarity, axis=None, kind="stable")
    for flat in order:
        r, c = divmod(int(flat), similarity.shape[1])
        if similarity[r, c] < threshold:
            break
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return pairs


def flow_keypoints(prev_gray: np.ndarray, gray: np.ndarray, keypoints: np.ndarray, threshold: float) -> np.ndarray:
    """Keypoints [N,K,3] moved from prev_gray to gray by pyramidal Lucas-Kanade flow (joints above `threshold`)."""
    out = keypoints.copy()
    sel = np.argwhere(keypoints[..., 2] > threshold)
    if len(sel) == 0:
        return out
    pts = keypoints[sel[:, 0], sel[:, 1], :2].astype(np.float32).reshape(-1, 1, 2)
    moved, status, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, pts, None, winSize=(15, 15), maxLevel=3)
    ok = status.reshape(-1) == 1
    out[sel[ok, 0], sel[ok, 1], :2] = moved.reshape(-1, 2)[ok]
    return out


class Tracker:
    """Online tracker: `boxes()` for the next frame (optional), then `update(...)` with that frame's poses."""

    def __init__(self, config: TrackerConfig = TrackerConfig(), sigmas: np.ndarray | None = None) -> None:
        self.config = config
        self.sigmas = np.asarray(COCO17.sigmas if sigmas is None else sigmas, np.float64)
        self.tracks: list[Track] = []
        self.next_id = 0
        self.frame = -1
        self._prev_gray: np.ndarray | None = None
        self._flowed = False  # boxes() already moved the tracks to this frame

    def _move_by_flow(self, image: np.ndarray | None) -> None:
        """Move the poses of the tracks matched in the previous frame to `image` by optical flow."""
        if image is None:
            return
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        live = [t for t in self.tracks if t.missed == 0]
        if self._prev_gray is not None and live and self._prev_gray.shape == gray.shape:
            moved = flow_keypoints(self._prev_gray, gray, np.stack([t.keypoints for t in live]),
                                   self.config.keypoint_threshold)
            for t, k in zip(live, moved):
                shift = np.median(k[:, :2] - t.keypoints[:, :2], axis=0)
                t.keypoints, t.box = k, np.r_[t.box[:2] + shift, t.box[2:4]]
        self._prev_gray = gray

    def boxes(self, image: np.ndarray | None = None) -> list[np.ndarray]:
        """Propagated boxes (xywh) for the frame `image` from the tracks matched in the last frame."""
        if self.config.flow:
            self._move_by_flow(image)
            self._flowed = True
        out = []
        for t in self.tracks:
            if t.missed == 0:
                box = self._propagated(t)
                out.append(box if image is None else _at_border(box, t.box, image.shape[1], image.shape[0]))
        return out

    def _propagated(self, t: Track) -> np.ndarray:
        """The box of track t in the next frame (before clipping; see the module docstring)."""
        shift = 0.0 if self.config.flow else t.velocity
        pts = t.keypoints[t.keypoints[:, 2] > self.config.keypoint_threshold, :2]
        if len(pts) < 3:
            return np.r_[t.box[:2] + shift, t.box[2:4]]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centre = (lo + hi) / 2 + shift
        size = ((hi - lo) * self.config.box_scale + t.box[2:4]) / 2
        return np.r_[centre - size / 2, size]

    def _motion(self, t: Track, keypoints: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Per-frame motion of a track matched to `keypoints`: the median displacement of the joints confident in
        both poses (the box centres' when fewer than 3 are)."""
        prev = t.keypoints if t.matched is None else t.matched
        thr = self.config.keypoint_threshold
        both = (prev[:, 2] > thr) & (keypoints[:, 2] > thr)
        if both.sum() >= 3:
            return np.median(keypoints[both, :2] - prev[both, :2], axis=0) / (t.missed + 1)
        return (_centre(box) - _centre(t.box)) / (t.missed + 1)

    def _similarity(self, keypoints: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        cfg = self.config
        sim = np.zeros((len(keypoints), len(self.tracks)))
        for j, t in enumerate(self.tracks):
            shift = t.velocity * t.missed
            candidates = [(t.keypoints, t.box)]
            if t.missed:
                k = t.keypoints.copy()
                k[:, :2] += shift
                candidates.append((k, np.r_[t.box[:2] + shift, t.box[2:4]]))
            for i in range(len(keypoints)):
                if cfg.similarity == "oks":
                    area = float(t.box[2] * t.box[3])
                    s = max(oks_similarity(keypoints[i], k, area, self.sigmas, cfg.keypoint_threshold)
                            for k, _ in candidates)
                else:
                    s = max(box_iou(boxes[i], b) for _, b in candidates)
                sim[i, j] = s
        return sim

    def update(self, keypoints: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
               image: np.ndarray | None = None, time: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Associate this frame's poses (keypoints [N,K,3], boxes [N,4] xywh, person scores [N]); returns their
        track ids [N] (-1: no track) and keypoints [N,K,3] (One-Euro smoothed when `smooth` is on). `time`: the
        frame's time in seconds for the smoothing (default: frames so far / fps)."""
        cfg = self.config
        self.frame += 1
        if cfg.flow and not self._flowed:
            self._move_by_flow(image)
        self._flowed = False
        keypoints = np.asarray(keypoints, np.float64)
        keypoints = keypoints.reshape(len(scores), -1, 3) if len(scores) else np.zeros((0, len(self.sigmas), 3))
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        ids = np.full(len(keypoints), -1, np.int64)
        out = keypoints.copy()
        matched: set[int] = set()
        for i, j in greedy_match(self._similarity(keypoints, boxes), cfg.threshold):
            t = self.tracks[j]
            t.velocity = self._motion(t, keypoints[i], boxes[i])
            t.keypoints, t.box, t.missed = keypoints[i].copy(), boxes[i].copy(), 0
            t.matched = t.keypoints
            t.age += 1
            ids[i] = t.id
            matched.add(j)
        for j, t in enumerate(self.tracks):
            if j not in matched:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= cfg.memory]
        for i in np.nonzero(ids < 0)[0]:
            if scores[i] >= cfg.birth_score:
                t = Track(self.next_id, keypoints[i].copy(), boxes[i].copy())
                self.next_id += 1
                self.tracks.append(t)
                ids[i] = t.id
        if cfg.smooth:
            by_id = {t.id: t for t in self.tracks}
            for i in np.nonzero(ids >= 0)[0]:
                t = by_id[int(ids[i])]
                if t.filter is None:
                    t.filter = OneEuro(cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
                conf = np.clip(keypoints[i, :, 2:3] / cfg.score_ref, 0.0, 1.0) ** cfg.score_power
                now = self.frame / cfg.fps if time is None else float(time)
                out[i, :, :2] = t.filter(keypoints[i, :, :2], now, conf)
        return ids, out


def pose_nms(keypoints: np.ndarray, boxes: np.ndarray, scores: np.ndarray, sigmas: np.ndarray,
             threshold: float = 0.7, keypoint_threshold: float = 0.2) -> list[int]:
    """Indices of the poses kept by greedy OKS-NMS (highest score first; drops poses with OKS > threshold to a kept
    one): two boxes on one person (a propagated box that slid onto the person in front) give one pose."""
    keep: list[int] = []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        area = float(boxes[i][2] * boxes[i][3])
        if all(oks_similarity(keypoints[i], keypoints[j], area, sigmas, keypoint_threshold) <= threshold for j in keep):
            keep.append(int(i))
    return sorted(keep)


def track_frames(frames: Iterable[tuple[int, np.ndarray]], estimate: Callable[[np.ndarray, Any], list],
                 tracker: Tracker, detect: Callable[[int, np.ndarray], Any] | None = None,
                 every: int = 1, nms_threshold: float = 0.7,
                 times: Callable[[int], float] | None = None) -> Iterator[tuple[int, np.ndarray, list]]:
    """(frame index, frame, poses) with `pose.track_id` set, for (index, RGB frame) pairs, people found by `detect`
    or propagated.

    `estimate(image, boxes)` returns poses (objects with keypoints [K,3], box xywh and score; boxes None = whatever
    the estimator finds alone, e.g. a bottom-up model). On every `every`-th processed frame (the first included),
    `detect(index, image)` gives the boxes (None = let `estimate` find the people); on the others the boxes come
    from `tracker.boxes(image)` (the last poses, moved by flow when the tracker's flow is on). With `detect` None
    every frame goes to `estimate(image, None)`. Poses that repeat a kept pose (OKS > nms_threshold) are dropped;
    with smoothing on, `pose.keypoints` holds the smoothed keypoints and `pose.extra["raw_keypoints"]` the
    network's. `times(index)` gives a frame's time in seconds for the smoothing (default index / tracker fps).
    """
    for t, (index, image) in enumerate(frames):
        if detect is None:
            boxes = None
        elif every <= 1 or t % every == 0:
            boxes = detect(index, image)
        else:
            boxes = np.asarray(tracker.boxes(image), np.float64).reshape(-1, 4)
            boxes = boxes[(boxes[:, 2] >= 4) & (boxes[:, 3] >= 4)]  # carried out of the frame: not looked for
        poses = [] if boxes is not None and len(np.asarray(boxes)) == 0 else list(estimate(image, boxes))
        kps = np.array([p.keypoints for p in poses], np.float64).reshape(len(poses), len(tracker.sigmas), 3)
        bxs = np.array([p.box[:4] for p in poses], np.float64).reshape(-1, 4)
        scores = np.array([p.score for p in poses], np.float64)
        if len(poses) > 1:
            keep = pose_nms(kps, bxs, scores, tracker.sigmas, nms_threshold, tracker.config.keypoint_threshold)
            poses, kps, bxs, scores = [poses[i] for i in keep], kps[keep], bxs[keep], scores[keep]
        when = times(index) if times is not None else index / tracker.config.fps
        ids, smoothed = tracker.update(kps, bxs, scores, image, time=when)
        for p, tid, k in zip(poses, ids, smoothed):
            p.track_id = int(tid)
            if tracker.config.smooth:
                p.extra["raw_keypoints"] = p.keypoints
                p.keypoints = k.astype(np.asarray(p.keypoints).dtype)
        yield index, image, poses


def track_source(source: Any, estimate: Callable[[np.ndarray, Any], list], tracker: Tracker,
                 detect: Callable[[int, np.ndarray], Any] | None = None, every: int = 1) -> Iterator[Any]:
    """`Result`s (path = the source's name, frame = the frame's index in the source) of `track_frames` over a
    `posekit.runtime.capture` source; frame times come from the source (live sources: arrival times)."""
    from pathlib import Path

    from posekit.runtime import Result

    times: dict[int, float] = {}

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        for f in source:
            times.clear()
            times[f.index] = f.time
            yield f.index, f.image

    for n, (index, image, poses) in enumerate(track_frames(frames(), estimate, tracker, detect, every,
                                                           times=lambda i: times.get(i, i / source.fps))):
        yield Result(Path(source.name), image, poses, frame=index, index=n)
