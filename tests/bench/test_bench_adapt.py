"""`posekit bench adapt`: a tiny run of every method from one source stage (table, JSON, plot, precision rows)."""

from __future__ import annotations

import json

import pytest

from posekit.cli import main

TINY = ["--scale", "0.01", "--source-units", "60", "--budget", "60", "--quiet",
        "--set", "MODEL.IMAGE_SIZE=[64,64]", "--set", "TRAIN.BATCH_SIZE_PER_GPU=4", "--set", "ADAPT.TARGET_BATCH=4",
        "--set", "ADAPT.HUMAN_BATCH=4", "--set", "ADAPT.ITERS_PER_EPOCH=2", "--set", "ADAPT.ROUND_EVERY=1",
        "--set", "ADAPT.NUM_TRANSFORM=2", "--set", "ADAPT.PICTURES=2", "--set", "TRAIN.CPU_AMP=false"]


@pytest.mark.slow
def test_bench_adapt_quadruped_tiny(tmp_path, capsys):
    args = ["bench", "adapt", "--json", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), *TINY]
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in res["rows"]] == ["source", "adabn", "ccssl", "wscda"]
    for r in res["rows"]:
        assert r["units"] >= 60 and "PCK@0.05" in r["metrics"]  # every method spends the same budget
    assert res["rows"][0]["rounds"] == [] and res["rows"][2]["rounds"][0]["kept_precision"] is not None
    assert "PCK@0.05" in res["source_domain"] and (tmp_path / "out" / "plot.png").is_file()
    assert main(["bench", "adapt", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out2"),
                 "--methods", "source", "--source", res["source_weights"], *TINY]) == 0
    text = capsys.readouterr().out
    assert "source-style images" in text and "wall min" in text
