"""`posekit bench eval`: COCO keypoint evaluation time per backend and OKS-NMS time, on real COCO boxes.

Per backend: the library's own evaluate+accumulate (loading excluded), posekit's whole `coco_keypoints` on the
in-memory ground truth and results (validation, loading, evaluation, summary) and the same from JSON files (what
`posekit eval` does), next to the time of a bare `json.load` of the results file (a floor of the file path).

Predictions are synthetic but realistic: every detection box of the COCO val2017 subset (538 images, 17,028
person detections) gets keypoints: the ground truth of the person it overlaps plus Gaussian noise, or random
points inside the box for background detections. A 10x enlargement repeats the images under new ids.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from posekit.cli.tables import format_table
from posekit.errors import DataError
from posekit.evaluation import coco as coco_eval
from posekit.evaluation.nms import COCO_SIGMAS, group_by_image, nms_per_image
from posekit.evaluation.results import IN_VIS_THRE, OKS_THRE, make_results, rescore

HELP = "time COCO keypoint evaluation (pycocotools vs faster-coco-eval) and OKS-NMS on the val2017 subset"

_SUBSET = Path("data") / "coco" / "val2017_subset538_manhph2211"
DEFAULT_GT = _SUBSET / "person_keypoints_val2017_subset538_dedup.json"
DEFAULT_DETS = _SUBSET / "COCO_val2017_detections_AP_H_56_person_subset538.json"
ASPECT = 192 / 256  # w/h of the network input the boxes are padded to (HRNet 256x192)
PADDING = 1.25
ID_STRIDE = 10_000_000  # image/annotation id offset of each copy in the enlargement


def shared_dir() -> Path:
    """../shared next to the repository (or $POSEKIT_SHARED)."""
    root = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("POSEKIT_SHARED", root.parent / "shared"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", help=f"COCO keypoint ground truth (default: ../shared/{DEFAULT_GT})")
    parser.add_argument("--dets", help=f"person detections, COCO results (default: ../shared/{DEFAULT_DETS})")
    parser.add_argument("--scale", type=int, default=10, help="size of the synthetic enlargement (default 10; 0: none)")
    parser.add_argument("--noise", type=float, default=0.05,
                        help="keypoint noise std as a fraction of sqrt(person area) (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the synthetic keypoints")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each NMS and evaluation this many times, keep the best")


def box_center_size(boxes: np.ndarray, aspect: float = ASPECT, padding: float = PADDING) -> tuple[np.ndarray, ...]:
    """Boxes xywh -> center, size in px padded to the network aspect ratio (official _xywh2cs)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    center = boxes[:, :2] + boxes[:, 2:] * 0.5
    w, h = boxes[:, 2].copy(), boxes[:, 3].copy()
    wide = w > aspect * h
    h[wide] = w[wide] / aspect
    w[~wide] = h[~wide] * aspect
    return center, np.stack([w, h], axis=1) * padding


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes xywh a [N,4] and b [M,4]."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return inter / np.maximum(union, 1e-9)


def synthetic_predictions(gt: dict, dets: list[dict], seed: int = 0, noise: float = 0.05) -> dict[str, np.ndarray]:
    """Keypoints [N,K,3] float32 for each detection: matched ground truth + noise, else random in the box."""
    rng = np.random.default_rng(seed)
    k = coco_eval.num_keypoints(gt)
    by_image: dict = {}
    for ann in gt["annotations"]:
        if ann.get("num_keypoints", 0) > 0 and not ann.get("iscrowd", 0):
            by_image.setdefault(ann["image_id"], []).append(ann)
    boxes = np.asarray([d["bbox"] for d in dets], dtype=np.float64).reshape(-1, 4)
    image_ids = np.asarray([d["image_id"] for d in dets])
    kpts = np.zeros((len(dets), k, 3), dtype=np.float32)
    # background detections: random points inside the box, low scores
    u = rng.random((len(dets), k, 2))
    kpts[:, :, :2] = boxes[:, None, :2] + u * boxes[:, None, 2:]
    kpts[:, :, 2] = rng.uniform(0.0, 0.6, (len(dets), k))
    for idx in group_by_image(image_ids):
        anns = by_image.get(image_ids[idx[0]])
        if not anns:
            continue
        gboxes = np.asarray([a["bbox"] for a in anns], dtype=np.float64)
        iou = _iou(boxes[idx], gboxes)
        best = iou.argmax(axis=1)
        for row, i in enumerate(idx):
            if iou[row, best[row]] < 0.3:
                continue
            ann = anns[best[row]]
            g = np.asarray(ann["keypoints"], dtype=np.float64).reshape(k, 3)
            std = noise * np.sqrt(max(ann["area"], 1.0))
            vis = g[:, 2] > 0
            kpts[i, vis, :2] = g[vis, :2] + rng.normal(0.0, std, (int(vis.sum()), 2))
            kpts[i, vis, 2] = rng.uniform(0.5, 1.0, int(vis.sum()))
    center, size = box_center_size(boxes)
    return {"keypoints": kpts, "box_scores": np.asarray([d["score"] for d in dets], dtype=np.float64),
            "image_ids": image_ids, "centers": center, "sizes": size}


