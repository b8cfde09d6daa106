"""Inference core below both the engine and posekit.inference: `Pose` / `Result`, the official rescoring and the
checks of what an inference path is given (`as_rgb`, `split_boxes`).

One module per system's inference path (topdown, bottomup, body3d) and the backends (backends.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import DataError
from posekit.evaluation.results import IN_VIS_THRE
from posekit.evaluation.results import rescore as official_rescore

# Official rescoring: a person's score = box score x mean of its keypoint scores above this (HRNet in_vis_thre).
RESCORE_THRESHOLD = IN_VIS_THRE


@dataclass
class Pose:
    """One person: keypoints [K,3] (x, y, score) in image px, its box xywh, box score and rescored score."""

    keypoints: np.ndarray
    box: np.ndarray
    score: float
    box_score: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)
    track_id: int | None = None  # set by posekit.runtime.tracking (None: not tracked)

    def to_coco(self, image_id: int, category_id: int = 1) -> dict[str, Any]:
        """The COCO keypoint results entry (image_id, category_id, keypoints flat x,y,score, score); 3-D models add
        "keypoints_3d" ([J,3] camera-space mm) and "root_depth" (mm)."""
        entry = {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "keypoints": [round(float(v), 4) for v in np.asarray(self.keypoints, dtype=np.float64).reshape(-1)],
            "score": float(self.score),
            "bbox": [round(float(v), 2) for v in self.box],
        }
        if "joints_cam" in self.extra:
            entry["keypoints_3d"] = np.round(np.asarray(self.extra["joints_cam"], np.float64), 2).tolist()
            entry["root_depth"] = round(float(self.extra["root_depth"]), 2)
        return entry


@dataclass
class Result:
    """One image or video frame: unpacks as (path, image, poses); `error` is set (image None) when it was skipped."""

    path: Path
    image: np.ndarray | None
    poses: list[Pose]
    frame: int | None = None  # video frame index (None for an image file)
    error: str | None = None
    index: int = 0  # running index over everything the iterator yielded

    def __iter__(self) -> Iterator[Any]:
        return iter((self.path, self.image, self.poses))

    def coco(self, image_id: int, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO keypoint results of this image/frame, with 'file_name' (and 'frame' for videos)."""
        from posekit.runtime.sources import display_name

        extra: dict[str, Any] = {"file_name": display_name(self.path)}  # valid Unicode for any file name
        if self.frame is not None:
            extra["frame"] = self.frame
        return [{**p.to_coco(image_id, category_id), **extra} for p in self.poses]


def rescore(keypoint_scores: np.ndarray, box_score: float, threshold: float = RESCORE_THRESHOLD) -> float:
    """Official rescoring of one person: box score x mean of the keypoint scores above `threshold` (0 when none is)."""
    s = np.asarray(keypoint_scores)
    kpts = np.zeros((1, s.shape[-1], 3), dtype=s.dtype if np.issubdtype(s.dtype, np.floating) else np.float64)
    kpts[0, :, 2] = s
    return float(official_rescore(kpts, np.asarray([box_score]), threshold)[0])


def as_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Check an RGB uint8 image HxWx3 (HxW grey is expanded); raise DataError otherwise.

    An array's channel order cannot be seen from its values: posekit reads files as RGB (`posekit.data.images`);
    an OpenCV `cv2.imread` array is BGR and must be converted (`image[:, :, ::-1]`) by the caller.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(f"{what}: expected an HxWx3 uint8 RGB array, got shape {image.shape} dtype {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise DataError(f"{what}: empty image of shape {image.shape}")
    return image


def split_boxes(boxes: np.ndarray | Sequence | None, scores: np.ndarray | Sequence | None, image: np.ndarray,
                 what: str) -> tuple[np.ndarray, np.ndarray]:
    """Boxes xywh [M,4] (or [M,5] with scores) and scores [M]; None = the whole image with score 1."""
    if boxes is None:
        h, w = image.shape[:2]
        return np.array([[0.0, 0.0, w, h]]), np.ones(1)
    try:
        b = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what}: boxes must be numbers xywh [M,4] or [M,5] with scores") from None
    if b.size == 0:
        return np.zeros((0, 4)), np.zeros(0)
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] not in (4, 5):
        raise DataError(f"{what}: boxes must be xywh [M,4] or [M,5] with scores, got shape {b.shape}")
    if scores is None:
        s = b[:, 4].copy() if b.shape[1] == 5 else np.ones(len(b))
    else:
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(s) != len(b):
            raise DataError(f"{what}: {len(s)} box scores for {len(b)} boxes")
    b = b[:, :4]
    bad = np.flatnonzero(~np.isfinite(b).all(axis=1) | (b[:, 2] <= 0) | (b[:, 3] <= 0))
    if bad.size:
        raise DataError(f"{what}: box {int(bad[0])} = {b[bad[0]].tolist()} is not a finite xywh box with w, h > 0")
    if not np.isfinite(s).all():
        raise DataError(f"{what}: box scores must be finite numbers")
    h, w = image.shape[:2]
    outside = np.flatnonzero((b[:, 0] >= w) | (b[:, 1] >= h) | (b[:, 0] + b[:, 2] <= 0) | (b[:, 1] + b[:, 3] <= 0))
    if outside.size:
        raise DataError(f"{what}: box {int(outside[0])} = {b[outside[0]].tolist()} lies entirely outside the "
                        f"{w}x{h} image (detections of another image?)")
    return b, s
