"""Command line: `posekit VERB ...`; every verb is a thin wrapper over a library function."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from posekit.errors import PosekitError

# verb -> module under posekit.cli; each module defines HELP, add_arguments(parser) and run(args) -> int.
VERBS = {
    "synth": "synth",
    "demo": "demo",
    "train": "train",
    "test": "test",
    "infer": "infer",
    "export": "export",
    "eval": "eval",
    "models": "models",
    "bench": "bench",
    "adapt": "adapt",
}


def present_modules(package: str, names: dict[str, str] | Sequence[str]) -> dict[str, object]:
    """name -> module package.<module> for the names whose module exists (a missing one is skipped; an import
    error inside one is raised)."""
    table = names if isinstance(names, dict) else {n: n for n in names}
    mods = {}
    for name, mod in table.items():
        try:
            mods[name] = importlib.import_module(f"{package}.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"{package}.{mod}":
                raise
    return mods


def _available() -> dict[str, object]:
    return present_modules("posekit.cli", VERBS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per verb."""
    parser = argparse.ArgumentParser(prog="posekit", description="Human pose estimation toolkit.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, mod in _available().items():
        p = sub.add_parser(verb, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def model_spec_of(args: argparse.Namespace, random_use: str) -> object | None:
    """The model spec of --config (None when --model / --weights name the model), after the checks every verb that
    loads a network makes: --weights or --random-weights (`random_use` says what the latter does), --model or
    --config, and which network to build without weights."""
    from posekit.errors import ConfigError

    if args.weights is None and not args.random_weights:
        raise ConfigError(f"--weights is required (a checkpoint of --model); pass --random-weights to {random_use}")
    if args.model and args.config:
        raise ConfigError("give --model or --config, not both (the config names its model)")
    spec = None
    if args.config:
        from posekit.config import load_config
        from posekit.engine.spec import model_spec

        spec = model_spec(load_config(args.config))
    if spec is None and not args.model and args.weights is None:
        raise ConfigError("--random-weights needs --model or --config (which network to build)")
    return spec


def _check_device(device: str | None) -> None:
    """A --device this torch build cannot use is an error before any work starts."""
    if not device:
        return
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise PosekitError(f"--device {device!r}: expected cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PosekitError(f"--device {device}: this torch build has no usable CUDA device (use --device cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise PosekitError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `posekit` command."""
    parser = build_parser()
    # KEY=VALUE overrides may come before or after options (`posekit train cfg.yaml --out D KEY=V`).
    args, extra = parser.parse_known_args(argv)
    if extra:
        takes_overrides = isinstance(getattr(args, "overrides", None), list)
        if takes_overrides and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides.extend(extra)
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        _check_device(getattr(args, "device", None))
        return int(args._run(args) or 0)
    except PosekitError as e:
        print(f"posekit {args.verb}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # unreadable input / unwritable output: the file and the reason, no traceback
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"posekit {args.verb}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"posekit {args.verb}: interrupted", file=sys.stderr)
        return 130
