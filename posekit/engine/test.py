"""`posekit test`: load weights (official files or posekit checkpoints), predict over a test split, score it."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from posekit.config import Config
from posekit.engine.datasets import data_paths, load_records, resolve_boxes
from posekit.engine.spec import model_spec
from posekit.errors import ConfigError, DataError


def load_weights(model: nn.Module, weights: str | os.PathLike, cfg: Config) -> None:
    """Strictly load official or posekit weights; a posekit file's stored spec must match the config's."""
    from posekit.models.weights import load_checkpoint
    from posekit.modelspec import check_compatible, read_spec

    stored = read_spec(weights)
    if stored is not None:
        check_compatible(stored, model_spec(cfg), str(weights))
    load_checkpoint(model, weights, strict=True)


def calibration_inputs(cfg: Config, built: Any, count: int = 64, flip: bool = True) -> torch.Tensor:
    """Network inputs [count,3,h,w] for int8 calibration: crops of the *training* split (never the test images),
    evenly spaced over its boxes, in the network's colour order, half of them mirrored when flip testing."""
    from posekit.data import TopDownDataset
    from posekit.runtime.topdown import rgb_to_official_bgr

    records = load_records(cfg, "train", built.skeleton)
    if not records:
        raise DataError(f"int8 calibration: no training boxes in {data_paths(cfg).train_ann}")
    ds = TopDownDataset(records, built.codec, built.skeleton, augment=None, train=False, reduced_decoding=False)
    n = max(count // 2, 1) if flip else max(count, 1)
    idx = np.unique(np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int))
    x = torch.stack([ds[int(i)][0] for i in idx]).float()
    x = x if cfg.DATASET.COLOR_RGB else rgb_to_official_bgr(x)
    return torch.cat([x, torch.flip(x, dims=(3,))]) if flip else x


def evaluate(cfg: Config, weights: str | os.PathLike | None, boxes: str | None = None, flip: bool | None = None,
             device: str | None = None, progress: Callable[..., Any] | None = None, backend: str = "torch",
             calibration_size: int = 64) -> tuple[dict[str, float], list[dict]]:
    """`posekit test`: build the config's network, load `weights` (TEST.MODEL_FILE if None), score the test split.

    `backend` (posekit.runtime.backends.KINDS; all but "torch" for the tasks with `onnx` set only) runs the network;
    the ONNX files are cached in $XDG_CACHE_HOME/posekit/onnx; "onnxruntime-int8" is calibrated on `calibration_size`
    training-split inputs.
    """
    from posekit.engine.tasks import task_for
    from posekit.runtime.backends import INT8, KINDS, BackendModule, create

    if backend not in KINDS:
        raise ConfigError(f"backend {backend!r}: expected one of {', '.join(KINDS)}")
    task = task_for(cfg)
    if backend != "torch" and not task.onnx:
        raise ConfigError(f"backend {backend!r}: the {task.name} task is evaluated on the torch backend only")
    built = task.build(cfg)
    weights = weights or cfg.TEST.MODEL_FILE
    if not weights:
        raise ConfigError("no weights: pass --weights or set TEST.MODEL_FILE")
    load_weights(built.model, weights, cfg)
    on_gpu = torch.cuda.is_available() and backend in ("torch", "folded")
    dev = torch.device(device or ("cuda" if on_gpu else "cpu"))
    built.model.to(dev).eval()
    model: nn.Module = built.model
    if backend != "torch":
        spec = model_spec(cfg)
        use_flip = cfg.TEST.FLIP_TEST if flip is None else flip
        calibration = calibration_inputs(cfg, built, calibration_size, use_flip) if backend == INT8 else None
        model = BackendModule(create(backend, built.model, spec.input_size, name=spec.name, weights=weights,
                                     device=dev, calibration=calibration))
    return task.evaluate(cfg, model, built, dev, split="test", boxes=resolve_boxes(cfg, boxes), flip=flip,
                         progress=progress)
