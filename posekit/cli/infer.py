"""`posekit infer`: poses on images, folders and videos -> COCO keypoint results JSON + pictures/videos."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from posekit.errors import ConfigError, DataError

HELP = "estimate poses on images, folders and videos; write keypoints JSON (COCO results) and drawings"

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="images, folders (their images and videos, not recursive) and videos; in keypoints.json "
                             "an image's id is its file name's number (000000000785.jpg -> 785) or its --gt-images "
                             "id, else a running input index; video frames get running indices and a 'frame' field")
    parser.add_argument("--model", required=True, help="zoo model name (`posekit models` lists them)")
    parser.add_argument("--weights", help="checkpoint file (official or posekit); required unless --random-weights")
    parser.add_argument("--random-weights", action="store_true",
                        help="run without --weights on a randomly initialised network (for smoke tests only: "
                             "the keypoints are meaningless)")
    parser.add_argument("--out", required=True, help="output folder (keypoints.json, drawn images and videos)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--boxes", metavar="FILE",
                     help="person detections JSON in COCO detection results format (image_id, bbox xywh, score); "
                          "images are matched by COCO image id (see --gt-images) or by the last number in the "
                          "file name; an image without detections gets no poses; videos use the whole frame")
    src.add_argument("--box", action="append", metavar="X,Y,W,H", default=None,
                     help="a person box xywh in pixels for every input (repeatable); default: the whole image")
    parser.add_argument("--gt-images", metavar="JSON",
                        help="COCO annotation JSON whose 'images' map file names to the image ids of --boxes")
    parser.add_argument("--box-threshold", type=float, default=0.3,
                        help="drop detections of --boxes scoring below this (default 0.3)")
    parser.add_argument("--threshold", type=float, default=0.3,
                        help="draw keypoints scoring above this (default 0.3)")
    parser.add_argument("--no-flip", action="store_true", help="disable the flip test (faster, less accurate)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--batch-size", type=int, default=32, help="person crops per forward pass (default 32)")
    parser.add_argument("--show-scores", action="store_true", help="write keypoint and person scores on drawings")
    parser.add_argument("--no-draw", action="store_true", help="write only keypoints.json, no images or videos")


def parse_box(text: str) -> list[float]:
    """'x,y,w,h' -> [x, y, w, h] with w, h > 0."""
    try:
        box = [float(v) for v in text.split(",")]
    except ValueError:
        box = []
    if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
        raise ConfigError(f"--box {text!r}: expected X,Y,W,H in pixels with W, H > 0")
    return box


def collect_inputs(inputs: list[str]) -> tuple[list[Path], list[Path]]:
    """Images and videos named on the command line or found (sorted, not recursively) in the given folders."""
    images, videos = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.iterdir()):
                if f.suffix.lower() in IMAGE_EXTS:
                    images.append(f)
                elif f.suffix.lower() in VIDEO_EXTS:
                    videos.append(f)
        elif p.is_file():
            if p.suffix.lower() in VIDEO_EXTS:
                videos.append(p)
            elif p.suffix.lower() in IMAGE_EXTS:
                images.append(p)
            else:
                raise DataError(f"{p}: not an image ({', '.join(sorted(IMAGE_EXTS))}) "
                                f"or a video ({', '.join(sorted(VIDEO_EXTS))})")
        else:
            raise DataError(f"{p}: no such file or folder")
    return images, videos


def stem_id(path: Path) -> int | None:
    """The COCO-style image id of a file name made of digits (000000000785.jpg -> 785), else None."""
    return int(path.stem) if re.fullmatch(r"\d+", path.stem) else None


def digits_id(path: Path) -> int | None:
    """The last run of digits in a file name (COCO_val2014_000000000785.jpg -> 785), else None."""
    runs = re.findall(r"\d+", path.stem)
    return int(runs[-1]) if runs else None


def load_detections(path: str, min_score: float) -> dict[int, np.ndarray]:
    """COCO detection results -> {image_id: [M,5] xywh + score} (persons only, score >= min_score)."""
    try:
        dets = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"--boxes {path}: cannot read a JSON list of detections ({e})") from None
    if not isinstance(dets, list):
        raise DataError(f"--boxes {path}: expected a JSON list of {{image_id, bbox, score}}, got {type(dets).__name__}")
    out: dict[int, list] = defaultdict(list)
    for i, d in enumerate(dets):
        if not isinstance(d, dict) or "image_id" not in d or "bbox" not in d or len(d["bbox"]) != 4:
            raise DataError(f"--boxes {path}: entry {i} lacks image_id or a 4-number bbox")
        if d.get("category_id", 1) != 1:
            continue
        score = float(d.get("score", 1.0))
        x, y, w, h = (float(v) for v in d["bbox"])
        if score < min_score or w <= 0 or h <= 0:
            continue
        out[int(d["image_id"])].append([x, y, w, h, score])
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def load_image_ids(path: str) -> dict[str, int]:
    """COCO annotation JSON -> {file name: image id} (also keyed by the stem)."""
    try:
        data = json.loads(Path(path).read_text())
        ids = {}
        for im in data["images"]:
            name = Path(im["file_name"])
            ids[name.name] = int(im["id"])
            ids[name.stem] = int(im["id"])
        return ids
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"--gt-images {path}: expected a COCO JSON with images[{{id, file_name}}] ({e})") from None


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8; DataError when it cannot be decoded."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"{path}: cannot decode this image")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def unique_path(folder: Path, stem: str, suffix: str, used: set[str]) -> Path:
    """folder/stem+suffix, with _1, _2... appended when that name was already written in this run."""
    name, n = f"{stem}{suffix}", 0
    while name in used:
        n += 1
        name = f"{stem}_{n}{suffix}"
    used.add(name)
    return folder / name


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from posekit.inference import PoseEstimator, draw_poses, process_video
    from posekit.vis import write_png

    if args.weights is None and not args.random_weights:
        raise ConfigError("--weights is required (a checkpoint of --model); pass --random-weights to run a "
                          "randomly initialised network on purpose (its keypoints are meaningless)")
    if args.gt_images and not args.boxes:
        raise ConfigError("--gt-images only maps image ids for --boxes; give --boxes too")
    images, videos = collect_inputs(args.inputs)
    if not images and not videos:
        raise DataError(f"no images or videos found in {' '.join(args.inputs)}")
    fixed = np.asarray([parse_box(b) for b in args.box], dtype=np.float64) if args.box else None
    dets = load_detections(args.boxes, args.box_threshold) if args.boxes else None
    name_ids = load_image_ids(args.gt_images) if args.gt_images else {}
    if dets is not None and videos:
        print("posekit infer: note: --boxes applies to images only; videos use the whole frame", file=sys.stderr)

    est = PoseEstimator(args.model, weights=args.weights, device=args.device, flip_test=not args.no_flip,
                        batch_size=args.batch_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    used: set[str] = set()
    drawn = poses_total = no_dets = frames_total = 0
    next_index = 0
    t0 = time.perf_counter()

    for path in tqdm(images, desc="images", unit="img", file=sys.stderr, disable=not images):
        image = read_rgb(path)
        image_id = name_ids.get(path.name, name_ids.get(path.stem))
        if image_id is None:
            image_id = digits_id(path) if dets is not None else stem_id(path)
        if image_id is None:
            image_id = next_index
        next_index += 1
        boxes = fixed
        if dets is not None:
            boxes = dets.get(image_id, np.zeros((0, 5)))
            no_dets += int(len(boxes) == 0)
        poses = est(image, boxes)
        poses_total += len(poses)
        for pose in poses:
            results.append({**pose.to_coco(image_id), "file_name": str(path)})
        if not args.no_draw:
            picture = draw_poses(image, poses, est.skeleton, threshold=args.threshold, show_scores=args.show_scores)
            write_png(unique_path(out, path.stem, ".png", used), picture)
            drawn += 1

    for path in videos:
        suffix = path.suffix.lower() if path.suffix.lower() in (".avi", ".mp4") else ".mp4"
        target = None if args.no_draw else unique_path(out, f"{path.stem}_pose", suffix, used)
        bar = tqdm(desc=path.name, unit="frame", file=sys.stderr)

        def progress(done: int, total: int, bar=bar) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        boxes_fn = (lambda i, frame: fixed) if fixed is not None else None
        try:
            frames = process_video(path, est, boxes_fn, target, progress, threshold=args.threshold,
                                   show_scores=args.show_scores)
        finally:
            bar.close()
        for f, poses in enumerate(frames):
            for pose in poses:
                results.append({**pose.to_coco(next_index + f), "file_name": str(path), "frame": f})
            poses_total += len(poses)
        next_index += len(frames)
        frames_total += len(frames)
        drawn += int(target is not None)

    json_path = out / "keypoints.json"
    json_path.write_text(json.dumps(results))
    dt = time.perf_counter() - t0
    n_frames = len(images) + frames_total
    parts = [f"{len(images)} images"]
    if videos:
        parts.append(f"{len(videos)} videos ({frames_total} frames)")
    if dets is not None:
        parts.append(f"{no_dets} images without detections")
    print(f"posekit infer: {', '.join(parts)}; {poses_total} poses -> {json_path}"
          f"{'' if args.no_draw else f', {drawn} drawings in {out}'} "
          f"({dt:.1f} s, {n_frames / max(dt, 1e-9):.1f} frames/s{', random weights' if args.weights is None else ''})")
    return 0
