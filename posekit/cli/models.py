"""`posekit models [NAME ...] [--json]`: the model zoo with measured params, GMACs and paper GFLOPs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch

from posekit import models
from posekit.cli.tables import format_table
from posekit.errors import ConfigError
from posekit.models.complexity import measure

HELP = "list zoo models: params, GMACs, paper GFLOPs (measured by tracing), input size, codec"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="only these models (default: all)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects instead of a table")


def describe(name: str) -> dict[str, Any]:
    """`posekit.models.info(name)`, measured on a meta-device build (shapes only) when the builder allows it."""
    e = models.entry(name)
    try:
        with torch.device("meta"):
            model = models.build(name)
    except (RuntimeError, NotImplementedError):
        return models.info(name)
    return {"name": name, "family": e.family, "input_size": list(e.input_size), "heatmap_size": list(e.heatmap_size),
            "codec": e.codec, "skeleton": e.skeleton, **measure(model, e.input_size)}


def run(args: argparse.Namespace) -> int:
    names = args.names or models.names()
    unknown = [n for n in names if n not in models.names()]
    if unknown:
        raise ConfigError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(models.names())}")
    rows = [describe(n) for n in names]
    if args.json:
        print(json.dumps(rows))
        return 0
    table = [[r["name"], round(r["params_m"], 3), round(r["gmacs"], 3), round(r["paper_gflops"], 3),
              f"{r['input_size'][1]}x{r['input_size'][0]}", f"{r['heatmap_size'][1]}x{r['heatmap_size'][0]}",
              r["codec"], r["skeleton"]] for r in rows]
    print(format_table(table, ["model", "params (M)", "GMACs", "paper GFLOPs", "input (HxW)", "heatmap",
                               "codec", "skeleton"], digits=3))
    print("GMACs: FlopCounterMode MACs/1e9 at batch 1; paper GFLOPs: official get_model_summary counter "
          "(MACs/2^30, deconvs x4).", file=sys.stderr)
    return 0
