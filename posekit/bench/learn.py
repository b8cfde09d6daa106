"""`posekit bench learn [--minutes M]`: held-out COCO AP of the demo model against training wall-clock.

Runs the demo (`posekit.engine.demo.run_demo`: same data, config and time-based schedule) with held-out evaluations on
the whole val split every `--every` training seconds, and reports AP vs training minutes as a table and a PNG.
Training time counts the training loop only; the evaluations are timed separately.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import Any

from posekit.tables import format_table

HELP = "held-out COCO AP of the demo model vs training wall-clock (synthetic data; table + PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget in minutes (default 10)")
    parser.add_argument("--every", type=float, default=60.0, help="training seconds between evaluations (default 60)")
    parser.add_argument("--out", default="out/bench_learn", help="output folder (default out/bench_learn)")
    parser.add_argument("--data", default="data/synth_demo", help="synthetic data folder (default data/synth_demo)")
    parser.add_argument("--config", default=None, help="demo config (default: posekit/configs/demo.yaml)")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--num-train", type=int, default=None, help="training images to generate (default: the demo's)")
    parser.add_argument("--num-val", type=int, default=None, help="held-out images to generate (default: the demo's)")
    parser.add_argument("--progress", action="store_true", help="progress bars on stderr")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train with periodic held-out evaluations; returns the AP-vs-time points and the run's summary."""
    from dataclasses import replace

    from posekit.engine.demo import DataSettings, run_demo

    data = DataSettings()
    if args.num_train:
        data = replace(data, num_train=args.num_train)
    if args.num_val:
        data = replace(data, num_val=args.num_val)
    progress = partial(__import__("tqdm").tqdm, file=sys.stderr, leave=False) if args.progress else None
    result = run_demo(args.out, data_dir=args.data, minutes=args.minutes, seed=args.seed, progress=progress,
                      config=args.config, data=data, eval_every=args.every, threads=args.threads)
    points = [{"minutes": p["minutes"], "iteration": p["iteration"], "AP": p["AP"], "eval_images": "all"}
              for p in result["curve"] if "AP" in p]
    return {"model": result["model"], "codec": result["codec"], "input_size": result["input_size"],
            "threads": result["threads"], "budget_minutes": result["budget_minutes"],
            "train_minutes": result["train_minutes"], "iterations": result["iterations"],
            "train_images_per_s": result["train_images_per_s"], "val_images": result["val_images"],
            "val_people": result["val_people"], "final": {k: result[k] for k in _stat_names()},
            "target_ap": result["target_ap"], "points": points, "png": result["files"]["curve_png"],
            "out_dir": result["out_dir"]}


def _stat_names() -> tuple[str, ...]:
    from posekit.evaluation.coco import STAT_NAMES

    return STAT_NAMES


def render(result: dict[str, Any]) -> str:
    """AP vs training minutes table, then the final 10 COCO stats."""
    w, h = result["input_size"]
    head = (f"{result['model']} ({result['codec']}, input {h}x{w}), {result['threads']} threads, "
            f"{result['train_images_per_s']:.0f} train img/s; held-out split {result['val_images']} images / "
            f"{result['val_people']} people, GT boxes, flip test")
    rows = [[f"{p['minutes']:.2f}", p["iteration"], f"{p['AP']:.4f}", p["eval_images"]] for p in result["points"]]
    table = format_table(rows, ["train min", "iteration", "AP", "eval images"])
    names = list(result["final"])
    final = format_table([[f"{result['final'][k]:.4f}" for k in names]], names)
    first = next((p["minutes"] for p in result["points"] if p["AP"] >= result["target_ap"]), None)
    reached = (f"AP >= {result['target_ap']:.2f} first seen at {first:.2f} training minutes" if first is not None
               else f"AP >= {result['target_ap']:.2f} not reached in {result['train_minutes']:.1f} minutes")
    return "\n".join([head, table, "", "final (all held-out images):", final, reached, f"curve: {result['png']}"])
