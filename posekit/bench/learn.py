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

from posekit.cli.tables import format_table

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
    parser.add_argument("--candidate", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                        help="a variant of the demo config to compare (repeatable), e.g. "
                             "'r18:MODEL.ZOO=simplebaseline_res18_128x96,MODEL.CODEC=dark'; an item '@FILE' trains "
                             "another config instead, e.g. 'prtr:@configs/synth/prtr_demo_backbone.yaml,"
                             "MODEL.PRETRAINED=out/demo/model.pth' (PRTR from the demo model's backbone); each trains "
                             "for --minutes on the same data, one after the other, into OUT/NAME")
    parser.add_argument("--max-yaw", type=float, default=None,
                        help="body yaw range of the generated people in degrees (default: the demo's, 90; 180 = "
                             "seen from every side)")


def parse_candidate(text: str) -> tuple[str, list[str]]:
    """'NAME:KEY=VALUE,KEY=VALUE' -> (NAME, overrides); an '@FILE' item (the candidate's own config) is kept."""
    from posekit.errors import ConfigError

    name, _, rest = text.partition(":")
    overrides = [o.strip() for o in rest.split(",") if o.strip()]
    configs = [o for o in overrides if o.startswith("@")]
    if not name or len(configs) > 1 or any("=" not in o and not o.startswith("@") for o in overrides):
        raise ConfigError(f"--candidate {text!r}: expected NAME:KEY=VALUE,KEY=VALUE (at most one @CONFIG item)")
    return name, overrides


def _ap_at(points: list[dict[str, Any]], minute: float) -> float | None:
    """AP of the last evaluation at or before `minute` training minutes (within 2 s), None before the first."""
    seen = [p["AP"] for p in points if p["minutes"] <= minute + 2.0 / 60.0]
    return seen[-1] if seen else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train with periodic held-out evaluations; returns the AP-vs-time points and the run's summary."""
    from dataclasses import replace

    from posekit.engine.demo import DataSettings

    data = DataSettings()
    if args.num_train:
        data = replace(data, num_train=args.num_train)
    if args.num_val:
        data = replace(data, num_val=args.num_val)
    if args.max_yaw is not None:
        data = replace(data, max_yaw=float(args.max_yaw))
    if not args.candidate:
        return _run_one(args, data, args.out, [])
    runs = []
    for text in args.candidate:
        name, overrides = parse_candidate(text)
        result = _run_one(args, data, f"{args.out}/{name}", overrides)
        marks = {f"AP@{m:g}min": _ap_at(result["points"], m) for m in (2, 5, 10, 15) if m <= args.minutes + 1e-9}
        runs.append({"name": name, "overrides": overrides, **{k: result[k] for k in (
            "model", "codec", "input_size", "train_images_per_s", "iterations", "train_minutes")},
            **marks, "AP": result["final"]["AP"], "AP .75": result["final"]["AP .75"], "png": result["png"]})
    return {"candidates": runs, "budget_minutes": args.minutes, "max_yaw": data.max_yaw}


def _run_one(args: argparse.Namespace, data: Any, out: str, overrides: list[str]) -> dict[str, Any]:
    from posekit.engine.demo import run_demo

    progress = partial(__import__("tqdm").tqdm, file=sys.stderr, leave=False) if args.progress else None
    config = next((o[1:] for o in overrides if o.startswith("@")), args.config)
    overrides = [o for o in overrides if not o.startswith("@")]
    result = run_demo(out, data_dir=args.data, minutes=args.minutes, seed=args.seed, progress=progress,
                      config=config, overrides=overrides, data=data, eval_every=args.every,
                      threads=args.threads)
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
    """AP vs training minutes table, then the final 10 COCO stats (or the candidates side by side)."""
    if "candidates" in result:
        keys = [k for k in ("AP@2min", "AP@5min", "AP@10min", "AP@15min") if any(k in c for c in result["candidates"])]
        rows = [[c["name"], c["model"], f"{c['input_size'][1]}x{c['input_size'][0]}", c["codec"],
                 f"{c['train_images_per_s']:.0f}", *("-" if c.get(k) is None else f"{c[k]:.3f}" for k in keys),
                 f"{c['AP']:.3f}", f"{c['AP .75']:.3f}"] for c in result["candidates"]]
        return (f"{result['budget_minutes']:g} training minutes each, max yaw {result['max_yaw']:g} degrees\n"
                + format_table(rows, ["candidate", "model", "crop", "codec", "img/s", *keys, "final AP", "AP .75"]))
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
