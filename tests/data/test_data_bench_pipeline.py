"""`posekit bench pipeline`: runs on generated images when ../shared is absent and prints one JSON object."""

from __future__ import annotations

import json

from posekit.cli import main
from posekit.data import jpeg


def test_bench_pipeline_synthetic_json(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("POSEKIT_SHARED", str(tmp_path / "absent"))
    assert main(["bench", "pipeline", "--json", "--seconds", "0.3", "--rounds", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["data"].startswith("generated")
    names = [v["variant"] for v in result["variants"]]
    assert names == ["official-style", "posekit", "posekit-grouped"]
    for v in result["variants"]:
        assert v["samples"] > 0 and v["samples_per_s"] > 0
        assert {"decode", "warp", "encode", "normalize"} <= set(v["ms_per_sample"])
    assert result["samples_per_s"] == result["variants"][1]["samples_per_s"]
    assert 0 <= result["variants"][2]["cache_hit_rate"] <= 1
    posekit, grouped = result["variants"][1], result["variants"][2]
    assert posekit["vs_official"] == posekit["rounds_vs_official"][0] > 0
    assert grouped["region_decode_fraction"] == 0  # grouped order reuses whole cached images
    if jpeg.available():  # 24 images, a cache of 8: once it is full, the misses are region decodes
        assert posekit["region_decode_fraction"] > 0.3


def test_bench_pipeline_table(data_dir, capsys):
    assert main(["bench", "pipeline", "--seconds", "0.3", "--rounds", "1", "--variants", "posekit"]) == 0
    out = capsys.readouterr().out
    assert "coco_mini" in out and "samples/s" in out and "posekit" in out
