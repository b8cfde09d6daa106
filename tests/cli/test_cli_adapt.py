"""`posekit adapt`: built-in domains -> a tiny CC-SSL run (table / --json, resume) and clear errors."""

from __future__ import annotations

import json

import pytest

from posekit.cli import main

TINY = ["--model", "hourglass_bearpaw_1stack_128x128", "--input-size", "64x64", "--builtin-image-size", "96x96",
        "--builtin-sizes", "10,8,6,6", "--epochs", "2", "--source-epochs", "1", "--round-every", "1",
        "--iters-per-epoch", "1", "--batch-size", "2", "--num-transform", "2", "--optimizer", "adam", "--lr", "1e-3"]


@pytest.mark.slow
def test_adapt_cli_builtin_ccssl_and_resume(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "run"
    rc = main(["adapt", "--method", "ccssl", "--out", str(out), "--builtin", str(data), *TINY])
    assert rc == 0
    text = capsys.readouterr().out
    assert "round 0: pseudo labels kept" in text and "mean" in text and "left_eye" in text
    assert (out / "pseudo_labels" / "round_00.json").is_file() and (out / "final_state.pth").is_file()
    assert json.loads((data / "target_train" / "annotations.json").read_text())["images"][1]["frame_index"] == 1
    rc = main(["adapt", "--method", "ccssl", "--out", str(out), "--builtin", str(data), *TINY, "--resume", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["epoch"] == 2 and 0 <= res["metrics"]["PCK@0.05"] <= 1


def test_adapt_cli_errors(tmp_path, capsys):
    assert main(["adapt", "--out", str(tmp_path / "x"), "--source-ann", "a.json"]) == 1
    assert "--source-ann and --source-images" in capsys.readouterr().err
    assert main(["adapt", "--out", str(tmp_path / "x"), "--source-ann", "nope.json", "--source-images", ".",
                 "--target-ann", "t.json", "--target-images", ".", "--val-ann", "v.json", "--val-images", "."]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["adapt", "--out", str(tmp_path / "y"), "--builtin", str(tmp_path / "d"), "--builtin-sizes", "1,2",
                 ]) == 1
    assert "--builtin-sizes" in capsys.readouterr().err
    assert main(["adapt", "--out", str(tmp_path / "z"), "--source-ann", __file__, "--source-images", ".",
                 "--target-ann", __file__, "--target-images", ".", "--val-ann", __file__, "--val-images", ".",
                 "--resume"]) == 1
    assert "checkpoint.pth does not exist" in capsys.readouterr().err
