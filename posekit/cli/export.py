"""`posekit export`: a zoo model with its weights -> ONNX, checked against PyTorch in onnxruntime."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from posekit.errors import ConfigError

HELP = "export a zoo model with its weights to ONNX and print the max abs difference to PyTorch (onnxruntime)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from posekit.export import OPSET

    parser.add_argument("--model", required=True, help="zoo model name (`posekit models` lists them)")
    parser.add_argument("--weights", help="checkpoint file (official or posekit); required unless --random-weights")
    parser.add_argument("--random-weights", action="store_true",
                        help="export a randomly initialised network without --weights (for tests only)")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--dynamic-batch", action="store_true", help="a variable batch dimension (default: 1)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset version (default {OPSET})")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="fail (exit 1) when the ONNX/PyTorch max abs difference exceeds this (default 1e-3)")


def run(args: argparse.Namespace) -> int:
    from posekit import models
    from posekit.export import export_onnx
    from posekit.models.checkpoint import load_checkpoint

    if args.weights is None and not args.random_weights:
        raise ConfigError("--weights is required (a checkpoint of --model); pass --random-weights to export a "
                          "randomly initialised network on purpose")
    entry = models.entry(args.model)
    model = models.build(args.model)
    if args.weights is not None:
        load_checkpoint(model, args.weights, strict=True)
    t0 = time.perf_counter()
    diff = export_onnx(model, entry.input_size, args.out, dynamic_batch=args.dynamic_batch, opset=args.opset)
    dt = time.perf_counter() - t0
    w, h = entry.input_size
    size_mb = Path(args.out).stat().st_size / 2**20
    batch = "N" if args.dynamic_batch else "1"
    print(f"posekit export: {args.model} -> {args.out} ({size_mb:.1f} MiB, opset {args.opset}, input "
          f"[{batch},3,{h},{w}]{', random weights' if args.weights is None else ''}) in {dt:.1f} s")
    print(f"max abs diff onnxruntime vs PyTorch: {diff:.3g}")
    if not diff <= args.tolerance:
        print(f"posekit export: error: difference {diff:.3g} exceeds --tolerance {args.tolerance:g}", file=sys.stderr)
        return 1
    return 0
