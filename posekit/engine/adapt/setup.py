"""An adaptation run's objects from its Config: network (through engine.build and the model spec), domains' records,
the hidden target GT for the diagnostics, the optimizer, the initial weights, and held-out target scoring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from posekit import geometry
from posekit.codecs import bearpaw
from posekit.config import Config
from posekit.data.records import PoseRecord
from posekit.data.topdown import TopDownDataset
from posekit.engine.adapt.data import (
    HUMAN_TO_ANIMAL,
    Domains,
    Split,
    collate,
    load_as,
    map_keypoints_by_name,
    read_records,
    sequence_ids,
)
from posekit.engine.adapt.network import AdaptNet
from posekit.engine.adapt.settings import AdaptConfig, adapt_config
from posekit.errors import CheckpointError, ConfigError, DataError


@dataclass
class Setup:
    """Everything a run trains and scores with."""

    cfg: Config
    a: AdaptConfig
    net: AdaptNet
    codec: Any
    skeleton: Any
    spec: Any
    domains: Domains
    source: list[PoseRecord]
    target_train: list[PoseRecord]
    target_val: list[PoseRecord]
    human: list[PoseRecord]
    hidden_gt: np.ndarray  # [N,K,3] target-train GT (zeros where the file has none): diagnostics only
    sequences: dict[int, int]
    device: torch.device
    val_gt_file: str | None = None  # for COCO AP (None when the val file's joints were mapped)
    amp: bool = False  # autocast (TRAIN.CPU_AMP on a CPU with native bf16, TRAIN.AMP on CUDA)
    channels_last: bool = False  # TRAIN.CHANNELS_LAST


def domains_of(cfg: Config) -> Domains:
    """The four splits a config names (DATASET.TRAIN = source, DATASET.TEST = target held-out, ADAPT.TARGET)."""
    d, ad = cfg.DATASET, cfg.ADAPT
    pairs = {"DATASET.TRAIN": (d.TRAIN_ANN, d.TRAIN_IMAGES), "ADAPT.TARGET": (ad.TARGET_ANN, ad.TARGET_IMAGES),
             "DATASET.TEST": (d.TEST_ANN, d.TEST_IMAGES)}
    for key, (ann, img) in pairs.items():
        if not ann or not img:
            raise ConfigError(f"{key}_ANN / {key}_IMAGES in {cfg.source}: adaptation needs the source "
                              "(DATASET.TRAIN_*), the unlabelled target (ADAPT.TARGET_*) and the labelled target "
                              "held-out split (DATASET.TEST_*), or ADAPT.TESTBED")
    # WS-CDA without a human set (e.g. people -> people): the discriminator tells target from labelled source only
    human = Split(ad.HUMAN_ANN, ad.HUMAN_IMAGES) if ad.HUMAN_ANN and ad.HUMAN_IMAGES else None
    return Domains(Split(*pairs["DATASET.TRAIN"]), Split(*pairs["ADAPT.TARGET"]), Split(*pairs["DATASET.TEST"]), human)


def setup(cfg: Config, device: str | None = None) -> Setup:
    """Build the network (engine.build: the config's model spec), load every split, check the run can label."""
    from posekit.engine.build import build, init_weights
    from posekit.engine.train import autocast_dtype

    a = adapt_config(cfg)
    if a.adapting_method and a.source_epochs == 0 and not a.init:
        raise ConfigError(f"ADAPT.SOURCE_EPOCHS / ADAPT.INIT in {cfg.source}: {a.method} would make its first pseudo "
                          "labels with an untrained network; give source weights (ADAPT.INIT) or source epochs first")
    domains = domains_of(cfg)
    torch.manual_seed(a.seed)
    built = build(cfg)
    init_weights(built.model, cfg.TRAIN.INIT)
    sk, codec = built.skeleton, built.codec
    aspect = codec.input_size[0] / codec.input_size[1]
    source, _ = read_records(domains.source, True, aspect, skeleton=sk)
    target_train, _ = load_as(domains.target_train, False, aspect, sk)
    hidden = np.stack([r.keypoints for r in target_train]).astype(np.float32)
    for r in target_train:  # unlabelled from here on: the split's keypoints are never trained on
        r.keypoints = np.zeros_like(r.keypoints)
    target_val, val_mapped = load_as(domains.target_val, True, aspect, sk)
    human: list[PoseRecord] = []
    if a.method == "wscda" and domains.human is not None:
        hrecs, hskel = read_records(domains.human, True, aspect)
        human = map_keypoints_by_name(hrecs, hskel.keypoints, sk.keypoints, HUMAN_TO_ANIMAL)
    net = AdaptNet(built.model, sk.num_keypoints, discriminator=a.method == "wscda", grl=abs(a.alpha), bn=a.bn)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if cfg.TRAIN.CHANNELS_LAST:
        net = net.to(memory_format=torch.channels_last)
    return Setup(cfg, a, net.to(dev), codec, sk, built.spec, domains, source, target_train, target_val, human,
                 hidden, sequence_ids(domains.target_train.ann_file), dev,
                 None if val_mapped else domains.target_val.ann_file, autocast_dtype(cfg, dev) is not None,
                 cfg.TRAIN.CHANNELS_LAST)


def load_init(st: Setup, path: str) -> list[str]:
    """Start from source weights: a posekit weights file / checkpoint (its spec must match) or a plain state_dict;
    returns notes (e.g. BN statistics absent)."""
    from posekit.models.weights import load_torch_file, read_state_dict
    from posekit.modelspec import ModelSpec, check_compatible

    obj = load_torch_file(path, "ADAPT.INIT weights")
    if isinstance(obj, dict) and isinstance(obj.get("spec"), dict):
        check_compatible(ModelSpec.from_dict(obj["spec"], source=path), st.spec, f"ADAPT.INIT {path}")
    state, _ = read_state_dict(path)
    missing, unexpected = st.net.net.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "num_batches_tracked" not in k]:
        raise CheckpointError(f"ADAPT.INIT {path}: its tensors do not fit {st.spec.name} (missing "
                              f"{list(missing)[:4]}, unexpected {list(unexpected)[:4]})")
    return [f"{len(missing)} num_batches_tracked buffers absent"] if missing else []


