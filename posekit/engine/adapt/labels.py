"""Pseudo labels of a round: generation over the target training images, the round's file, the diagnostics the
official code lacks, and pictures.

Generation (CC-SSL, see pseudo.py for the fixture-exact math): each target record's identity crop (posekit's
TopDownDataset crop from the record's box: ImageNet normalisation, no double mean subtraction), T - 1 scaled / rotated
copies warped from it with cv2 (the official bearpaw `crop` needs SciPy functions that no longer exist; the official
real images ARE identity crops, so this is the same operation up to interpolation), the back-warped average, the
codec's decoding, and LK flow between consecutive frames of one sequence (image `sequence_id`; the official crosses
video boundaries). WS-CDA's progressive pseudo labels use one identity pass and no flow.

Diagnostics (hidden target GT, never used for training): a pseudo label is correct when it lies within 0.05 of the
crop's larger side of the GT joint (CC-SSL's PCK@0.05 threshold: 12.8 px of a 256 crop); the precision of the kept
labels, of the dropped ones, and per confidence decile of all labelled joints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from posekit import geometry
from posekit.data.records import PoseRecord
from posekit.data.topdown import TopDownDataset, normalize_crop
from posekit.engine.adapt.pseudo import (
    average_back_warped,
    draw_pass_params,
    pass_matrix,
    resize_factor,
    temporal_update,
    threshold_for_round,
    threshold_mask,
)
from posekit.errors import DataError


def _crop_passes(crop: np.ndarray, params: np.ndarray, input_size: Sequence[int]) -> np.ndarray:
    """Normalised network inputs [T,3,h,w] of the identity crop and its scaled / rotated passes."""
    iw, ih = int(input_size[0]), int(input_size[1])
    s0 = iw / 200.0
    crops = [crop]
    for t in range(1, params.shape[0]):
        m = pass_matrix(input_size, resize_factor(params[t, 0], s0, iw), params[t, 1])
        crops.append(cv2.warpAffine(crop, m, (iw, ih), flags=cv2.INTER_LINEAR))
    return np.stack([normalize_crop(c, bgr=True) for c in crops])


@torch.no_grad()
def predict_crops(net: Any, codec: Any, crops: Sequence[np.ndarray], params: Sequence[np.ndarray],
                  device: torch.device, flip_index: Sequence[int] | None = None) -> np.ndarray:
    """Pseudo keypoints [N,K,3] (crop px, confidence = max of the back-warped average map) of identity crops, all
    passes of all crops in one forward."""
    iw = codec.input_size[0]
    x = np.concatenate([_crop_passes(c, p, codec.input_size) for c, p in zip(crops, params)])
    if flip_index is not None:
        x = np.concatenate([x, np.stack([normalize_crop(np.ascontiguousarray(c[:, ::-1]), bgr=True) for c in crops])])
    out = net(torch.from_numpy(x).to(device)).float().cpu().numpy()
    kp = np.zeros((len(crops), codec.num_keypoints, 3), np.float32)
    at = 0
    for i, p in enumerate(params):
        n = p.shape[0]
        avg = average_back_warped(out[at:at + n], p, iw / 200.0, iw)
        at += n
        if flip_index is not None:
            back = codec.flip_back(out[-len(crops) + i][None], flip_index)[0]
            avg = ((avg.astype(np.float64) * n + back) / (n + 1)).astype(np.float32)
        coords, _ = codec.decode(avg[None])
        kp[i, :, :2] = coords[0]
        kp[i, :, 2] = avg.reshape(avg.shape[0], -1).max(axis=1)
    return kp


def to_image(records: Sequence[PoseRecord], crop_kpts: np.ndarray, codec: Any) -> np.ndarray:
    """Keypoints [N,K,3] in identity-crop px -> image px (the crop's inverse affine; the third column kept)."""
    out = np.array(crop_kpts, np.float32, copy=True)
    for i, r in enumerate(records):
        m = geometry.affine_matrix(r.center, r.size, 0.0, codec.input_size, kind=getattr(codec, "affine", "standard"))
        out[i, :, :2] = geometry.apply_affine(crop_kpts[i, :, :2].astype(np.float64), cv2.invertAffineTransform(m))
    return out


@torch.no_grad()
def generate(net: Any, codec: Any, skeleton: Any, records: Sequence[PoseRecord], sequences: dict[int, int],
             cfg: Any, round_index: int, device: torch.device, chunk: int = 64) -> dict[str, Any]:
    """Pseudo keypoints (image px), confidences and the kept mask of every target record for one round."""
    net.eval()
    ds = TopDownDataset(records, codec, skeleton, augment=None, train=False, seed=cfg.seed)
    ccssl = cfg.method == "ccssl"
    passes = cfg.num_transform if ccssl else 1
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + round_index)
    flip = skeleton.flip_index if cfg.flip_pseudo else None
    crop_kpts = np.zeros((len(ds), codec.num_keypoints, 3), np.float32)
    grays = []
    per = max(1, chunk // passes)
    for start in range(0, len(ds), per):
        crops = [np.ascontiguousarray(ds.sample(i).crop[..., :3]) for i in range(start, min(len(ds), start + per))]
        params = [draw_pass_params(passes, codec.input_size[0] / 200.0, cfg.scale_factor, cfg.rot_factor, gen)
                  for _ in crops]  # drawn image by image in file order, as the official loop
        crop_kpts[start:start + len(crops)] = predict_crops(net, codec, crops, params, device, flip)
        grays += [cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in crops]
    if ccssl and cfg.temporal:
        _temporal(crop_kpts, grays, [sequences.get(r.image_id) for r in records], cfg, codec.input_size[0])
    thresh, drop = threshold_for_round(crop_kpts[:, :, 2], round_index, cfg.schedule_step, cfg.kept)
    mask = threshold_mask(crop_kpts[:, :, 2], thresh)
    return {"round": round_index, "schedule_epoch": round_index * cfg.schedule_step, "drop_fraction": drop,
            "threshold": thresh, "kept_fraction": float(mask.mean()), "keypoints": to_image(records, crop_kpts, codec),
            "mask": mask, "passes": (passes + (flip is not None)) * len(ds)}


def _temporal(kpts: np.ndarray, grays: list[np.ndarray], seqs: list, cfg: Any, side: int) -> None:
    """In place, in file order: LK-flow each frame's predecessor (same sequence) into it (pseudo.temporal_update)."""
    for i in range(1, len(kpts)):
        if seqs[i] is not None and seqs[i - 1] == seqs[i]:
            kpts[i] = temporal_update(grays[i - 1], grays[i], kpts[i - 1], kpts[i], cfg.lambda_decay,
                                      15.0 * side / 256.0, cfg.zero_previous_on_reject)


def precision(pred: np.ndarray, mask: np.ndarray, gt: np.ndarray, norm: np.ndarray, alpha: float = 0.05,
              bins: int = 10) -> dict[str, Any]:
    """Pseudo-label precision against hidden GT: pred [N,K,3] (x, y, confidence), mask [N,K] kept, gt [N,K,3]
    (visibility > 0 = labelled), norm [N] px; correct = distance <= alpha x norm. Per confidence decile of the
    labelled joints (equal-count bins, lowest first): precision, mean confidence and count."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    labelled = gt[..., 2] > 0
    dist = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)
    correct = dist <= alpha * np.asarray(norm, np.float64)[:, None]
    kept = (np.asarray(mask) > 0) & labelled
    dropped = ~(np.asarray(mask) > 0) & labelled

    def rate(sel: np.ndarray) -> float | None:
        return float(correct[sel].mean()) if sel.any() else None

    conf, ok = pred[..., 2][labelled], correct[labelled]
    order = np.argsort(conf, kind="stable")
    deciles = [{"precision": float(ok[idx].mean()), "confidence": float(conf[idx].mean()), "count": int(idx.size)}
               for idx in np.array_split(order, bins) if idx.size]
    return {"kept_precision": rate(kept), "dropped_precision": rate(dropped), "all_precision": rate(labelled),
            "kept_labelled": int(kept.sum()), "labelled": int(labelled.sum()), "deciles": deciles}


def write(path: Path, labels: dict[str, Any], records: Sequence[PoseRecord], ann_file: str) -> None:
    """Pseudo labels as a COCO keypoint file (v = 2 kept, 0 dropped) with confidences and the round's threshold."""
    src = json.loads(Path(ann_file).read_text())
    anns = []
    for i, r in enumerate(records):
        kp, keep = labels["keypoints"][i], labels["mask"][i] > 0
        flat = [v for j in range(kp.shape[0]) for v in (float(kp[j, 0]), float(kp[j, 1]), 2 if keep[j] else 0)]
        anns.append({"id": i + 1, "image_id": r.image_id, "category_id": r.category_id,
                     "bbox": [float(v) for v in r.box], "area": float(r.area), "iscrowd": 0, "keypoints": flat,
                     "num_keypoints": int(keep.sum()), "confidence": [float(c) for c in kp[:, 2]]})
    info = {k: labels[k] for k in ("round", "schedule_epoch", "drop_fraction", "threshold", "kept_fraction")}
    if "diagnostics" in labels:
        info["diagnostics"] = labels["diagnostics"]
    out = {"info": info, "images": src["images"], "annotations": anns, "categories": src["categories"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, path)


def read(path: Path, records: Sequence[PoseRecord]) -> list[PoseRecord]:
    """Target records carrying the pseudo keypoints of a written round (v = kept mask)."""
    anns = json.loads(path.read_text())["annotations"]
    if len(anns) != len(records):
        raise DataError(f"{path}: {len(anns)} pseudo labels for {len(records)} target records")
    out = []
    for r, a in zip(records, anns):
        kp = np.asarray(a["keypoints"], np.float32).reshape(-1, 3)
        kp[:, 2] = (kp[:, 2] > 0).astype(np.float32)
        out.append(PoseRecord(**{**r.__dict__, "keypoints": kp}))
    return out


def picture(records: Sequence[PoseRecord], labels: dict[str, Any], gt: np.ndarray | None, codec: Any,
            skeleton: Any, count: int, cols: int = 6) -> np.ndarray:
    """A grid of `count` target crops (evenly spread over the set) with the kept pseudo labels: green where within
    0.05 of the crop side of the hidden GT, red where not, yellow where the GT has no label (BGR uint8)."""
    ds = TopDownDataset(records, codec, skeleton, augment=None, train=False)
    picks = np.unique(np.linspace(0, len(records) - 1, min(count, len(records))).round().astype(int))
    iw, ih = codec.input_size
    scale = max(2, 256 // max(iw, ih))
    tiles = []
    for i in picks:
        s = ds.sample(int(i))
        crop = cv2.resize(np.ascontiguousarray(s.crop[..., :3]), (iw * scale, ih * scale),
                          interpolation=cv2.INTER_NEAREST)
        pts = geometry.apply_affine(labels["keypoints"][i, :, :2].astype(np.float64), s.matrix) * scale
        side = 0.05 * max(records[i].size)
        for j in np.flatnonzero(labels["mask"][i] > 0):
            color = (0, 220, 255)
            if gt is not None and gt[i, j, 2] > 0:
                ok = np.linalg.norm(labels["keypoints"][i, j, :2] - gt[i, j, :2]) <= side
                color = (0, 200, 0) if ok else (0, 0, 255)
            cv2.circle(crop, (int(round(pts[j, 0])), int(round(pts[j, 1]))), max(2, scale + 1), color, -1)
        tiles.append(crop)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + cols], axis=1) for r in range(0, len(tiles), cols)]
    return np.concatenate(rows, axis=0)
