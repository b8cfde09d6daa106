"""`posekit bench pipeline`: training data pipeline throughput (samples/s) in one process.

Full COCO augmentation, msra codec, 256x192 crops -> 64x48 targets, on the real COCO samples of ../shared
(coco_mini: 39 images, 68 people) when present, else on generated JPEGs. Three variants run on the same data:

- `official-style`: the official JointsDataset cost profile (full decode, whole-image BGR->RGB and flip copy,
  per-joint target loop, ToTensor + Normalize), for a same-machine baseline;
- `posekit`: TopDownDataset with its defaults (LRU cache of 8 decoded images, reduced JPEG decoding, region
  decoding of the crop's source pixels once the cache is full), samples in shuffled order as a RandomSampler
  gives them;
- `posekit-grouped`: ImageGroupedSampler order (people of one image in a row) with whole images decoded and
  cached, so the next people of an image hit the cache;
- `posekit-whole` (only on request): shuffled order, whole images only (no region decoding), to see what region
  decoding gains.

`--cache-size 0` shows shuffled order without any reuse, as on a dataset far larger than the cache (COCO).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from posekit import codecs, geometry, skeletons
from posekit.cli.tables import format_table
from posekit.data.augment import AugmentConfig, half_body_box
from posekit.data.coco import load_coco
from posekit.data.records import PoseRecord
from posekit.data.topdown import IMAGENET_MEAN, IMAGENET_STD, ImageGroupedSampler, TopDownDataset

HELP = "training data pipeline throughput (one process, full augmentation, msra 256x192 -> 64x48)"

INPUT_SIZE = (192, 256)
HEATMAP_SIZE = (48, 64)
VARIANTS = ("official-style", "posekit", "posekit-grouped", "posekit-whole")
DEFAULT_VARIANTS = VARIANTS[:3]
COCO_MINI = Path("data/coco/coco_mini_obmutescence")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per variant and round (default 3)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds; each variant's median round counts, and ratios are per round "
                             "(default 5)")
    parser.add_argument("--ann", default=None, help="COCO keypoint json (default: ../shared coco_mini, else synthetic)")
    parser.add_argument("--images", default=None, help="image folder of --ann")
    parser.add_argument("--cache-size", type=int, default=8, help="decoded-image cache size (default 8)")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)} (default: the first three)")
    parser.add_argument("--seed", type=int, default=0)


def shared_dir() -> Path | None:
    """../shared next to the project (or $POSEKIT_SHARED), if it exists."""
    env = os.environ.get("POSEKIT_SHARED")
    path = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared"
    return path if path.is_dir() else None


def synthetic_records(folder: Path, num_images: int = 24, seed: int = 0) -> list[PoseRecord]:
    """JPEG photos-like images (gradients, shapes, noise; 640x480) with 1-3 random 17-keypoint people each."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(num_images):
        h, w = 480, 640
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * rng.uniform(0.1, 0.4) + yy * rng.uniform(0.1, 0.4) + rng.uniform(0, 80)) % 255] * 3, -1)
        img = img.astype(np.uint8)
        for _ in range(40):
            color = tuple(int(v) for v in rng.integers(0, 255, 3))
            p = tuple(int(v) for v in rng.integers(0, 640, 2))
            if rng.random() < 0.5:
                cv2.circle(img, p, int(rng.integers(5, 80)), color, -1)
            else:
                cv2.rectangle(img, p, (p[0] + int(rng.integers(5, 150)), p[1] + int(rng.integers(5, 150))), color, -1)
        noise = np.empty(img.shape, np.int16)
        cv2.setRNGSeed(seed * 1000 + i)
        cv2.randn(noise, 0, 12)
        img = np.clip(img + noise, 0, 255).astype(np.uint8)
        path = folder / f"{i:06d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        for _ in range(int(rng.integers(1, 4))):
            bw, bh = rng.uniform(40, 300), rng.uniform(80, 420)
            x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            kp = np.zeros((17, 3), np.float32)
            kp[:, 0] = x0 + rng.uniform(0, bw, 17)
            kp[:, 1] = y0 + np.sort(rng.uniform(0, bh, 17))
            kp[:, 2] = np.where(rng.random(17) < 0.8, 2, 0)
            box = np.array([x0, y0, bw, bh])
            center, size = geometry.box_xywh_to_center_size(box, INPUT_SIZE[0] / INPUT_SIZE[1], 1.25)
            records.append(PoseRecord(image_path=str(path), image_id=i, center=center, size=size, keypoints=kp,
                                      ann_id=len(records), area=float(bw * bh), box=box))
    return records


