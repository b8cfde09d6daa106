"""3-D learning benchmark: train the small 3DMPPE model on synthetic 3-D humans for a time budget and report held-out
MPJPE / PA-MPJPE (GT root depth, flip test) next to the mean-pose baseline.

`learn3d(out_dir, minutes, ...)` generates (or reuses) data_dir/train (seed) and data_dir/val (seed + 1) with
`posekit.data.synth.generate` (people, max_yaw as given), trains configs/synth/posenet3d_small.yaml through the one
engine (`posekit.engine.train.fit`, cosine schedule over TRAIN.MAX_MINUTES of training wall-clock) and evaluates
the final weights with the body3d task. The baseline predicts, for every held-out person, the mean root-relative
training pose (camera frame), scored by the same metric code. Returns a JSON-ready dict; prints nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "synth" / "posenet3d_small.yaml"


def ensure_synth3d(data_dir: str | os.PathLike, num_train: int, num_val: int, seed: int = 0,
                   max_yaw: float = 90.0, image_size: tuple[int, int] = (192, 192),
                   max_subjects: int = 2) -> dict[str, Any]:
    """Generate data_dir/{train,val} unless they exist with these settings; returns their summaries."""
    from posekit.data.synth import generate

    out = {}
    for split, n, s in (("train", num_train, seed), ("val", num_val, seed + 1)):
        folder = Path(data_dir) / split
        ann = folder / "annotations.json"
        want = {"seed": s, "max_yaw": max_yaw, "image_size": list(image_size), "max_subjects": max_subjects}
        try:
            info = json.loads(ann.read_text())
            ok = all(info["info"].get(k) == v for k, v in want.items()) and len(info["images"]) == n
        except (OSError, ValueError, KeyError):
            ok = False
        if ok:
            out[split] = {"reused": True, "num_images": n}
            continue
        t0 = time.perf_counter()
        summary = generate(folder, n, max_subjects=max_subjects, seed=s, image_size=image_size, max_yaw=max_yaw)
        out[split] = {"reused": False, "num_images": n, "num_instances": summary["num_instances"],
                      "seconds": time.perf_counter() - t0}
    return out


def mean_pose_baseline(train_records: list, test_records: list, skeleton: Any) -> dict[str, float]:
    """Metrics of predicting the mean root-relative training pose for every test person (placed at its GT root)."""
    from posekit.engine.tasks.body3d import joint_layout, score_body3d

    root, _ = joint_layout(skeleton)
    rel = np.stack([r.joints_cam - r.joints_cam[root] for r in train_records])
    mean = rel.mean(axis=0)
    pred = np.stack([mean + r.joints_cam[root] for r in test_records]).astype(np.float32)
    return score_body3d(pred, test_records, skeleton)


def learn3d(out_dir: str | os.PathLike, minutes: float = 6.0, data_dir: str | os.PathLike = "data/synth3d",
            num_train: int = 2000, num_val: int = 200, seed: int = 0, overrides: list[str] | None = None,
            progress: Any = None, resume: bool = False) -> dict[str, Any]:
    """Train for `minutes` of training wall-clock and return held-out metrics + the mean-pose baseline.

    With `resume`, training continues from out_dir/checkpoint.pth (a run stopped by SIGTERM / Ctrl-C goes on
    exactly where it stopped, so a long budget can be spent in several sittings)."""
    import torch

    from posekit.config import load_config
    from posekit.engine.tasks import task_for
    from posekit.engine.tasks.body3d import load_records_3d
    from posekit.engine.train import fit
    from posekit.models.weights import load_checkpoint

    start = time.perf_counter()
    data = ensure_synth3d(data_dir, num_train, num_val, seed)
    gen_seconds = time.perf_counter() - start
    cfg = load_config(CONFIG, [f"DATASET.ROOT={data_dir}", f"TRAIN.MAX_MINUTES={minutes}", f"TRAIN.SEED={seed}",
                               "TRAIN.VAL_EVERY_MINUTES=0", *(overrides or [])], warn=False)
    out = Path(out_dir)
    torch.manual_seed(seed)
    summary = fit(cfg, out, progress=progress, device="cpu", resume=resume)
    task = task_for(cfg)
    built = task.build(cfg)
    weights = summary.get("final_weights") or summary.get("last_weights")
    load_checkpoint(built.model, weights, strict=True)
    t0 = time.perf_counter()
    metrics, _ = task.evaluate(cfg, built.model, built, torch.device("cpu"))
    eval_seconds = time.perf_counter() - t0
    train_recs, test_recs = load_records_3d(cfg, "train"), load_records_3d(cfg, "test")
    baseline = mean_pose_baseline(train_recs, test_recs, built.skeleton)
    keys = ("MPJPE", "PA-MPJPE", "PA-MPJPE-similarity", "3DPCK", "AUC")
    result = {
        "model": cfg.MODEL.ZOO, "config": str(CONFIG), "budget_minutes": minutes,
        "train_minutes": summary.get("train_minutes"), "iterations": summary.get("iteration"),
        "stop_reason": summary.get("stop_reason"),
        "batch_size": cfg.TRAIN.BATCH_SIZE_PER_GPU, "train_people": len(train_recs), "val_people": len(test_recs),
        "data": data, "generation_seconds": gen_seconds, "eval_seconds": eval_seconds,
        "flip_test": cfg.TEST.FLIP_TEST, "root_depth": "gt",
        "model_metrics": {k: metrics[k] for k in keys}, "mean_pose_baseline": {k: baseline[k] for k in keys},
        "per_joint_MPJPE": {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("MPJPE/")},
        "threads": torch.get_num_threads(), "weights": str(weights), "out_dir": str(out),
    }
    (out / "learn3d.json").write_text(json.dumps(result, indent=1))
    return result
