"""`posekit bench NAME [--json]`: speed / accuracy benchmarks (see posekit.bench)."""

from __future__ import annotations

import argparse
import json

HELP = ("run a benchmark (codecs, pipeline, inference, e2e, eval, learn, learn3d, bottomup, adapt, track): a table "
        "or --json")

# benchmark name -> module under posekit.bench; each defines HELP, add_arguments(p), run(args) -> dict,
# render(result) -> str.
BENCHES = ("codecs", "pipeline", "inference", "e2e", "eval", "learn", "learn3d", "bottomup", "adapt", "track")


def _modules() -> dict[str, object]:
    from posekit.cli import present_modules

    return present_modules("posekit.bench", BENCHES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, mod in _modules().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")
        mod.add_arguments(p)
        p.set_defaults(_bench=mod)


def run(args: argparse.Namespace) -> int:
    mod = args._bench
    result = mod.run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(mod.render(result))
    return 0
