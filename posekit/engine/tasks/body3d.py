"""The 3-D top-down task (3DMPPE PoseNet): person crops -> 3-D heatmaps + soft-argmax -> camera-space joints (mm).

A config selects it through a zoo entry registered with task="body3d" (`MODEL.ZOO: posenet3d_res50_256x256`).
Data (DATASET.FORMAT): `h36m` (common 3DMPPE json layout under DATASET.ROOT, splits by BODY3D.PROTOCOL),
`h36m_mmpose` (DATASET.TEST_ANN / TRAIN_ANN = h36m_coco.json, BODY3D.CAMERAS = cameras.pkl, *_IMAGES = its root) or
`synth3d` (posekit synthetic humans: DATASET.TRAIN_ANN / TEST_ANN, else ROOT/<TRAIN_SET|TEST_SET>/annotations.json).
BODY3D.TRAIN_2D_FORMAT coco|mpii mixes a 2-D set in (have_depth 0, joints remapped by name, half of each epoch).

Test path (official main/test.py + Human36M.evaluate): flip test on by default (TEST.FLIP_TEST: mirrored crop,
x -> W_out - 1 - x, pairs swapped, averaged), output px -> image px through the processed box, depth bins -> mm
around the root depth (GT, or per image_id from BODY3D.ROOT_DEPTH), back-projection with each sample's f, c, then
root-relative MPJPE (no alignment), PA-MPJPE (3DMPPE's rigid alignment, no scale), PA-MPJPE-similarity (with
scale), 3DPCK@150 mm and AUC, per joint and (H36M) per action. H36M scores 17 joints (Thorax excluded, Pelvis
included); the synthetic set scores all 18. The primary metric is MPJPE (lower is better), or PA-MPJPE for H36M
protocol 1 (what the repo reports for it).

`predict_poses_3d(model, image, boxes, ...)` is the library entry for images: one crop per box, flip test, root depth
given per box or estimated from the box size (posekit's choice, RootNet's geometric prior without its learned
correction: Z = sqrt(fx * fy * A_real / A_box) with A_real = 2000 mm x 2000 mm), intrinsics given or the 3DMPPE demo
default (f = 1500 px, c = image centre).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from posekit.codecs.body3d import Body3DCoder, flip_test_merge, output_to_camera
from posekit.config import Config, dataset_format
from posekit.data.body3d import (
    Body3DAugment,
    Body3DDataset,
    Body3DRecord,
    MixedDataset,
    collate_body3d,
    records_from_2d,
)
from posekit.engine.tasks.base import Batch, Built, Criterion, Task
from posekit.errors import ConfigError, DataError

FORMATS_3D = ("h36m", "h36m_mmpose", "synth3d")
DEFAULT_SKELETON = {"h36m": "h36m", "h36m_mmpose": "h36m", "synth3d": "coco_pelvis"}


def joint_layout(skeleton: Any) -> tuple[int, tuple[int, ...]]:
    """(root joint, evaluated joints) of a 3-D skeleton: H36M scores its 17 joints (not Thorax), others all."""
    names = list(skeleton.keypoints)
    if "pelvis" not in names:
        raise ConfigError(f"skeleton {skeleton.name!r} has no 'pelvis' joint to use as the root")
    root = names.index("pelvis")
    if skeleton.name == "h36m":
        return root, tuple(i for i, n in enumerate(names) if n != "thorax")
    return root, tuple(range(len(names)))


def resolved_config(cfg: Config) -> Config:
    """The config with DATASET.SKELETON filled from the 3-D data format (h36m -> h36m, synth3d -> coco_pelvis)."""
    fmt = dataset_format(cfg)
    if fmt not in FORMATS_3D:
        raise ConfigError(f"DATASET.FORMAT in {cfg.source}: the body3d task reads {', '.join(FORMATS_3D)}, got {fmt!r}")
    if cfg.BODY3D.INPUT_NORM not in ("standard", "official_255"):
        raise ConfigError(f"BODY3D.INPUT_NORM in {cfg.source}: expected standard or official_255, got "
                          f"{cfg.BODY3D.INPUT_NORM!r}")
    b = cfg.BODY3D
    if not 0.0 < b.TRAIN_2D_SHARE < 1.0:
        raise ConfigError(f"BODY3D.TRAIN_2D_SHARE in {cfg.source}: expected a fraction of each epoch in (0, 1), got "
                          f"{b.TRAIN_2D_SHARE}")
    if len(b.FOCAL) not in (0, 1, 2) or any(not (v > 0 and math.isfinite(v)) for v in b.FOCAL):
        raise ConfigError(f"BODY3D.FOCAL in {cfg.source}: expected [] or [f] or [fx, fy] px > 0, got {b.FOCAL}")
    if not (b.FOCAL_PER_WIDTH >= 0 and math.isfinite(b.FOCAL_PER_WIDTH)):
        raise ConfigError(f"BODY3D.FOCAL_PER_WIDTH in {cfg.source}: expected >= 0 (0 = unknown), got "
                          f"{b.FOCAL_PER_WIDTH}")
    if not (b.ROOT_BOX_SIZE > 0 and math.isfinite(b.ROOT_BOX_SIZE)):
        raise ConfigError(f"BODY3D.ROOT_BOX_SIZE in {cfg.source}: expected mm > 0, got {b.ROOT_BOX_SIZE}")
    if cfg.BODY3D.PROTOCOL not in (1, 2):
        raise ConfigError(f"BODY3D.PROTOCOL in {cfg.source}: expected 1 or 2, got {cfg.BODY3D.PROTOCOL}")
    if cfg.DATASET.SKELETON:
        return cfg
    return replace(cfg, DATASET=replace(cfg.DATASET, SKELETON=DEFAULT_SKELETON[fmt]))


def build_body3d(cfg: Config) -> Built:
    """Network (fresh init, eval mode), Body3DCoder and skeleton of a 3-D config."""
    from posekit import models, skeletons
    from posekit.engine.spec import model_spec
    from posekit.modelspec import build_codec

    cfg = resolved_config(cfg)
    if not cfg.MODEL.ZOO:
        raise ConfigError(f"{cfg.source}: the body3d task builds zoo models only (MODEL.ZOO: posenet3d_*)")
    e = models.entry(cfg.MODEL.ZOO)
    if e.task != "body3d":
        raise ConfigError(f"MODEL.ZOO {cfg.MODEL.ZOO!r} in {cfg.source} is a {e.task!r} model, not a 3-D one")
    spec = replace(model_spec(cfg), task="body3d")
    same = len(skeletons.get(e.skeleton).keypoints) == spec.num_joints
    model = models.build(spec.name) if same else models.build(spec.name, num_joints=spec.num_joints)
    coder = build_codec(spec)
    if not isinstance(coder, Body3DCoder) or coder.depth_dim != int(model.depth_dim):
        raise ConfigError(f"{cfg.source}: a 3-D model needs codec body3d with the network's {model.depth_dim} depth "
                          f"bins, got {spec.codec} {spec.codec_cfg}")
    return Built(model=model, codec=coder, skeleton=skeletons.get(spec.skeleton), spec=spec)


def _need(path: Path, key: str) -> Path:
    if not path.exists():
        raise ConfigError(f"{path} not found (set {key})")
    return path


def load_records_3d(cfg: Config, split: str, aspect_ratio: float = 1.0) -> list[Body3DRecord]:
    """Body3DRecords of the train or test split of a 3-D config (synthetic boxes grown to `aspect_ratio`, the
    network input's w / h; the H36M formats keep the official square boxes)."""
    from posekit.data.h36m import load_h36m, load_h36m_mmpose, load_synth3d

    cfg = resolved_config(cfg)
    d, fmt = cfg.DATASET, dataset_format(cfg)
    ann_key = "DATASET.TRAIN_ANN" if split == "train" else "DATASET.TEST_ANN"
    ann = d.TRAIN_ANN if split == "train" else d.TEST_ANN
    images = d.TRAIN_IMAGES if split == "train" else d.TEST_IMAGES
    if fmt == "h36m":
        return load_h36m(_need(Path(d.ROOT), "DATASET.ROOT"), split=split, protocol=cfg.BODY3D.PROTOCOL)
    if fmt == "h36m_mmpose":
        if not ann or not cfg.BODY3D.CAMERAS:
            raise ConfigError(f"{cfg.source}: DATASET.FORMAT h36m_mmpose needs {ann_key} (h36m_coco.json) and "
                              "BODY3D.CAMERAS (cameras.pkl)")
        root = Path(images) if images else Path(ann).parent
        return load_h36m_mmpose(_need(Path(ann), ann_key), _need(Path(cfg.BODY3D.CAMERAS), "BODY3D.CAMERAS"), root)
    ann_path = Path(ann) if ann else Path(d.ROOT) / (d.TRAIN_SET if split == "train" else d.TEST_SET) / \
        "annotations.json"
    return load_synth3d(_need(ann_path, ann_key), images or None, aspect_ratio)


def load_records_2d(cfg: Config, skeleton: Any, aspect_ratio: float) -> list[Body3DRecord]:
    """The BODY3D.TRAIN_2D_* set (COCO or MPII), remapped by name into the 3-D skeleton, have_depth False."""
    from posekit.data import load_coco, load_mpii

    b = cfg.BODY3D
    fmt = b.TRAIN_2D_FORMAT.lower()
    if fmt not in ("coco", "mpii"):
        raise ConfigError(f"BODY3D.TRAIN_2D_FORMAT in {cfg.source}: expected '', coco or mpii, got {fmt!r}")
    ann = _need(Path(b.TRAIN_2D_ANN), "BODY3D.TRAIN_2D_ANN")
    images = b.TRAIN_2D_IMAGES or str(ann.parent / "images" if (ann.parent / "images").is_dir() else ann.parent)
    recs, sk2d = load_mpii(ann, images) if fmt == "mpii" else load_coco(ann, images, train=True)
    return records_from_2d(recs, sk2d.keypoints, skeleton.keypoints, aspect_ratio)


def body3d_augment(cfg: Config) -> Body3DAugment:
    """DATASET.SCALE_FACTOR / ROT_FACTOR / FLIP + BODY3D.COLOR_FACTOR / OCCLUSION_PROB (official defaults)."""
    d, b = cfg.DATASET, cfg.BODY3D
    return Body3DAugment(scale_factor=d.SCALE_FACTOR, rotation_factor=d.ROT_FACTOR, flip=d.FLIP,
                         color_factor=b.COLOR_FACTOR, occlusion_prob=b.OCCLUSION_PROB)


def make_dataset(records: Sequence[Body3DRecord], built: Built, train: bool, augment: Body3DAugment | None = None,
                 seed: int = 0, cache_size: int = 8) -> Body3DDataset:
    """A Body3DDataset with the network's sizes, depth bins and input normalisation."""
    c = built.codec
    return Body3DDataset(records, built.skeleton.flip_pairs, input_size=c.input_size, output_size=c.output_size,
                         depth_dim=c.depth_dim, bbox_3d_depth=c.bbox_3d_depth, augment=augment, train=train,
                         input_norm=c.input_norm, seed=seed, cache_size=cache_size)


def body3d_criterion() -> Criterion:
    """The official L1 coordinate loss (mean over batch and joints) with the engine's (loss, logs) contract."""
    from posekit.losses.body3d import Body3DL1Loss

    return Body3DL1Loss()


@torch.no_grad()
def predict_coords(model: nn.Module, dataset: Any, flip_pairs: Sequence[Sequence[int]] | None,
                   batch_size: int = 32, workers: int = 0, device: str | torch.device | None = None,
                   progress: Callable[..., Any] | None = None) -> tuple[np.ndarray, dict[str, list]]:
    """Soft-argmax coords [N,J,3] (output px, bins) of a test Body3DDataset, flip-tested when flip_pairs is given."""
    from posekit.engine.predict import evaluating

    device = torch.device(device) if device is not None else next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate_body3d)
    out_w = int(dataset.output_size[0])
    coords, meta_all = [], {}
    with evaluating(model, len(dataset), progress) as bar:
        for images, _, meta in loader:
            x = images.to(device)
            c = model(x).float().cpu().numpy()
            if flip_pairs is not None:
                cf = model(torch.flip(x, dims=(3,))).float().cpu().numpy()
                c = flip_test_merge(c, cf, out_w, flip_pairs)
            coords.append(c)
            for k, v in meta.items():
                meta_all.setdefault(k, []).extend(v)
            if bar is not None:
                bar.update(len(images))
    return np.concatenate(coords).astype(np.float32), meta_all


