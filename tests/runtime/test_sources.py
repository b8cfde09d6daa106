"""Inputs of inference (posekit.runtime.sources): videos keep their own frame indices when a frame cannot be
decoded, a truncated video is reported, and file names that are not UTF-8 reach OpenCV safely."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.errors import DataError
from posekit.runtime.sources import display_name, iter_video, opencv_path, read_video

GREY_STEP = 12  # frame i is a flat grey image of value 12 i


def write_video(path: Path, n: int = 20, fourcc: str = "mp4v") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (64, 48))
    for i in range(n):
        writer.write(np.full((48, 64, 3), GREY_STEP * i, np.uint8))
    writer.release()
    return path


def damage_frame(path: Path, k: int) -> None:
    """Overwrite MPEG-4 frame k's coded data (between its VOP start code and the next) with noise."""
    data = bytearray(path.read_bytes())
    vops = [i for i in range(len(data) - 3) if data[i:i + 4] == b"\x00\x00\x01\xb6"]
    a, b = vops[k], vops[k + 1]
    data[a:b] = bytes((x * 7 + 3) % 256 for x in range(b - a))
    path.write_bytes(bytes(data))


def grey_index(rgb: np.ndarray) -> int:
    return round(float(rgb.mean()) / GREY_STEP)


def test_a_damaged_frame_keeps_the_later_indices_and_is_reported(tmp_path):
    path = write_video(tmp_path / "clip.mp4")
    damage_frame(path, 7)
    frames = list(iter_video(path))
    decoded = [f for f in frames if f.rgb is not None]
    assert [f.index for f in decoded] == [i for i in range(20) if i != 7]
    assert all(grey_index(f.rgb) == f.index for f in decoded)  # the pixels are those of the frame named
    (missing,) = [f for f in frames if f.rgb is None]
    assert missing.index == 7 and missing.error.endswith("clip.mp4: frame 7 could not be decoded")
    assert len(list(read_video(path))) == 19


def test_a_truncated_video_reports_the_frames_its_header_lists(tmp_path):
    path = write_video(tmp_path / "clip.avi", fourcc="MJPG")
    data = path.read_bytes()
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]  # one JPEG per frame
    path.write_bytes(data[:starts[12] + 50])
    frames = list(iter_video(path))
    assert [f.index for f in frames if f.rgb is not None] == list(range(12))
    assert frames[-1].rgb is None and frames[-1].index == 12
    assert "frames 12-19 of the 20 its header lists (truncated or damaged file)" in frames[-1].error


def test_undecodable_and_unopenable_videos_are_errors(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(DataError, match="junk.mp4"):
        list(iter_video(tmp_path / "junk.mp4"))


def test_names_that_are_not_utf8_reach_opencv_and_json_safely(tmp_path):
    """OpenCV's Python binding crashes (SIGSEGV) on a str it cannot encode as UTF-8."""
    name = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9-\xff.mp4")
    write_video(tmp_path / "plain.mp4", n=5).rename(name)
    with opencv_path(name) as safe:
        safe.encode("utf-8")
        assert cv2.VideoCapture(safe).isOpened()
    assert [f.index for f in iter_video(name)] == [0, 1, 2, 3, 4]
    assert display_name(name).endswith("caf\\xe9-\\xff.mp4")
    with opencv_path(tmp_path / "ok.mp4") as same:
        assert same == str(tmp_path / "ok.mp4")
