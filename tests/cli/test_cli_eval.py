"""`posekit eval`: tables, --json, metrics, and clear errors (exit 1) on bad results files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posekit.cli import main
from posekit.evaluation import coco, pck


@pytest.fixture(scope="module")
def files(data_dir):
    return {
        "gt": str(data_dir / "coco/xtcocoapi_examples/example_coco_val.json"),
        "res": str(data_dir / "coco/xtcocoapi_examples/example_coco_preds.json"),
        "crowd_gt": str(data_dir / "crowdpose/xtcocoapi_examples/example_crowdpose_val.json"),
        "crowd_res": str(data_dir / "crowdpose/xtcocoapi_examples/example_crowdpose_preds.json"),
        "mpii_gt": str(data_dir / "mpii/derived_hrnet_format/gt_valid.mat"),
        "mpii_res": str(data_dir / "mpii/tompson_valid_bearpaw/detections_our_format.mat"),
    }


def _json(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_coco_json_equals_library(files, capsys):
    got = _json(capsys, ["eval", "--gt", files["gt"], "--results", files["res"], "--json"])
    assert got == coco.coco_keypoints(files["gt"], files["res"])
    assert list(got) == list(coco.STAT_NAMES)
    fast = _json(capsys, ["eval", "--gt", files["gt"], "--results", files["res"], "--json",
                          "--backend", "faster_coco_eval"])
    assert fast == got


def test_coco_table(files, capsys):
    assert main(["eval", "--gt", files["gt"], "--results", files["res"]]) == 0
    out = capsys.readouterr().out
    assert "AP .75" in out and "0.8609" in out and "AR (L)" in out


def test_crowdpose(files, capsys):
    got = _json(capsys, ["eval", "--gt", files["crowd_gt"], "--results", files["crowd_res"], "--metric",
                         "crowdpose", "--json"])
    assert got == coco.crowdpose_keypoints(files["crowd_gt"], files["crowd_res"])
    assert got["AP (H)"] == 0.4116


def test_pckh_from_mat_and_zero_based_arrays(files, capsys, tmp_path):
    table = _json(capsys, ["eval", "--gt", files["mpii_gt"], "--results", files["mpii_res"], "--json"])
    assert round(table["Mean"], 2) == 82.34 and round(table["Mean@0.1"], 2) == 28.97
    quirk = _json(capsys, ["eval", "--gt", files["mpii_gt"], "--results", files["mpii_res"], "--json",
                           "--hrnet-mean01"])
    assert quirk["Mean"] == table["Mean"] and quirk["Mean@0.1"] > table["Mean@0.1"]
    zero_based = pck.load_mpii_predictions(files["mpii_res"]) - 1.0
    np.save(tmp_path / "preds.npy", zero_based)
    (tmp_path / "preds.json").write_text(json.dumps(zero_based.tolist()))
    for name in ("preds.npy", "preds.json"):
        again = _json(capsys, ["eval", "--gt", files["mpii_gt"], "--results", str(tmp_path / name), "--json",
                               "--metric", "pckh"])
        assert again == pytest.approx(table, abs=1e-9)
    assert main(["eval", "--gt", files["mpii_gt"], "--results", files["mpii_res"]]) == 0
    assert "Mean@0.1" in capsys.readouterr().out


def test_pck_metric(files, capsys):
    got = _json(capsys, ["eval", "--gt", files["gt"], "--results", files["res"], "--metric", "pck", "--json",
                         "--pck-thr", "0.1"])
    assert 0.0 < got["PCK"] <= 1.0 and "PCK left_wrist" in got and got["EPE"] > 0


def test_errors_exit_1_with_message(files, capsys, tmp_path):
    res = json.loads(open(files["res"]).read())
    res[0]["image_id"] = 42
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(res))
    assert main(["eval", "--gt", files["gt"], "--results", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "image ids are not in the ground truth" in err and "42" in err
    assert main(["eval", "--gt", files["gt"], "--results", str(tmp_path / "none.json")]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["eval", "--gt", files["gt"], "--results", files["res"], "--sigmas", "0.1,x"]) == 1
    assert "--sigmas" in capsys.readouterr().err


def test_empty_results_warn_not_crash(files, capsys, tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.warns(UserWarning, match="empty"):
        got = _json(capsys, ["eval", "--gt", files["gt"], "--results", str(empty), "--json"])
    assert got["AP"] == 0.0


def test_sigmas_by_skeleton_name(files, capsys):
    named = _json(capsys, ["eval", "--gt", files["gt"], "--results", files["res"], "--json", "--sigmas", "coco"])
    assert named == coco.coco_keypoints(files["gt"], files["res"])


def test_wrong_kind_of_file_for_the_metric_is_named(files, capsys, tmp_path):
    """COCO results with --metric pckh, a .mat ground truth with --metric coco, a negative PCK threshold."""
    assert main(["eval", "--gt", files["mpii_gt"], "--results", files["res"], "--metric", "pckh"]) == 1
    assert "is a COCO-style results file" in capsys.readouterr().err
    assert main(["eval", "--gt", files["mpii_gt"], "--results", files["res"], "--metric", "coco"]) == 1
    assert "a .mat ground truth is MPII's, scored with --metric pckh" in capsys.readouterr().err
    (tmp_path / "text.json").write_text(json.dumps([[["1", "2"]] * 16]))
    assert main(["eval", "--gt", files["mpii_gt"], "--results", str(tmp_path / "text.json"), "--metric", "pckh"]) == 1
    assert "text.json: pckh predictions must be numbers" in capsys.readouterr().err
    assert main(["eval", "--gt", files["gt"], "--results", files["res"], "--metric", "pck", "--pck-thr", "-1"]) == 1
    assert "PCK threshold must be a positive" in capsys.readouterr().err


def test_keypoints_as_strings_exit_1(files, capsys, tmp_path):
    res = json.loads(open(files["res"]).read())
    res[2]["keypoints"] = [str(v) for v in res[2]["keypoints"]]
    (tmp_path / "str.json").write_text(json.dumps(res))
    assert main(["eval", "--gt", files["gt"], "--results", str(tmp_path / "str.json")]) == 1
    assert r"results[2]" in capsys.readouterr().err
