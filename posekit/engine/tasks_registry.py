"""Imports every task module so each registers itself (one line per pose system)."""

from posekit.engine import (
    prtr_task,  # noqa: F401
    topdown_task,  # noqa: F401
)
