"""The one seeded-dataset base of the top-down, bottom-up and 3-D datasets (reproducible per-item randomness), and
the base of datasets that wrap another one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset


class SeededDataset(Dataset):
    """A map-style dataset over `records` whose item i of epoch e draws its augmentation from Generator(seed, e, i):
    the same items whatever the worker count, order or resume point. Subclasses set records, seed and epoch."""

    records: Sequence[Any] = ()
    seed: int = 0
    epoch: int = 0

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of `epoch` (call before each epoch, as DistributedSampler)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The Generator of item `index` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])


class WrappedDataset(Dataset):
    """A dataset over another one (`self.dataset`): same length and epoch; subclasses change its items."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation of `epoch`."""
        self.dataset.set_epoch(epoch)
