"""Typed annotation records: one `PoseRecord` per person (ground truth or detection) of a top-down dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PoseRecord:
    """One person: image, box (as center/size px and xywh), keypoints [K,3] (x, y, visibility) in image px."""

    image_path: str
    image_id: int
    center: np.ndarray  # [2] float64 px
    size: np.ndarray  # [2] float64 px (w, h), aspect-fixed and padded
    keypoints: np.ndarray  # [K, 3] float32: x, y, visibility (0 = not labelled, >0 = labelled)
    ann_id: int = -1
    area: float = 0.0
    box: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=np.float64))  # xywh (cleaned for GT)
    score: float = 1.0  # 1.0 for ground truth, detector score for detections
    iscrowd: int = 0
    category_id: int = 1
    image_size: tuple[int, int] = (0, 0)  # (w, h) from the annotation file, (0, 0) when unknown
    joints_3d: np.ndarray | None = None  # [K, 3 or 4] camera-space joints where a dataset has them
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_keypoints(self) -> int:
        """Number of keypoints K."""
        return int(self.keypoints.shape[0])

    @property
    def visible(self) -> np.ndarray:
        """Bool [K]: keypoints that are labelled (visibility > 0)."""
        return self.keypoints[:, 2] > 0

    @property
    def num_visible(self) -> int:
        """Number of labelled keypoints."""
        return int(np.count_nonzero(self.visible))


def center_size_to_box(center: np.ndarray, size: np.ndarray) -> np.ndarray:
    """(center, size) px -> box xywh."""
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(size, dtype=np.float64)
    return np.array([c[0] - s[0] / 2, c[1] - s[1] / 2, s[0], s[1]], dtype=np.float64)
