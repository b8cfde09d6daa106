"""Contact sheet of a COCO keypoint dataset: images with keypoints (visible / occluded), links and boxes drawn."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from posekit.errors import DataError

VISIBLE = (40, 230, 40)  # RGB: filled dot
OCCLUDED = (255, 50, 50)  # RGB: ring
LINK = (255, 230, 0)
BOX = (60, 120, 255)


def draw_annotations(image: np.ndarray, anns: list[dict], links: list[list[int]]) -> np.ndarray:
    """A copy of an RGB image with each annotation's box, skeleton links and keypoints drawn."""
    out = image.copy()
    r = max(1, round(max(image.shape[:2]) / 160))
    for a in anns:
        k = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        x, y, w, h = a["bbox"]
        cv2.rectangle(out, (int(x), int(y)), (int(x + w - 1), int(y + h - 1)), BOX, 1)
        for i, j in links:
            p, q = k[i - 1], k[j - 1]
            if p[2] > 0 and q[2] > 0:
                cv2.line(out, (round(p[0]), round(p[1])), (round(q[0]), round(q[1])), LINK, 1, cv2.LINE_AA)
        for px, py, v in k:
            if v == 2:
                cv2.circle(out, (round(px), round(py)), r, VISIBLE, -1)
            elif v == 1:
                cv2.circle(out, (round(px), round(py)), r + 1, OCCLUDED, 1)
    return out


def contact_sheet(ann_file: str | os.PathLike, image_root: str | os.PathLike, num: int = 16, cols: int = 4,
                  annotate: bool = True) -> np.ndarray:
    """A grid of the first `num` images (RGB uint8), annotated unless `annotate` is False."""
    path = Path(ann_file)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read a COCO annotation file ({e})") from None
    links = data["categories"][0].get("skeleton", [])
    by_image: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    tiles = []
    for info in data["images"][:num]:
        file = Path(image_root, info["file_name"])
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"{file}: cannot read image listed in {path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        tiles.append(draw_annotations(rgb, by_image.get(info["id"], []), links) if annotate else rgb)
    if not tiles:
        raise DataError(f"{path}: no images")
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // cols)
    sheet = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * h:r * h + t.shape[0], c * w:c * w + t.shape[1]] = t
    return sheet


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB image as PNG."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise DataError(f"{path}: cannot write PNG")
