"""`posekit bench e2e`: both loops run on the same images and boxes and agree on the keypoints."""

from __future__ import annotations

import json

import pytest

from posekit.cli import main


def test_bench_e2e_generated_images(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    argv = ["bench", "e2e", "--json", "--model", "hrnet_w16_tiny_128x96", "--backend", "folded", "--images", "1",
            "--repeat", "1", "--no-flip"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["source"] == "generated" and r["images"] == 1 and r["people"] >= 3 and r["backend"] == "folded"
    for loop in ("posekit", "official"):
        row = r["rows"][loop]
        assert row["people_per_s"] == pytest.approx(r["people"] / row["seconds"])
        assert row["images_per_s"] == pytest.approx(1 / row["seconds"])
    # the same network and procedure: the loops differ only by float rounding (folded BN, one batched forward)
    assert r["max_keypoint_diff_px"] <= 1e-3
    assert r["speedup"] == pytest.approx(r["rows"]["official"]["seconds"] / r["rows"]["posekit"]["seconds"])


@pytest.mark.slow
def test_bench_e2e_coco_samples(capsys, data_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["bench", "e2e", "--model", "simplebaseline_res18_128x96", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 coco images, 33 boxes" in out and "posekit / official-style" in out