def read_root_depths(path: str | Path) -> dict[int, float]:
    """RootNet-style JSON (list of {image_id, root_cam [x, y, z]}) -> {image_id: Z mm}."""
    try:
        rows = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"BODY3D.ROOT_DEPTH {path}: cannot read ({e})") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a list of {{image_id, root_cam}} objects")
    out = {}
    for i, r in enumerate(rows):
        try:
            out[int(r["image_id"])] = float(r["root_cam"][2])
        except (KeyError, TypeError, IndexError, ValueError):
            raise DataError(f"{path}: entry [{i}] needs image_id and root_cam [x, y, z]") from None
    return out


def score_body3d(pred_cam: np.ndarray, records: Sequence[Body3DRecord], skeleton: Any,
                 with_actions: bool = False) -> dict[str, float]:
    """Flat metric dict of camera-space predictions against the records' joints_cam."""
    from posekit.evaluation.mpjpe import H36M_ACTIONS, body3d_metrics

    gt = np.stack([r.joints_cam for r in records]).astype(np.float32)
    root, eval_joints = joint_layout(skeleton)
    actions = [int(r.extra.get("action_id", -1)) for r in records] if with_actions else None
    if actions is not None and any(a < 0 for a in actions):
        actions = None
    names = list(skeleton.keypoints)
    m1 = body3d_metrics(pred_cam, gt, names, root, eval_joints, align=None, action_ids=actions)
    m2 = body3d_metrics(pred_cam, gt, names, root, eval_joints, align="rigid", action_ids=actions)
    m3 = body3d_metrics(pred_cam, gt, names, root, eval_joints, align="similarity")
    out = {"MPJPE": m1["MPJPE"], "PA-MPJPE": m2["MPJPE"], "PA-MPJPE-similarity": m3["MPJPE"],
           "3DPCK": m1["3DPCK"], "AUC": m1["AUC"], "PA-3DPCK": m2["3DPCK"], "num_samples": float(len(records))}
    out.update({f"MPJPE/{k}": v for k, v in m1["per_joint"].items()})
    if actions is not None:
        for name in H36M_ACTIONS:
            out[f"MPJPE/action/{name}"] = m1["per_action"][name]
            out[f"PA-MPJPE/action/{name}"] = m2["per_action"][name]
    return out


