"""Load official checkpoint files (HRNet/SimpleBaseline repos, DataParallel, MMPose, torchvision ImageNet).

Every file is read with `torch.load(weights_only=True)`: only tensors and plain containers are unpickled.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posekit.errors import CheckpointError

# MMPose wraps official networks as `backbone.` + `keypoint_head.` (0.x) or `head.` (1.x); the layers below the
# prefix keep the official names for ResNet/SimpleBaseline and HRNet.
MMPOSE_PREFIXES = ("backbone.", "keypoint_head.", "head.")
BACKBONE_ROOTS = ("conv1.", "bn1.", "conv2.", "bn2.", "layer1.", "layer2.", "layer3.", "layer4.")
HRNET_BACKBONE_ROOTS = ("conv1.", "bn1.", "conv2.", "bn2.", "layer1.", "transition1.", "stage2.", "transition2.",
                        "stage3.", "transition3.", "stage4.")  # official PRETRAINED_LAYERS of the HRNet configs


@dataclass
class LoadReport:
    """What a load did: keys loaded, missing, unexpected, shape mismatches, and how keys were renamed."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every model key was found with the right shape and nothing was left over."""
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 20) -> str:
        """A readable multi-line description of the problems (or of the success)."""

        def show(title: str, items: list) -> list[str]:
            if not items:
                return []
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            return [f"  {title} ({len(items)}){more}:"] + [f"    {x}" for x in items[:limit]]

        notes = f" [{'; '.join(self.notes)}]" if self.notes else ""
        lines = [f"{self.path}: {len(self.loaded)} tensors loaded{notes}"]
        lines += show("missing in checkpoint", self.missing)
        lines += show("unexpected in checkpoint", self.unexpected)
        lines += show("shape mismatch (key, checkpoint, model)", [f"{k}: {a} vs {b}" for k, a, b in self.mismatched])
        return "\n".join(lines)


def load_torch_file(path: str | Path, what: str = "checkpoint") -> Any:
    """torch.load(weights_only=True) on CPU with a CheckpointError naming the file (missing, truncated, not a
    weights-only file) instead of a pickle traceback; every posekit reader of .pth files goes through it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError,
            TypeError) as e:  # a text or other non-torch file fails inside the legacy unpickler as KeyError / ...
        with open(path, "rb") as f:
            head = f.read(8)
        if head and not head.startswith((b"PK", b"\x80")):  # neither torch.save's zip nor a legacy pickle
            raise CheckpointError(f"{path}: not a PyTorch {what} file (it starts with {head!r}; torch.save writes a "
                                  "zip archive)") from None
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path}: cannot be read as a weights-only {what} (tensors and plain containers only; "
                              f"is the file complete?): {first}") from None


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of a checkpoint file: plain state_dict, or the dict under 'state_dict' / 'model' / 'network'
    (3DMPPE snapshots: {'epoch', 'network', 'optimizer'})."""
    obj = load_torch_file(path)
    notes = []
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "network"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj, notes = inner, [f"tensors under {key!r}"]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: expected a state_dict (or a dict with 'state_dict'/'model'), "
                              f"got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} entries are not named tensors, e.g. {bad[0]!r}")
    return dict(obj), notes


def _strip(state: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> dict[str, torch.Tensor]:
    prefixes = tuple(prefixes)
    out = {}
    for k, v in state.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p):]
                break
        out[k] = v
    return out


