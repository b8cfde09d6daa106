"""Error types: every error posekit raises on bad input names the file/field and what was expected."""

from __future__ import annotations


class PosekitError(Exception):
    """Base class of all posekit errors."""


class DataError(PosekitError):
    """An annotation, image or results file is missing, corrupt or malformed."""


class ConfigError(PosekitError):
    """A configuration key or value is invalid."""


class CheckpointError(PosekitError):
    """A checkpoint cannot be read or does not match the model."""


class TrainingError(PosekitError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""


class DataWarning(UserWarning):
    """Input that was usable but partly skipped (e.g. detection boxes outside their image); the message counts it."""
