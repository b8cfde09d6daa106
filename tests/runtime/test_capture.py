"""Frame sources (video files, folders, live reading with counted drops) and the streamed PoseTrack writer."""

from __future__ import annotations

import json
import os
import time

import cv2
import numpy as np
import pytest

from posekit.errors import DataError
from posekit.runtime.capture import PoseTrackWriter, open_source, read_tracks, read_video_detections


def _video(path, n=24, fps=40.0, size=64):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    for i in range(n):
        frame = np.full((size, size, 3), 0, np.uint8)
        cv2.putText(frame, str(i), (4, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        frame[:, :, 2] = i * 10  # frame i has red = 10 i (BGR), so its index can be read back from the pixels
        w.write(frame)
    w.release()
    return path


def _index_of(rgb):
    return round(float(np.median(rgb[:, :, 0])) / 10)


def test_video_file_gives_every_frame_in_order(tmp_path):
    src = open_source(_video(tmp_path / "v.avi"))
    frames = list(src)
    assert [f.index for f in frames] == list(range(24)) and src.dropped == 0 and not src.live
    assert [_index_of(f.image) for f in frames] == list(range(24))
    assert src.fps == pytest.approx(40.0)


def test_folder_of_frames(tmp_path):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"f{i:03d}.png"), np.full((8, 8, 3), i * 10, np.uint8))
    frames = list(open_source(tmp_path))
    assert [f.name for f in frames] == ["f000.png", "f001.png", "f002.png"]
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 10, 20]


def test_live_source_drops_and_counts_the_frames_a_slow_consumer_misses(tmp_path):
    """A video file read as a live stream (paced at 40 frames/s); the consumer needs 3 frame periods per frame."""
    src = open_source(_video(tmp_path / "v.avi"), live=True)
    got = []
    for f in src:
        got.append(f.index)
        assert _index_of(f.image) == f.index  # the pixels are those of the frame it claims to be
        time.sleep(3 / 40.0)
    assert src.live and src.dropped > 0
    assert len(got) + src.dropped == 24  # every frame was either processed or counted as dropped
    assert got == sorted(got) and got[0] == 0 and got[-1] == 23  # the newest frame is never lost


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no such video file"):
        open_source(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        open_source(tmp_path / "empty")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(DataError):
        list(open_source(tmp_path / "bad.mp4"))


def test_track_writer_streams_and_survives_an_interruption(tmp_path):
    path = tmp_path / "out_tracks.json"
    writer = PoseTrackWriter(path, [{"id": 1, "name": "person"}])
    writer.write({"id": 1, "vid_id": 0, "frame_id": 0}, [{"image_id": 1, "track_id": 0, "keypoints": [1, 2, 0.5]}])
    writer.write({"id": 2, "vid_id": 0, "frame_id": 1}, [])
    # before close (a hard kill now): the stream already holds both frames
    assert [im["id"] for im in read_tracks(path.with_suffix(".jsonl"))["images"]] == [1, 2]
    with open(path.with_suffix(".jsonl"), "a") as f:
        f.write('{"image": {"id": 3}, "annot')  # a line cut by the kill is ignored
    assert len(read_tracks(path.with_suffix(".jsonl"))["images"]) == 2
    try:
        with writer:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    data = json.loads(path.read_text())
    assert [a["track_id"] for a in data["annotations"]] == [0] and len(data["images"]) == 2
    assert data["categories"][0]["name"] == "person" and not path.with_suffix(".jsonl").exists()


def test_video_detections_by_frame_and_video(tmp_path):
    p = tmp_path / "dets.json"
    p.write_text(json.dumps([{"frame": 0, "bbox": [1, 2, 3, 4], "score": 0.9},
                             {"image_id": 3, "bbox": [5, 6, 7, 8], "score": 0.8, "video": "clips/a.mp4"},
                             {"frame": 1, "bbox": [0, 0, 5, 5], "score": 0.1},
                             {"frame": 1, "bbox": [0, 0, 0, 5], "score": 0.9}]))
    dets = read_video_detections(p, min_score=0.3)
    assert dets[None][0].tolist() == [[1, 2, 3, 4, 0.9]] and 1 not in dets[None]
    assert dets["a.mp4"][2].tolist() == [[5, 6, 7, 8, 0.8]]
    p.write_text(json.dumps([{"bbox": [1, 2, 3]}]))
    with pytest.raises(DataError, match="entry 0"):
        read_video_detections(p)


def test_a_damaged_frame_is_skipped_and_reported(tmp_path):
    """MPEG-4 frame 5's coded data replaced by noise: the frames after it keep their indices and pixels."""
    path = tmp_path / "damaged.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(12):
        w.write(np.full((48, 64, 3), 20 * i, np.uint8))
    w.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 3) if data[i:i + 4] == b"\x00\x00\x01\xb6"]  # MPEG-4 VOP start codes
    data[starts[5]:starts[6]] = bytes((13 * i + 5) % 256 for i in range(starts[6] - starts[5]))  # start code too
    path.write_bytes(bytes(data))
    src = open_source(path)
    frames = list(src)
    got = [f.index for f in frames]
    assert 5 not in got and got[-1] == 11 and len(got) >= 10
    assert all(round(float(f.image.mean()) / 20) == f.index for f in frames if f.index < 5)
    assert src.errors and "frame 5" in src.errors[0]


def test_a_file_name_that_is_not_utf8(tmp_path):
    path = tmp_path / os.fsdecode(b"clip_\xff.avi")
    _video(tmp_path / "plain.avi", n=5).rename(path)  # OpenCV itself cannot write (or open) such a name
    src = open_source(path)
    assert [f.index for f in src] == list(range(5)) and "\\xff" in src.name
