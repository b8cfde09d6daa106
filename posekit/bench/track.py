"""`posekit bench track`: tracking on held-out synthetic sequences, per source of people.

Data: `posekit synth --tracks` sequences (default 8 videos x 60 frames of 256x256, up to 3 people who walk, cross,
occlude each other, enter and leave) with a seed no model was trained on (default 1000; the demo model's data uses
seeds 0 and 1). The evaluated people are the annotations with at least --min-keypoints labelled joints; the others
(slivers at the border, people hidden but for a limb) are left out of the ground truth (a pose found on one is a
false positive).

Sources of people (rows), each with the top-down model (--weights, default the demo model) unless said otherwise:
- gt-boxes: the ground-truth boxes of every frame;
- propagated: the ground-truth boxes of every --detect-every-th frame (they stand in for a detector) and, between,
  boxes propagated from the previous frame's poses (posekit.runtime.tracking.Tracker.boxes);
- propagated+flow: the same with the previous poses moved by Lucas-Kanade optical flow (flow-based OKS);
- bottom-up: the people of an Associative Embedding model (--people-from) alone, when given.
Metrics: box IDF1 / MOTA / ID switches (the boxes the poses were estimated in, IoU 0.5; poses left without a track,
id -1, are not hypotheses), PoseTrack keypoint MOTA (joints scored above --kp-score), COCO AP of the raw and the
One-Euro smoothed keypoints, and jitter: the RMS over
joints labelled in three consecutive frames of (predicted - true) frame-to-frame acceleration
p(t+1) - 2 p(t) + p(t-1), px/frame^2, of each ground-truth person matched (box IoU >= 0.5) in those frames, raw and
smoothed. frames/s: pose estimation + tracking per frame (frames already decoded, the network on --threads torch
threads with the chosen backend), measured in the same loop.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from posekit.cli.tables import format_table

HELP = "tracking on held-out synthetic sequences: IDF1, MOTA, ID switches, keypoint MOTA, jitter, AP, frames/s"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default="out/demo/model.pth", help="top-down model (default out/demo/model.pth)")
    parser.add_argument("--model", help="zoo model name of --weights when the file carries no model spec")
    parser.add_argument("--people-from", metavar="WEIGHTS", help="bottom-up (AE) weights: adds the bottom-up row")
    parser.add_argument("--data", default="data/synth_tracks", help="sequence folder (default data/synth_tracks)")
    parser.add_argument("--videos", type=int, default=8, help="held-out videos (default 8)")
    parser.add_argument("--frames", type=int, default=60, help="frames per video (default 60)")
    parser.add_argument("--size", type=int, default=256, help="frame side in px (default 256)")
    parser.add_argument("--seed", type=int, default=1000, help="synthetic seed (default 1000: held out)")
    parser.add_argument("--detect-every", type=int, default=10, help="full detection every N frames (default 10)")
    parser.add_argument("--min-keypoints", type=int, default=4, help="evaluated people: labelled joints >= this")
    parser.add_argument("--kp-score", type=float, default=0.3, help="keypoint MOTA: joints scored above this")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--backend", default="auto", help="inference backend (default auto)")
    parser.add_argument("--no-flip", action="store_true", help="no flip test")
    parser.add_argument("--min-cutoff", type=float, default=None, help="One-Euro min cutoff, Hz at 30 frames/s")
    parser.add_argument("--beta", type=float, default=None, help="One-Euro speed coefficient")
    parser.add_argument("--sources", default="gt-boxes,propagated,propagated+flow,bottom-up",
                        help="comma-separated rows to run")
    parser.add_argument("--out", default="out/bench_track", help="results folder (default out/bench_track)")


def ensure_sequences(folder: Path, videos: int, frames: int, size: int, seed: int) -> Path:
    """Generate the held-out sequences unless `folder` has them already; returns the annotation file."""
    from posekit.data.synth import generate

    ann = folder / "annotations.json"
    want = {"seed": seed, "sequence_length": frames, "tracks": True, "image_size": [size, size]}
    if ann.exists():
        info = json.loads(ann.read_text())["info"]
        if all(info.get(k) == v for k, v in want.items()) and len(json.loads(ann.read_text())["images"]) == \
                videos * frames:
            return ann
    generate(folder, videos * frames, seed=seed, image_size=(size, size), sequence_length=frames, tracks=True)
    return ann


def evaluated_ground_truth(ann: Path, min_keypoints: int, out: Path) -> tuple[Path, dict]:
    """The ground truth restricted to people with >= min_keypoints labelled joints (written to out)."""
    data = json.loads(ann.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["num_keypoints"] >= min_keypoints]
    path = out / "ground_truth.json"
    path.write_text(json.dumps(data))
    return path, data


def _read_frames(data: dict, root: Path) -> dict[int, list[tuple[int, np.ndarray]]]:
    from posekit.data.images import read_image

    videos: dict[int, list[tuple[int, np.ndarray]]] = {}
    for im in sorted(data["images"], key=lambda im: (im["vid_id"], im["frame_id"])):
        videos.setdefault(im["vid_id"], []).append((im["id"], read_image(root / "images" / im["file_name"])))
    return videos


def run_source(source: str, videos: dict, gt_boxes: dict, est: Any, bottomup: Any, args: argparse.Namespace,
               smooth: dict) -> tuple[list[dict], float, int]:
    """Track every video with one source of people; returns (results with raw keypoints in 'raw', seconds,
    frames)."""
    from posekit.runtime.tracking import Tracker, TrackerConfig, track_frames

    results: list[dict] = []
    seconds = 0.0
    count = 0
    for frames in videos.values():
        cfg = TrackerConfig(flow=source.endswith("+flow"), smooth=True, **smooth)
        tracker = Tracker(cfg, est.skeleton.sigmas_array)
        ids = [i for i, _ in frames]
        if source == "bottom-up":
            estimate, detect, every = (lambda image, boxes: bottomup(image)), None, 1
        else:
            estimate = est
            detect = lambda t, image, ids=ids: gt_boxes.get(ids[t], np.zeros((0, 4)))  # noqa: E731
            every = 1 if source == "gt-boxes" else args.detect_every
        start = time.perf_counter()
        for t, _, poses in track_frames(enumerate(f for _, f in frames), estimate, tracker, detect, every):
            for p in poses:
                results.append({"image_id": ids[t], "category_id": 1, "track_id": int(p.track_id),
                                "keypoints": np.asarray(p.keypoints, float).ravel().tolist(),
                                "raw": np.asarray(p.extra["raw_keypoints"], float).ravel().tolist(),
                                "bbox": [float(v) for v in p.box[:4]], "score": float(p.score)})
        seconds += time.perf_counter() - start
        count += len(frames)
    return results, seconds, count


def jitter(gt: dict, results: list[dict], key: str) -> float:
    """RMS of (predicted - true) frame-to-frame acceleration over matched people (see the module docstring)."""
    from posekit.evaluation.tracking import iou_distance
    from posekit.runtime.tracking import greedy_match

    by_image: dict[int, list[dict]] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    gt_by_image: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        gt_by_image.setdefault(a["image_id"], []).append(a)
    tracks: dict[tuple, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for im in gt["images"]:
        g, p = gt_by_image.get(im["id"], []), by_image.get(im["id"], [])
        if not g or not p:
            continue
        d = iou_distance([a["bbox"] for a in g], [r["bbox"] for r in p])
        sim = np.where(np.isfinite(d), 1.0 - d, -1.0)
        for i, j in greedy_match(sim, 0.5):
            gk = np.asarray(g[i]["keypoints"], float).reshape(-1, 3)
            pk = np.asarray(p[j][key], float).reshape(-1, 3)
            tracks.setdefault((im["vid_id"], g[i]["track_id"]), {})[im["frame_id"]] = (gk, pk)
    errs = []
    for frames in tracks.values():
        for t in frames:
            if t - 1 in frames and t + 1 in frames:
                (g0, p0), (g1, p1), (g2, p2) = frames[t - 1], frames[t], frames[t + 1]
                ok = (g0[:, 2] > 0) & (g1[:, 2] > 0) & (g2[:, 2] > 0)
                e = (p2[ok, :2] - 2 * p1[ok, :2] + p0[ok, :2]) - (g2[ok, :2] - 2 * g1[ok, :2] + g0[ok, :2])
                errs.append((e ** 2).sum(axis=1))
    return float(np.sqrt(np.concatenate(errs).mean())) if errs else float("nan")


def score(source: str, results: list[dict], gt_path: Path, gt: dict, args: argparse.Namespace) -> dict[str, Any]:
    """Tracking metrics, AP (raw / smoothed) and jitter of one source's results."""
    from posekit.evaluation import coco_keypoints
    from posekit.evaluation.tracking import track_metrics, videos_from_coco

    tracked = [{**r, "keypoints": r["raw"]} for r in results if r["track_id"] >= 0]  # id -1: below the birth score
    pred = {"images": gt["images"], "annotations": tracked}
    m = track_metrics(videos_from_coco(gt), videos_from_coco(pred), score_threshold=args.kp_score)
    raw = [{k: v for k, v in r.items() if k != "raw"} | {"keypoints": r["raw"]} for r in results]
    smoothed = [{k: v for k, v in r.items() if k != "raw"} for r in results]
    ap_raw = coco_keypoints(gt_path, raw)["AP"] if raw else 0.0
    ap_smooth = coco_keypoints(gt_path, smoothed)["AP"] if smoothed else 0.0
    return {"source": source, **{k: m[k] for k in ("idf1", "mota", "num_switches", "kp_mota", "num_misses",
                                                   "num_false_positives", "num_objects", "motp")},
            "ap_raw": ap_raw, "ap_smoothed": ap_smooth,
            "jitter_raw": jitter(gt, results, "raw"), "jitter_smoothed": jitter(gt, results, "keypoints")}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from posekit.inference import PoseEstimator
    from posekit.runtime.tracking import TrackerConfig

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ann = ensure_sequences(Path(args.data), args.videos, args.frames, args.size, args.seed)
    gt_path, gt = evaluated_ground_truth(ann, args.min_keypoints, out)
    videos = _read_frames(gt, Path(args.data))
    gt_boxes: dict[int, list] = {}
    for a in gt["annotations"]:
        gt_boxes.setdefault(a["image_id"], []).append(a["bbox"])
    gt_boxes = {k: np.asarray(v, np.float64) for k, v in gt_boxes.items()}
    est = PoseEstimator(args.model, weights=args.weights, backend=args.backend, flip_test=not args.no_flip)
    bottomup = PoseEstimator(args.people_from, flip_test=not args.no_flip) if args.people_from else None
    defaults = TrackerConfig()
    smooth = {"min_cutoff": args.min_cutoff if args.min_cutoff is not None else defaults.min_cutoff,
              "beta": args.beta if args.beta is not None else defaults.beta}
    rows = []
    for source in args.sources.split(","):
        if source == "bottom-up" and bottomup is None:
            rows.append({"source": source, "measured": False, "why": "no --people-from weights"})
            continue
        results, seconds, frames = run_source(source, videos, gt_boxes, est, bottomup, args, smooth)
        (out / f"{source}.json").write_text(json.dumps(results))
        rows.append({**score(source, results, gt_path, gt, args), "measured": True, "fps": frames / seconds,
                     "frames": frames})
    people = sum(len(v) for v in gt_boxes.values())
    vid_of = {im["id"]: im["vid_id"] for im in gt["images"]}
    return {"data": str(args.data), "seed": args.seed, "videos": len(videos), "frames": args.frames,
            "size": args.size, "people_frames": people,
            "tracks": len({(vid_of[a["image_id"]], a["track_id"]) for a in gt["annotations"]}),
            "backend": est.backend.name, "threads": args.threads, "flip": not args.no_flip,
            "detect_every": args.detect_every, "smoothing": smooth, "rows": rows}


