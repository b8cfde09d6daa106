"""`posekit bench learn` on a tiny generated set: AP points against training time, JSON output, table, PNG."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from posekit.cli import main

PRTR = Path(__file__).resolve().parents[2] / "configs" / "synth" / "prtr_demo_backbone.yaml"


@pytest.mark.slow
def test_bench_learn_json_and_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["bench", "learn", "--minutes", "0.12", "--every", "2", "--num-train", "16", "--num-val", "4",
            "--out", str(tmp_path / "out"), "--data", str(tmp_path / "data"), "--seed", "5"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    points = result["points"]
    assert len(points) >= 3 and all(p["eval_images"] == "all" for p in points)
    minutes = [p["minutes"] for p in points]
    assert minutes == sorted(minutes) and all(b - a >= 2 / 60 - 1e-9 for a, b in zip(minutes[:-2], minutes[1:-1]))
    assert result["final"]["AP"] == points[-1]["AP"]
    assert points[-1]["minutes"] == pytest.approx(result["train_minutes"]) and result["train_minutes"] >= 0.12
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert {k: metrics[k] for k in result["final"]} == result["final"]
    png = cv2.imread(result["png"])
    assert png is not None and png.shape[0] > 100
    # the readable form: one row per evaluation (data are reused the second time)
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "train min" in text and "AP" in text and len([ln for ln in text.splitlines() if ln.endswith(" all")]) >= 3


def test_candidate_parsing_and_ap_marks() -> None:
    from posekit.bench.learn import _ap_at, parse_candidate
    from posekit.errors import ConfigError

    assert parse_candidate("r18:MODEL.ZOO=simplebaseline_res18_128x96, MODEL.CODEC=dark") == (
        "r18", ["MODEL.ZOO=simplebaseline_res18_128x96", "MODEL.CODEC=dark"])
    with pytest.raises(ConfigError, match="NAME:KEY=VALUE"):
        parse_candidate("r18:MODEL.ZOO")
    assert parse_candidate("prtr:@configs/synth/prtr_demo_backbone.yaml,MODEL.PRETRAINED=m.pth") == (
        "prtr", ["@configs/synth/prtr_demo_backbone.yaml", "MODEL.PRETRAINED=m.pth"])
    with pytest.raises(ConfigError, match="at most one @CONFIG"):
        parse_candidate("x:@a.yaml,@b.yaml")
    points = [{"minutes": 1.0, "AP": 0.1}, {"minutes": 2.01, "AP": 0.2}, {"minutes": 4.0, "AP": 0.3}]
    assert _ap_at(points, 0.5) is None and _ap_at(points, 2) == 0.2 and _ap_at(points, 5) == 0.3


@pytest.mark.slow
def test_bench_learn_candidates_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["bench", "learn", "--minutes", "0.05", "--every", "0", "--num-train", "8", "--num-val", "3",
            "--out", str(tmp_path / "out"), "--data", str(tmp_path / "data"), "--seed", "2",
            "--candidate", "udp:", "--candidate", "dark:MODEL.CODEC=dark",
            # another config: PRTR started from the first candidate's weights (the demo model's backbone)
            "--candidate", f"prtr:@{PRTR},MODEL.PRETRAINED={tmp_path / 'out' / 'udp' / 'model.pth'}"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in result["candidates"]] == ["udp", "dark", "prtr"]
    assert [c["codec"] for c in result["candidates"]] == ["udp", "dark", "coord"]
    assert result["candidates"][2]["model"] == "prtr_hrnet_w16_tiny_hr_128x96"
    log = (tmp_path / "out" / "prtr" / "log.jsonl").read_text().splitlines()
    assert json.loads(log[0])["pretrained"]["loaded"] == 240  # all of the demo model but its final layer
    assert all(c["iterations"] > 0 and -1 <= c["AP"] <= 1 for c in result["candidates"])
    assert main(args) == 0
    assert "candidate" in capsys.readouterr().out
