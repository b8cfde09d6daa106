"""posekit: human pose estimation toolkit on PyTorch."""

from __future__ import annotations

from typing import Any

from posekit._version import __version__
from posekit.errors import CheckpointError, ConfigError, DataError, PosekitError

__all__ = ["CheckpointError", "ConfigError", "DataError", "Pose", "PoseEstimator", "PosekitError", "__version__"]


def __getattr__(name: str) -> Any:
    """Lazy access to `PoseEstimator` / `Pose` so `import posekit` stays light."""
    if name in ("PoseEstimator", "Pose"):
        from posekit import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'posekit' has no attribute {name!r}")