def make_optimizer(a: AdaptConfig, model: nn.Module) -> torch.optim.Optimizer:
    """RMSprop (official CC-SSL: momentum 0, no weight decay), Adam, AdamW or SGD over every trainable parameter."""
    params = [p for p in model.parameters() if p.requires_grad]
    if a.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=a.lr, momentum=0.0, weight_decay=0.0)
    if a.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=a.lr, weight_decay=1e-4)
    if a.optimizer == "sgd":
        return torch.optim.SGD(params, lr=a.lr, momentum=0.9, weight_decay=1e-4)
    return torch.optim.Adam(params, lr=a.lr)


def identity_batches(st: Setup, records: list[PoseRecord], batch: int) -> Any:
    """Normalised identity crops of records, in file order (for AdaBN)."""
    ds = TopDownDataset(records, st.codec, st.skeleton, augment=None, train=False)
    for x, _, _, _ in DataLoader(ds, batch_size=batch, shuffle=False, collate_fn=collate):
        yield x


@torch.no_grad()
def evaluate_target(net: nn.Module, st: Setup) -> dict[str, float]:
    """Held-out target: official PCK@0.05 (bearpaw GT maps at the heatmap size, batches in file order) + COCO AP."""
    from posekit.evaluation.pck_bearpaw import BearpawPCK

    net.eval()
    codec = st.codec
    ds = TopDownDataset(st.target_val, codec, st.skeleton, augment=None, train=False)
    gt_codec = bearpaw.BearpawCodec(codec.input_size, codec.heatmap_size, codec.num_keypoints, sigma=1.0)
    meter = BearpawPCK(codec.num_keypoints)
    kps, scores, ids = [], [], []
    for x, _, _, metas in DataLoader(ds, batch_size=st.a.eval_batch_size, shuffle=False, collate_fn=collate):
        out = net(x.to(st.device))
        out = (out[-1] if isinstance(out, (list, tuple)) else out).float().cpu().numpy()
        meter.update(out, np.stack([gt_codec.encode(m["joints_crop"], m["visible_crop"])["target"] for m in metas]))
        coords, sc = codec.decode(out)
        for b, m in enumerate(metas):
            kps.append(geometry.apply_affine(coords[b], cv2.invertAffineTransform(m["trans"])))
            scores.append(sc[b])
            ids.append(m["image_id"])
    metrics = meter.result(st.skeleton.keypoints)
    metrics.update(_coco_ap(st, ids, kps, scores))
    return metrics


def _coco_ap(st: Setup, ids: list, kps: list, scores: list) -> dict[str, float]:
    from posekit.evaluation.pck_bearpaw import coco_ap_of_predictions

    sig = np.asarray(st.skeleton.sigmas_array)
    if st.val_gt_file is None or np.allclose(sig, sig[0]):
        return {}
    try:
        ap = coco_ap_of_predictions(st.val_gt_file, ids, np.stack(kps), np.clip(np.stack(scores), 1e-6, None),
                                    sigmas=sig)
    except DataError:
        return {}
    return {"AP": ap["AP"], "AP .5": ap["AP .5"]}
