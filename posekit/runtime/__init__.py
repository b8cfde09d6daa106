"""Inference core below both the engine and posekit.inference: `Pose` / `Result` and the official rescoring.

One module per system's inference path (topdown, bottomup, body3d) and the backends (backends.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
        extra: dict[str, Any] = {"file_name": str(self.path)}
        if self.frame is not None:
            extra["frame"] = self.frame
        return [{**p.to_coco(image_id, category_id), **extra} for p in self.poses]


def rescore(keypoint_scores: np.ndarray, box_score: float, threshold: float = RESCORE_THRESHOLD) -> float:
    """Official rescoring of one person: box score x mean of the keypoint scores above `threshold` (0 when none is)."""
    s = np.asarray(keypoint_scores)
    kpts = np.zeros((1, s.shape[-1], 3), dtype=s.dtype if np.issubdtype(s.dtype, np.floating) else np.float64)
    kpts[0, :, 2] = s
    return float(official_rescore(kpts, np.asarray([box_score]), threshold)[0])