def render(result: dict[str, Any]) -> str:
    """One row per source of people."""
    rows = []
    for r in result["rows"]:
        if not r["measured"]:
            rows.append([r["source"]] + ["-"] * 11)
            continue
        drop = 1 - r["jitter_smoothed"] / r["jitter_raw"] if r["jitter_raw"] else float("nan")
        change = "-" if not np.isfinite(drop) else (f"-{drop:.0%}" if drop >= 0 else f"+{-drop:.0%}")
        rows.append([r["source"], r["idf1"], r["mota"], r["num_switches"], r["kp_mota"], r["ap_raw"],
                     r["ap_smoothed"], r["jitter_raw"], r["jitter_smoothed"], change, r["fps"], r["num_objects"]])
    head = (f"held-out synthetic sequences {result['data']} (seed {result['seed']}): {result['videos']} videos x "
            f"{result['frames']} frames of {result['size']}x{result['size']}, {result['people_frames']} evaluated "
            f"people-frames; detection every {result['detect_every']} frames = GT boxes of that frame; backend "
            f"{result['backend']}, {result['threads']} torch threads, flip {'on' if result['flip'] else 'off'}; "
            f"One-Euro {result['smoothing']}")
    return head + "\n" + format_table(rows, ["source", "IDF1", "MOTA", "IDsw", "kp MOTA", "AP raw", "AP smooth",
                                             "jitter raw", "jitter smooth", "jitter change", "frames/s", "GT"])
