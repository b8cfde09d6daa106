"""`posekit infer` with the inputs and output folders users actually give: nothing overwritten, nothing re-read,
one run per output folder, any file name, damaged videos reported with their own frame indices, the JSON valid
whatever stops the run, and a word about where person boxes come from."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import orjson

from posekit.cli import main

MODEL = "simplebaseline_res18_128x96"
FAST = ["--model", MODEL, "--random-weights", "--no-flip", "--backend", "torch"]


def picture(h: int = 90, w: int = 70, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (0, 0), 3)


def folder_of_images(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "a.png"), picture(seed=1))
    cv2.imwrite(str(folder / "b.jpg"), picture(seed=2))
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_output_folder_that_holds_the_inputs_is_refused_and_nothing_is_touched(tmp_path, capsys):
    before = folder_of_images(tmp_path / "photos")
    assert main(["infer", *FAST, str(tmp_path / "photos"), "--out", str(tmp_path / "photos")]) == 1
    assert "holds the input" in capsys.readouterr().err
    assert main(["infer", *FAST, str(tmp_path / "photos" / "a.png"), "--out", str(tmp_path / "photos")]) == 1
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "photos").iterdir()}
    assert after == before  # no drawing, no keypoints.json among the inputs


def test_an_earlier_output_folder_is_not_read_as_inputs(tmp_path, capsys):
    folder_of_images(tmp_path / "photos")
    assert main(["infer", *FAST, str(tmp_path / "photos"), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert main(["infer", *FAST, str(tmp_path / "out"), "--out", str(tmp_path / "again")]) == 1
    assert "output folder of an earlier posekit infer" in capsys.readouterr().err
    assert main(["infer", *FAST, str(tmp_path / "photos"), "--out", str(tmp_path / "out")]) == 0  # a rerun: fine


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_writes(tmp_path, capsys):
    from posekit.inference import claim_output_folder

    folder_of_images(tmp_path / "photos")
    lock = claim_output_folder(tmp_path / "out", [tmp_path / "photos"])  # as a running posekit infer holds it
    try:
        assert main(["infer", *FAST, str(tmp_path / "photos"), "--out", str(tmp_path / "out")]) == 1
        assert f"another posekit infer (pid {os.getpid()}) is writing there now" in capsys.readouterr().err
        assert not (tmp_path / "out" / "keypoints.json").exists()
    finally:
        os.close(lock)
    assert main(["infer", *FAST, str(tmp_path / "photos"), "--out", str(tmp_path / "out")]) == 0  # released


def test_file_names_that_are_not_utf8_work(tmp_path, capsys):
    """Was a segmentation fault in the drawing write, with keypoints.json left unterminated."""
    folder_of_images(tmp_path / "photos")
    bad = Path(os.fsdecode(os.fsencode(str(tmp_path / "photos")) + b"/\xff\xfeperson.jpg"))
    (tmp_path / "photos" / "b.jpg").rename(bad)
    video = Path(os.fsdecode(os.fsencode(str(tmp_path / "photos")) + b"/clip\xe9.avi"))
    writer = cv2.VideoWriter(str(tmp_path / "v.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (70, 90))
    for i in range(3):
        writer.write(picture(seed=10 + i))
    writer.release()
    (tmp_path / "v.avi").rename(video)
    assert main(["infer", *FAST, str(tmp_path / "photos"), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "keypoints.json").read_bytes()
    results = orjson.loads(text)  # strict JSON (no lone surrogates)
    names = {Path(r["file_name"]).name for r in results}
    assert names == {"a.png", "\\xff\\xfeperson.jpg", "clip\\xe9.avi"}
    assert sorted(r.get("frame") for r in results if "frame" in r) == [0, 1, 2]
    drawn = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "\ufffd\ufffdperson.png" in drawn and "clip\ufffd_pose.avi" in drawn


def damaged_mp4(path: Path, n: int = 12, bad: int = 5) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (70, 90))
    for i in range(n):
        writer.write(picture(seed=20 + i))
    writer.release()
    data = bytearray(path.read_bytes())
    vops = [i for i in range(len(data) - 3) if data[i:i + 4] == b"\x00\x00\x01\xb6"]
    data[vops[bad]:vops[bad + 1]] = bytes((x * 7 + 3) % 256 for x in range(vops[bad + 1] - vops[bad]))
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_video_frame_is_reported_and_later_frames_keep_their_indices(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    video = damaged_mp4(tmp_path / "in" / "clip.mp4")
    assert main(["infer", *FAST, str(video), "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    results = json.loads((tmp_path / "out" / "keypoints.json").read_text())
    assert [r["frame"] for r in results] == [i for i in range(12) if i != 5]
    assert all(r["image_id"] == r["frame"] for r in results)  # ids follow the video's frame indices
    assert "1 skipped" in out and "clip.mp4: frame 5 could not be decoded" in err
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip_pose.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12  # the drawn video keeps time (frame 5 repeats frame 4)
    assert main(["infer", *FAST, str(video), "--on-error", "stop", "--out", str(tmp_path / "stop")]) == 1
    assert "frame 5 could not be decoded" in capsys.readouterr().err


def test_keypoints_json_is_valid_after_sigkill(tmp_path):
    """The results file is a complete JSON list at every moment, not only after a clean close."""
    script = ("import os, signal, sys\nfrom posekit.inference import ResultsWriter\n"
              "w = ResultsWriter(sys.argv[1])\nfor i in range(3):\n    w.write([{'i': i, 'x': [1.5, float('nan')]}])\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path / "k.json")], timeout=120)
    assert run.returncode == -signal.SIGKILL
    assert orjson.loads((tmp_path / "k.json").read_bytes()) == [{"i": i, "x": [1.5, None]} for i in range(3)]


def test_where_person_boxes_come_from_is_said(tmp_path, capsys):
    folder_of_images(tmp_path / "photos")
    assert main(["infer", *FAST, str(tmp_path / "photos"), "--out", str(tmp_path / "o1")]) == 0
    assert "takes each whole image and frame as ONE person" in capsys.readouterr().err
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 7, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9}]))
    assert main(["infer", *FAST, str(tmp_path / "photos"), "--boxes", str(dets), "--out", str(tmp_path / "o2")]) == 1
    assert "the detections match none of the 2 input images" in capsys.readouterr().err
    ae = ["--model", "ae_hourglass_small_128", "--random-weights", "--no-flip"]
    assert main(["infer", *ae, str(tmp_path / "photos"), "--boxes", str(dets), "--out", str(tmp_path / "o3")]) == 0
    out, err = capsys.readouterr()
    assert "is a bottom-up model: it finds every person itself, so --boxes is ignored" in err
    assert "without detections" not in out


def test_onnx_cache_is_not_written_next_to_the_weights(tmp_path, monkeypatch, capsys):
    from posekit import models

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "repo").mkdir()
    import torch

    torch.save(models.build(MODEL).state_dict(), tmp_path / "repo" / "w.pth")
    folder_of_images(tmp_path / "photos")
    base = ["infer", "--model", MODEL, "--weights", str(tmp_path / "repo" / "w.pth"), "--no-flip",
            "--backend", "onnxruntime", str(tmp_path / "photos")]
    assert main([*base, "--out", str(tmp_path / "o1")]) == 0
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["w.pth"]
    assert len(list((tmp_path / "xdg" / "posekit" / "onnx").glob("w-*.onnx"))) == 1
    assert main([*base, "--cache-dir", str(tmp_path / "mine"), "--out", str(tmp_path / "o2")]) == 0
    assert len(list((tmp_path / "mine").glob("w-*.onnx"))) == 1


def test_a_3d_model_from_its_config_runs_without_weights(tmp_path, capsys):
    """Issue 23 item 6 (the body3d codec): `--config` + `--random-weights` was "'IntegralCodec' object has no
    attribute 'aspect_ratio'"; the zoo-name path is covered in tests/codecs/test_codec_body3d.py."""
    config = Path(__file__).resolve().parents[2] / "configs" / "synth" / "posenet3d_hrnet.yaml"
    folder_of_images(tmp_path / "photos")
    assert main(["infer", "--config", str(config), "--random-weights", str(tmp_path / "photos" / "a.png"),
                 "--box", "5,5,60,80", "--no-flip", "--out", str(tmp_path / "out")]) == 0
    (entry,) = json.loads((tmp_path / "out" / "keypoints.json").read_text())
    assert len(entry["keypoints_3d"]) == len(entry["keypoints"]) // 3 and entry["root_depth"] > 0
