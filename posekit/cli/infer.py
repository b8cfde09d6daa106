"""`posekit infer`: poses on images, folders and videos -> COCO keypoint results JSON + pictures/videos.

A thin wrapper over `PoseEstimator.images`: it parses options, maps file names to COCO image ids, streams the
results to keypoints.json (a valid JSON list of what was done even after Ctrl-C or a stop on a bad image) and draws.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import ConfigError, DataError, PosekitError

HELP = "estimate poses on images, folders and videos; write keypoints JSON (COCO results) and drawings"


BOTTOMUP_PERSON_THRESHOLD = 0.2  # drawn people of a bottom-up model: its grouping also returns fragments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from posekit.runtime import backends

    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="images, folders (their images and videos, not recursive) and videos; in keypoints.json "
                             "an image's id is its file name's number (000000000785.jpg -> 785) or its --gt-images "
                             "id, else a running input index; video frames get running indices and a 'frame' field")
    parser.add_argument("--model", help="zoo model name (`posekit models` lists them); optional when --weights "
                                        "is a posekit weights file, which carries its model spec")
    parser.add_argument("--config", metavar="YAML",
                        help="the training config of --weights (its model, input size, codec, skeleton, colour order)")
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
    src.add_argument("--people-from", metavar="WEIGHTS",
                     help="a bottom-up (Associative Embedding) posekit weights file whose people serve as the person "
                          "boxes of --weights (photos and videos without a detections file)")
    parser.add_argument("--gt-images", metavar="JSON",
                        help="COCO annotation JSON whose 'images' map file names to the image ids of --boxes")
    parser.add_argument("--box-threshold", type=float, default=0.3,
                        help="drop detections of --boxes scoring below this (default 0.3)")
    parser.add_argument("--threshold", type=float, default=0.3,
                        help="draw keypoints scoring above this (default 0.3)")
    parser.add_argument("--person-threshold", type=float, default=None,
                        help="draw people scoring at least this (default: 0.2 for bottom-up models, whose grouping "
                             "also returns low-scoring fragments, 0 otherwise); keypoints.json keeps every person, "
                             "as COCO results do")
    parser.add_argument("--no-flip", action="store_true", help="disable the flip test (faster, less accurate)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--backend", default="auto",
                        choices=backends.KINDS,
                        help="inference backend (default auto: onnxruntime when installed and the model exports, "
                             "exported once and cached next to the weights; else BN-folded PyTorch); "
                             "onnxruntime-int8: opt-in int8 quantisation (faster on CPUs with VNNI, keypoints "
                             "slightly different), calibrated on --calibration or the first person crops of the "
                             "inputs; "
                             "torch-bf16: opt-in bfloat16 autocast where the CPU has native bf16 (AVX512-BF16 / AMX)")
    parser.add_argument("--calibration", nargs="+", metavar="PATH",
                        help="onnxruntime-int8: images or folders of people to calibrate on (their --boxes / --box "
                             "when they are inputs too, else each whole image); default: the first network batch "
                             "of the inputs (the quantised model is cached per calibration data)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="person crops per network batch (default 32; the flip test doubles the batch)")
    parser.add_argument("--on-error", choices=("skip", "stop"), default="skip",
                        help="an unreadable image (truncated, 0 bytes, not an image): skip it and report it at the "
                             "end (default), or stop (keypoints.json keeps what was done)")
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


def stem_id(path: Path) -> int | None:
    """The COCO-style image id of a file name made of digits (000000000785.jpg -> 785), else None."""
    return int(path.stem) if re.fullmatch(r"\d+", path.stem) else None


def digits_id(path: Path) -> int | None:
    """The last run of digits in a file name (COCO_val2014_000000000785.jpg -> 785), else None."""
    runs = re.findall(r"\d+", path.stem)
    return int(runs[-1]) if runs else None


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


def unique_path(folder: Path, stem: str, suffix: str, used: set[str]) -> Path:
    """folder/stem+suffix, with _1, _2... appended when that name was already written in this run."""
    name, n = f"{stem}{suffix}", 0
    while name in used:
        n += 1
        name = f"{stem}_{n}{suffix}"
    used.add(name)
    return folder / name


def check_device(device: str) -> None:
    """Refuse a torch device this build cannot use, before any work."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"--device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: this PyTorch build has no usable CUDA device; use --device cpu")


