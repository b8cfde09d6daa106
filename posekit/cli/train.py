"""`posekit train CONFIG [KEY=VALUE...] [--resume] [--out DIR]`: train a model from an experiment YAML."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from functools import partial
from pathlib import Path
from typing import Any

from posekit.cli.tables import format_table

HELP = "train a model from a YAML config (official HRNet vocabulary); KEY=VALUE overrides, --resume"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML (configs/coco/*.yaml, or an official HRNet/LPN/DarkPose one)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. TRAIN.LR=0.0005 TRAIN.LR_STEP=[170,200] DATASET.ROOT=data/coco")
    parser.add_argument("--out", help="output folder (default: OUTPUT_DIR/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pth")
    parser.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def default_out_dir(cfg: Any, config_path: str) -> Path:
    """OUTPUT_DIR/<config file stem>."""
    return Path(cfg.OUTPUT_DIR or "output") / Path(config_path).stem


def _say(main: bool, text: str) -> None:
    if main:
        print(text, flush=True)


def _epoch_line(s: dict[str, Any]) -> str:
    parts = [f"epoch {s['epoch']}", f"loss {s['loss']:.6f}"]
    if s.get("acc") is not None:
        parts.append(f"acc {s['acc']:.3f}")
    parts.append(f"lr {s['lr']:.3g}")
    parts.append(f"{s['seconds']:.1f}s")
    for k in ("AP", "AP .5", "Mean"):
        if k in s.get("metrics", {}):
            parts.append(f"{k} {s['metrics'][k]:.4f}")
    if s.get("best"):
        parts.append("(best)")
    return "  ".join(parts)


def run(args: argparse.Namespace) -> int:
    from posekit.config import ConfigWarning, load_config
    from posekit.engine.train import fit, spec_summary

    main = int(os.environ.get("RANK", "0")) == 0
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore", ConfigWarning)
        cfg = load_config(args.config, args.overrides)
    if cfg.unused:
        _say(main, "note: config keys accepted but not used: " + "; ".join(cfg.unused))
    out = Path(args.out) if args.out else default_out_dir(cfg, args.config)
    spec = spec_summary(cfg)
    _say(main, f"training {spec['model']} ({spec['codec']} codec, {spec['skeleton']}, input "
               f"{spec['input_size'][0]}x{spec['input_size'][1]}) -> {out}")
    progress = None
    if main and not args.no_progress:
        from tqdm import tqdm

        progress = partial(tqdm, file=sys.stderr, unit="it", dynamic_ncols=True, leave=False)
    def event(kind: str, info: dict) -> None:
        if kind == "pretrained":
            _say(main, "MODEL.PRETRAINED " + info["summary"])
        elif kind == "resume":
            _say(main, f"resuming {info['checkpoint']}: epoch {info['epoch']} step {info['step']} "
                       f"(iteration {info['iteration']})")
        elif kind == "eval":
            m = info["metrics"]
            shown = "  ".join(f"{k} {m[k]:.4f}" for k in list(m)[:3] if isinstance(m[k], float))
            _say(main, f"  held-out at iteration {info['iteration']} ({info['train_minutes']:.1f} min): {shown}"
                       + ("  (best)" if info.get("best") else ""))

    result = fit(cfg, out, resume=args.resume, progress=progress,
                 on_epoch=lambda s: _say(main, _epoch_line(s)), device=args.device, on_event=event)
    if not main:
        return 0
    rows = [["stopped", result["stop_reason"]], ["epochs done", result["epoch"]],
            ["iterations", result["iteration"]],
            [f"best {result['metric']}", "-" if result["best_metric"] is None else f"{result['best_metric']:.4f}"],
            ["checkpoint", result["checkpoint"]]]
    for key in ("best_weights", "final_weights", "last_weights"):
        if result[key]:
            rows.append([key.replace("_", " "), result[key]])
    print(format_table(rows, ["result", "value"]))
    if result["stop_reason"] != "completed":
        import shlex

        again = ["posekit", "train", args.config, *args.overrides, "--out", str(out), "--resume"]
        if result["stop_reason"] in ("max_iters", "max_minutes"):
            print(f"(stopped by TRAIN.{result['stop_reason'].upper()}: raise it on the resumed run to go further)")
        print("continue with: " + " ".join(shlex.quote(a) for a in again))
    return 130 if result["stop_reason"] == "interrupted" else 0