def convert_keys(state: Mapping[str, torch.Tensor],
                 model_keys: Iterable[str]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map DataParallel (`module.`) and MMPose (`backbone.`/`keypoint_head.`/`head.`) names to official ones.

    A renaming is applied only when it makes more checkpoint keys match the model's keys.
    """
    model_keys = set(model_keys)
    state = dict(state)
    notes = []

    def hits(s: Mapping[str, torch.Tensor]) -> int:
        return len(model_keys & set(s))

    if any(k.startswith("module.") for k in state):
        stripped = _strip(state, ["module."])
        if hits(stripped) > hits(state):
            state, notes = stripped, notes + ["stripped DataParallel 'module.' prefix"]
    if any(k.startswith("model.module.") for k in state):  # pose-ae-train: Trainer(DataParallel(PoseNet))
        stripped = _strip(state, ["model.module."])
        if hits(stripped) > hits(state):
            state, notes = stripped, notes + ["stripped pose-ae-train 'model.module.' prefix"]
    if any(k.startswith(MMPOSE_PREFIXES) for k in state):
        stripped = _strip(state, MMPOSE_PREFIXES)
        if len(stripped) == len(state) and hits(stripped) > hits(state):
            state, notes = stripped, notes + ["mapped MMPose backbone./keypoint_head./head. names to official"]
    return state, notes


def compare(state: Mapping[str, torch.Tensor], model: nn.Module, path: str) -> LoadReport:
    """Report of loading `state` into `model` (num_batches_tracked absent from old checkpoints is not missing)."""
    target = model.state_dict()
    report = LoadReport(path=path)
    for k, v in target.items():
        if k not in state:
            if not k.endswith("num_batches_tracked"):
                report.missing.append(k)
        elif tuple(state[k].shape) != tuple(v.shape):
            report.mismatched.append((k, tuple(state[k].shape), tuple(v.shape)))
        else:
            report.loaded.append(k)
    report.unexpected = [k for k in state if k not in target]
    return report


def _load(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy tensors into the model (dtype cast by load_state_dict); absent num_batches_tracked stay as they are."""
    full = model.state_dict()
    full.update({k: v for k, v in state.items() if k in full})
    model.load_state_dict(full, strict=True)


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    """Load an official/posekit/MMPose checkpoint into `model`; strict raises CheckpointError listing problems."""
    state, notes = read_state_dict(path)
    state, more = convert_keys(state, model.state_dict().keys())
    report = compare(state, model, str(path))
    report.notes = notes + more
    if report.mismatched or (strict and not report.ok):
        raise CheckpointError(f"checkpoint does not fit {type(model).__name__}:\n{report.summary()}")
    if not report.loaded:
        raise CheckpointError(f"{path}: no tensor matches {type(model).__name__}\n{report.summary()}")
    _load(model, {k: state[k] for k in report.loaded})
    return report


def load_imagenet_backbone(model: nn.Module, path: str | Path, roots: Iterable[str] = BACKBONE_ROOTS) -> LoadReport:
    """Load an ImageNet classifier checkpoint (torchvision ResNet layout, `fc.*` dropped) into the backbone part.

    Every model key under `roots` must be present with the right shape; other model keys (the pose head) keep
    their initialisation and are listed as `missing`. Checkpoint keys outside `roots` are ignored; those under
    `roots` that the model lacks (e.g. the extra stage-4 fuse layers of a classification HRNet) are listed as
    `unexpected` and skipped, as the official strict=False load of PRETRAINED_LAYERS does.
    """
    roots = tuple(roots)
    state, notes = read_state_dict(path)
    state, more = convert_keys(state, model.state_dict().keys())
    state = {k: v for k, v in state.items() if k.startswith(roots)}
    report = compare(state, model, str(path))
    report.notes = notes + more + [f"backbone only ({', '.join(r.rstrip('.') for r in roots)})"]
    needed = [k for k in report.missing if k.startswith(roots)]
    if needed or report.mismatched:
        raise CheckpointError(f"ImageNet checkpoint does not fit the backbone of {type(model).__name__}:\n"
                              f"{report.summary()}")
    _load(model, {k: state[k] for k in report.loaded})
    return report


# ----------------------------------------------------------------------------------------------------------------
# MODEL.PRETRAINED: initialise a network from another network's checkpoint (backbone transfer)

# Where a backbone's keys sit in a checkpoint / a model: bare (pose HRNet / SimpleBaseline / ImageNet), PRTR's
# `backbone.0.body.`, MMPose's and 3DMPPE's `backbone.`. Every (checkpoint, model) pair of prefixes is tried and
# the one that fits the most tensors by name and shape wins (ties: the shorter renaming).
SOURCE_PREFIXES = ("", "backbone.0.body.", "backbone.", "module.", "model.module.", "module.backbone.")
TARGET_PREFIXES = ("", "backbone.0.body.", "backbone.")
MIN_FIT_FRACTION = 0.1  # below this share of the checkpoint's numbers fitting, the checkpoint is another family


@dataclass
class PretrainedReport:
    """What MODEL.PRETRAINED loaded: tensors loaded, model tensors left at their init, checkpoint tensors skipped."""

    path: str
    source_prefix: str = ""  # checkpoint key prefix that was replaced ...
    target_prefix: str = ""  # ... by this model key prefix
    loaded: list[str] = field(default_factory=list)  # model keys
    missing: list[str] = field(default_factory=list)  # model keys not in the checkpoint (keep their init)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (checkpoint key, reason)
    checkpoint_tensors: int = 0
    fitted_fraction: float = 0.0  # share of the checkpoint's numbers that were loaded
    notes: list[str] = field(default_factory=list)

    def summary(self, limit: int = 8) -> str:
        """Readable lines: counts, the renaming, what stayed at its init and what was skipped and why."""
        rename = (f" (checkpoint '{self.source_prefix}*' -> model '{self.target_prefix}*')"
                  if self.source_prefix != self.target_prefix else "")
        lines = [f"{self.path}: {len(self.loaded)} of {self.checkpoint_tensors} checkpoint tensors loaded{rename}, "
                 f"{100 * self.fitted_fraction:.0f}% of its numbers"]
        lines += [f"  note: {n}" for n in self.notes]
        if self.missing:
            lines.append(f"  left at their initialisation ({len(self.missing)}): "
                         + ", ".join(_group_names(self.missing)))
        by_reason: dict[str, list[str]] = {}
        for key, reason in self.skipped:
            by_reason.setdefault(reason.split(":")[0], []).append(f"{key} ({reason})" if ":" in reason else key)
        for reason, keys in by_reason.items():
            more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
            lines.append(f"  skipped, {reason} ({len(keys)}){more}: " + ", ".join(keys[:limit]))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the run log."""
        return {"path": self.path, "loaded": len(self.loaded), "checkpoint_tensors": self.checkpoint_tensors,
                "fitted_fraction": round(self.fitted_fraction, 4), "source_prefix": self.source_prefix,
                "target_prefix": self.target_prefix, "missing": self.missing,
                "skipped": [{"key": k, "reason": r} for k, r in self.skipped], "notes": self.notes}


def _group_names(keys: list[str]) -> list[str]:
    """Model keys summarised by module (`final_layer (2)`, `transformer.decoder (52)`)."""
    groups: dict[str, int] = {}
    for k in keys:
        inner = k[len("backbone.0.body."):] if k.startswith("backbone.0.body.") else k
        parts = inner.split(".")
        head = ".".join(parts[:2]) if parts[0] in ("backbone", "transformer") and len(parts) > 2 else parts[0]
        head = ("backbone.0.body." + head) if inner is not k else head
        groups[head] = groups.get(head, 0) + 1
    return [f"{g} ({n})" for g, n in groups.items()]


def _renamed(state: Mapping[str, torch.Tensor], src: str, dst: str) -> dict[str, str]:
    """checkpoint key -> model key for the keys under `src`."""
    return {k: dst + k[len(src):] for k in state if k.startswith(src)}


def _best_renaming(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> tuple[str, str, int]:
    best = ("", "", -1)
    for src in SOURCE_PREFIXES:
        for dst in TARGET_PREFIXES:
            names = _renamed(state, src, dst)
            fits = sum(1 for k, m in names.items() if m in target and target[m].shape == state[k].shape)
            if fits > best[2]:
                best = (src, dst, fits)
    return best


def _describe(obj: Any) -> str:
    """What a checkpoint says it is (posekit files carry a model spec)."""
    spec = obj.get("spec") if isinstance(obj, Mapping) else None
    if isinstance(spec, Mapping) and spec.get("name"):
        return f"a posekit checkpoint of {spec['name']}"
    return "the checkpoint"


def load_pretrained_weights(model: nn.Module, path: str | Path, layers: Iterable[str] = ()) -> PretrainedReport:
    """Initialise `model` from the tensors of checkpoint `path` that fit by name and shape (backbone transfer).

    `path`: a posekit training checkpoint or weights file, or an official one (bare state_dict, {'state_dict': ..},
    'module.' prefixes, MMPose `backbone.`). Key prefixes are matched automatically (a heatmap HRNet's `stage2.*`
    -> PRTR's `backbone.0.body.stage2.*`). `layers`: optional roots (EXTRA.PRETRAINED_LAYERS, checkpoint names
    after the prefix) outside which nothing loads. Model tensors that do not fit keep their initialisation;
    checkpoint tensors that do not fit are skipped with a reason. Raises CheckpointError when nothing fits, or
    when under MIN_FIT_FRACTION of the checkpoint's numbers fit (a checkpoint of another family that shares only,
    e.g., a stem BatchNorm).
    """
    obj = load_torch_file(path)
    state, notes = read_state_dict(path)
    target = model.state_dict()
    src, dst, _ = _best_renaming(state, target)
    roots = tuple(f"{r.rstrip('.')}." for r in layers if r != "*")
    names = _renamed(state, src, dst)
    report = PretrainedReport(path=str(path), source_prefix=src, target_prefix=dst, notes=notes,
                              checkpoint_tensors=len(state))
    chosen: dict[str, torch.Tensor] = {}
    fits, fit_tensors = 0, 0  # numbers / tensors that fit by name and shape, PRETRAINED_LAYERS aside
    for key, value in state.items():
        m = names.get(key)
        if m is None:
            report.skipped.append((key, f"outside the prefix '{src}'"))
        elif m not in target:
            report.skipped.append((key, "not in the model"))
        elif target[m].shape != value.shape:
            report.skipped.append((key, f"shape: {tuple(value.shape)} vs model {tuple(target[m].shape)}"))
        else:
            fits, fit_tensors = fits + value.numel(), fit_tensors + 1
            if roots and not key[len(src):].startswith(roots):
                report.skipped.append((key, "outside PRETRAINED_LAYERS"))
            else:
                chosen[m] = value
    report.loaded = list(chosen)
    report.missing = [k for k in target if k not in chosen and not k.endswith("num_batches_tracked")]
    total = max(sum(v.numel() for v in state.values()), 1)
    report.fitted_fraction = sum(v.numel() for v in chosen.values()) / total
    if fits / total < MIN_FIT_FRACTION or not chosen:
        what = "none under PRETRAINED_LAYERS; " if fits / total >= MIN_FIT_FRACTION else ""
        raise CheckpointError(
            f"{path}: {_describe(obj)} does not fit {type(model).__name__}: {what}{fit_tensors} "
            f"tensors ({100 * fits / total:.1f}% of its numbers) match a model tensor by name and shape "
            f"(checkpoint keys like {list(state)[:3]}, model keys like {list(target)[:3]}); MODEL.PRETRAINED "
            f"needs a checkpoint of the same backbone (a network of another family cannot initialise this one)")
    _load(model, chosen)
    return report
