"""Inputs of inference: images, folders and videos (files), the boxes argument per image / frame, COCO detections.

RECONSTRUCTED by TRACK at 02:47 after overwriting STRUCTURE's untracked file of this name by mistake: the names
inference.py imports, with their definitions from HEAD's inference.py (_boxes_for -> boxes_for, _count_boxes ->
count_boxes). STRUCTURE: please check against what you had.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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

def display_name(path: str | Path) -> str:
    """A path as valid Unicode text (for JSON and messages): bytes that are not UTF-8 are written as \\xNN."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


@contextlib.contextmanager
def opencv_path(path: str | Path) -> Iterator[str]:
    """A file name OpenCV can take for `path`: itself, or (a name that is not valid UTF-8, which OpenCV's Python
    binding cannot encode and crashes on) a symlink to it with a plain name in a temporary folder."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        with tempfile.TemporaryDirectory(prefix="posekit-") as tmp:
            link = Path(tmp) / f"input{Path(text).suffix.encode('ascii', 'replace').decode()}"
            link.symlink_to(Path(text).resolve())
            yield str(link)
        return
    yield text


@dataclass(frozen=True)
class VideoFrame:
    """One frame position of a video: its RGB image, or (rgb None) why it could not be decoded."""

    index: int  # the frame's index in the video (0-based), also after frames that could not be decoded
    rgb: np.ndarray | None
    error: str | None = None


MAX_FAILED_READS = 25  # consecutive undecodable frames after which the rest of a video counts as missing


def iter_video(path: str | Path) -> Iterator[VideoFrame]:
    """Every frame position of a video in order: decoded frames, and a VideoFrame with `error` (rgb None) for each
    run of frames that could not be decoded (reading resumes after them) or that is missing against the header's
    frame count at the end (a truncated file). Indices are the video's own: a damaged frame does not shift the
    frames after it (in containers that keep frame positions, e.g. MP4; an AVI with damaged chunk headers can lose
    them, and then only the count missing at the end is known). DataError when it cannot be opened or nothing
    decodes."""
    name = display_name(path)
    with opencv_path(path) as opened:
        cap = cv2.VideoCapture(opened)
        if not cap.isOpened():
            raise DataError(f"{name}: OpenCV cannot open this video")
        total = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        index, decoded, run = 0, 0, []  # run: the current run of undecodable frame indices
        try:
            while total == 0 or index < total:
                ok, frame = cap.read()
                if ok:
                    if run:
                        yield _missing(name, run[0], run[-1])
                        run = []
                    decoded += 1
                    yield VideoFrame(index, np.ascontiguousarray(frame[:, :, ::-1]))
                elif total == 0 or len(run) >= MAX_FAILED_READS:
                    break
                else:  # a frame the decoder rejects: note it and go on after it
                    run.append(index)
                    cap.set(cv2.CAP_PROP_POS_FRAMES, index + 1)
                index += 1
        finally:
            cap.release()
    if decoded == 0:
        raise DataError(f"{name}: no frame could be decoded")
    first = run[0] if run else index
    if total and first < total:
        yield _missing(name, first, total - 1, total)


def _missing(name: str, first: int, last: int, total: int = 0) -> VideoFrame:
    what = f"frame {first}" if first == last else f"frames {first}-{last}"
    tail = f" of the {total} its header lists (truncated or damaged file)" if total else ""
    return VideoFrame(first, None, f"{name}: {what}{tail} could not be decoded")


def read_video(path: str | Path) -> Iterator[np.ndarray]:
    """RGB frames of a video that decode (see `iter_video` for their indices and what is missing); DataError when
    it cannot be opened or has no decodable frame."""
    for frame in iter_video(path):
        if frame.rgb is not None:
            yield frame.rgb


def video_info(path: str | Path) -> tuple[float, int]:
    """(fps, frame count) of a video (25 fps and 0 frames when the container does not say)."""
    with opencv_path(path) as name:
        cap = cv2.VideoCapture(name)
        try:
            return float(cap.get(cv2.CAP_PROP_FPS) or 25.0), max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        finally:
            cap.release()

def read_detection_list(path: str | os.PathLike, entries: str) -> list:
    """The JSON list of a detections file; DataError naming the file when it cannot be read or is no list of
    `entries` (e.g. "{image_id, bbox, score}")."""
    try:
        dets = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read a JSON list of detections ({e})") from None
    if not isinstance(dets, list):
        raise DataError(f"{path}: expected a JSON list of {entries}, got {type(dets).__name__}")
    return dets


def read_detections(path: str | Path, min_score: float = 0.0, category_id: int = 1) -> dict[int, np.ndarray]:
    """COCO detection results -> {image_id: [M,5] xywh + score} of one category with score >= min_score.

    Entries with w or h <= 0 are dropped (as the official loader); non-numeric or non-finite values are errors.
    """
    dets = read_detection_list(path, "{image_id, bbox, score}")
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
