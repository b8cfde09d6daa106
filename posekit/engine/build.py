"""Where a config becomes objects: `build` (network + codec + skeleton of any config, through its task), optimizer,
scheduler, init.

config.py is the schema only; `build(cfg)` is the one public builder: the config's task (posekit.engine.tasks)
builds it, over posekit.engine.spec (`model_spec`, the codec, the top-down networks; re-exported here). The
optimizer (task parameter groups) and the learning-rate schedule are made here. Task-specific pieces (datasets,
criteria, evaluation) live in the task modules.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from posekit.config import Config
from posekit.engine.spec import build_codec_from_config, check_input_size, model_spec
from posekit.engine.tasks.base import Built
from posekit.errors import ConfigError
from posekit.modelspec import ModelSpec

__all__ = ["Built", "ModelSpec", "build", "build_codec_from_config", "build_model_from_config", "build_optimizer",
           "build_scheduler", "check_input_size", "init_weights", "model_spec"]


def build(cfg: Config) -> Built:
    """Network (eval mode, fresh weights), codec and skeleton of any config: its task's build (the one builder)."""
    from posekit.engine.tasks import task_for

    return task_for(cfg).build(cfg)


def build_model_from_config(cfg: Config) -> tuple[Any, Any, Any]:
    """(network, codec, skeleton) of a config: `build(cfg)` as a tuple."""
    b = build(cfg)
    return b.model, b.codec, b.skeleton


def init_weights(model: nn.Module, kind: str) -> nn.Module:
    """TRAIN.INIT: 'official' keeps each family's official init; 'he' = He-normal convs, N(0, 1e-3) last layer.

    The official N(0, 0.001) init suits ImageNet-initialised backbones; from scratch with Adam, tiny weights behind
    BatchNorm make the first steps huge relative changes and training starts far slower (the demo uses 'he').
    """
    if kind == "official":
        return model
    if kind != "he":
        raise ConfigError(f"TRAIN.INIT: expected 'official' or 'he', got {kind!r}")
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    for m in layers:
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    if layers:
        nn.init.normal_(layers[-1].weight, std=0.001)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def build_optimizer(cfg: Config, params: Any) -> torch.optim.Optimizer:
    """Official get_optimizer: Adam(lr) without weight decay, SGD(lr, momentum, WD, nesterov), AdamW(lr, WD).

    `params`: a module or a list of parameter groups (a group's own "lr" wins over TRAIN.LR).
    """
    t = cfg.TRAIN
    if isinstance(params, nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    params = [{**g, "params": list(g["params"])} if isinstance(g, dict) else g for g in params]
    name = t.OPTIMIZER.lower()
    # fused kernels (CPU and CUDA): the same update rule; on the demo's CPU network Adam's step takes 1 ms instead
    # of the per-tensor loop's 5 ms
    fused = {"fused": True} if _fusable(params) else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=t.LR, **fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=t.LR, weight_decay=t.WD, **fused)
    return torch.optim.SGD(params, lr=t.LR, momentum=t.MOMENTUM, weight_decay=t.WD, nesterov=t.NESTEROV, **fused)


def _fusable(params: Any) -> bool:
    """Whether every parameter is a floating-point tensor on the CPU or a CUDA device (what fused optimizers take)."""
    tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    return bool(tensors) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors)


def cosine_factor(fraction: float, warmup: float = 0.02, final: float = 0.01) -> float:
    """LR multiplier at a fraction of the budget: linear warm-up from 0.1, then cosine down to `final`."""
    f = min(max(fraction, 0.0), 1.0)
    if f < warmup:
        return 0.1 + 0.9 * f / warmup
    progress = (f - warmup) / max(1.0 - warmup, 1e-9)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    """TRAIN.LR_SCHEDULE 'multistep': MultiStepLR(LR_STEP, LR_FACTOR) stepped at epoch ends (official).

    'cosine' has no scheduler object: the loop sets the LR from `cosine_factor` at every step, over the fraction of
    TRAIN.MAX_MINUTES (time budget), else TRAIN.MAX_ITERS, else the epochs done.
    """
    if cfg.TRAIN.LR_SCHEDULE == "cosine":
        return None
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.TRAIN.LR_STEP),
                                                gamma=cfg.TRAIN.LR_FACTOR)
