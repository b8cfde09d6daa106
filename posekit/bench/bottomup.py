"""`posekit bench bottomup [--minutes M]`: held-out COCO AP of the small AE model without boxes, next to the top-down
demo model with GT boxes on the same held-out split.

Generates (or reuses) posekit's synthetic multi-person images (data_dir/train with seed, data_dir/val with seed + 1;
by default 128x128, up to 3 people whose larger box side is 45-90 % of the image side, turned at most 90 degrees
from the camera - the top-down demo's yaw range; with any yaw left and right are ambiguous from behind), trains
configs/synth/ae_demo_backbone.yaml through the one engine (`posekit.engine.train.fit`, TRAIN.MAX_MINUTES of
training wall-clock, cosine schedule) and scores the weights it wrote (OUT/ae/final_state.pth, or last_state.pth when
the time budget ended the run; the table says which) on every held-out image with the bottom-up task (no boxes
anywhere: every person found by grouping). The top-down side is the demo model (`posekit demo` / `posekit bench
learn`: out/demo/model.pth + config.yaml; trained with `run_demo` for --topdown-minutes only when those files are
missing), scored twice on the same held-out images: with GT person boxes, and with the boxes of the AE people
(`posekit.runtime.bottomup.people_boxes`: the score floor and duplicate suppression of `posekit infer
--people-from`). A config with MODEL.PRETRAINED (the shipped one: the demo model) starts from the --topdown weights.
Training time counts the training loop only; state the thread count with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from posekit.cli.tables import format_table

HELP = "held-out COCO AP of the small bottom-up AE model (no boxes) vs the top-down demo model (GT boxes)"
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "synth" / "ae_demo_backbone.yaml"
KEYS = ("AP", "AP .5", "AP .75", "AR")
MAX_SUBJECTS = 3
MAX_YAW = 90.0
SIZE_RANGE = (0.45, 0.9)


def _size_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (e.g. 0.45,0.9), got {text!r}") from None
    return lo, hi


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=15.0, help="AE training budget in minutes (default 15)")
    parser.add_argument("--out", default="out/bench_bottomup", help="output folder (default out/bench_bottomup)")
    parser.add_argument("--data", default="data/synth_bottomup",
                        help="synthetic data folder (default data/synth_bottomup)")
    parser.add_argument("--config", default=str(CONFIG), help="AE config (default configs/synth/ae_demo_backbone.yaml)")
    parser.add_argument("--num-train", type=int, default=3000, help="training images (default 3000)")
    parser.add_argument("--num-val", type=int, default=100, help="held-out images (default 100)")
    parser.add_argument("--max-subjects", type=int, default=MAX_SUBJECTS,
                        help=f"people per image at most (default {MAX_SUBJECTS})")
    parser.add_argument("--size", type=int, default=128, help="image side in px (default 128)")
    parser.add_argument("--max-yaw", type=float, default=MAX_YAW,
                        help=f"bodies turn in [-DEG, DEG] from the camera (default {MAX_YAW:g}; 180 = any)")
    parser.add_argument("--size-range", type=_size_range, default=SIZE_RANGE, metavar="LO,HI",
                        help=f"a person's larger box side / image side (default {SIZE_RANGE[0]:g},{SIZE_RANGE[1]:g})")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--topdown", default="out/demo",
                        help="folder with the top-down demo model.pth + config.yaml (default out/demo)")
    parser.add_argument("--topdown-minutes", type=float, default=10.0,
                        help="demo training minutes when --topdown has no model yet (default 10)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="AE config override (repeatable), e.g. LOSS.AE_PUSH_WEIGHT=1e-3")
    parser.add_argument("--people-min-score", type=float, default=None, metavar="S",
                        help="AE people scoring below S give no box (default: posekit infer --people-from's, "
                             "posekit.runtime.bottomup.PEOPLE_MIN_SCORE)")
    parser.add_argument("--people-iou", type=float, default=None, metavar="T",
                        help="of AE boxes overlapping by more than IoU T only the best-scoring one is kept (default: "
                             "PEOPLE_IOU)")
    parser.add_argument("--progress", action="store_true", help="progress bars on stderr")


def ensure_split(folder: Path, num_images: int, seed: int, max_subjects: int, size: int, max_yaw: float = MAX_YAW,
                 size_range: tuple[float, float] = SIZE_RANGE) -> dict[str, Any]:
    """Generate folder (annotations.json + images/) unless it holds this split already; returns a summary."""
    from posekit.data.synth import generate

    ann = folder / "annotations.json"
    want = {"kind": "human", "seed": seed, "max_subjects": max_subjects, "image_size": [size, size],
            "max_yaw": float(max_yaw), "size_range": [float(v) for v in size_range]}
    try:
        data = json.loads(ann.read_text())
        ok = all(data["info"].get(k) == v for k, v in want.items()) and len(data["images"]) == num_images
    except (OSError, ValueError, KeyError):
        ok = False
    if ok:
        return {"reused": True, "num_images": num_images}
    t0 = time.perf_counter()
    summary = generate(folder, num_images, max_subjects=max_subjects, seed=seed, image_size=(size, size),
                       max_yaw=float(max_yaw), size_range=(float(size_range[0]), float(size_range[1])))
    return {"reused": False, "num_images": num_images, "num_instances": summary["num_instances"],
            "seconds": time.perf_counter() - t0}


def data_overrides(data_dir: Path) -> list[str]:
    """Config overrides pointing a config's train/test split at data_dir/{train,val}."""
    return [f"DATASET.TRAIN_ANN={data_dir / 'train' / 'annotations.json'}",
            f"DATASET.TRAIN_IMAGES={data_dir / 'train' / 'images'}",
            f"DATASET.TEST_ANN={data_dir / 'val' / 'annotations.json'}",
            f"DATASET.TEST_IMAGES={data_dir / 'val' / 'images'}"]


