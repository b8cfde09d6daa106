"""`posekit bench codecs --json`: one JSON object with a row per codec; DARK and UDP beat MSRA's round trip."""

from __future__ import annotations

import json

from posekit import codecs
from posekit.cli import main


def test_bench_codecs_json(capsys):
    assert main(["bench", "codecs", "--json", "--num-keypoints", "340", "--seed", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {r["codec"]: r for r in result["rows"]}
    assert list(rows) == codecs.names()
    assert result["num_keypoints"] == 340 and result["input_size"] == [192, 256]
    for r in rows.values():
        assert 0 <= r["mean_err_px"] <= r["max_err_px"] and r["encode_kp_per_s"] > 0 and r["decode_kp_per_s"] > 0
    # MSRA rounds to the integer heatmap centre (up to 2 px per axis); DARK/UDP are unbiased
    assert 0.8 < rows["msra"]["mean_err_px"] < 2.0 and rows["msra"]["max_err_px"] <= 2 * 2**0.5 + 1e-9
    assert rows["dark"]["mean_err_px"] <= 0.5 * rows["msra"]["mean_err_px"]
    assert rows["udp"]["mean_err_px"] <= 0.5 * rows["msra"]["mean_err_px"]
    assert rows["grmi_offset"]["max_err_px"] < 1e-3


def test_bench_codecs_table_and_unknown_codec(capsys):
    assert main(["bench", "codecs", "--num-keypoints", "34", "--codecs", "msra,dark"]) == 0
    out = capsys.readouterr().out
    assert "msra" in out and "dark" in out and "mean err" in out
    assert main(["bench", "codecs", "--codecs", "nope"]) == 1
    assert "unknown nope" in capsys.readouterr().err
