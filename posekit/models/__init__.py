"""Pose networks: `names()`, `build(name, **overrides)`, `info(name)` over the registered zoo."""

from __future__ import annotations

from typing import Any

from torch import nn

# Importing each family module registers its named builders.
from posekit.models import (  # noqa: F401
    ae_hrnet,
    grmi,
    hourglass,
    hourglass_bearpaw,  # noqa: F401
    hrnet,
    lpn,
    mspn,
    posenet3d,
    prtr,
    resnet,
)
from posekit.models.registry import ModelEntry, entry, register_model, registered

__all__ = ["ModelEntry", "build", "entry", "info", "names", "register_model"]


def names() -> list[str]:
    """Names of all zoo models."""
    return registered()


def build(name: str, **overrides: Any) -> nn.Module:
    """Build a zoo model by name, eval-ready, with official state_dict key names."""
    model = entry(name).builder(**overrides)
    return model.eval()


def info(name: str) -> dict[str, Any]:
    """Params, GMACs, paper GFLOPs (measured by tracing), input/heatmap size, codec, skeleton of a zoo model."""
    from posekit.models.complexity import measure

    e = entry(name)
    return {
        "name": name,
        "family": e.family,
        "input_size": list(e.input_size),
        "heatmap_size": list(e.heatmap_size),
        "codec": e.codec,
        "skeleton": e.skeleton,
        **measure(build(name), e.input_size),
    }
