"""Domain adaptation as an engine recipe: CC-SSL (Mu et al., CVPR 2020), WS-CDA (Cao et al., ICCV 2019), AdaBN and
continued source-only training, from a labelled source to an unlabelled target domain.

`posekit adapt CONFIG.yaml KEY=VALUE ...` = `run(load_config(...), out_dir)`. The network is built from the config's
model spec (posekit.engine.build), trained step by step by the engine's `train_one_epoch`, checkpointed in the engine's
format, and every weights file carries its model spec.

Modules: pseudo.py (CC-SSL pseudo-label math, fixture-exact), labels.py (a round's labels, file, diagnostics,
pictures), network.py (discriminator, gradient reversal, joint loss, AdaBN), data.py (domains, joint mapping,
strong augmentation, joint batches), settings.py (AdaptConfig from the Config's ADAPT section, the official preset),
setup.py (objects of a run, scoring), rounds.py (the loop, checkpoints, resume), testbeds.py (built-in test beds).
"""

from posekit.engine.adapt.data import (
    ANIMALPOSE_TO_AP10K,
    HORSE10_TO_AP10K,
    HUMAN_TO_ANIMAL,
    TARGET_ALIASES,
    Domains,
    JointBatches,
    Split,
    StrongAugDataset,
    StrongAugment,
    collate,
    epoch_batches,
    load_as,
    map_keypoints_by_name,
    strong_augment,
)
from posekit.engine.adapt.labels import precision
from posekit.engine.adapt.network import (
    AdaptNet,
    DomainDiscriminator,
    adabn,
    adapt_criterion,
    grad_reverse,
    grl_coefficient,
    head_conv,
    per_sample_mse,
)
from posekit.engine.adapt.pseudo import (
    average_back_warped,
    back_warp,
    confidence_threshold,
    draw_pass_params,
    drop_fraction,
    kept_threshold,
    pass_matrix,
    resize_factor,
    temporal_update,
    threshold_for_round,
    threshold_mask,
)
from posekit.engine.adapt.rounds import run
from posekit.engine.adapt.settings import METHODS, AdaptConfig, adapt_config
from posekit.engine.adapt.testbeds import BEDS, TestBed, fill_paths

__all__ = [
    "ANIMALPOSE_TO_AP10K", "BEDS", "HORSE10_TO_AP10K", "HUMAN_TO_ANIMAL", "METHODS", "TARGET_ALIASES", "AdaptConfig",
    "AdaptNet", "DomainDiscriminator", "Domains", "JointBatches", "Split", "StrongAugDataset", "StrongAugment",
    "TestBed", "adabn", "adapt_config", "adapt_criterion", "average_back_warped", "back_warp", "collate",
    "confidence_threshold", "draw_pass_params", "drop_fraction", "epoch_batches", "fill_paths", "grad_reverse",
    "grl_coefficient", "head_conv", "kept_threshold", "load_as", "map_keypoints_by_name", "pass_matrix",
    "per_sample_mse", "precision", "resize_factor", "run", "strong_augment", "temporal_update",
    "threshold_for_round", "threshold_mask",
]