def make_estimator(args: argparse.Namespace) -> Any:
    """The PoseEstimator of --model / --config / --weights (the spec stored in the weights wins; a mismatch is an
    error)."""
    from posekit.inference import PoseEstimator

    if args.weights is None and not args.random_weights:
        raise ConfigError("--weights is required (a checkpoint of --model); pass --random-weights to run a "
                          "randomly initialised network on purpose (its keypoints are meaningless)")
    if args.model and args.config:
        raise ConfigError("give --model or --config, not both (the config names its model)")
    spec = None
    if args.config:
        from posekit.config import load_config
        from posekit.engine.build import model_spec

        spec = model_spec(load_config(args.config))
    if spec is None and not args.model and args.weights is None:
        raise ConfigError("--random-weights needs --model or --config (which network to build)")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_device(args.device)
    return PoseEstimator(args.model, weights=args.weights, spec=spec, device=args.device, flip_test=not args.no_flip,
                         batch_size=args.batch_size, backend=args.backend)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from posekit.inference import (
        VIDEO_EXTS,
        ResultsWriter,
        collect_inputs,
        draw_poses,
        read_detections,
        video_info,
        video_writer,
    )
    from posekit.vis import write_png

    if args.gt_images and not args.boxes:
        raise ConfigError("--gt-images only maps image ids for --boxes; give --boxes too")
    files = collect_inputs(args.inputs)
    if not files:
        raise DataError(f"no images or videos found in {' '.join(args.inputs)}")
    n_videos = sum(f.suffix.lower() in VIDEO_EXTS for f in files)
    fixed = np.asarray([parse_box(b) for b in args.box], dtype=np.float64) if args.box else None
    dets = read_detections(args.boxes, args.box_threshold) if args.boxes else None
    name_ids = load_image_ids(args.gt_images) if args.gt_images else {}
    if dets is not None and n_videos:
        print("posekit infer: note: --boxes applies to images only; videos use the whole frame", file=sys.stderr)
    if args.calibration and args.backend != "onnxruntime-int8":
        raise ConfigError("--calibration is for --backend onnxruntime-int8")
    est = make_estimator(args)
    min_person = args.person_threshold if args.person_threshold is not None else (
        BOTTOMUP_PERSON_THRESHOLD if est.task == "bottomup" else 0.0)

    def drawing(r: Any) -> np.ndarray:
        shown = [p for p in r.poses if p.score >= min_person]
        return draw_poses(r.image, shown, est.skeleton, threshold=args.threshold, show_scores=args.show_scores)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    ids: dict[Path, int] = {}
    next_index = 0
    for path in files:  # image ids are fixed up front: the same whatever is skipped
        if path.suffix.lower() in VIDEO_EXTS:
            continue
        image_id = name_ids.get(path.name, name_ids.get(path.stem))
        if image_id is None:
            image_id = digits_id(path) if dets is not None else stem_id(path)
        ids[path] = image_id
    no_dets = [0]

    people = None
    if args.people_from:
        from posekit.inference import PoseEstimator
        from posekit.runtime.bottomup import people_boxes_fn

        people = people_boxes_fn(PoseEstimator(args.people_from, device=args.device, flip_test=not args.no_flip))

    def boxes_for(path: Path, image: np.ndarray, frame: int | None) -> Any:
        if people is not None:
            return people(path, image, frame)
        if frame is not None or dets is None:
            return fixed
        found = dets.get(ids[path])
        if found is None:
            no_dets[0] += 1
            return np.zeros((0, 5))
        return found

    if args.calibration:
        def calibration_boxes(path: Path, image: np.ndarray, frame: int | None) -> Any:
            if people is not None:
                return people(path, image, frame)
            if dets is not None:
                return dets.get(ids[path], np.zeros((0, 5))) if path in ids else None
            return fixed

        est.calibrate(args.calibration, boxes=calibration_boxes)

    used: set[str] = set()
    skipped: list[str] = []
    drawn = poses_total = frames_total = images_done = 0
    writers: dict[Path, Any] = {}
    video_base: dict[Path, int] = {}
    t0 = time.perf_counter()
    json_path = out / "keypoints.json"
    bar = tqdm(total=len(files) - n_videos, desc="images", unit="img", file=sys.stderr, disable=len(files) == n_videos)
    try:
        with ResultsWriter(json_path) as results:
            for r in est.images(files, boxes=boxes_for, on_error=args.on_error):
                if r.error is not None:
                    skipped.append(r.error)
                    bar.update(1)
                    continue
                if r.frame is None:
                    image_id = ids[r.path] if ids[r.path] is not None else next_index
                    next_index += 1
                    images_done += 1
                    bar.update(1)
                    results.write(r.coco(image_id))
                    if not args.no_draw:
                        picture = drawing(r)
                        write_png(unique_path(out, r.path.stem, ".png", used), picture)
                        drawn += 1
                        if est.task == "body3d" and r.poses:  # the 3-D skeletons beside the 2-D overlay
                            from posekit.vis.skeleton3d import write_skeleton_3d

                            write_skeleton_3d(unique_path(out, f"{r.path.stem}_3d", ".png", used),
                                              [p.extra["joints_cam"] for p in r.poses], est.skeleton,
                                              title=f"{r.path.name}: camera space (mm)")
                else:
                    if r.path not in video_base:
                        video_base[r.path] = next_index
                        if not args.no_draw:
                            suffix = r.path.suffix.lower() if r.path.suffix.lower() in (".avi", ".mp4") else ".mp4"
                            target = unique_path(out, f"{r.path.stem}_pose", suffix, used)
                            writers[r.path] = video_writer(target, video_info(r.path)[0],
                                                           (r.image.shape[1], r.image.shape[0]))
                            drawn += 1
                    next_index += 1
                    frames_total += 1
                    results.write(r.coco(video_base[r.path] + r.frame))
                    if r.path in writers:
                        picture = drawing(r)
                        writers[r.path].write(np.ascontiguousarray(picture[:, :, ::-1]))
                poses_total += len(r.poses)
    except KeyboardInterrupt:
        print(f"posekit infer: interrupted; {poses_total} poses of {images_done} images and {frames_total} frames "
              f"kept in {json_path}", file=sys.stderr)
        raise
    except PosekitError as e:
        raise type(e)(f"{e} ({poses_total} poses done before it are in {json_path})") from None
    finally:
        bar.close()
        for w in writers.values():
            w.release()
    dt = time.perf_counter() - t0
    parts = [f"{images_done} images"]
    if n_videos:
        parts.append(f"{n_videos} videos ({frames_total} frames)")
    if dets is not None:
        parts.append(f"{no_dets[0]} images without detections")
    if skipped:
        parts.append(f"{len(skipped)} skipped")
    backend = est.backend.name + (" (cached ONNX)" if getattr(est.backend, "exported", True) is False else "")
    print(f"posekit infer: {', '.join(parts)}; {poses_total} poses -> {json_path}"
          f"{'' if args.no_draw else f', {drawn} drawings in {out}'} "
          f"({dt:.1f} s, {(images_done + frames_total) / max(dt, 1e-9):.1f} frames/s, backend {backend}"
          f"{', random weights' if args.weights is None else ''})")
    if skipped:
        print(f"posekit infer: skipped {len(skipped)} unreadable inputs:", file=sys.stderr)
        for msg in skipped:
            print(f"  {msg}", file=sys.stderr)
    return 0
