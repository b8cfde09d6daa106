"""Keypoint codecs: one object per codec for target generation (encode) and decoding (decode), as in MMPose.

`build(name, input_size=(192, 256), heatmap_size=(48, 64), num_keypoints=17, sigma=2, **extra)`; `names()`.
"""

from __future__ import annotations

from typing import Any

from posekit.codecs.associative_embedding import AssociativeEmbeddingCodec
from posekit.codecs.base import Codec
from posekit.codecs.bearpaw import BearpawCodec
from posekit.codecs.body3d import Body3DCoder
from posekit.codecs.coord import CoordCodec
from posekit.codecs.dark import DarkCodec
from posekit.codecs.integral import BetaSoftArgmaxCodec, IntegralCodec
from posekit.codecs.msra import MSRACodec
from posekit.codecs.offset import GRMIOffsetCodec
from posekit.codecs.udp import UDPCodec, UDPOffsetCodec
from posekit.errors import ConfigError

__all__ = ["Codec", "build", "names"]

_CODECS: dict[str, type[Codec]] = {
    cls.name: cls
    for cls in (MSRACodec, DarkCodec, UDPCodec, UDPOffsetCodec, GRMIOffsetCodec, IntegralCodec, BetaSoftArgmaxCodec,
                CoordCodec, BearpawCodec, AssociativeEmbeddingCodec, Body3DCoder)
}


def names() -> list[str]:
    """Names of all codecs, in a fixed order."""
    return list(_CODECS)


def build(name: str, **cfg: Any) -> Codec:
    """Build the codec `name` with its configuration (input_size, heatmap_size, num_keypoints, sigma, ...)."""
    try:
        cls = _CODECS[name]
    except KeyError:
        raise ConfigError(f"unknown codec {name!r}; expected one of {', '.join(_CODECS)}") from None
    try:
        return cls(**cfg)
    except TypeError as e:
        raise ConfigError(f"codec {name!r}: bad configuration {cfg}: {e}") from None
