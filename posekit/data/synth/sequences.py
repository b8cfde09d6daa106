"""Short ordered sequences: the same subject over consecutive frames with small, smooth pose and camera changes.

A sequence is rendered by the ordinary `render_sample` code with a `SequenceRng` in place of the per-image
Generator. The wrapper draws exactly what a Generator seeded by (seed, sequence) draws, so every frame has the
same subject (same shape, gait, colours, textures, background), and then moves each continuous draw smoothly with
the frame number: a `uniform(lo, hi)` or `triangular(lo, mode, hi)` value v becomes
    clip(v + (hi - lo) * motion * (sin(2 pi f t + phi) - sin(phi)), lo, hi)
and a `normal(loc, scale)` value moves by 4 * scale times the same factor, with a frequency f in [0.02, 0.08]
cycles per frame and a phase phi drawn per value from a second Generator seeded by (seed, sequence, 1). Frame 0
is therefore the image a plain Generator would give; joint angles, body placement, camera distance and focal
length drift by at most ~2 pi * 0.08 * motion of their range per frame. Discrete draws (`integers`, `choice`,
`random`, which the generator uses for branches) and noise fields (`standard_normal`) are passed through unchanged,
so every frame makes the same sequence of draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_F_LO, _F_HI = 0.02, 0.08  # cycles per frame


class SequenceRng:
    """A numpy Generator stand-in for frame `frame` of a sequence (see the module docstring)."""

    def __init__(self, seed: int, sequence: int, frame: int, motion: float = 0.03) -> None:
        self._base = np.random.default_rng([seed, sequence])
        self._motion_rng = np.random.default_rng([seed, sequence, 1])
        self.frame = int(frame)
        self.motion = float(motion)

    def _drift(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape)) if shape else 1
        f = self._motion_rng.uniform(_F_LO, _F_HI, n)
        phi = self._motion_rng.uniform(0.0, 2 * np.pi, n)
        d = self.motion * (np.sin(2 * np.pi * f * self.frame + phi) - np.sin(phi))
        return d.reshape(shape) if shape else d[0]

    @staticmethod
    def _out(v: Any, like: Any) -> Any:
        return float(v) if np.ndim(like) == 0 and not isinstance(like, np.ndarray) else np.asarray(v)

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None) -> Any:
        """Generator.uniform, moved smoothly with the frame and kept inside [low, high]."""
        v = self._base.uniform(low, high, size)
        lo, hi = np.minimum(low, high), np.maximum(low, high)
        return self._out(np.clip(v + (np.asarray(high) - np.asarray(low)) * self._drift(np.shape(v)), lo, hi), v)

    def triangular(self, left: float, mode: float, right: float, size: Any = None) -> Any:
        """Generator.triangular, moved smoothly with the frame and kept inside [left, right]."""
        v = self._base.triangular(left, mode, right, size)
        return self._out(np.clip(v + (right - left) * self._drift(np.shape(v)), left, right), v)

    def normal(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> Any:
        """Generator.normal, moved smoothly by up to 4 scale x motion."""
        v = self._base.normal(loc, scale, size)
        return self._out(v + 4.0 * np.asarray(scale) * self._drift(np.shape(v)), v)

    def __getattr__(self, name: str) -> Any:  # integers, choice, random, standard_normal, permutation: unchanged
        return getattr(self._base, name)