def topdown_model(folder: Path, minutes: float, progress: Any) -> tuple[Path, Path, dict[str, Any]]:
    """(weights, config, info) of the demo model in folder, trained with run_demo first when it is missing."""
    weights, config = folder / "model.pth", folder / "config.yaml"
    info: dict[str, Any] = {"trained_here": False}
    if not (weights.is_file() and config.is_file()):
        from posekit.engine.demo import run_demo

        res = run_demo(folder, minutes=minutes, progress=progress)
        info = {"trained_here": True}
        weights, config = Path(res["files"]["weights"]), Path(res["files"]["config"])
    metrics = folder / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text())
        info.update({k: m.get(k) for k in ("model", "train_minutes", "iterations", "train_images_per_s")})
    return weights, config, info


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train the AE model, score it without boxes and the top-down demo model with GT boxes and with AE boxes."""
    import torch

    from posekit.config import load_config
    from posekit.engine.test import evaluate
    from posekit.engine.train import fit

    if args.threads:
        torch.set_num_threads(args.threads)
    progress = partial(__import__("tqdm").tqdm, file=sys.stderr, leave=False) if args.progress else None
    data_dir, out = Path(args.data), Path(args.out)
    data = {split: ensure_split(data_dir / split, n, s, args.max_subjects, args.size, args.max_yaw, args.size_range)
            for split, n, s in (("train", args.num_train, args.seed), ("val", args.num_val, args.seed + 1))}
    td_weights, td_config, td_info = topdown_model(Path(args.topdown), args.topdown_minutes, progress)
    overrides = [*data_overrides(data_dir), f"TRAIN.MAX_MINUTES={args.minutes}", f"TRAIN.SEED={args.seed}",
                 "TRAIN.VAL_EVERY=0", "WORKERS=0", *args.override]
    cfg = load_config(args.config, overrides, warn=False)
    if cfg.MODEL.PRETRAINED and not any(o.startswith("MODEL.PRETRAINED=") for o in args.override):
        cfg = load_config(args.config, [*overrides, f"MODEL.PRETRAINED={td_weights}"], warn=False)
    torch.manual_seed(args.seed)
    pretrained: dict[str, Any] = {}
    summary = fit(cfg, out / "ae", progress=progress, device="cpu",
                  on_event=lambda kind, info: pretrained.update(info["report"].to_dict()) if kind == "pretrained"
                  else None)
    weights = summary.get("final_weights") or summary.get("last_weights")
    t0 = time.perf_counter()
    ae_metrics, ae_results = evaluate(cfg, weights, device="cpu", progress=progress)
    ae_eval_s = time.perf_counter() - t0
    td_cfg = load_config(td_config, data_overrides(data_dir), warn=False)
    td_metrics, _ = evaluate(td_cfg, str(td_weights), boxes="gt", device="cpu", progress=progress)
    boxes = ae_boxes(weights, data_dir / "val", out / "ae_boxes.json", args.people_min_score, args.people_iou)
    if boxes["num_boxes"]:
        td_ae_metrics, _ = evaluate(td_cfg, str(td_weights), boxes=str(out / "ae_boxes.json"), device="cpu",
                                    progress=progress)
    else:  # no AE person reached the score floor: every person is missed
        td_ae_metrics = {k: 0.0 for k in td_metrics}
    val = json.loads((data_dir / "val" / "annotations.json").read_text())
    result = {
        "threads": torch.get_num_threads(), "data": data, "data_dir": str(data_dir),
        "val_images": len(val["images"]), "val_people": len(val["annotations"]),
        "bottomup": {"model": cfg.MODEL.ZOO, "config": str(args.config), "overrides": args.override,
                     "pretrained": {k: pretrained[k] for k in ("path", "loaded", "checkpoint_tensors")
                                    if k in pretrained},
                     "budget_minutes": args.minutes, "train_minutes": summary.get("train_minutes"),
                     "iterations": summary.get("iteration"), "batch_size": cfg.TRAIN.BATCH_SIZE_PER_GPU,
                     "evals": [{"minutes": e["train_minutes"], "iteration": e["iteration"], "AP": e["metrics"]["AP"]}
                               for e in summary.get("evals", [])],
                     "weights": str(weights), "boxes": "none", "results": len(ae_results),
                     "eval_seconds": ae_eval_s, "metrics": ae_metrics},
        "topdown": {**td_info, "weights": str(td_weights), "config": str(td_config), "boxes": "gt",
                    "metrics": td_metrics},
        "topdown_ae_boxes": {**boxes, "boxes": "ae", "metrics": td_ae_metrics},
    }
    os.makedirs(out, exist_ok=True)
    (out / "bottomup.json").write_text(json.dumps(result, indent=1))
    return result


def ae_boxes(weights: str | Path, split: Path, out_file: Path, min_score: float | None = None,
             iou: float | None = None) -> dict[str, Any]:
    """The AE people of every image of a split as COCO detections (posekit infer --people-from's boxes; None =
    its score floor / suppression IoU)."""
    from posekit.data.images import read_image
    from posekit.inference import PoseEstimator
    from posekit.runtime.bottomup import PEOPLE_IOU, PEOPLE_MIN_SCORE, people_boxes_fn

    min_score = PEOPLE_MIN_SCORE if min_score is None else min_score
    iou = PEOPLE_IOU if iou is None else iou
    est = PoseEstimator(str(weights), device="cpu", backend="torch")
    boxes_of = people_boxes_fn(est, min_score=min_score, iou=iou)
    images = json.loads((split / "annotations.json").read_text())["images"]
    dets = []
    for img in images:
        path = split / "images" / img["file_name"]
        for x, y, w, h, score in boxes_of(path, read_image(path), None):
            dets.append({"image_id": img["id"], "category_id": 1, "bbox": [x, y, w, h], "score": score})
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(dets))
    return {"detections": str(out_file), "num_boxes": len(dets), "min_score": min_score, "iou": iou}


def render(result: dict[str, Any]) -> str:
    """One row per model and box source: how it was trained, the COCO stats on the same held-out split."""
    bu, td, tdae = result["bottomup"], result["topdown"], result["topdown_ae_boxes"]

    def minutes(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}"

    td_name = td.get("model") or "demo"
    rows = [[bu["model"], "none (grouping)", minutes(bu["train_minutes"]), bu["iterations"],
             *(f"{bu['metrics'][k]:.3f}" for k in KEYS)],
            [td_name, "GT", minutes(td.get("train_minutes")), td.get("iterations", "-"),
             *(f"{td['metrics'][k]:.3f}" for k in KEYS)],
            [td_name, f"AE people ({tdae['num_boxes']})", "-", "-", *(f"{tdae['metrics'][k]:.3f}" for k in KEYS)]]
    head = (f"held-out split {result['data_dir']}/val: {result['val_images']} images / {result['val_people']} people; "
            f"AE trained here with {result['threads']} torch thread(s); the top-down model's minutes are its own run's")
    curve = "  ".join(f"{e['minutes']:.1f} min AP {e['AP']:.3f}" for e in bu.get("evals", []))
    lines = [head, format_table(rows, ["model", "person boxes", "train min", "iterations", *KEYS])]
    if curve:
        lines.append(f"AE held-out AP during training: {curve}")
    lines.append(f"AE boxes: score >= {tdae['min_score']:g}, duplicates above IoU {tdae['iou']:g} suppressed "
                 f"({tdae['detections']})")
    lines.append(f"AE weights written to {bu['weights']}")
    return "\n".join(lines)
