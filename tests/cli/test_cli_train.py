"""`posekit train` / `posekit test` end to end on synthetic data, and torchrun DDP (gloo) against one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from posekit.cli import main


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread for the in-process runs: tiny networks, a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)



def test_train_typo_is_a_clear_error(synth_config, capsys):
    assert main(["train", str(synth_config), "TRAIN.LRR=0.1"]) == 1
    err = capsys.readouterr().err
    assert "unknown key TRAIN.LRR" in err and "did you mean TRAIN.LR" in err and "command-line override" in err


@pytest.mark.slow
def test_train_then_test_then_eval(synth_config, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(synth_config), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "epoch 0" in printed and "AP" in printed and "best AP" in printed
    weights = out / "model_best.pth"
    assert weights.is_file()

    assert main(["test", str(synth_config), "--weights", str(weights), "--out", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    results = out / "keypoints_val_results.json"
    assert results.is_file() and len(json.loads(results.read_text())) > 0
    # the validation run inside training used the same weights, boxes and flip test
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    val = [e["epoch_end"]["metrics"] for e in log if "epoch_end" in e][0]
    assert metrics == pytest.approx(val)

    # the same weights through ONNX Runtime (exported once, cached next to them): the same keypoints and AP
    assert main(["test", str(synth_config), "--weights", str(weights), "--out", str(out / "ort"), "--json",
                 "--backend", "onnxruntime"]) == 0
    ort_metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ref, ort = (json.loads(p.read_text()) for p in (results, out / "ort" / "keypoints_val_results.json"))
    assert [r["image_id"] for r in ref] == [r["image_id"] for r in ort]
    assert max(abs(a - b) for r, o in zip(ref, ort) for a, b in zip(r["keypoints"], o["keypoints"])) <= 1e-3
    assert ort_metrics == pytest.approx(metrics, abs=1e-3)

    cfg = yaml.safe_load(synth_config.read_text())
    assert main(["eval", "--gt", cfg["DATASET"]["TEST_ANN"], "--results", str(results), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scored["AP"] == pytest.approx(metrics["AP"]) and scored["AR"] == pytest.approx(metrics["AR"])

    assert main(["test", str(synth_config), "--weights", str(weights), "--out", str(out), "--no-flip"]) == 0
    assert "COCO keypoints on val" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed next to this python")
def test_torchrun_two_gloo_processes_match_one_process(synth_config, tmp_path):
    # BN frozen (running statistics) so that a per-process half batch normalises exactly like the full batch; SGD
    # so that the tiny float differences of the gradient all-reduce stay tiny in the weights.
    common = ["TRAIN.OPTIMIZER=sgd", "TRAIN.LR=0.01", "TRAIN.FREEZE_BN=true", "TRAIN.VAL_EVERY=0",
              "TRAIN.MAX_ITERS=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "posekit", "train", str(synth_config), *common,
                          "TRAIN.BATCH_SIZE_PER_GPU=4", "--out", str(tmp_path / "one"), "--no-progress"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr
    torchrun = Path(sys.executable).parent / "torchrun"
    two = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "posekit", "train",
                          str(synth_config), *common, "TRAIN.BATCH_SIZE_PER_GPU=2", "--out", str(tmp_path / "two"),
                          "--no-progress"], capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]

    def losses(run: str, world_size: int) -> dict[int, float]:
        entries = [json.loads(x) for x in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        assert {e["world_size"] for e in entries if "loss" in e} == {world_size}
        return {e["iteration"]: e["loss"] for e in entries if "loss" in e}

    a, b = losses("one", 1), losses("two", 2)
    assert sorted(a) == sorted(b) == [1, 2]
    assert b[1] == pytest.approx(a[1], rel=1e-5)  # first step: same samples, same weights
    assert b[2] == pytest.approx(a[2], rel=1e-4)  # after one DDP step: all-reduced gradient == full batch
    wa = torch.load(tmp_path / "one" / "checkpoint.pth", weights_only=True)["model"]
    wb = torch.load(tmp_path / "two" / "checkpoint.pth", weights_only=True)["model"]
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-6, msg=k)


@pytest.mark.slow
@pytest.mark.parametrize("zoo", ["mspn_2stg_256x192", "hourglass_2stack_256x256"])
def test_multistage_models_train_through_posekit_train(synth_config: Path, tmp_path: Path, zoo: str) -> None:
    """MSPN (per-unit coarse-to-fine targets, per-stage supervision) and the stacked hourglass (intermediate
    supervision) train through `posekit train`: the logged loss falls on a fixed batch of 4 crops."""
    cfg = yaml.safe_load(synth_config.read_text())
    cfg["MODEL"] = {"ZOO": zoo, "IMAGE_SIZE": [64, 64] if zoo.startswith("hourglass") else [48, 64]}
    cfg["DATASET"].update({"SKELETON": "coco", "FLIP": False, "ROT_FACTOR": 0, "SCALE_FACTOR": 0})
    cfg["TRAIN"] = {"BATCH_SIZE_PER_GPU": 4, "END_EPOCH": 100, "MAX_ITERS": 12, "VAL_EVERY": 0, "LR": 2e-3,
                    "SHUFFLE": False, "INIT": "he"}
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "DATASET.TRAIN_ANN=" + cfg["DATASET"]["TRAIN_ANN"]]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in log if "loss" in e]
    assert len(losses) >= 10 and min(losses[-3:]) < 0.8 * losses[0], losses
    stage_keys = {k for e in log for k in e if k.startswith(("loss_stage", "loss_stack"))}
    assert stage_keys == ({"loss_stage0", "loss_stage1"} if zoo.startswith("mspn") else {"loss_stack0", "loss_stack1"})