class OfficialStyle:
    """The official JointsDataset per-sample work (same augmentation rules), for a same-machine baseline."""

    def __init__(self, records: list[PoseRecord], skeleton: skeletons.Skeleton, cfg: AugmentConfig) -> None:
        self.records, self.skeleton, self.cfg = records, skeleton, cfg
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        self.timings: dict[str, float] = {}

    def _tick(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + t1 - t0
        return t1

    def item(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rec, cfg = self.records[index], self.cfg
        t = time.perf_counter()
        img = cv2.imread(rec.image_path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        t = self._tick("decode", t)
        joints = rec.keypoints[:, :2].astype(np.float64)
        vis = np.repeat((rec.keypoints[:, 2:3] > 0).astype(np.float64), 2, axis=1)
        c, s = rec.center.copy(), rec.size / geometry.PIXEL_STD
        if vis[:, 0].sum() > cfg.num_joints_half_body and rng.random() < cfg.half_body_prob:
            box = half_body_box(joints, vis[:, 0] > 0, self.skeleton.upper_body_ids, 0.75, rng)
            if box is not None:
                c, s = box[0], box[1] / geometry.PIXEL_STD
        s = s * np.clip(rng.standard_normal() * cfg.scale_factor + 1, 1 - cfg.scale_factor, 1 + cfg.scale_factor)
        r = np.clip(rng.standard_normal() * cfg.rotation_factor, -2 * cfg.rotation_factor, 2 * cfg.rotation_factor) \
            if rng.random() <= cfg.rotation_prob else 0
        if cfg.flip and rng.random() <= 0.5:
            img = img[:, ::-1, :]
            joints, vis = geometry.fliplr_joints(joints, vis, img.shape[1], self.skeleton.flip_pairs)
            c = c.copy()
            c[0] = img.shape[1] - c[0] - 1
        trans = geometry.get_affine_transform(c, s, r, INPUT_SIZE)
        t = self._tick("augment", t)
        crop = cv2.warpAffine(img, trans, INPUT_SIZE, flags=cv2.INTER_LINEAR)
        for i in range(len(joints)):
            if vis[i, 0] > 0:
                joints[i] = np.dot(trans, np.array([joints[i, 0], joints[i, 1], 1.0]))
        t = self._tick("warp", t)
        x = torch.from_numpy(crop.transpose(2, 0, 1).copy()).float().div(255)
        x = (x - self.mean) / self.std
        t = self._tick("normalize", t)
        target, weight = _loop_target(joints, vis[:, 0])
        self._tick("encode", t)
        return x, torch.from_numpy(target), torch.from_numpy(weight)


def _loop_target(joints: np.ndarray, vis: np.ndarray, sigma: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian targets joint by joint in a 13x13 window, as the official generate_target loop."""
    (w, h), k = HEATMAP_SIZE, len(joints)
    weight = vis.reshape(-1, 1).astype(np.float32)
    target = np.zeros((k, h, w), np.float32)
    stride = np.array(INPUT_SIZE) / np.array(HEATMAP_SIZE)
    r = 3 * sigma
    for j in range(k):
        mx, my = int(joints[j, 0] / stride[0] + 0.5), int(joints[j, 1] / stride[1] + 0.5)
        ul, br = (int(mx - r), int(my - r)), (int(mx + r + 1), int(my + r + 1))
        if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
            weight[j] = 0
            continue
        x = np.arange(0, 2 * r + 1, 1, np.float32)
        y = x[:, None]
        g = np.exp(-((x - r) ** 2 + (y - r) ** 2) / (2 * sigma**2))
        gx, gy = (max(0, -ul[0]), min(br[0], w) - ul[0]), (max(0, -ul[1]), min(br[1], h) - ul[1])
        ix, iy = (max(0, ul[0]), min(br[0], w)), (max(0, ul[1]), min(br[1], h))
        if weight[j] > 0.5:
            target[j, iy[0]:iy[1], ix[0]:ix[1]] = g[gy[0]:gy[1], gx[0]:gx[1]]
    return target, weight


def _orders(records: list[PoseRecord], grouped: bool, seed: int):
    """Endless per-epoch index orders: shuffled (RandomSampler) or image-grouped."""
    epoch = 0
    sampler = ImageGroupedSampler(records, seed=seed)
    while True:
        if grouped:
            sampler.set_epoch(epoch)
            yield epoch, list(sampler)
        else:
            yield epoch, list(np.random.default_rng([seed, epoch]).permutation(len(records)))
        epoch += 1


def measure(variant: str, records: list[PoseRecord], skeleton: skeletons.Skeleton, seconds: float, seed: int,
            cache_size: int) -> dict[str, Any]:
    """Run one variant for `seconds`; samples/s and per-stage milliseconds per sample."""
    cfg = AugmentConfig()
    codec = codecs.build("msra", input_size=INPUT_SIZE, heatmap_size=HEATMAP_SIZE, num_keypoints=17)
    if variant == "official-style":
        official = OfficialStyle(records, skeleton, cfg)
        rng = np.random.default_rng(seed)

        def get(i: int, epoch: int) -> int:
            official.item(i, rng)
            return 1

        timings = official.timings
        ds = None
    else:
        # shuffled order: region decoding once the cache is full; grouped order: whole images, which the next
        # people of the same image reuse from the cache
        ds = TopDownDataset(records, codec, skeleton, cfg, train=True, seed=seed, cache_size=cache_size,
                            region_decoding=variant == "posekit")
        ds.timings = {}
        timings = ds.timings

        def get(i: int, epoch: int) -> int:
            if ds.epoch != epoch:
                ds.set_epoch(epoch)
            return int(ds[i][3]["reduction"] > 1)

    for i in range(min(8, len(records))):  # warm-up (page cache, lazy imports)
        get(i, 0)
    timings.clear()
    if ds is not None:
        ds.reader.clear()
    n = reduced = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    for epoch, order in _orders(records, variant == "posekit-grouped", seed):
        for i in order:
            reduced += get(int(i), epoch)
            n += 1
            if time.perf_counter() >= deadline:
                break
        else:
            continue
        break
    elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {
        "variant": variant,
        "samples": n,
        "seconds": elapsed,
        "samples_per_s": n / elapsed,
        "ms_per_sample": {k: 1000 * v / n for k, v in sorted(timings.items())},
    }
    if ds is not None:
        lookups = ds.reader.hits + ds.reader.misses
        out["cache_hit_rate"] = ds.reader.hits / max(lookups, 1)
        out["region_decode_fraction"] = ds.reader.regions / max(lookups, 1)
        out["reduced_decode_fraction"] = reduced / max(n, 1)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the requested variants (best of `rounds`); JSON-able result."""
    variants = [v.strip() for v in str(args.variants).split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        from posekit.errors import ConfigError

        raise ConfigError(f"--variants: unknown {', '.join(unknown)}; expected some of {', '.join(VARIANTS)}")
    tmp = None
    shared = shared_dir()
    if args.ann:
        records, skeleton = load_coco(args.ann, args.images or Path(args.ann).parent)
        source = str(args.ann)
    elif shared is not None and (shared / COCO_MINI).is_dir():
        root = shared / COCO_MINI
        records, skeleton = load_coco(root / "person_keypoints_val2017.json", root / "val2017")
        source = "coco_mini (real COCO val2017 samples)"
    else:
        tmp = tempfile.TemporaryDirectory(prefix="posekit-bench-")
        records, skeleton = synthetic_records(Path(tmp.name), seed=args.seed), skeletons.get("coco")
        source = "generated JPEGs (640x480)"
    threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)  # one thread each, as in a DataLoader worker: stable on a shared machine
    cv2.setNumThreads(1)
    try:
        rounds: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for _ in range(max(1, args.rounds)):  # interleaved rounds: a load spike hits every variant alike
            for variant in variants:
                rounds[variant].append(measure(variant, records, skeleton, args.seconds, args.seed, args.cache_size))
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])
        if tmp is not None:
            tmp.cleanup()
    results = []
    for variant in variants:
        runs = sorted(rounds[variant], key=lambda r: r["samples_per_s"])
        median = dict(runs[(len(runs) - 1) // 2])
        median["rounds_samples_per_s"] = [r["samples_per_s"] for r in rounds[variant]]
        if variant != "official-style" and "official-style" in rounds:  # same-round ratios
            pairs = zip(rounds[variant], rounds["official-style"])
            ratios = [r["samples_per_s"] / o["samples_per_s"] for r, o in pairs]
            median["rounds_vs_official"] = ratios
            median["vs_official"] = float(np.median(ratios))
        results.append(median)
    by_name = {r["variant"]: r for r in results}
    headline = by_name.get("posekit", results[0])
    return {
        "data": source,
        "num_people": len(records),
        "num_images": len({r.image_path for r in records}),
        "input_size": list(INPUT_SIZE),
        "heatmap_size": list(HEATMAP_SIZE),
        "codec": "msra",
        "threads": 1,
        "rounds": max(1, args.rounds),
        "samples_per_s": headline["samples_per_s"],
        "variants": results,
    }


def render(result: dict[str, Any]) -> str:
    """Readable table of the result of `run`."""
    stages = sorted({k for r in result["variants"] for k in r["ms_per_sample"]})
    rows = []
    for r in result["variants"]:
        rows.append([r["variant"], r["samples_per_s"], f"{r['vs_official']:.2f}x" if "vs_official" in r else "-"]
                    + [r["ms_per_sample"].get(s, 0.0) for s in stages]
                    + [f"{r[k]:.2f}" if k in r else "-"
                       for k in ("cache_hit_rate", "region_decode_fraction", "reduced_decode_fraction")])
    headers = (["variant", "samples/s", "vs official"] + [f"{s} ms" for s in stages]
               + ["cache hits", "region", "reduced"])
    head = (f"data: {result['data']}, {result['num_people']} people in {result['num_images']} images; "
            f"{result['codec']} {result['input_size'][1]}x{result['input_size'][0]} -> "
            f"{result['heatmap_size'][1]}x{result['heatmap_size'][0]}, full augmentation, one process, one thread; "
            f"median of {result['rounds']} interleaved rounds, 'vs official' the median same-round ratio")
    return head + "\n" + format_table(rows, headers, digits=2)