def enlarge(gt: dict, dets: list[dict], copies: int) -> tuple[dict, list[dict]]:
    """Ground truth and detections repeated `copies` times under new image and annotation ids."""
    big = {k: v for k, v in gt.items() if k not in ("images", "annotations")}
    big["images"], big["annotations"] = [], []
    big_dets = []
    for c in range(copies):
        off = c * ID_STRIDE
        big["images"] += [{**img, "id": img["id"] + off} for img in gt["images"]]
        big["annotations"] += [{**a, "id": a["id"] + off, "image_id": a["image_id"] + off} for a in gt["annotations"]]
        big_dets += [{**d, "image_id": d["image_id"] + off} for d in dets]
    return big, big_dets


def official_style_oks_nms(kpts: np.ndarray, scores: np.ndarray, areas: np.ndarray, image_ids: np.ndarray,
                           thresh: float) -> list[np.ndarray]:
    """The official algorithm as written there: per image, per kept detection, a Python loop over the rest."""
    var = (COCO_SIGMAS * 2) ** 2
    out = []
    for idx in group_by_image(image_ids):
        k, s, a = kpts[idx].reshape(len(idx), -1), scores[idx], areas[idx]
        order = s.argsort()[::-1]
        keep = []
        while order.size > 0:
            i = order[0]
            keep.append(i)
            rest = order[1:]
            ovr = np.zeros(rest.shape[0])
            for n, j in enumerate(rest):
                dx = k[j, 0::3] - k[i, 0::3]
                dy = k[j, 1::3] - k[i, 1::3]
                e = (dx**2 + dy**2) / var / ((a[i] + a[j]) / 2 + np.spacing(1)) / 2
                ovr[n] = np.sum(np.exp(-e)) / e.shape[0]
            order = rest[np.where(ovr <= thresh)[0]]
        out.append(idx[np.asarray(keep, dtype=np.int64)])
    return out


