"""`posekit infer --track`: people tracked with stable ids over videos, folders of frames, webcams and stream URLs.

The tracking options and the run of `posekit infer` with --track (the rest of the verb is posekit/cli/infer.py).
Per input: DIR/<name>_tracks.json (PoseTrack-style: images with vid_id / frame_id, annotations with track_id;
streamed to <name>_tracks.jsonl while running, so Ctrl-C keeps every finished frame) and DIR/<name>_track.mp4
(skeletons coloured by track id, ids drawn). Live sources (webcams, URLs, --live files) drop the frames the model
is too slow for; the frame rate and the drops are printed while it runs.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from posekit.errors import ConfigError


def add_track_arguments(parser: argparse.ArgumentParser) -> None:
    """The --track options of `posekit infer`."""
    g = parser.add_argument_group("tracking (--track)")
    g.add_argument("--track", action="store_true",
                   help="follow people over frames with stable ids; INPUTs may then also be a webcam index (0) or a "
                        "stream URL; per input <name>_tracks.json (PoseTrack-style) and <name>_track.mp4")
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
                   help="read video files as live streams: paced at their frame rate, frames the model misses dropped")


def _safe_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem or name)[:80] or "input"


def _detector(args: argparse.Namespace, est: Any, name: str) -> Any:
    """detect(frame index, image) for the detection frames: --people-from, --boxes, --box or the whole frame."""
    if args.people_from:
        from posekit.inference import PoseEstimator
        from posekit.runtime.bottomup import people_boxes_fn

        people = people_boxes_fn(PoseEstimator(args.people_from, device=args.device, flip_test=not args.no_flip))
        return lambda index, image: people(Path(name), image, index)
    if args.boxes:
        from posekit.runtime.capture import read_video_detections

        dets = read_video_detections(args.boxes, args.box_threshold)
        frames = {**dets.get(None, {}), **dets.get(Path(name).name, {})}
        return lambda index, image: frames.get(index, np.zeros((0, 5)))
    if args.box:
        from posekit.cli.infer import parse_box

        fixed = np.asarray([parse_box(b) for b in args.box], np.float64)
        return lambda index, image: fixed
    return lambda index, image: None  # the whole frame


def run_track(args: argparse.Namespace, est: Any) -> int:
    """Track every input; print the live frame rate and a summary."""
    from posekit.runtime.capture import open_source
    from posekit.runtime.tracking import Tracker, TrackerConfig

    if args.detect_every < 1 or args.memory < 0:
        raise ConfigError(f"--detect-every must be >= 1 and --memory >= 0, got {args.detect_every}, {args.memory}")
    if args.gt_images:
        raise ConfigError("--gt-images maps image ids of photos; with --track, --boxes entries name the frame")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for vid, spec in enumerate(args.inputs):
        source = open_source(spec, live=True if args.live else None)
        try:
            tracker = Tracker(TrackerConfig(similarity=args.similarity, memory=args.memory, flow=args.flow,
                                            smooth=args.smooth, fps=source.fps), est.skeleton.sigmas_array)
            _track_one(args, est, source, tracker, vid, out / _safe_stem(source.name))
        finally:
            source.close()
    return 0


def _track_one(args: argparse.Namespace, est: Any, source: Any, tracker: Any, vid: int, stem: Path) -> None:
    from posekit.inference import video_writer
    from posekit.runtime.capture import PoseTrackWriter
    from posekit.runtime.tracking import track_source
    from posekit.vis.tracks import draw_tracks

    detect = _detector(args, est, source.name)
    min_person = args.person_threshold or 0.0
    json_path = stem.parent / f"{stem.name}_tracks.json"
    category = {"id": 1, "name": "person", "keypoints": list(est.skeleton.keypoints),
                "skeleton": [[a + 1, b + 1] for a, b in est.skeleton.links]}
    writer = None
    frames = poses_total = 0
    ids: set[int] = set()
    t0 = last_print = time.perf_counter()
    try:
        with PoseTrackWriter(json_path, [category]) as results:
            for r in track_source(source, est, tracker, detect, args.detect_every):
                image = {"id": r.index + 1, "file_name": f"{source.name}#{r.frame}", "vid_id": vid,
                         "frame_id": r.frame, "width": int(r.image.shape[1]), "height": int(r.image.shape[0])}
                anns = [{**p.to_coco(r.index + 1), "track_id": int(p.track_id)} for p in r.poses]
                results.write(image, anns)
                frames += 1
                poses_total += len(anns)
                ids.update(a["track_id"] for a in anns if a["track_id"] >= 0)
                if not args.no_draw:
                    if writer is None:
                        writer = video_writer(stem.parent / f"{stem.name}_track.mp4", source.fps,
                                              (r.image.shape[1], r.image.shape[0]))
                    shown = [p for p in r.poses if p.score >= min_person]
                    drawn = draw_tracks(r.image, shown, est.skeleton, threshold=args.threshold)
                    writer.write(np.ascontiguousarray(drawn[:, :, ::-1]))
                now = time.perf_counter()
                if now - last_print >= 2.0:
                    last_print = now
                    print(f"{source.name}: frame {r.frame}, {frames / (now - t0):.1f} frames/s, "
                          f"{len(ids)} ids, {source.dropped} dropped", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print(f"posekit infer: interrupted; {frames} frames ({poses_total} poses) kept in {json_path}",
              file=sys.stderr)
        raise
    finally:
        if writer is not None:
            writer.release()
    dt = time.perf_counter() - t0
    print(f"posekit infer --track: {source.name}: {frames} frames, {poses_total} poses, {len(ids)} track ids, "
          f"{frames / max(dt, 1e-9):.1f} frames/s{f', {source.dropped} frames dropped (live)' if source.live else ''}"
          f" -> {json_path}{'' if args.no_draw else f', {stem.name}_track.mp4'} (backend {est.backend.name})")
