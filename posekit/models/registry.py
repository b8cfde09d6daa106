"""Named model registry: builder functions registered with their input size, heatmap size, codec, skeleton."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from posekit.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    """A named, buildable model configuration."""

    name: str
    builder: Callable[..., nn.Module]
    input_size: tuple[int, int]  # (w, h) of the network input
    heatmap_size: tuple[int, int]  # (w, h) of the output maps
    codec: str  # posekit.codecs name
    codec_cfg: dict[str, Any] = field(default_factory=dict)
    skeleton: str = "coco"
    family: str = ""
    task: str = "topdown"  # posekit.engine.tasks name: topdown | prtr | bottomup | body3d


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(*, input_size: tuple[int, int], heatmap_size: tuple[int, int], codec: str,
                   codec_cfg: dict[str, Any] | None = None, skeleton: str = "coco",
                   family: str = "",
                   task: str = "topdown") -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a builder function under its own name."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _REGISTRY:
            raise ConfigError(f"model {fn.__name__!r} registered twice")
        _REGISTRY[fn.__name__] = ModelEntry(
            name=fn.__name__, builder=fn, input_size=tuple(input_size), heatmap_size=tuple(heatmap_size),
            codec=codec, codec_cfg=dict(codec_cfg or {}), skeleton=skeleton,
            family=family or fn.__module__.rsplit(".", 1)[-1], task=task,
        )
        return fn

    return wrap


def entry(name: str) -> ModelEntry:
    """The registry entry of a model name, with a clear error listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; `posekit models` lists: {', '.join(sorted(_REGISTRY))}") from None


def registered() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_REGISTRY)
