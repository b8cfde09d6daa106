"""`posekit demo [--out out/demo] [--minutes M]`: synthetic people -> train a small CPU model -> COCO AP -> pictures."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from typing import Any

from posekit.cli.tables import format_table

HELP = "generate synthetic people, train a small model for a few CPU minutes, score held-out COCO AP, draw pictures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--data", default="data/synth_demo",
                        help="synthetic data folder, generated on first use and reused (default data/synth_demo)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="training wall-clock budget in minutes (default: TRAIN.MAX_MINUTES of the config, 10)")
    parser.add_argument("--config", default=None, help="demo config (default: posekit/configs/demo.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. TRAIN.LR=0.002")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the data (train: seed, val: seed + 1) and of training")
    parser.add_argument("--num-train", type=int, default=None, help="training images to generate")
    parser.add_argument("--num-val", type=int, default=None, help="held-out images to generate")
    parser.add_argument("--eval-every", type=float, default=None,
                        help="training seconds between held-out evaluations for the curve (default: the config's "
                             "TRAIN.VAL_EVERY_MINUTES; 0: only the final one)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print metrics.json to stdout at the end")


def _event(kind: str, info: dict[str, Any]) -> None:
    if kind == "data":
        for split, d in info.items():
            how = "reused" if d["reused"] else f"generated in {d['seconds']:.0f} s"
            print(f"data: {split} {d['num_images']} images (seed {d['seed']}) in {d['dir']}: {how}", flush=True)
    elif kind == "model":
        w, h = info["input_size"]
        print(f"training {info['model']} ({info['codec']} codec, input {h}x{w}) for {info['minutes']:g} min on "
              f"{info['threads']} CPU threads" + (f" ({info['autocast']} autocast)" if info.get("autocast") else ""),
              flush=True)
    elif kind == "eval":
        print(f"  {info['minutes']:5.2f} min  iteration {info['iteration']:5d}  held-out AP       "
              f"{info['ap']:.4f}", flush=True)
    elif kind == "final":
        print(f"  {info['minutes']:5.2f} min  iteration {info['iteration']:5d}  held-out AP (all)    "
              f"{info['ap']:.4f}  ({info['eval_seconds']:.0f} s)", flush=True)


def metric_table(result: dict[str, Any]) -> str:
    """The 10 COCO stats as a one-row table."""
    from posekit.evaluation.coco import STAT_NAMES

    return format_table([[f"{result[k]:.4f}" for k in STAT_NAMES]], list(STAT_NAMES))


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from posekit.engine.demo import DataSettings, run_demo

    data = DataSettings()
    if args.num_train:
        data = replace(data, num_train=args.num_train)
    if args.num_val:
        data = replace(data, num_val=args.num_val)
    progress = None
    if not args.no_progress:
        from tqdm import tqdm

        progress = partial(tqdm, file=sys.stderr, dynamic_ncols=True, leave=False)
    result = run_demo(args.out, data_dir=args.data, minutes=args.minutes, seed=args.seed, progress=progress,
                      config=args.config, overrides=args.overrides, data=data, eval_every=args.eval_every,
                      threads=args.threads, on_event=None if args.json else _event)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k not in ("curve", "data", "files", "total_seconds")}))
        return 0
    print()
    print(f"COCO keypoint AP on the held-out split ({result['val_images']} images, {result['val_people']} people, "
          f"GT boxes, flip test) after {result['train_minutes']:.1f} min of training "
          f"({result['iterations']} iterations, "
          f"{result['train_images_per_s']:.0f} img/s):")
    print(metric_table(result))
    if result["target_ap"] is not None:  # only the default demo (heatmap model) has a target
        ok = "reached" if result["AP"] >= result["target_ap"] else "NOT reached"
        print(f"target AP >= {result['target_ap']:.2f}: {ok}")
    files = result["files"]
    print(f"wrote {result['out_dir']}/: model.pth, config.yaml, metrics.json, curve.png, results.json, "
          f"predictions.png + {len(files['pictures']) - 1} pictures in predictions/  "
          f"(total {result['total_seconds'] / 60:.1f} min)")
    return 0
