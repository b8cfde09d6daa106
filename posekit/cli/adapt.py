"""`posekit adapt CONFIG [KEY=VALUE...] [--out DIR] [--resume] [--json]`: domain adaptation, like `posekit train`.

CONFIG is an experiment YAML with an ADAPT section (posekit/configs/adapt/*.yaml: the built-in test beds, generated
on first use under ADAPT.DATA_ROOT; a bare test-bed name such as `quadruped` finds the shipped file).
"""

from __future__ import annotations

import argparse
import json
import shlex
import warnings
from pathlib import Path
from typing import Any

from posekit.cli.tables import format_table

HELP = "adapt a pose network from a labelled source to an unlabelled target domain (CC-SSL, WS-CDA, AdaBN)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="adaptation YAML (posekit/configs/adapt/*.yaml), or a shipped config's name: "
                                       "quadruped, quadruped_official, people")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. ADAPT.METHOD=wscda ADAPT.TARGET_WEIGHT=2 TRAIN.MAX_MINUTES=5")
    parser.add_argument("--out", help="output folder (default: OUTPUT_DIR/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pth")
    parser.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    parser.add_argument("--json", action="store_true", help="print the final summary as one JSON object only")


def _event(kind: str, info: dict[str, Any]) -> None:
    if kind == "init":
        print(f"source weights: {info['weights']}", flush=True)
    elif kind == "pseudo_labels":
        prec = info.get("kept_precision")
        shown = "" if prec is None else f", {prec:.1%} of them correct (hidden GT)"
        print(f"round {info['round']}: pseudo labels kept {info['kept_fraction']:.0%} (threshold "
              f"{info['threshold']:.4f}){shown}", flush=True)
    elif kind == "epoch":
        parts = [f"epoch {info['epoch']}", f"loss {info.get('loss', float('nan')):.5f}"]
        parts += [f"{k[5:]} {v:.5f}" for k, v in info.items() if k.startswith("loss_")]
        m = info.get("metrics") or {}
        parts += [f"target {k} {m[k]:.4f}" for k in ("PCK@0.05", "AP") if k in m]
        print("  ".join(parts), flush=True)


def run(args: argparse.Namespace) -> int:
    from posekit.config import ConfigWarning, load_config
    from posekit.engine.adapt import fill_paths
    from posekit.engine.adapt import run as adapt_run
    from posekit.engine.adapt.testbeds import shipped_config

    path = shipped_config(args.config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        cfg = fill_paths(load_config(path, args.overrides))
    out = Path(args.out) if args.out else Path(cfg.OUTPUT_DIR or "output") / Path(path).stem
    if not args.json:
        print(f"adapting {cfg.MODEL.ZOO or cfg.MODEL.NAME} with {cfg.ADAPT.METHOD}"
              f"{' (official preset)' if cfg.ADAPT.PRESET else ''} -> {out}", flush=True)
    summary = adapt_run(cfg, out, resume=args.resume, device=args.device, on_event=None if args.json else _event)
    if args.json:
        print(json.dumps({k: summary[k] for k in ("method", "stop_reason", "epoch", "iteration", "units",
                                                  "metrics", "rounds", "final_weights")} | {"out_dir": str(out)}))
    else:
        _print_summary(summary)
    if summary["stop_reason"] in ("interrupted", "stopped"):
        again = ["posekit", "adapt", args.config, *args.overrides, "--out", str(out), "--resume"]
        if not args.json:
            print(f"interrupted: checkpoint written to {summary['checkpoint']}; continue with: "
                  + " ".join(shlex.quote(a) for a in again), flush=True)
        return 130
    return 0


def _print_summary(summary: dict[str, Any]) -> None:
    metrics = summary["metrics"] or {}
    rows = [[k.replace("PCK@0.05 ", "") if k != "PCK@0.05" else "mean", v] for k, v in metrics.items()
            if k.startswith("PCK")]
    rows += [[k, v] for k, v in metrics.items() if k.startswith("AP")]
    print(format_table(rows, ["target held-out", "PCK@0.05 / AP"], digits=4))
    print(f"stopped: {summary['stop_reason']} after {summary['epoch']} epochs, {summary['iteration']} steps, "
          f"{summary['units']:.0f} compute units; weights {summary['final_weights']}")
