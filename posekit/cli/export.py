"""`posekit export`: a model with its weights -> ONNX, checked against PyTorch in onnxruntime.

The model spec (input size, codec, skeleton, colour order) is the one stored in a posekit weights file, else the
zoo entry of --model or the --config; a disagreement is an error. The spec is written into the ONNX metadata
(key "posekit_spec", JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HELP = "export a zoo model with its weights to ONNX and print the max abs difference to PyTorch (onnxruntime)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from posekit.export import OPSET

    parser.add_argument("--model", help="zoo model name (`posekit models` lists them); optional when --weights is a "
                                        "posekit weights file, which carries its model spec")
    parser.add_argument("--config", metavar="YAML", help="the training config of --weights (model, input size)")
    parser.add_argument("--weights", help="checkpoint file (official or posekit); required unless --random-weights")
    parser.add_argument("--random-weights", action="store_true",
                        help="export a randomly initialised network without --weights (for tests only)")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--dynamic-batch", action="store_true", help="a variable batch dimension (default: 1)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset version (default {OPSET})")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="fail (exit 1) when the ONNX/PyTorch max abs difference exceeds this (default 1e-3)")


def run(args: argparse.Namespace) -> int:
    from posekit.cli import model_spec_of
    from posekit.export import add_metadata, export_onnx, onnx_opset
    from posekit.inference import load_network

    spec = model_spec_of(args, "export a randomly initialised network on purpose")
    spec, model, _, source = load_network(args.model, args.weights, spec)
    t0 = time.perf_counter()
    diff = export_onnx(model, spec.input_size, args.out, dynamic_batch=args.dynamic_batch, opset=args.opset)
    add_metadata(args.out, {"posekit_spec": json.dumps(spec.to_dict())})
    dt = time.perf_counter() - t0
    w, h = spec.input_size
    size_mb = Path(args.out).stat().st_size / 2**20
    batch = "N" if args.dynamic_batch else "1"
    print(f"posekit export: {spec.name} -> {args.out} ({size_mb:.1f} MiB, opset {onnx_opset(args.out)}, input "
          f"[{batch},3,{h},{w}] {'RGB' if spec.color_rgb else 'BGR'}, codec {spec.codec}; {source}"
          f"{', random weights' if args.weights is None else ''}) in {dt:.1f} s")
    print(f"max abs diff onnxruntime vs PyTorch: {diff:.3g}")
    if not diff <= args.tolerance:
        print(f"posekit export: error: difference {diff:.3g} exceeds --tolerance {args.tolerance:g}", file=sys.stderr)
        return 1
    return 0
