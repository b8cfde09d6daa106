"""Tracked people drawn on frames: each identity in its own colour (skeleton, box), its id written above the box."""

from __future__ import annotations

import colorsys
from collections.abc import Iterable

import cv2
import numpy as np

from posekit.skeletons import Skeleton


def track_color(track_id: int) -> tuple[int, int, int]:
    """RGB colour of an identity: hues a golden-ratio step apart, so neighbouring ids differ; grey for -1."""
    if track_id < 0:
        return (160, 160, 160)
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618033988749895) % 1.0, 0.9, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_tracks(image_rgb: np.ndarray, poses: Iterable, skeleton: Skeleton, threshold: float = 0.3,
                show_boxes: bool = True) -> np.ndarray:
    """An RGB copy of the frame with every pose (objects with keypoints [K,3], box xywh, track_id) drawn in the
    colour of its track id, and "id N" above its box."""
    out = image_rgb.copy()
    scale = max(out.shape[:2]) / 512.0
    thick = max(1, round(2 * scale))
    for pose in poses:
        tid = getattr(pose, "track_id", None)
        tid = -1 if tid is None else int(tid)
        color = track_color(tid)
        k = np.asarray(pose.keypoints, np.float64)
        for a, b in skeleton.links:
            if k[a, 2] > threshold and k[b, 2] > threshold:
                cv2.line(out, (round(k[a, 0]), round(k[a, 1])), (round(k[b, 0]), round(k[b, 1])), color, thick,
                         cv2.LINE_AA)
        for x, y, s in k:
            if s > threshold:
                cv2.circle(out, (round(x), round(y)), thick + 1, color, -1, cv2.LINE_AA)
        x, y, w, h = (float(v) for v in pose.box[:4])
        if show_boxes:
            cv2.rectangle(out, (round(x), round(y)), (round(x + w), round(y + h)), color, 1)
        label = f"id {tid}" if tid >= 0 else "?"
        font = 0.4 * max(scale, 0.75)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        org = (max(0, round(x)), max(th + 2, round(y) - 3))
        cv2.rectangle(out, (org[0], org[1] - th - 2), (org[0] + tw + 2, org[1] + 2), color, -1)
        cv2.putText(out, label, (org[0] + 1, org[1]), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 1, cv2.LINE_AA)
    return out
