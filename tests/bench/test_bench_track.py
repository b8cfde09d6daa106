"""`posekit bench track`: a tiny run (one short sequence, a random-weight network) gives every row and metric."""

from __future__ import annotations

import json

import pytest
import torch

from posekit import models
from posekit.bench.common import randomise
from posekit.cli import main


@pytest.mark.slow
def test_bench_track_tiny(tmp_path, capsys):
    weights = tmp_path / "tiny.pth"
    model = models.build("hrnet_w16_tiny_128x96").eval()
    randomise(model)
    torch.save({"state_dict": model.state_dict()}, weights)
    args = ["bench", "track", "--json", "--model", "hrnet_w16_tiny_128x96", "--weights", str(weights),
            "--videos", "1", "--frames", "8", "--size", "96",
            "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--backend", "torch", "--no-flip",
            "--sources", "gt-boxes,propagated,bottom-up"]
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out)
    rows = {r["source"]: r for r in res["rows"]}
    assert rows["bottom-up"]["measured"] is False  # no --people-from weights
    gt = rows["gt-boxes"]
    # the ground-truth boxes are the people: every evaluated person is found, whatever the keypoints
    assert gt["num_misses"] == 0 and gt["num_objects"] == res["people_frames"]
    for r in (gt, rows["propagated"]):
        for key in ("idf1", "mota", "kp_mota", "ap_raw", "ap_smoothed", "jitter_raw", "fps"):
            assert key in r
    assert main(args[:2] + args[3:]) == 0
    assert "IDF1" in capsys.readouterr().out
