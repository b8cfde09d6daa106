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
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
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
