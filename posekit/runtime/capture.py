"""Frame sources for tracking (video files, folders of frames, webcams, stream URLs) and the streamed track writer.

`open_source(spec)`: a video file, a folder of images (sorted by name; one frame each), a webcam index ("0", or an
int) or a stream URL (rtsp://, http(s)://, udp://, ...: anything cv2.VideoCapture opens). Webcams and streams are
live: a reader thread grabs frames as they come and keeps only the newest one; a frame replaced before the consumer
took it is dropped and counted (`source.dropped`), so a slow model falls behind by at most one frame. A video file
can be read live too (`live=True`: frames are released at the file's frame rate, as a camera would deliver them),
which is how the dropping is tested without a camera.

`PoseTrackWriter`: PoseTrack-style results (images with vid_id / frame_id, annotations with track_id), streamed:
every frame is appended to DIR/NAME.jsonl and flushed as it comes, and `close()` (also on Ctrl-C, as a context
manager) writes the complete NAME.json (temp file then rename) and removes the .jsonl; after a hard kill the
.jsonl holds every finished frame (`read_tracks` reads either).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from posekit.errors import DataError
from posekit.runtime.sources import read_detection_list

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}  # as posekit.inference's inputs

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclass
class Frame:
    """One frame of a source: its index in the source (gaps where frames were dropped), RGB pixels, time (s)."""

    index: int
    image: np.ndarray
    time: float
    name: str = ""


class FrameSource:
    """Iterable of `Frame`s with `fps`, `live`, `dropped` and `name`."""

    name: str = ""
    fps: float = 25.0
    live: bool = False
    dropped: int = 0

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file (idempotent)."""


class FolderSource(FrameSource):
    """The images of a folder, sorted by name, as frames at `fps`."""

    def __init__(self, folder: str | os.PathLike, fps: float = 25.0) -> None:
        from posekit.data.images import read_image

        self._read = read_image
        self.folder = Path(folder)
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        if not self.files:
            raise DataError(f"{self.folder}: no images ({', '.join(sorted(IMAGE_EXTS))}) in this folder")
        self.name, self.fps = self.folder.name, float(fps)

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.files):
            yield Frame(i, self._read(path), i / self.fps, path.name)


class CaptureSource(FrameSource):
    """A video file, webcam index or stream URL; live captures drop frames the consumer misses.

    Video files are read by `posekit.runtime.sources.iter_video` (names that are not UTF-8, frames that do not
    decode: reading goes on after them, their indices stay the video's own, and the reasons are kept in `errors`).
    """

    def __init__(self, target: str | int, live: bool = False, name: str | None = None,
                 pace: bool = False) -> None:
        from posekit.runtime.sources import display_name, video_info

        self.file = None if isinstance(target, int) or _URL.match(str(target)) else str(target)
        self.cap = None
        if self.file is None:
            self.cap = cv2.VideoCapture(target)
            if not self.cap.isOpened():
                kind = "camera" if isinstance(target, int) else "stream"
                raise DataError(f"{target}: OpenCV cannot open this {kind}")
            self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0) or 25.0
        else:
            self.fps = video_info(self.file)[0]
        self.name = name or (display_name(Path(self.file).name) if self.file is not None else str(target))
        self.live, self.pace = bool(live), bool(pace)
        self.dropped = 0
        self.read_frames = 0
        self.errors: list[str] = []  # frames of a video file that could not be decoded

    def _frames(self) -> Iterator[tuple[int, np.ndarray]]:
        if self.file is not None:
            from posekit.runtime.sources import iter_video

            for f in iter_video(self.file):
                if f.rgb is None:
                    self.errors.append(str(f.error))
                else:
                    yield f.index, f.rgb
            return
        i = 0
        while True:
            ok, bgr = self.cap.read()
            if not ok:
                return
            yield i, np.ascontiguousarray(bgr[:, :, ::-1])
            i += 1

    def __iter__(self) -> Iterator[Frame]:
        if not self.live:
            n = -1
            for n, rgb in self._frames():
                yield Frame(n, rgb, n / self.fps, self.name)
            if n < 0:
                raise DataError(f"{self.name}: no frame could be decoded")
            return
        yield from self._live()

    def _live(self) -> Iterator[Frame]:
        """Newest-frame hand-off from a reader thread; frames overwritten before they were taken are dropped."""
        cond = threading.Condition()
        slot: list[Any] = [None]  # the newest unread (index, rgb, time)
        done = threading.Event()
        stop = threading.Event()
        start = time.perf_counter()

        def reader() -> None:
            try:
                for i, rgb in self._frames():
                    if stop.is_set():
                        return
                    if self.pace:  # a file read live: deliver at the file's frame rate
                        delay = start + i / self.fps - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                    with cond:
                        if slot[0] is not None:
                            self.dropped += 1
                        slot[0] = (i, rgb, time.perf_counter() - start)
                        self.read_frames += 1
                        cond.notify()
            finally:
                done.set()
                with cond:
                    cond.notify()

        thread = threading.Thread(target=reader, name="posekit-capture", daemon=True)
        thread.start()
        try:
            while True:
                with cond:
                    while slot[0] is None and not done.is_set():
                        cond.wait(0.5)
                    item, slot[0] = slot[0], None
                if item is None:
                    break
                yield Frame(item[0], item[1], item[2], self.name)
        finally:
            stop.set()
            thread.join(timeout=2.0)
        if self.read_frames == 0:
            raise DataError(f"{self.name}: no frame could be read")

    def close(self) -> None:
        """Release the capture."""
        if self.cap is not None:
            self.cap.release()


