"""`posekit synth`: writes the dataset and a preview, prints images/s; bad arguments exit 1 with a message."""

from __future__ import annotations

import json

from posekit.cli import main


def test_synth_cli_writes_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    rc = main(["synth", "--out", str(out), "--num-images", "5", "--kind", "quadruped", "--style", "B",
               "--max-subjects", "2", "--seed", "4", "--size", "160x128", "--workers", "2", "--preview"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "images/s" in text and "preview" in text
    data = json.loads((out / "annotations.json").read_text())
    assert len(data["images"]) == 5 and data["images"][0]["width"] == 160 and data["images"][0]["height"] == 128
    assert data["categories"][0]["name"] == "animal" and len(data["categories"][0]["keypoints"]) == 17
    assert data["info"]["seed"] == 4 and data["info"]["kind"] == "quadruped"
    assert all(1 <= sum(a["image_id"] == i["id"] for a in data["annotations"]) <= 2 for i in data["images"][:1])
    assert (out / "preview.png").stat().st_size > 0
    assert len(list((out / "images").glob("*.jpg"))) == 5


def test_synth_cli_rejects_bad_values(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--num-images", "0", "--no-progress"]) == 1
    assert "--num-images" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path), "--num-images", "2", "--max-subjects", "0", "--no-progress"]) == 1
    assert "max_subjects" in capsys.readouterr().err