class Body3DTask(Task):
    """3DMPPE PoseNet: crops -> soft-argmax 3-D coords -> camera mm -> MPJPE / PA-MPJPE (lower is better)."""

    name = "body3d"
    uses_camera = True

    def build(self, cfg: Config) -> Built:
        return build_body3d(cfg)

    def load(self, spec: Any, weights: str | Path | None) -> tuple[nn.Module, Any, Any]:
        """A trained model is rebuilt from the config inside its weights (with its Body3DCoder)."""
        if weights is None:
            return super().load(spec, weights)
        built = load_body3d(weights)
        return built.model, built.codec, None

    def infer(self, est: Any, images: Sequence[Any], boxes: Sequence | None, scores: Sequence | None,
              cameras: Sequence | None = None) -> list[list]:
        """Per box, image joints and camera-space joints (posekit.runtime.body3d); cameras[i] per image."""
        from posekit.runtime.body3d import estimate_3d

        return estimate_3d(est, images, boxes, scores, cameras)

    def train_dataset(self, cfg: Config, built: Built) -> Any:
        recs = load_records_3d(cfg, "train", built.codec.aspect_ratio)
        if not recs:
            raise ConfigError(f"no training people found for {cfg.DATASET.TRAIN_ANN or cfg.DATASET.ROOT}")
        cache = cfg.DATASET.IMAGE_CACHE
        ds3 = make_dataset(recs, built, True, body3d_augment(cfg), cfg.TRAIN.SEED, cache)
        if not cfg.BODY3D.TRAIN_2D_FORMAT:
            return ds3
        recs2 = load_records_2d(resolved_config(cfg), built.skeleton, built.codec.aspect_ratio)
        ds2 = make_dataset(recs2, built, True, body3d_augment(cfg), cfg.TRAIN.SEED + 1, cache)
        share = cfg.BODY3D.TRAIN_2D_SHARE
        return MixedDataset([ds3, ds2], seed=cfg.TRAIN.SEED, shares=[1.0 - share, share])

    def collate(self, items: Sequence[Any]) -> Batch:
        images, targets, meta = collate_body3d(items)
        return Batch(images, targets, meta)

    def criterion(self, cfg: Config, built: Built) -> Criterion:
        return body3d_criterion()

    def evaluate(self, cfg: Config, model: nn.Module, built: Built, device: torch.device, split: str = "test",
                 boxes: str | None = None, flip: bool | None = None, progress: Any = None
                 ) -> tuple[dict[str, float], list[dict]]:
        """MPJPE over the split's ground-truth boxes (`boxes`, a detections file, is not used)."""
        rcfg = resolved_config(cfg)
        recs = load_records_3d(rcfg, "train" if split == "train" else "test", built.codec.aspect_ratio)
        if not recs:
            raise DataError(f"no test people found for {cfg.DATASET.TEST_ANN or cfg.DATASET.ROOT}")
        ds = make_dataset(recs, built, train=False)
        flip_test = cfg.TEST.FLIP_TEST if flip is None else flip
        coords, _ = predict_coords(model, ds, built.skeleton.flip_pairs if flip_test else None,
                                   batch_size=cfg.TEST.BATCH_SIZE_PER_GPU, workers=cfg.WORKERS, device=device,
                                   progress=progress)
        if cfg.BODY3D.ROOT_DEPTH in ("", "gt"):
            roots = np.array([r.root_depth for r in recs], dtype=np.float32)
        else:
            table = read_root_depths(cfg.BODY3D.ROOT_DEPTH)
            missing = [r.image_id for r in recs if r.image_id not in table]
            if missing:
                raise DataError(f"BODY3D.ROOT_DEPTH {cfg.BODY3D.ROOT_DEPTH}: no root for image_id {missing[:5]}")
            roots = np.array([table[r.image_id] for r in recs], dtype=np.float32)
        c = built.codec
        cam = output_to_camera(coords, np.stack([r.bbox for r in recs]), roots, np.stack([r.f for r in recs]),
                               np.stack([r.c for r in recs]), c.output_size, c.depth_dim, c.bbox_3d_depth)
        metrics = score_body3d(cam, recs, built.skeleton, with_actions=dataset_format(rcfg).startswith("h36m"))
        results = [{"image_id": int(r.image_id), "ann_id": int(r.ann_id), "image_path": r.image_path,
                    "bbox": [float(v) for v in r.bbox], "root_depth": float(z),
                    "joints_cam": np.round(p.astype(np.float64), 3).tolist()}
                   for r, z, p in zip(recs, roots, cam, strict=True)]
        return metrics, results

    def primary_metric(self, cfg: Config) -> str:
        fmt = dataset_format(cfg)
        return "PA-MPJPE" if fmt.startswith("h36m") and cfg.BODY3D.PROTOCOL == 1 else "MPJPE"

    def higher_is_better(self, cfg: Config) -> bool:
        return False



# ------------------------------------------------------------------------------------------------------------
# Images -> 3-D poses (library entry for PoseEstimator / posekit infer)


def load_body3d(weights: str | Path, config: Config | None = None) -> Built:
    """A trained 3-D model ready for `predict_poses_3d`: network with `weights` loaded (eval mode), Body3DCoder and
    skeleton, rebuilt from the config stored in a posekit weights file (or from `config` for official weights)."""
    from posekit.config import config_from_yaml
    from posekit.models.weights import load_checkpoint
    from posekit.modelspec import read_spec

    spec = read_spec(weights)
    if config is None:
        if spec is None or not spec.config_yaml:
            raise ConfigError(f"{weights}: no posekit model spec inside (official weights): pass the config")
        config = config_from_yaml(spec.config_yaml, source=f"{weights} (stored config)")
    built = build_body3d(config)
    load_checkpoint(built.model, weights, strict=True)
    built.model.eval()
    return built
