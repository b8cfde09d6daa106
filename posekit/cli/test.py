"""`posekit test CONFIG --weights W [--boxes gt|dets.json] [--no-flip] [--backend B] [--out DIR]`: COCO AP / PCKh."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from functools import partial
from pathlib import Path

from posekit.cli.tables import format_table

HELP = "evaluate weights on a config's test set (GT or detected boxes); writes the results JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from posekit.runtime import backends

    parser.add_argument("config", help="experiment YAML")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--weights", help="checkpoint (official, posekit or MMPose); default TEST.MODEL_FILE")
    parser.add_argument("--boxes", help="'gt' or a COCO person detections JSON (default: from the config)")
    parser.add_argument("--no-flip", action="store_true", help="disable the flip test")
    parser.add_argument("--out", help="output folder for the results JSON (default: OUTPUT_DIR/<config name>)")
    parser.add_argument("--device", help="torch device (default: cuda when present and the backend is torch or "
                                         "folded, else cpu)")
    parser.add_argument("--backend", default="torch",
                        choices=backends.KINDS,
                        help="inference backend (default torch, the reference); ONNX files are cached next to the "
                             "weights; onnxruntime-int8 is calibrated on training-split crops (never test images)")
    parser.add_argument("--calibration-size", type=int, default=64,
                        help="onnxruntime-int8: network inputs to calibrate on (training crops and their mirrors, "
                             "default 64)")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from posekit.config import ConfigWarning, dataset_format, load_config
    from posekit.engine.test import evaluate
    from posekit.evaluation.results import write_results

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        cfg = load_config(args.config, args.overrides)
    from posekit.engine.checkpoint import ensure_writable_dir

    out = Path(args.out) if args.out else Path(cfg.OUTPUT_DIR or "output") / Path(args.config).stem
    ensure_writable_dir(out)  # before evaluating everything
    progress = None
    if not (args.no_progress or args.json):
        from tqdm import tqdm

        progress = partial(tqdm, file=sys.stderr, dynamic_ncols=True, leave=False)
    metrics, results = evaluate(cfg, args.weights, boxes=args.boxes, flip=False if args.no_flip else None,
                                device=args.device, progress=progress, backend=args.backend,
                                calibration_size=args.calibration_size)
    name = f"keypoints_{cfg.DATASET.TEST_SET}_results.json"
    path = write_results(results, out / name)
    if args.json:
        print(json.dumps(metrics))
        return 0
    kind = "PCKh" if dataset_format(cfg) == "mpii" else "COCO keypoints"
    print(f"{kind} on {cfg.DATASET.TEST_SET} ({len(results)} results) -> {path}")
    print(format_table([list(metrics.values())], list(metrics.keys())))
    return 0
