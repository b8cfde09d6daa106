"""Imports every task module so each registers itself (one line per pose system)."""

from posekit.engine import (
    body3d_task,  # noqa: F401
    bottomup_task,  # noqa: F401
    prtr_task,  # noqa: F401
    topdown_task,  # noqa: F401
)
