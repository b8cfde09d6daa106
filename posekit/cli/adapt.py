"""`posekit adapt --method ccssl|wscda|source --out DIR [data] [options]`: animal-pose domain adaptation.

Data: `--builtin DIR` generates (or reuses) posekit's synthetic domains there (source = quadrupeds style A,
target = style B: ordered train sequences, unlabelled, plus a labelled held-out split; humans for WS-CDA), or
give COCO keypoint files with --source-ann/--source-images, --target-ann/--target-images (unlabelled train),
--val-ann/--val-images (labelled target held-out) and --human-ann/--human-images (WS-CDA).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from posekit.errors import ConfigError
from posekit.tables import format_table

HELP = "adapt a pose network from a labelled source to an unlabelled target domain (CC-SSL, WS-CDA)"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 128x128, got {text!r}") from None
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", choices=("ccssl", "wscda", "source"), default="ccssl",
                        help="ccssl (Mu et al. 2020), wscda (Cao et al. 2019) or source-only training")
    parser.add_argument("--out", required=True, help="output folder (checkpoint.pth, pseudo_labels/, summary.json)")
    data = parser.add_argument_group("data")
    data.add_argument("--builtin", metavar="DIR", help="generate / reuse the built-in synthetic domains in DIR")
    data.add_argument("--builtin-sizes", metavar="S,T,V,H", help="built-in image counts: source,target,val,human")
    data.add_argument("--builtin-image-size", type=_size, default=(128, 128), metavar="WxH")
    for name, what in (("source", "labelled source"), ("target", "unlabelled target train"),
                       ("val", "labelled target held-out"), ("human", "labelled human set (WS-CDA)")):
        data.add_argument(f"--{name}-ann", help=f"{what} COCO keypoint file")
        data.add_argument(f"--{name}-images", help=f"{what} image folder")
    opt = parser.add_argument_group("training")
    opt.add_argument("--model", default="hourglass_bearpaw_4stack_256x256", help="zoo network (`posekit models`)")
    opt.add_argument("--input-size", type=_size, metavar="WxH", help="network input (default: the zoo entry's)")
    opt.add_argument("--epochs", type=int, default=60)
    opt.add_argument("--source-epochs", type=int, default=0, help="source-only epochs before the first round")
    opt.add_argument("--round-every", type=int, default=10, help="regenerate pseudo labels every N epochs")
    opt.add_argument("--iters-per-epoch", type=int, default=0, help="0: the shortest domain loader")
    opt.add_argument("--batch-size", type=int, default=6)
    opt.add_argument("--optimizer", choices=("rmsprop", "adam"), default="rmsprop")
    opt.add_argument("--lr", type=float, default=2.5e-4)
    opt.add_argument("--target-weight", type=float, default=10.0, help="CC-SSL weight of the target loss")
    opt.add_argument("--num-transform", type=int, default=5, help="pseudo-label passes (identity + scale/rot)")
    opt.add_argument("--flip-pseudo", action="store_true", help="add a flipped pass to the pseudo labels")
    opt.add_argument("--no-temporal", action="store_true", help="no optical-flow temporal consistency")
    opt.add_argument("--no-strong-augment", action="store_true", help="plain augmentation on the source")
    opt.add_argument("--max-minutes", type=float, default=0.0, help="stop after this much time (0: none)")
    opt.add_argument("--init", metavar="WEIGHTS", help="start from these weights (e.g. a source-only run)")
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--workers", type=int, default=0, help="data-loading processes")
    opt.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pth")
    parser.add_argument("--json", action="store_true", help="print the final summary as one JSON object only")


def _domains(args: argparse.Namespace):
    from posekit.engine.adapt import BuiltinDomains, Domains, Split, builtin_domains

    if args.builtin:
        sizes = {}
        if args.builtin_sizes:
            try:
                s, t, v, h = (int(x) for x in args.builtin_sizes.split(","))
            except ValueError:
                raise ConfigError(f"--builtin-sizes: expected S,T,V,H integers, got {args.builtin_sizes!r}") from None
            sizes = dict(num_source=s, num_target=t, num_val=v, num_human=h)
        return builtin_domains(args.builtin, BuiltinDomains(image_size=args.builtin_image_size, seed=args.seed,
                                                            **sizes))

    def split(name: str, required: bool = True):
        ann, img = getattr(args, f"{name}_ann"), getattr(args, f"{name}_images")
        if not ann or not img:
            if required:
                raise ConfigError(f"--{name}-ann and --{name}-images are required without --builtin")
            return None
        for p in (ann, img):
            if not Path(p).exists():
                raise ConfigError(f"--{name}: {p} does not exist")
        return Split(ann, img)

    return Domains(split("source"), split("target"), split("val"), split("human", args.method == "wscda"))


def run(args: argparse.Namespace) -> int:
    from posekit.engine.adapt import AdaptConfig, adapt

    cfg = AdaptConfig(method=args.method, model=args.model, input_size=args.input_size, epochs=args.epochs,
                      source_epochs=args.source_epochs, round_every=args.round_every,
                      iters_per_epoch=args.iters_per_epoch, batch_size=args.batch_size,
                      target_batch_size=args.batch_size, human_batch_size=args.batch_size, optimizer=args.optimizer,
                      lr=args.lr, target_weight=args.target_weight, num_transform=args.num_transform,
                      flip_pseudo=args.flip_pseudo, temporal=not args.no_temporal,
                      strong_augment=not args.no_strong_augment, max_minutes=args.max_minutes, seed=args.seed,
                      workers=args.workers)
    domains = _domains(args)

    def event(kind: str, info: dict) -> None:
        if args.json:
            return
        if kind == "pseudo_labels":
            print(f"round {info['round']}: pseudo labels kept {info['kept_fraction']:.0%} (threshold "
                  f"{info['threshold']:.4f}, drop fraction {info['drop_fraction']:.2f})", flush=True)
        else:
            parts = [f"epoch {info['epoch']}", f"loss {info.get('loss', float('nan')):.5f}"]
            parts += [f"{k[5:]} {v:.5f}" for k, v in info.items() if k.startswith("loss_")]
            if "metrics" in info:
                parts.append(f"target PCK@0.05 {info['metrics']['PCK@0.05']:.4f}")
            print("  ".join(parts), flush=True)

    summary = adapt(cfg, domains, args.out, resume=args.resume, init_weights=args.init, device=args.device,
                    on_event=event)
    if args.json:
        print(json.dumps({"method": summary["method"], "stop_reason": summary["stop_reason"],
                          "epoch": summary["epoch"], "metrics": summary["metrics"], "out_dir": args.out}))
        return 0
    metrics = summary["metrics"] or {}
    rows = [[k.replace("PCK@0.05 ", "") if k != "PCK@0.05" else "mean", v] for k, v in metrics.items()
            if k.startswith("PCK")]
    rows += [[k, v] for k, v in metrics.items() if k.startswith("AP")]
    print(format_table(rows, ["target held-out", "PCK@0.05 / AP"], digits=4))
    print(f"stopped: {summary['stop_reason']} after {summary['epoch']} epochs; checkpoint {summary['checkpoint']}")
    return 0
