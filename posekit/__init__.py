"""posekit: human pose estimation toolkit on PyTorch."""

from __future__ import annotations

from posekit.errors import CheckpointError, ConfigError, DataError, PosekitError

__version__ = "0.1.0"

__all__ = ["CheckpointError", "ConfigError", "DataError", "PosekitError", "__version__"]