def _time_libraries(gt: dict, results: list[dict], backend: str) -> tuple[float, list[float]]:
    """Seconds of evaluate+accumulate (loading excluded) and the 10 stats, calling the library directly."""
    sigmas = coco_eval.resolve_sigmas(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        if backend == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            cg = COCO()
            cg.dataset = copy.deepcopy(gt)
            cg.createIndex()
            cd = cg.loadRes(copy.deepcopy(results))
            ev = COCOeval(cg, cd, "keypoints")
            ev.params.kpt_oks_sigmas = sigmas
        else:
            from faster_coco_eval import COCO as FCOCO
            from faster_coco_eval import COCOeval_faster

            cg = FCOCO(copy.deepcopy(gt))
            cd = cg.loadRes(copy.deepcopy(results))
            ev = COCOeval_faster(cg, cd, iouType="keypoints", kpt_oks_sigmas=list(sigmas),
                                 print_function=lambda *a, **k: None)
        t0 = time.perf_counter()
        ev.evaluate()
        ev.accumulate()
        seconds = time.perf_counter() - t0
        ev.summarize()
    return seconds, [float(v) for v in np.asarray(ev.stats)[:10]]


def _load_inputs(args: argparse.Namespace) -> tuple[Path, dict, list[dict]]:
    gt_path = Path(args.gt) if args.gt else shared_dir() / DEFAULT_GT
    det_path = Path(args.dets) if args.dets else shared_dir() / DEFAULT_DETS
    for p, flag in ((gt_path, "--gt"), (det_path, "--dets")):
        if not p.exists():
            raise DataError(f"{p} not found; pass {flag} (COCO val2017 keypoints / person detections)")
    gt = coco_eval.load_ground_truth(gt_path)
    with open(det_path) as f:
        dets = json.load(f)
    return gt_path, gt, dets


def _eval_entry(gt: dict, results: list[dict], backend: str, scale: int, repeat: int = 1) -> dict:
    """Best-of-`repeat` times of one evaluation: the library's evaluate+accumulate, posekit in memory and from files."""
    import tempfile

    def best(fn: Any) -> tuple[float, Any]:
        times, out = [], None
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    total, stats = best(lambda: coco_eval.coco_keypoints(gt, results, backend=backend))
    lib_s, lib_stats = min(_time_libraries(gt, results, backend) for _ in range(max(1, repeat)))
    with tempfile.TemporaryDirectory(prefix="posekit-bench-eval-") as tmp:
        gt_file, res_file = Path(tmp) / "gt.json", Path(tmp) / "results.json"
        gt_file.write_text(json.dumps(gt))
        res_file.write_text(json.dumps(results))
        json_s, _ = best(lambda: json.loads(res_file.read_text()))
        files_s, file_stats = best(lambda: coco_eval.coco_keypoints(gt_file, res_file, backend=backend))
    return {"scale": scale, "images": len({img["id"] for img in gt["images"]}), "detections": len(results),
            "backend": backend, "evaluate_accumulate_s": lib_s, "posekit_total_s": total,
            "posekit_files_s": files_s, "results_json_load_s": json_s, "AP": stats["AP"], "stats": stats,
            "stats_equal_direct_call": [stats[n] for n in coco_eval.STAT_NAMES] == lib_stats,
            "files_equal_memory": file_stats == stats}


def run(args: argparse.Namespace) -> dict:
    gt_path, gt, dets = _load_inputs(args)
    pred = synthetic_predictions(gt, dets, seed=args.seed, noise=args.noise)
    areas = pred["sizes"][:, 0] * pred["sizes"][:, 1]
    scores = rescore(pred["keypoints"], pred["box_scores"], IN_VIS_THRE)

    def best_of(fn):
        times = []
        for _ in range(max(1, getattr(args, "repeat", 1))):
            t0 = time.perf_counter()
            out = fn(pred["keypoints"], scores, areas, pred["image_ids"], OKS_THRE)
            times.append(time.perf_counter() - t0)
        return out, min(times)

    fast, nms_s = best_of(nms_per_image)
    slow, official_s = best_of(official_style_oks_nms)
    same = len(fast) == len(slow) and all(np.array_equal(a, b) for a, b in zip(fast, slow))

    # every detection evaluated (no NMS): the workload of the quoted timings
    all_results = make_results(pred["keypoints"], pred["box_scores"], pred["image_ids"], areas=areas, nms="none")
    nms_results = make_results(pred["keypoints"], pred["box_scores"], pred["image_ids"], areas=areas, nms="oks")
    evals = [_eval_entry(gt, all_results, b, 1, getattr(args, "repeat", 1)) for b in coco_eval.BACKENDS]
    ap_after_nms = coco_eval.coco_keypoints(gt, nms_results)["AP"]
    if args.scale and args.scale > 1:
        big_gt, big_dets = enlarge(gt, dets, args.scale)
        big = synthetic_predictions(big_gt, big_dets, seed=args.seed + 1, noise=args.noise)
        big_areas = big["sizes"][:, 0] * big["sizes"][:, 1]
        big_results = make_results(big["keypoints"], big["box_scores"], big["image_ids"], areas=big_areas, nms="none")
        repeat = getattr(args, "repeat", 1)
        evals += [_eval_entry(big_gt, big_results, b, args.scale, repeat) for b in coco_eval.BACKENDS]
    by_scale: dict[int, list[dict]] = {}
    for e in evals:
        by_scale.setdefault(e["scale"], []).append(e["stats"])
    return {
        "gt": str(gt_path),
        "backends_equal": {f"x{k}": all(v == stats[0] for v in stats) for k, stats in by_scale.items()},
        "images": len({img["id"] for img in gt["images"]}),
        "people": len(gt["annotations"]),
        "detections": len(dets),
        "nms": {"posekit_s": nms_s, "official_style_s": official_s, "speedup": official_s / max(nms_s, 1e-9),
                "kept": int(sum(len(k) for k in fast)), "same_keep_lists": bool(same)},
        "ap_all_detections": evals[0]["AP"],
        "ap_after_oks_nms": ap_after_nms,
        "eval": evals,
    }


def render(result: dict) -> str:
    head = (f"{result['images']} images, {result['people']} people, {result['detections']} detections "
            f"({result['gt']})\nAP all detections {result['ap_all_detections']:.4f}, "
            f"after OKS-NMS {result['ap_after_oks_nms']:.4f}\n")
    n = result["nms"]
    nms = format_table([["posekit oks_nms (vectorised)", n["posekit_s"], n["kept"], n["same_keep_lists"]],
                        ["official-style oks_nms (loops)", n["official_style_s"], n["kept"], n["same_keep_lists"]]],
                       ["OKS-NMS", "seconds", "kept", "same keep lists"], digits=3)
    rows = [[f"x{e['scale']}", e["images"], e["detections"], e["backend"], e["evaluate_accumulate_s"],
             e["posekit_total_s"], e["posekit_total_s"] / max(e["evaluate_accumulate_s"], 1e-9),
             e.get("posekit_files_s", "-"), e.get("results_json_load_s", "-"), e["AP"], e["stats_equal_direct_call"]]
            for e in result["eval"]]
    ev = format_table(rows, ["set", "images", "dets", "backend", "eval+acc s", "posekit total s", "ratio",
                             "from files s", "json.load s", "AP", "= direct call"], digits=3)
    same = ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in result["backends_equal"].items())
    return f"{head}\n{nms}\nspeed-up {n['speedup']:.1f}x\n\n{ev}\nall 10 stats equal across backends: {same}"
