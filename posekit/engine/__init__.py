"""Training and testing: `fit` (train loop, DDP, AMP, resume), `predict` / `evaluate` (flip test, scoring)."""

from __future__ import annotations

from posekit.engine.predict import Predictions, predict, score
from posekit.engine.test import evaluate
from posekit.engine.train import TrainingError, fit

__all__ = ["Predictions", "TrainingError", "evaluate", "fit", "predict", "score"]
