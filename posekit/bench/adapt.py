"""`posekit bench adapt [--testbed quadruped|people]`: source-only, AdaBN, CC-SSL and WS-CDA side by side.

From one shared source checkpoint (a source stage of `--source-units`, or `--source WEIGHTS`, e.g. the demo model
for the people test bed), every method runs with the same compute budget after it (`--budget` image-forward units:
a training image counts 3, a labelling pass or an AdaBN image 1, so CC-SSL's and WS-CDA's labelling comes out of
their budget; scoring is not counted). Reported per method: the held-out target metric per stage (PCK@0.05 for the
quadrupeds, COCO AP on GT boxes for people), steps, units, wall minutes, and per pseudo-label round the precision of
the kept labels against the hidden target GT and per confidence decile. The source checkpoint is also scored on
held-out SOURCE-style images (the size of the domain gap). `--official ccssl,wscda` adds official-preset runs.
Writes OUT/plot.png (target metric vs compute units per method) and OUT/result.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from posekit.cli.tables import format_table

HELP = "domain adaptation at equal compute: source-only, AdaBN, CC-SSL, WS-CDA on a built-in test bed"
METHODS = ("source", "adabn", "ccssl", "wscda")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--testbed", choices=("quadruped", "people"), default="quadruped")
    parser.add_argument("--out", default=None, help="output folder (default out/bench_adapt/<testbed>)")
    parser.add_argument("--data", default="data/adapt", help="test-bed data root (generated on first use)")
    parser.add_argument("--source", help="source weights to start every method from (default: a source stage)")
    parser.add_argument("--source-units", type=float, default=150_000,
                        help="compute units of the shared source stage (default 150000)")
    parser.add_argument("--budget", type=float, default=60_000, help="compute units per method after the source "
                                                                      "checkpoint (default 60000)")
    parser.add_argument("--lr", type=float, default=3e-4,
                        help="learning rate of every method after the source checkpoint (fresh optimizer, cosine decay "
                             "over --budget; default 3e-4); the source stage keeps the config's TRAIN.LR")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--official", default="", metavar="METHODS",
                        help="also run these methods (ccssl,wscda) with ADAPT.PRESET=official")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--scale", type=float, default=1.0, help="scale the test bed's image counts (smoke tests)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _config(args: argparse.Namespace, extra: list[str]) -> Any:
    from posekit.config import load_config
    from posekit.engine.adapt import testbeds
    from posekit.engine.adapt.testbeds import shipped_config

    cfg = load_config(shipped_config(args.testbed), [f"ADAPT.DATA_ROOT={args.data}", *args.set, *extra])
    folders = testbeds.ensure(Path(args.data) / args.testbed, _bed(args))
    for split, (sec, pre) in {"source": ("DATASET", "TRAIN"), "target_val": ("DATASET", "TEST"),
                              "target_train": ("ADAPT", "TARGET"), "human": ("ADAPT", "HUMAN")}.items():
        if split in folders and not getattr(getattr(cfg, sec), f"{pre}_ANN"):  # explicit paths win
            setattr(getattr(cfg, sec), f"{pre}_ANN", str(folders[split] / "annotations.json"))
            setattr(getattr(cfg, sec), f"{pre}_IMAGES", str(folders[split] / "images"))
    return cfg


def _bed(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from posekit.engine.adapt import testbeds

    bed = testbeds.BEDS[args.testbed]
    if args.scale == 1.0:
        return bed
    n = {k: max(2 * bed.sequence_length, int(round(getattr(bed, k) * args.scale)))
         for k in ("num_source", "num_target", "num_val", "num_human") if getattr(bed, k)}
    return replace(bed, **n)


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        import sys

        print(text, file=sys.stderr, flush=True)


def _one(args: argparse.Namespace, name: str, extra: list[str]) -> dict[str, Any]:
    """One run (into OUT/name) and its row."""
    from posekit.engine.adapt import run

    cfg = _config(args, ["TRAIN.END_EPOCH=100000", "ADAPT.SOURCE_EPOCHS=0", *extra])

    def event(kind: str, info: dict) -> None:
        if kind == "pseudo_labels":
            _say(args, f"  {name} round {info['round']}: kept {info['kept_fraction']:.0%}, precision "
                       f"{info['kept_precision'] if info['kept_precision'] is not None else float('nan'):.3f}")
        elif kind == "epoch" and "metrics" in info:
            _say(args, f"  {name} {info['units']:.0f} units: {_metric_text(info['metrics'])}")

    start = time.monotonic()
    res = run(cfg, Path(args.out) / name, device=args.device, on_event=event)
    wall = time.monotonic() - start
    stages = [{"units": h["units"], **h["metrics"]} for h in res["history"] if "metrics" in h]
    _say(args, f"{name}: {_metric_text(res['metrics'])} ({wall / 60:.1f} min)")
    return {"name": name, "metrics": res["metrics"], "stages": stages, "rounds": res["rounds"],
            "steps": res["iteration"], "units": res["units"], "minutes": wall / 60, "weights": res["final_weights"]}


def _metric_text(m: dict[str, float]) -> str:
    return "  ".join(f"{k} {m[k]:.4f}" for k in ("PCK@0.05", "AP") if k in m)


def _source_domain(args: argparse.Namespace, weights: str) -> dict[str, float]:
    """The source checkpoint on held-out source-style images: the size of the domain gap."""
    from posekit.engine.adapt import testbeds
    from posekit.engine.adapt.rounds import score
    from posekit.engine.adapt.setup import load_init, setup

    d = testbeds.ensure(Path(args.data) / args.testbed, _bed(args), splits=("source_val",))
    d = d["source_val"]
    cfg = _config(args, ["ADAPT.METHOD=source", f"DATASET.TEST_ANN={d / 'annotations.json'}",
                         f"DATASET.TEST_IMAGES={d / 'images'}", "ADAPT.ADABN=false"])
    st = setup(cfg, args.device)
    load_init(st, weights)
    return score(st)


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.out = args.out or f"out/bench_adapt/{args.testbed}"
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        from posekit.errors import ConfigError

        raise ConfigError(f"--methods: unknown {bad}; expected some of {METHODS}")
    result: dict[str, Any] = {"testbed": args.testbed, "budget": args.budget, "rows": []}
    source = args.source
    if source is None:
        stage = _one(args, "source_stage", ["ADAPT.METHOD=source", "ADAPT.ADABN=false",
                                            f"ADAPT.BUDGET={args.source_units}", "ADAPT.INIT="])
        result["source_stage"] = stage
        source = stage["weights"]
    result["source_weights"] = source
    result["source_domain"] = _source_domain(args, source)
    runs = [(m, [f"ADAPT.METHOD={m}"] + (["ADAPT.ADABN=false"] if m == "source" else [])) for m in methods]
    for m in [m.strip() for m in args.official.split(",") if m.strip()]:
        runs.append((f"{m}_official", [f"ADAPT.METHOD={m}", "ADAPT.PRESET=official"]))
    partial = Path(args.out) / "result.json"
    for name, extra in runs:
        result["rows"].append(_one(args, name, [*extra, f"ADAPT.INIT={source}", f"ADAPT.BUDGET={args.budget}",
                                                f"TRAIN.LR={args.lr}"]))
        partial.write_text(json.dumps(result, indent=1, default=float))  # what is done so far, run by run
    result["plot"] = _plot(result, Path(args.out) / "plot.png")
    partial.write_text(json.dumps(result, indent=1, default=float))
    return result


def _plot(result: dict[str, Any], path: Path) -> str | None:
    """Target metric per stage per method (x: compute units after the source checkpoint)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    key = "AP" if result["testbed"] == "people" else "PCK@0.05"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    base = result["rows"][0]["stages"][0] if result["rows"] and result["rows"][0]["stages"] else None
    for row in result["rows"]:
        xs = [s["units"] for s in row["stages"] if key in s]
        ys = [s[key] for s in row["stages"] if key in s]
        ax.plot(xs, ys, marker="o", label=row["name"])
    if base is not None and "source_stage" in result:
        ax.axhline(result["source_stage"]["metrics"].get(key, float("nan")), color="grey", ls=":",
                   label="source checkpoint")
    ax.set_xlabel("compute units after the source checkpoint (train image 3, labelling pass 1)")
    ax.set_ylabel(f"held-out target {key}")
    ax.set_title(f"posekit bench adapt: {result['testbed']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def render(result: dict[str, Any]) -> str:
    """Method table, per-round pseudo-label precision, deciles of the last round per method."""
    key = "AP" if result["testbed"] == "people" else "PCK@0.05"
    rows = []
    if "source_stage" in result:
        s = result["source_stage"]
        rows.append(["source checkpoint", s["metrics"].get("PCK@0.05"), s["metrics"].get("AP"), s["steps"],
                     s["units"], s["minutes"]])
    for r in result["rows"]:
        rows.append([r["name"], r["metrics"].get("PCK@0.05"), r["metrics"].get("AP"), r["steps"], r["units"],
                     r["minutes"]])
    out = [format_table(rows, ["method", "target PCK@0.05", "target AP", "steps", "units", "wall min"], digits=4)]
    sd = result["source_domain"]
    out.append(f"source checkpoint on held-out source-style images: PCK@0.05 {sd.get('PCK@0.05', float('nan')):.4f}"
               f"  AP {sd.get('AP', float('nan')):.4f} (the domain gap); main metric: {key}")
    prec = [[r["name"], x["round"], x["kept_fraction"], x["kept_precision"], x["dropped_precision"],
             x["all_precision"], x["units"]] for r in result["rows"] for x in r["rounds"]]
    if prec:
        out.append(format_table(prec, ["method", "round", "kept", "kept precision", "dropped precision",
                                       "all precision", "units at labelling"], digits=3))
    for r in result["rows"]:
        if r["rounds"]:
            dec = r["rounds"][-1]["deciles"]
            out.append(f"{r['name']} last round, precision per confidence decile (low -> high): "
                       + " ".join(f"{d['precision']:.2f}" for d in dec))
    if result.get("plot"):
        out.append(f"plot: {result['plot']}")
    return "\n".join(out)
