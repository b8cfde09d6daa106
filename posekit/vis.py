"""Drawing: skeletons on images, heatmap overlays, image grids, PNG writing."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from posekit.skeletons import Skeleton


def limb_colors(n: int) -> list[tuple[int, int, int]]:
    """n distinct RGB colours spread over the hue circle."""
    out = []
    for i in range(max(n, 1)):
        r, g, b = colorsys.hsv_to_rgb(i / max(n, 1), 0.85, 1.0)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def draw_pose(image: np.ndarray, keypoints: np.ndarray, skeleton: Skeleton, threshold: float = 0.3,
              radius: int | None = None, thickness: int | None = None, show_scores: bool = False,
              box: Sequence[float] | None = None, label: str | None = None) -> np.ndarray:
    """Draw one person's keypoints [K,3] (x, y, score-or-visibility) on a copy of an RGB image."""
    out = np.ascontiguousarray(image.copy())
    scale = max(out.shape[:2]) / 400.0
    radius = radius or max(2, int(round(3 * scale)))
    thickness = thickness or max(1, int(round(2 * scale)))
    kp = np.asarray(keypoints, dtype=np.float64)
    ok = kp[:, 2] > threshold
    colors = limb_colors(len(skeleton.links))
    if box is not None:
        x, y, w, h = (int(round(v)) for v in box)
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 255, 255), thickness, cv2.LINE_AA)
        if label:
            cv2.putText(out, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale + 0.2,
                        (255, 255, 255), 1, cv2.LINE_AA)
    for (a, b), color in zip(skeleton.links, colors):
        if ok[a] and ok[b]:
            pa = (int(round(kp[a, 0])), int(round(kp[a, 1])))
            pb = (int(round(kp[b, 0])), int(round(kp[b, 1])))
            cv2.line(out, pa, pb, color, thickness, cv2.LINE_AA)
    for j in np.flatnonzero(ok):
        p = (int(round(kp[j, 0])), int(round(kp[j, 1])))
        cv2.circle(out, p, radius, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(out, p, max(1, radius - 1), (255, 60, 60) if j in skeleton.upper_body_ids else (60, 120, 255),
                   -1, cv2.LINE_AA)
        if show_scores:
            cv2.putText(out, f"{kp[j, 2]:.2f}", (p[0] + radius, p[1] - radius), cv2.FONT_HERSHEY_SIMPLEX,
                        0.3 * scale + 0.1, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def heatmap_overlay(image: np.ndarray, heatmaps: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Overlay the max over joints of heatmaps [K,h,w] on an RGB image, as a JET colour map."""
    hm = np.clip(np.max(np.asarray(heatmaps, dtype=np.float32), axis=0), 0.0, 1.0)
    hm = cv2.resize(hm, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colored = cv2.applyColorMap((hm * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    return (image.astype(np.float32) * (1 - alpha) + colored.astype(np.float32) * alpha).astype(np.uint8)


def make_grid(images: Sequence[np.ndarray], cols: int = 4, cell: tuple[int, int] | None = None,
              pad: int = 2) -> np.ndarray:
    """Tile RGB images into one grid image; each cell is resized to `cell` (w, h) or the first image's size."""
    if not images:
        raise ValueError("make_grid needs at least one image")
    cw, ch = cell or (images[0].shape[1], images[0].shape[0])
    rows = (len(images) + cols - 1) // cols
    grid = np.full((rows * (ch + pad) + pad, cols * (cw + pad) + pad, 3), 32, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        tile = cv2.resize(img, (cw, ch), interpolation=cv2.INTER_AREA)
        y, x = pad + r * (ch + pad), pad + c * (cw + pad)
        grid[y:y + ch, x:x + cw] = tile
    return grid


def write_png(path: str | Path, image_rgb: np.ndarray) -> Path:
    """Write an RGB image as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image_rgb[:, :, ::-1])):
        raise OSError(f"could not write {path}")
    return path
