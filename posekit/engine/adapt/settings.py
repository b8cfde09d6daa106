"""An adaptation run's settings: `AdaptConfig`, resolved from a posekit Config (MODEL / DATASET / TRAIN / ADAPT).

The Config is what a user writes (`posekit adapt CONFIG.yaml KEY=VALUE ...`) and what checkpoints store; AdaptConfig is
the flat view the rounds read. ADAPT.PRESET=official replaces the recipe keys by the released CC-SSL / paper WS-CDA
values (RMSprop 2.5e-4 without decay, target weight 10, the official kept-fraction rule, unscaled strong augmentation,
per-domain BatchNorm forwards, no AdaBN, WS-CDA reversal at full strength from the first step, beta 500).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

from posekit.config import Config
from posekit.errors import ConfigError

METHODS = ("source", "adabn", "ccssl", "wscda")
PRESETS = ("", "official")
OFFICIAL = dict(optimizer="rmsprop", lr=2.5e-4, lr_decay="none", target_weight=10.0, kept=(), schedule_step=10,
                strong_augment=True, aug_scale="official", bn="domain", adabn=False, grl_ramp=0.0, beta=500.0,
                num_transform=5, target_batch_size=6, batch_size=6, human_batch_size=6)


@dataclass
class AdaptConfig:
    """Everything the rounds depend on (derived from the Config stored in every checkpoint)."""

    method: str = "ccssl"
    epochs: int = 60
    source_epochs: int = 0
    round_every: int = 10
    schedule_step: int = 10
    kept: tuple[float, ...] = ()
    iters_per_epoch: int = 0
    batch_size: int = 6
    target_batch_size: int = 6
    human_batch_size: int = 6
    optimizer: str = "adam"
    lr: float = 1e-3
    lr_decay: str = "cosine"
    budget: float = 0.0
    target_weight: float = 1.0
    strong_augment: bool = True
    aug_scale: str = "crop"
    num_transform: int = 5
    scale_factor: float = 0.25
    rot_factor: float = 30.0
    flip_pseudo: bool = False
    temporal: bool = True
    lambda_decay: float = 0.9
    zero_previous_on_reject: bool = False
    bn: str = "joint"
    adabn: bool = False
    alpha: float = -1.0
    beta: float = 500.0
    w1: float = 1.0
    w2: float = 1.0
    grl_ramp: float = 1.0
    eval_batch_size: int = 32
    eval_every_round: bool = True
    max_minutes: float = 0.0
    seed: int = 0
    workers: int = 0
    pictures: int = 12
    init: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def adapting_method(self) -> bool:
        """Whether the method makes pseudo labels (rounds) at all."""
        return self.method in ("ccssl", "wscda")


def _check(a: AdaptConfig, where: str) -> None:
    if a.method not in METHODS:
        raise ConfigError(f"ADAPT.METHOD in {where}: expected one of {METHODS}, got {a.method!r}")
    for key, value in (("TRAIN.END_EPOCH", a.epochs), ("ADAPT.ROUND_EVERY", a.round_every),
                       ("ADAPT.NUM_TRANSFORM", a.num_transform), ("ADAPT.SCHEDULE_STEP", a.schedule_step)):
        if int(value) < 1:
            raise ConfigError(f"{key} in {where}: expected >= 1, got {value}")
    if not 0 <= a.source_epochs <= a.epochs:
        raise ConfigError(f"ADAPT.SOURCE_EPOCHS in {where}: expected 0..TRAIN.END_EPOCH ({a.epochs}), "
                          f"got {a.source_epochs}")
    if a.optimizer not in ("rmsprop", "adam", "adamw", "sgd"):
        raise ConfigError(f"ADAPT.OPTIMIZER in {where}: expected '', rmsprop, adam, adamw or sgd, got {a.optimizer!r}")
    if a.lr_decay not in ("none", "cosine"):
        raise ConfigError(f"ADAPT.LR_DECAY in {where}: expected none or cosine, got {a.lr_decay!r}")
    if a.aug_scale not in ("official", "crop"):
        raise ConfigError(f"ADAPT.AUG_SCALE in {where}: expected official or crop, got {a.aug_scale!r}")
    if a.bn not in ("joint", "domain"):
        raise ConfigError(f"ADAPT.BN in {where}: expected joint or domain, got {a.bn!r}")
    if any(not 0 < k <= 1 for k in a.kept):
        raise ConfigError(f"ADAPT.KEPT in {where}: kept fractions must lie in (0, 1], got {list(a.kept)}")
    if a.budget < 0 or a.max_minutes < 0:
        raise ConfigError(f"ADAPT.BUDGET / TRAIN.MAX_MINUTES in {where} must be >= 0")
    if min(a.batch_size, a.target_batch_size, a.human_batch_size, a.eval_batch_size) < 1:
        raise ConfigError(f"batch sizes in {where} must be >= 1")


def adapt_config(cfg: Config) -> AdaptConfig:
    """The AdaptConfig of a Config (ADAPT.PRESET applied, values checked with errors naming the key)."""
    ad, t = cfg.ADAPT, cfg.TRAIN
    if ad.PRESET not in PRESETS:
        raise ConfigError(f"ADAPT.PRESET in {cfg.source}: expected '' or 'official', got {ad.PRESET!r}")
    a = AdaptConfig(
        method=ad.METHOD, epochs=t.END_EPOCH, source_epochs=ad.SOURCE_EPOCHS, round_every=ad.ROUND_EVERY,
        schedule_step=ad.SCHEDULE_STEP, kept=tuple(float(k) for k in ad.KEPT), iters_per_epoch=ad.ITERS_PER_EPOCH,
        batch_size=t.BATCH_SIZE_PER_GPU, target_batch_size=ad.TARGET_BATCH or t.BATCH_SIZE_PER_GPU,
        human_batch_size=ad.HUMAN_BATCH or t.BATCH_SIZE_PER_GPU, optimizer=(ad.OPTIMIZER or t.OPTIMIZER).lower(),
        lr=t.LR, lr_decay=ad.LR_DECAY, budget=ad.BUDGET, target_weight=ad.TARGET_WEIGHT,
        strong_augment=ad.STRONG_AUGMENT, aug_scale=ad.AUG_SCALE, num_transform=ad.NUM_TRANSFORM,
        scale_factor=ad.SCALE_FACTOR, rot_factor=ad.ROT_FACTOR, flip_pseudo=ad.FLIP_PSEUDO, temporal=ad.TEMPORAL,
        lambda_decay=ad.LAMBDA_DECAY, zero_previous_on_reject=ad.ZERO_PREVIOUS_ON_REJECT, bn=ad.BN,
        adabn=ad.ADABN or ad.METHOD == "adabn", alpha=ad.ALPHA, beta=ad.BETA, w1=ad.W1, w2=ad.W2,
        grl_ramp=ad.GRL_RAMP, eval_batch_size=cfg.TEST.BATCH_SIZE_PER_GPU, eval_every_round=ad.EVAL_EVERY_ROUND,
        max_minutes=t.MAX_MINUTES, seed=t.SEED, workers=cfg.WORKERS, pictures=ad.PICTURES, init=ad.INIT)
    if ad.PRESET == "official":
        a = copy_config(a, **{**OFFICIAL, "adabn": ad.METHOD == "adabn"})
    _check(a, cfg.source or "<config>")
    return a


def copy_config(a: AdaptConfig, **changes: Any) -> AdaptConfig:
    """A copy of `a` with some fields changed."""
    return AdaptConfig(**{**copy.deepcopy(asdict(a)), **changes})
