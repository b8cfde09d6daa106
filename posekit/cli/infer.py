"""`posekit infer`: poses on images, folders and videos -> COCO keypoint results JSON + pictures/videos.

A thin wrapper over `posekit.inference.infer_to_folder` (PoseEstimator.images streamed to keypoints.json, a valid
JSON list of what was done even after Ctrl-C or a stop on a bad image, with drawings): it parses options, builds the
estimator and the job, and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import ConfigError, DataError

HELP = "estimate poses on images, folders and videos; write keypoints JSON (COCO results) and drawings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    _add_box_arguments(parser)
    _add_run_arguments(parser)
    _add_output_arguments(parser)


def _add_box_arguments(parser: argparse.ArgumentParser) -> None:
    """Where person boxes come from and what is drawn."""
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--boxes", metavar="FILE",
                     help="person detections JSON in COCO detection results format (image_id, bbox xywh, score); "
                          "images are matched by COCO image id (see --gt-images) or by the last number in the "
                          "file name; an image without detections gets no poses; videos use the whole frame")
    src.add_argument("--box", action="append", metavar="X,Y,W,H", default=None,
                     help="a person box xywh in pixels for every input (repeatable); default: the whole image")
    src.add_argument("--people-from", metavar="WEIGHTS",
                     help="a bottom-up (Associative Embedding) posekit weights file whose people serve as the person "
                          "boxes of --weights (photos and videos without a detections file); one box per person: "
                          "people scoring below posekit.runtime.bottomup.PEOPLE_MIN_SCORE give none, overlapping "
                          "boxes above PEOPLE_IOU keep the best (the Python API's people_boxes_fn defaults)")
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


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How the network runs: flip test, device, backend, batches, errors."""
    from posekit.runtime import backends

    parser.add_argument("--no-flip", action="store_true", help="disable the flip test (faster, less accurate)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--backend", default="auto",
                        choices=backends.KINDS,
                        help="inference backend (default auto: onnxruntime when installed and the model exports, "
                             "exported once and cached (see --cache-dir); else BN-folded PyTorch); "
                             "onnxruntime-int8: opt-in int8 quantisation (faster on CPUs with VNNI, keypoints "
                             "slightly different), calibrated on --calibration or the first person crops of the "
                             "inputs; "
                             "torch-bf16: opt-in bfloat16 autocast where the CPU has native bf16 (AVX512-BF16 / AMX)")
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="where the ONNX export (and int8 model) of the weights is cached (default "
                             "$XDG_CACHE_HOME/posekit/onnx, i.e. ~/.cache/posekit/onnx)")
    parser.add_argument("--calibration", nargs="+", metavar="PATH",
                        help="onnxruntime-int8: images or folders of people to calibrate on (their --boxes / --box "
                             "when they are inputs too, else each whole image); default: the first network batch "
                             "of the inputs (the quantised model is cached per calibration data)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="person crops per network batch (default 32; the flip test doubles the batch)")
    parser.add_argument("--on-error", choices=("skip", "stop"), default="skip",
                        help="an unreadable image (truncated, 0 bytes, not an image): skip it and report it at the "
                             "end (default), or stop (keypoints.json keeps what was done)")


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The 3-D camera, the drawings and tracking."""
    cam = parser.add_argument_group("3-D models (camera)")
    cam.add_argument("--focal", metavar="F|FX,FY",
                     help="focal length in px for every input; default: the model's (a recipe's BODY3D.FOCAL or "
                          "its training camera: the synthetic camera is 1.15 x image width), else the 3DMPPE demo's "
                          "1500 px")
    cam.add_argument("--principal-point", metavar="CX,CY", help="principal point in px (default: the image centre)")
    cam.add_argument("--intrinsics", metavar="JSON",
                     help='camera file: {"f": [fx, fy], "c": [cx, cy]} (or fx/fy/cx/cy, or "K"), a mapping from image '
                          "file names to such cameras, or a posekit synthetic annotations.json (per-image "
                          "cam_intrinsics)")
    parser.add_argument("--show-scores", action="store_true", help="write keypoint and person scores on drawings")
    parser.add_argument("--no-draw", action="store_true", help="write only keypoints.json, no images or videos")
    g = parser.add_argument_group("tracking (--track)")
    g.add_argument("--track", action="store_true",
                   help="follow people over frames with stable ids; INPUTs are videos, folders of frames, webcam "
                        "indices (0) or stream URLs; per input <name>_tracks.json (PoseTrack-style, track_id per "
                        "person) and <name>_track.mp4; --boxes then holds per-frame detections ({frame (0-based) "
                        "or image_id = frame + 1, bbox, score, optional video file name})")
    g.add_argument("--detect-every", type=int, default=1, metavar="N",
                   help="people from --boxes / --people-from / --box / the whole frame on every N-th frame, boxes "
                        "propagated from the previous frame's poses in between (default 1: every frame)")
    g.add_argument("--similarity", choices=("oks", "iou"), default="oks", help="association similarity (default oks)")
    g.add_argument("--memory", type=int, default=30, metavar="FRAMES",
                   help="a track unmatched for more frames than this ends; a person back sooner keeps the id "
                        "(default 30)")
    g.add_argument("--flow", action="store_true",
                   help="move the previous poses by optical flow before matching and propagating (flow-based OKS)")
    g.add_argument("--smooth", action="store_true", help="One-Euro smoothing of each track's keypoints")
    g.add_argument("--live", action="store_true",
                   help="read video files as live streams: paced at their frame rate, frames the model misses dropped "
                        "(webcams and URLs are always live)")


def parse_box(text: str) -> list[float]:
    """'x,y,w,h' -> [x, y, w, h] with w, h > 0."""
    try:
        box = [float(v) for v in text.split(",")]
    except ValueError:
        box = []
    if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
        raise ConfigError(f"--box {text!r}: expected X,Y,W,H in pixels with W, H > 0")
    return box


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
    from posekit.cli import model_spec_of
    from posekit.inference import PoseEstimator

    spec = model_spec_of(args, "run a randomly initialised network on purpose (its keypoints are meaningless)")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_device(args.device)
    camera, cameras = camera_options(args)
    est = PoseEstimator(args.model, weights=args.weights, spec=spec, device=args.device, flip_test=not args.no_flip,
                        batch_size=args.batch_size, backend=args.backend, cache_dir=args.cache_dir, camera=camera,
                        cameras=cameras)
    if (camera is not None or cameras) and not est.uses_camera:
        raise ConfigError(f"--focal / --principal-point / --intrinsics are for 3-D models; {est.name} is a "
                          f"{est.task} model")
    return est


def parse_numbers(text: str, count: tuple[int, ...], option: str) -> list[float]:
    """'a,b' -> [a, b] (finite numbers, as many as one of `count`)."""
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) not in count or not all(np.isfinite(vals)):
        raise ConfigError(f"{option} {text!r}: expected {' or '.join(str(n) for n in count)} comma-separated numbers")
    return vals


def camera_options(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """(one camera or None, {file name: camera}) from --focal / --principal-point / --intrinsics."""
    from posekit.camera import read_intrinsics

    if args.intrinsics and (args.focal or args.principal_point):
        raise ConfigError("give --intrinsics or --focal / --principal-point, not both")
    if args.intrinsics:
        return read_intrinsics(args.intrinsics)
    if args.principal_point and not args.focal:
        raise ConfigError("--principal-point needs --focal (the focal length sets the depth scale)")
    if not args.focal:
        return None, {}
    f = parse_numbers(args.focal, (1, 2), "--focal")
    if min(f) <= 0:
        raise ConfigError(f"--focal {args.focal!r}: the focal length must be > 0 px")
    c = parse_numbers(args.principal_point, (2,), "--principal-point") if args.principal_point else None
    return ((f[0], f[-1]), None if c is None else (c[0], c[1])), {}


def camera_note(est: Any, args: argparse.Namespace) -> str:
    """What a 3-D run uses for the camera, the root depth and the boxes (printed once on stderr)."""
    coder = est.codec
    if args.intrinsics:
        cam = f"camera from {args.intrinsics}"
        if est.cameras:
            cam += f" ({len(est.cameras)} images; others use the model's default)"
    elif est.camera is not None:
        (fx, fy), c = est.camera
        cam = f"f = {fx:g}, {fy:g} px, principal point {'the image centre' if c is None else c}"
    else:
        cam = f"the model's default camera: {coder.camera(1000, 1000)[2]}, principal point the image centre"
    return (f"3-D camera: {cam}; root depth from each box's size (Z = sqrt(fx fy) x {coder.root_box_size:g} mm / "
            "sqrt(box area))")


def make_job(args: argparse.Namespace, files: list[Path]) -> Any:
    """The library's InferJob of the command line (boxes, detections and image ids read before any network)."""
    from posekit.inference import InferJob, load_image_ids, read_detections

    return InferJob(
        inputs=files, out=args.out,
        boxes=np.asarray([parse_box(b) for b in args.box], dtype=np.float64) if args.box else None,
        detections=read_detections(args.boxes, args.box_threshold) if args.boxes else None,
        image_ids=load_image_ids(args.gt_images) if args.gt_images else {}, calibration=args.calibration,
        on_error=args.on_error, draw=not args.no_draw, threshold=args.threshold,
        person_threshold=args.person_threshold, show_scores=args.show_scores)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from posekit.inference import (
        VIDEO_EXTS,
        InferReport,
        PoseEstimator,
        check_output_folder,
        collect_inputs,
        infer_to_folder,
    )

    if args.track:
        return run_track(args)
    if args.gt_images and not args.boxes:
        raise ConfigError("--gt-images only maps image ids for --boxes; give --boxes too")
    files = collect_inputs(args.inputs)
    if not files:
        raise DataError(f"no images or videos found in {' '.join(args.inputs)}")
    n_videos = sum(f.suffix.lower() in VIDEO_EXTS for f in files)
    check_output_folder(args.out, [*args.inputs, *files])  # before any network is built
    job = make_job(args, files)
    if args.calibration and args.backend != "onnxruntime-int8":
        raise ConfigError("--calibration is for --backend onnxruntime-int8")
    est = make_estimator(args)
    if args.people_from:
        job.people = PoseEstimator(args.people_from, device=args.device, flip_test=not args.no_flip)
    if est.uses_camera:
        print(f"posekit infer: note: {camera_note(est, args)}", file=sys.stderr)
    for note in box_notes(args, est, n_videos, len(files) - n_videos):
        print(f"posekit infer: note: {note}", file=sys.stderr)
    report = InferReport(Path(args.out) / "keypoints.json")
    bar = tqdm(total=len(files) - n_videos, desc="images", unit="img", file=sys.stderr, disable=len(files) == n_videos)
    try:
        infer_to_folder(est, job, progress=lambda: bar.update(1), report=report)
    except KeyboardInterrupt:
        print(f"posekit infer: interrupted; {report.poses} poses of {report.images} images and {report.frames} "
              f"frames kept in {report.json_path}", file=sys.stderr)
        raise
    finally:
        bar.close()
    print_report(args, est, report)
    return 0


def box_notes(args: argparse.Namespace, est: Any, n_videos: int, n_images: int) -> list[str]:
    """What the user should know about where person boxes come from (said before the run)."""
    given = "--boxes" if args.boxes else "--box" if args.box else None
    if not est.needs_boxes:
        return [f"{est.name} is a bottom-up model: it finds every person itself, so {given} is ignored"] if given \
            else []
    if args.people_from:
        return []
    if given is None:
        return [f"no person boxes (--boxes / --box / --people-from): {est.name} is a top-down model and takes each "
                "whole image and frame as ONE person; give detections for pictures of several people"]
    if args.boxes and n_videos:
        return [f"--boxes applies to images only; the {n_videos} videos use the whole frame as one person"]
    return []


def print_report(args: argparse.Namespace, est: Any, report: Any) -> None:
    """The one-line summary on stdout; skipped inputs on stderr."""
    parts = [f"{report.images} images"]
    if report.videos:
        parts.append(f"{report.videos} videos ({report.frames} frames)")
    if args.boxes and est.needs_boxes and not args.people_from:
        parts.append(f"{report.without_detections} images without detections")
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped")
    backend = est.backend.name + (" (cached ONNX)" if getattr(est.backend, "exported", True) is False else "")
    rate = (report.images + report.frames) / max(report.seconds, 1e-9)
    print(f"posekit infer: {', '.join(parts)}; {report.poses} poses -> {report.json_path}"
          f"{'' if args.no_draw else f', {report.drawn} drawings in {args.out}'} "
          f"({report.seconds:.1f} s, {rate:.1f} frames/s, backend {backend}"
          f"{', random weights' if args.weights is None else ''})")
    if report.skipped:
        print(f"posekit infer: skipped {len(report.skipped)} unreadable inputs:", file=sys.stderr)
        for msg in report.skipped:
            print(f"  {msg}", file=sys.stderr)


def run_track(args: argparse.Namespace) -> int:
    """`posekit infer --track`: the library's track_to_folder; the frame rate (and drops) printed as it runs."""
    import time

    from posekit.inference import PoseEstimator, TrackJob, TrackReport, track_to_folder
    from posekit.runtime.tracking import TrackerConfig

    if args.gt_images or args.calibration:
        raise ConfigError("--gt-images / --calibration are not used with --track")
    if args.detect_every < 1 or args.memory < 0:
        raise ConfigError(f"--detect-every must be >= 1 and --memory >= 0, got {args.detect_every}, {args.memory}")
    job = TrackJob(inputs=args.inputs, out=args.out, detect_every=args.detect_every,
                   tracker=TrackerConfig(similarity=args.similarity, memory=args.memory, flow=args.flow,
                                         smooth=args.smooth),
                   boxes=np.asarray([parse_box(b) for b in args.box], dtype=np.float64) if args.box else None,
                   detections=args.boxes, box_threshold=args.box_threshold, live=args.live, draw=not args.no_draw,
                   threshold=args.threshold, person_threshold=args.person_threshold)
    est = make_estimator(args)
    if args.people_from:
        job.people = PoseEstimator(args.people_from, device=args.device, flip_test=not args.no_flip)
    report = TrackReport()
    last = [time.perf_counter()]

    def on_frame(name: str, frame: int, rep: Any) -> None:
        now = time.perf_counter()
        if now - last[0] >= 2.0:
            last[0] = now
            print(f"{name}: frame {frame}, {rep.frames / max(rep.seconds, 1e-9):.1f} frames/s, {rep.dropped} "
                  f"dropped", file=sys.stderr, flush=True)

    try:
        track_to_folder(est, job, on_frame=on_frame, report=report)
    except KeyboardInterrupt:
        print(f"posekit infer: interrupted; {report.frames} frames ({report.poses} poses) kept in "
              f"{', '.join(str(p) for p in report.outputs if p.suffix == '.json')}", file=sys.stderr)
        raise
    print(f"posekit infer --track: {len(args.inputs)} inputs, {report.frames} frames, {report.poses} poses, "
          f"{report.tracks} track ids, {report.frames / max(report.seconds, 1e-9):.1f} frames/s, {report.dropped} "
          f"frames dropped (live) -> {', '.join(str(p) for p in report.outputs)} (backend {est.backend.name})")
    for msg in report.skipped:  # video frames that could not be decoded (the frames after them were tracked)
        print(f"posekit infer: skipped {msg}", file=sys.stderr)
    return 0
