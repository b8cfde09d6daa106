"""`posekit bench bottomup`: the AE model without boxes next to the top-down demo model with GT boxes and AE boxes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from posekit.bench import bottomup as bench
from posekit.cli import main


def test_split_is_generated_once_and_regenerated_when_the_settings_change(tmp_path: Path) -> None:
    first = bench.ensure_split(tmp_path / "val", 2, seed=3, max_subjects=2, size=64)
    assert first["reused"] is False and first["num_images"] == 2
    ann = json.loads((tmp_path / "val" / "annotations.json").read_text())
    assert ann["info"]["seed"] == 3 and ann["info"]["image_size"] == [64, 64] and len(ann["images"]) == 2
    assert bench.ensure_split(tmp_path / "val", 2, seed=3, max_subjects=2, size=64)["reused"] is True
    assert bench.ensure_split(tmp_path / "val", 2, seed=4, max_subjects=2, size=64)["reused"] is False
    assert json.loads((tmp_path / "val" / "annotations.json").read_text())["info"]["seed"] == 4


def test_split_defaults_limit_yaw_and_person_size_and_a_change_regenerates(tmp_path: Path) -> None:
    bench.ensure_split(tmp_path / "val", 2, seed=3, max_subjects=2, size=64)
    info = json.loads((tmp_path / "val" / "annotations.json").read_text())["info"]
    assert info["max_yaw"] == bench.MAX_YAW == 90.0 and info["size_range"] == list(bench.SIZE_RANGE)
    assert bench.ensure_split(tmp_path / "val", 2, seed=3, max_subjects=2, size=64, max_yaw=180.0)["reused"] is False
    assert bench.ensure_split(tmp_path / "val", 2, seed=3, max_subjects=2, size=64, max_yaw=180.0,
                              size_range=(0.35, 0.9))["reused"] is False
    info = json.loads((tmp_path / "val" / "annotations.json").read_text())["info"]
    assert info["max_yaw"] == 180.0 and info["size_range"] == [0.35, 0.9]


def test_render_shows_both_models_on_the_same_split() -> None:
    stats = {"AP": 0.4321, "AP .5": 0.7, "AP .75": 0.4, "AR": 0.5}
    result = {"data_dir": "d", "val_images": 100, "val_people": 267, "threads": 1,
              "bottomup": {"model": "ae_hourglass_small_128", "train_minutes": 15.0, "iterations": 1700,
                           "metrics": stats},
              "topdown": {"model": "hrnet_w16_tiny_128x96", "train_minutes": 10.0, "iterations": 8220,
                          "metrics": {**stats, "AP": 0.61}},
              "topdown_ae_boxes": {"num_boxes": 270, "min_score": 0.2, "iou": 0.5, "detections": "o/ae_boxes.json",
                                   "metrics": {**stats, "AP": 0.55}}}
    result["bottomup"]["weights"] = "o/ae/last_state.pth"
    text = bench.render(result)
    lines = text.splitlines()
    assert "100 images / 267 people" in lines[0] and "1 torch thread" in lines[0]
    ae_row = next(ln for ln in lines if ln.startswith("ae_hourglass_small_128"))
    td_row = next(ln for ln in lines if ln.startswith("hrnet_w16_tiny_128x96"))
    assert "none (grouping)" in ae_row and "0.432" in ae_row and "1700" in ae_row
    assert " GT " in td_row and "0.610" in td_row
    box_row = next(ln for ln in lines if "AE people (270)" in ln)
    assert box_row.startswith("hrnet_w16_tiny_128x96") and "0.550" in box_row
    assert lines[-1] == "AE weights written to o/ae/last_state.pth"


@pytest.mark.slow
def test_bench_trains_the_ae_and_scores_both_models_on_the_held_out_split(tmp_path: Path, capsys) -> None:
    from posekit.engine.build import model_spec
    from posekit.engine.demo import demo_config
    from posekit.engine.tasks import task_for
    from posekit.modelspec import weights_file

    data, td = tmp_path / "data", tmp_path / "demo"
    bench.ensure_split(data / "val", 2, seed=1, max_subjects=3, size=128)
    # a top-down model (untrained: only the scoring path matters here) with the demo's config
    cfg = demo_config(data_dir=data, minutes=1)
    built = task_for(cfg).build(cfg)
    with torch.no_grad():  # heatmaps of 0.5 +- noise: the AE started from this model finds (meaningless) people
        built.model.final_layer.bias.fill_(0.5)
    td.mkdir()
    torch.save(weights_file(built.model.state_dict(), model_spec(cfg)), td / "model.pth")
    (td / "config.yaml").write_text(model_spec(cfg).config_yaml)
    args = ["bench", "bottomup", "--minutes", "0.03", "--num-train", "4", "--num-val", "2", "--max-subjects", "3",
            "--data", str(data), "--out", str(tmp_path / "out"), "--topdown", str(td), "--threads", "1",
            "--people-min-score", "0"]  # an untrained AE: its fragments are the boxes
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["val_images"] == 2 and result["data"]["val"]["reused"] is True
    assert result["data"]["train"]["reused"] is False and result["threads"] == 1
    bu = result["bottomup"]
    assert bu["boxes"] == "none" and bu["iterations"] >= 1 and Path(bu["weights"]).is_file()
    # the shipped config starts from the top-down model: all its 242 tensors, only the tag head is new
    assert bu["pretrained"] == {"path": str(td / "model.pth"), "loaded": 242, "checkpoint_tensors": 242}
    assert result["topdown"]["boxes"] == "gt" and result["topdown"]["trained_here"] is False
    # the same numbers as `posekit test` of each model on the held-out split (AE without boxes, top-down GT boxes)
    split = bench.data_overrides(data)
    assert main(["test", bu["config"], *split, "--weights", bu["weights"], "--json", "--no-progress",
                 "--out", str(tmp_path / "t1")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["AP"] == pytest.approx(bu["metrics"]["AP"])
    assert main(["test", str(td / "config.yaml"), *split, "--weights", str(td / "model.pth"), "--boxes", "gt",
                 "--json", "--no-progress", "--out", str(tmp_path / "t2")]) == 0
    td_ap = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["AP"]
    assert td_ap == pytest.approx(result["topdown"]["metrics"]["AP"])
    assert (tmp_path / "out" / "bottomup.json").is_file()
    # the AE-boxes row: the same AE people as boxes as `posekit infer --people-from`, scored by `posekit test --boxes`
    tdae = result["topdown_ae_boxes"]
    dets = json.loads(Path(tdae["detections"]).read_text())
    assert len(dets) == tdae["num_boxes"] > 0 and tdae["min_score"] == 0
    assert main(["test", str(td / "config.yaml"), *split, "--weights", str(td / "model.pth"), "--boxes",
                 tdae["detections"], "--json", "--no-progress", "--out", str(tmp_path / "t3")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["AP"] == pytest.approx(tdae["metrics"]["AP"])
