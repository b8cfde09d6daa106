"""Training checkpoints: one file holding model, optimizer, scheduler, counters, best metric, config and RNG states.

Written to a temporary file in the same folder and renamed (`os.replace`), so a crash never leaves a half-written
checkpoint. Everything stored is a tensor or a plain container, so it loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import collections
import errno
import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posekit.errors import CheckpointError

FORMAT = "posekit-train-v1"


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temp file next to `path`, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        # torch.save reports a failed write of its zip stream as RuntimeError("... file write failed")
        if isinstance(e, OSError) or (isinstance(e, RuntimeError) and "write" in str(e).lower()):
            raise _write_error(path, e) from None
        raise
    return path


def _write_error(path: Path, e: BaseException) -> CheckpointError:
    why = getattr(e, "strerror", None) or str(e).splitlines()[0]
    kept = f"the previous {path.name} there is unchanged" if path.exists() else f"no {path.name} was written"
    hint = " (disk full: free space or point the output elsewhere)" if getattr(e, "errno", None) == errno.ENOSPC \
        else ""
    return CheckpointError(f"cannot write {path}: {why}{hint}; {kept}")


def ensure_writable_dir(folder: str | Path) -> Path:
    """Pre-flight: create `folder` and prove a file can be written there (before any work starts)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".posekit-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise CheckpointError(f"output folder {folder} is not writable: {e.strerror or e}") from None
    return folder


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states as tensors and plain values."""
    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(mt), "gauss": gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def _plain(obj: Any) -> Any:
    """Containers that weights_only loading accepts (Counter -> dict, tuple kept)."""
    if isinstance(obj, collections.Counter):
        return {k: int(v) for k, v in obj.items()}
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def save_training_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                             scheduler: Any, epoch: int, iteration: int, epoch_iteration: int,
                             best_metric: float | None, config_yaml: str, scaler: Any = None,
                             spec: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write the full training state (model unwrapped from DDP) atomically."""
    net = model.module if hasattr(model, "module") else model
    state = {
        "format": FORMAT,
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": _plain(scheduler.state_dict()) if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),  # epoch in progress (== next epoch to run when epoch_iteration == 0)
        "iteration": int(iteration),  # optimizer steps done in total
        "epoch_iteration": int(epoch_iteration),  # steps done inside `epoch`
        "best_metric": None if best_metric is None else float(best_metric),
        "config": config_yaml,
        "spec": _plain(dict(spec)) if spec is not None else None,  # posekit.modelspec.ModelSpec.to_dict()
        "rng": rng_state(),
        "extra": _plain(dict(extra or {})),
    }
    return atomic_save(state, path)


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_training_checkpoint` (weights_only)."""
    from posekit.models.weights import load_torch_file

    state = load_torch_file(path, "training checkpoint")
    if not isinstance(state, Mapping) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a posekit training checkpoint (expected format {FORMAT!r}); "
                              "plain weights go to --weights / MODEL.PRETRAINED instead")
    return dict(state)


def restore_scheduler(scheduler: Any, state: Mapping[str, Any] | None) -> None:
    """Load a scheduler state saved by `_plain` (milestones back to a Counter)."""
    if scheduler is None or state is None:
        return
    state = dict(state)
    if isinstance(state.get("milestones"), Mapping):
        state["milestones"] = collections.Counter(state["milestones"])
    scheduler.load_state_dict(state)
