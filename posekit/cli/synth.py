"""`posekit synth --out DIR --num-images N`: render a synthetic COCO-format keypoint dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posekit.errors import ConfigError

HELP = "render a synthetic COCO keypoint dataset (people or quadrupeds, exact 2-D/3-D labels)"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 256x256, got {text!r}") from None
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder: DIR/images/*.jpg and DIR/annotations.json")
    parser.add_argument("--num-images", type=int, required=True, help="number of images")
    parser.add_argument("--kind", choices=("human", "quadruped"), default="human",
                        help="figures: people (COCO-17 keypoints) or quadrupeds (AP-10K keypoints)")
    parser.add_argument("--style", choices=("A", "B"), default="A",
                        help="rendering domain: A shaded/textured scenes, B flat cartoon")
    parser.add_argument("--max-subjects", type=int, default=3, help="at most this many figures per image")
    parser.add_argument("--seed", type=int, default=0, help="image i depends only on (seed, i)")
    parser.add_argument("--size", type=_size, default=(256, 256), metavar="WxH", help="image size (default 256x256)")
    parser.add_argument("--max-yaw", type=float, default=180.0, metavar="DEG",
                        help="bodies turn in [-DEG, DEG] around the vertical (default 180; 0 = facing the camera)")
    parser.add_argument("--tracks", action="store_true",
                        help="multi-person video sequences with identities (people walk, cross, occlude each other, "
                             "enter and leave): PoseTrack-style vid_id/frame_id and track_id/bbox_head fields")
    parser.add_argument("--sequence-length", type=int, default=None, metavar="L",
                        help="frames per sequence (default 1; 60 with --tracks)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--preview", action="store_true", help="also write DIR/preview.png, a 4x4 contact sheet")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from posekit.data.synth import contact_sheet, generate
    from posekit.data.synth.preview import write_png

    if args.num_images < 1:
        raise ConfigError(f"--num-images: expected >= 1, got {args.num_images}")
    length = args.sequence_length if args.sequence_length is not None else (60 if args.tracks else 1)
    options = {"sequence_length": length, "tracks": True} if args.tracks else {}
    if length != 1 and not args.tracks:
        options["sequence_length"] = length
    with tqdm(total=args.num_images, unit="img", file=sys.stderr, disable=args.no_progress, desc="synth") as bar:
        summary = generate(args.out, args.num_images, kind=args.kind, style=args.style,
                           max_subjects=args.max_subjects, seed=args.seed, workers=args.workers,
                           image_size=args.size, progress=bar.update, max_yaw=args.max_yaw, **options)
    print(f"wrote {summary['num_images']} images, {summary['num_instances']} {args.kind} instances "
          f"({summary['visible_fraction']:.0%} keypoints visible, {summary['occluded_fraction']:.0%} occluded)")
    print(f"annotations: {summary['ann_file']}"
          + (" (with 3-D joints + intrinsics: DATASET.FORMAT synth3d)" if args.kind == "human" else ""))
    print(f"images:      {summary['image_root']}")
    if args.preview:
        path = Path(args.out) / "preview.png"
        write_png(path, contact_sheet(summary["ann_file"], summary["image_root"]))
        print(f"preview:     {path}")
    print(f"{summary['images_per_s']:.1f} images/s ({summary['seconds']:.2f} s, {summary['workers']} workers)")
    return 0