def open_source(spec: str | int | os.PathLike, live: bool | None = None) -> FrameSource:
    """A frame source for a video file, a folder of frames, a webcam index or a stream URL (see the docstring).

    `live` None: webcams and URLs are live, files and folders are not; True for a video file paces it at its frame
    rate and drops the frames the consumer is too slow for.
    """
    if isinstance(spec, int) or (isinstance(spec, str) and re.fullmatch(r"\d+", spec) and not Path(spec).exists()):
        return CaptureSource(int(spec), live=True if live is None else live, name=f"camera{int(spec)}")
    if isinstance(spec, str) and _URL.match(spec):
        return CaptureSource(spec, live=True if live is None else live)
    path = Path(spec)
    if path.is_dir():
        if live:
            raise DataError(f"{path}: a folder of frames cannot be read live")
        return FolderSource(path)
    if not path.is_file():
        raise DataError(f"{path}: no such video file, folder of frames, camera index or stream URL")
    return CaptureSource(str(path), live=bool(live), pace=bool(live))


class PoseTrackWriter:
    """PoseTrack-style tracking results, streamed (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, categories: list[dict] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stream_path = self.path.with_suffix(".jsonl")
        self.categories = categories or []
        self._f: TextIO | None = open(self.stream_path, "w")  # noqa: SIM115 - closed in close()
        self.frames = 0
        self.annotations = 0

    def write(self, image: dict[str, Any], annotations: list[dict[str, Any]]) -> None:
        """Append one frame: its image entry (id, file_name, vid_id, frame_id...) and its annotations."""
        assert self._f is not None, "PoseTrackWriter is closed"
        self._f.write(json.dumps({"image": image, "annotations": annotations}) + "\n")
        self._f.flush()
        self.frames += 1
        self.annotations += len(annotations)

    def close(self) -> None:
        """Write NAME.json from the stream and remove the stream (idempotent)."""
        if self._f is None:
            return
        self._f.close()
        self._f = None
        data = read_tracks(self.stream_path)
        data["categories"] = self.categories
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)
        self.stream_path.unlink()

    def __enter__(self) -> PoseTrackWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_tracks(path: str | os.PathLike) -> dict[str, Any]:
    """{"images", "annotations"} of a PoseTrackWriter's .json or .jsonl stream (a cut last line is ignored)."""
    path = Path(path)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    images, annotations = [], []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            break  # the line being written when the process was killed
        images.append(entry["image"])
        annotations += entry["annotations"]
    return {"images": images, "annotations": annotations}


def read_video_detections(path: str | os.PathLike, min_score: float = 0.0,
                          category_id: int = 1) -> dict[str | None, dict[int, np.ndarray]]:
    """Per-frame person detections of videos: a JSON list of {bbox xywh, score, and "frame" (0-based) or
    "image_id" (= frame + 1)}, optionally "video" (a file name; entries without it apply to every video) ->
    {video name or None: {frame: [M,5] xywh + score}}; detections below min_score or with w, h <= 0 are dropped."""
    dets = read_detection_list(path, "{frame or image_id, bbox, score}")
    out: dict[str | None, dict[int, list]] = {}
    for i, d in enumerate(dets):
        try:
            frame = int(d["frame"]) if "frame" in d else int(d["image_id"]) - 1
            x, y, w, h = (float(v) for v in d["bbox"])
            score = float(d.get("score", 1.0))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: entry {i}: expected frame (or image_id), a 4-number bbox and a numeric score, "
                            f"got {d!r}"[:300]) from None
        if d.get("category_id", category_id) != category_id or score < min_score or w <= 0 or h <= 0:
            continue
        video = d.get("video")
        out.setdefault(None if video is None else Path(str(video)).name, {}).setdefault(frame, []).append(
            [x, y, w, h, score])
    return {v: {f: np.asarray(b, np.float64) for f, b in frames.items()} for v, frames in out.items()}
