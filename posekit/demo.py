"""The CPU demo: synthetic people -> time-boxed training of a small zoo model -> COCO AP with flip test -> pictures.

`run_demo(out_dir)` generates (or reuses) a train and a held-out val split of posekit's synthetic humans (same
generator settings, different seeds), trains the config's network for `minutes` of training wall-clock with a
learning rate that follows a cosine over that time, evaluates COCO keypoint AP on the held-out split (its GT
boxes, flip test), and writes to out_dir: model.pth (state_dict, official key names) and config.yaml (so
`posekit test out/demo/config.yaml --weights out/demo/model.pth` re-scores it), metrics.json, curve.json,
curve.png (loss and held-out AP vs training minutes), results.json (COCO results) and predictions/*.png.

Training time counts the training loop only: batch loading, forward, backward and optimizer steps, from the first
batch to the last step. Not counted: data generation, model construction, the periodic held-out evaluations and
the final evaluation (they are timed separately and reported).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from posekit.errors import ConfigError, DataError, PosekitError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "synth" / "demo.yaml"
DEFAULT_DATA_DIR = Path("data") / "synth_demo"
TARGET_AP = 0.70


class DemoError(PosekitError):
    """The demo cannot go on (e.g. a non-finite loss)."""


@dataclass(frozen=True)
class DataSettings:
    """The synthetic splits: same generator settings, different seeds (val = train seed + 1)."""

    num_train: int = 1500
    num_val: int = 200
    kind: str = "human"
    style: str = "A"
    max_subjects: int = 3
    image_size: tuple[int, int] = (256, 256)
    max_yaw: float = 90.0  # bodies face the camera or are side-on: left/right is learnable in a few CPU minutes


def _split_matches(ann_file: Path, num_images: int, seed: int, s: DataSettings) -> bool:
    """Whether an existing split was generated with these settings (and its images are all there)."""
    try:
        data = json.loads(ann_file.read_text())
    except (OSError, ValueError):
        return False
    info = data.get("info", {})
    wanted = {"kind": s.kind, "style": s.style, "seed": seed, "max_subjects": s.max_subjects,
              "image_size": list(s.image_size), "max_yaw": s.max_yaw}
    if any(info.get(k) != v for k, v in wanted.items()) or len(data.get("images", [])) != num_images:
        return False
    return all((ann_file.parent / "images" / img["file_name"]).is_file() for img in data["images"])


def ensure_data(data_dir: str | os.PathLike, seed: int = 0, settings: DataSettings = DataSettings(),
                progress: Callable[..., Any] | None = None, workers: int | None = None) -> dict[str, Any]:
    """Generate data_dir/train (seed) and data_dir/val (seed + 1) unless they exist with the same settings."""
    from posekit.data.synth import generate

    out: dict[str, Any] = {}
    for split, n, split_seed in (("train", settings.num_train, seed), ("val", settings.num_val, seed + 1)):
        folder = Path(data_dir) / split
        ann = folder / "annotations.json"
        start = time.perf_counter()
        reused = _split_matches(ann, n, split_seed, settings)
        if not reused:
            bar = progress(total=n, desc=f"synth {split}", unit="img") if progress else None
            try:
                generate(folder, n, kind=settings.kind, style=settings.style, max_subjects=settings.max_subjects,
                         seed=split_seed, workers=workers, image_size=settings.image_size, max_yaw=settings.max_yaw,
                         progress=bar.update if bar is not None else None)
            finally:
                if bar is not None:
                    bar.close()
        out[split] = {"dir": str(folder), "ann_file": str(ann), "images": str(folder / "images"), "num_images": n,
                      "seed": split_seed, "reused": reused, "seconds": time.perf_counter() - start}
    return out


def demo_config(config: str | os.PathLike | None = None, data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
                minutes: float | None = None, seed: int = 0, overrides: Sequence[str] = ()) -> Any:
    """The demo Config: the YAML with its data paths pointed at data_dir, TRAIN.MAX_MINUTES and TRAIN.SEED set."""
    from posekit.config import ConfigWarning, load_config

    path = Path(config) if config else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"demo config {path} not found (pass --config)")
    d = Path(data_dir)
    fixed = [f"DATASET.TRAIN_ANN={d / 'train' / 'annotations.json'}", f"DATASET.TRAIN_IMAGES={d / 'train' / 'images'}",
             f"DATASET.TEST_ANN={d / 'val' / 'annotations.json'}", f"DATASET.TEST_IMAGES={d / 'val' / 'images'}",
             f"TRAIN.SEED={seed}"]
    if minutes is not None:
        fixed.append(f"TRAIN.MAX_MINUTES={minutes}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        cfg = load_config(path, [*fixed, *overrides])
    if cfg.TRAIN.MAX_MINUTES <= 0:
        raise ConfigError(f"TRAIN.MAX_MINUTES in {path}: the demo needs a time budget > 0, got {cfg.TRAIN.MAX_MINUTES}")
    return cfg


def lr_factor(fraction: float, warmup: float = 0.02, final: float = 0.01) -> float:
    """Learning-rate multiplier at a fraction of the time budget: linear warm-up, then cosine down to `final`."""
    f = min(max(fraction, 0.0), 1.0)
    if f < warmup:
        return 0.1 + 0.9 * f / warmup
    progress = (f - warmup) / max(1.0 - warmup, 1e-9)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def kaiming_init(model: nn.Module) -> nn.Module:
    """He-normal (fan_out) convolutions and deconvolutions, N(0, 0.001) for the last layer, BatchNorm 1 / 0.

    The official N(0, 0.001) init suits ImageNet-initialised backbones; from scratch, with Adam, tiny weights behind
    BatchNorm make the first steps huge relative changes and training starts far slower.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    for m in layers:
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    if layers:
        nn.init.normal_(layers[-1].weight, std=0.001)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


class HeldOut:
    """The held-out split (GT boxes, no augmentation) and COCO AP of a network on all of it or on its first images."""

    def __init__(self, cfg: Any, codec: Any, skeleton: Any) -> None:
        from posekit.data import TopDownDataset
        from posekit.engine.predict import data_paths, load_records

        self.cfg, self.codec, self.skeleton = cfg, codec, skeleton
        self.gt_path = data_paths(cfg).test_gt
        self.gt = json.loads(Path(self.gt_path).read_text())
        self.records = load_records(cfg, "test", skeleton, "gt")
        if not self.records:
            raise DataError(f"no held-out people in {self.gt_path}")
        self._dataset = TopDownDataset

    def image_ids(self, num_images: int | None = None) -> list[int]:
        """Ids of the first num_images images (all when None)."""
        ids = [int(img["id"]) for img in self.gt["images"]]
        return ids if num_images is None else ids[:num_images]

    def evaluate(self, model: nn.Module, num_images: int | None = None, flip_test: bool = True
                 ) -> tuple[dict[str, float], Any, list[dict]]:
        """(10 COCO stats, Predictions, COCO results) on the first num_images held-out images (all when None)."""
        from posekit.engine.predict import predict
        from posekit.evaluation import coco_keypoints
        from posekit.evaluation.results import make_results

        keep = set(self.image_ids(num_images))
        records = [r for r in self.records if int(r.image_id) in keep]
        gt = self.gt
        if num_images is not None:
            gt = {**self.gt, "images": [i for i in self.gt["images"] if int(i["id"]) in keep],
                  "annotations": [a for a in self.gt["annotations"] if int(a["image_id"]) in keep]}
        ds = self._dataset(records, self.codec, self.skeleton, augment=None, train=False)
        t = self.cfg.TEST
        preds = predict(model, ds, self.codec, flip_test=flip_test, flip_index=self.skeleton.flip_index,
                        batch_size=t.BATCH_SIZE_PER_GPU, workers=0, device="cpu", color_rgb=self.cfg.DATASET.COLOR_RGB)
        results = make_results(preds.keypoints, preds.box_scores, preds.image_ids, centers=preds.centers,
                               sizes=preds.sizes, in_vis_thre=t.IN_VIS_THRE, oks_thre=t.OKS_THRE, image_thre=0.0,
                               nms="soft" if t.SOFT_NMS else "oks", sigmas=self.skeleton.sigmas)
        metrics = coco_keypoints(copy.deepcopy(gt) if num_images is not None else self.gt_path, results,
                                 sigmas=self.skeleton)
        return metrics, preds, results


def train_timed(cfg: Any, model: nn.Module, codec: Any, skeleton: Any, *,
                evaluate: Callable[[nn.Module], float] | None = None, eval_every: float = 60.0,
                progress: Callable[..., Any] | None = None, on_event: Callable[[str, dict], None] | None = None,
                log_every: int = 10, channels_last: bool = True) -> dict[str, Any]:
    """Train `model` for TRAIN.MAX_MINUTES of training wall-clock (cosine LR over that time); returns the curve.

    `evaluate(model) -> AP` runs every `eval_every` training seconds (its time is not counted). The curve holds
    one point per `log_every` iterations (mean loss since the previous point) and the AP points. With
    `channels_last` the network and batches use the NHWC layout (about 1.3x faster training on CPU with oneDNN);
    call `model.to(memory_format=torch.contiguous_format)` to undo it.
    """
    from posekit.data import TopDownDataset
    from posekit.engine.predict import collate, load_records, rgb_to_official_bgr
    from posekit.engine.train import augment_config, build_criterion, build_optimizer, compute_loss, optimizer_step

    t = cfg.TRAIN
    budget = 60.0 * float(t.MAX_MINUTES)
    max_iters = int(t.MAX_ITERS)
    records = load_records(cfg, "train", skeleton)
    if not records:
        raise DataError(f"no training people in {cfg.DATASET.TRAIN_ANN}")
    num_images = len({r.image_path for r in records})
    train_ds = TopDownDataset(records, codec, skeleton, augment=augment_config(cfg), train=True, seed=t.SEED,
                              cache_size=num_images if num_images <= 5000 else 64)
    loader = DataLoader(train_ds, batch_size=t.BATCH_SIZE_PER_GPU, shuffle=t.SHUFFLE, num_workers=0,
                        collate_fn=collate, drop_last=True, generator=torch.Generator().manual_seed(t.SEED))
    optimizer = build_optimizer(cfg, model)
    criterion = build_criterion(cfg, codec)
    base_lr = float(t.LR)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    model.train()

    curve: list[dict[str, Any]] = []
    clock, iteration, epoch, images = 0.0, 0, 0, 0
    loss_sum, loss_n = 0.0, 0
    next_eval = eval_every if evaluate is not None and eval_every > 0 else math.inf
    bar = progress(total=round(budget), desc="train", unit="s") if progress else None
    shown = 0
    done = False
    try:
        while not done:
            train_ds.set_epoch(epoch)
            tic = time.perf_counter()
            for crops, target, weight, _ in loader:
                fraction = max(clock / budget, iteration / max_iters if max_iters else 0.0)
                lr = base_lr * lr_factor(fraction)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                if not cfg.DATASET.COLOR_RGB:
                    crops = rgb_to_official_bgr(crops)
                loss = compute_loss(criterion, model(crops.contiguous(memory_format=layout)), target, weight)
                if not torch.isfinite(loss.detach()):
                    raise DemoError(f"non-finite loss ({float(loss.detach()):.4g}) at iteration {iteration + 1}; "
                                    f"lower TRAIN.LR (now {base_lr})")
                optimizer_step(loss, model, optimizer, None, t.CLIP_MAX_NORM)
                iteration += 1
                images += len(crops)
                loss_sum += float(loss.detach())
                loss_n += 1
                now = time.perf_counter()
                clock += now - tic
                tic = now
                done = clock >= budget or (max_iters > 0 and iteration >= max_iters)
                if iteration % log_every == 0 or done:
                    curve.append({"minutes": clock / 60.0, "iteration": iteration, "epoch": epoch, "lr": lr,
                                  "loss": loss_sum / loss_n})
                    loss_sum, loss_n = 0.0, 0
                if bar is not None:
                    step = min(round(clock), round(budget)) - shown
                    if step > 0:
                        bar.update(step)
                        shown += step
                    bar.set_postfix(loss=f"{float(loss.detach()):.3g}", it=iteration, img_s=f"{images / clock:.1f}")
                if done:
                    break
                if clock >= next_eval:
                    _timed_eval(evaluate, model, clock, iteration, curve, on_event)
                    next_eval += eval_every
                    tic = time.perf_counter()  # the evaluation is not training time
            epoch += 1
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    return {"train_seconds": clock, "iterations": iteration, "epochs": images / len(records),
            "images_seen": images, "train_people": len(records), "train_images": num_images, "curve": curve,
            "images_per_s": images / max(clock, 1e-9)}


def _timed_eval(evaluate: Callable[[nn.Module], float], model: nn.Module, clock: float, iteration: int,
                curve: list[dict[str, Any]], on_event: Callable[[str, dict], None] | None) -> float:
    start = time.perf_counter()
    ap = float(evaluate(model))
    model.train()
    point = {"minutes": clock / 60.0, "iteration": iteration, "ap": ap, "eval_seconds": time.perf_counter() - start}
    curve.append(point)
    if on_event is not None:
        on_event("eval", point)
    return ap


def plot_curve(curve: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "",
               target: float | None = TARGET_AP) -> Path:
    """PNG of training loss (log scale) and held-out AP against training minutes (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss = [(p["minutes"], p["loss"]) for p in curve if "loss" in p]
    ap = [(p["minutes"], p["ap"]) for p in curve if "ap" in p]
    fig, ax1 = plt.subplots(figsize=(7, 4), dpi=110)
    if loss:
        ax1.plot(*zip(*loss), color="tab:blue", lw=1, label="training loss")
        ax1.set_yscale("log")
    ax1.set_xlabel("training minutes (wall-clock)")
    ax1.set_ylabel("training loss (MSE)", color="tab:blue")
    ax2 = ax1.twinx()
    if ap:
        ax2.plot(*zip(*ap), "o-", color="tab:red", label="held-out AP (flip test)")
    if target is not None:
        ax2.axhline(target, color="tab:red", ls=":", lw=1, label=f"target AP {target:.2f}")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("COCO AP, held-out split", color="tab:red")
    lines = ax1.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax2.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="center right", fontsize=8)
    if title:
        ax1.set_title(title, fontsize=9)
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def draw_predictions(preds: Any, gt: dict, image_root: str | os.PathLike, skeleton: Any, out_dir: str | os.PathLike,
                     num_images: int = 8, upscale: int = 2, threshold: float = 0.2) -> list[Path]:
    """PNGs of the first num_images held-out images with the predicted poses drawn, and a grid of them."""
    import cv2

    from posekit.data.images import read_image
    from posekit.vis import draw_pose, make_grid, write_png

    out = Path(out_dir)
    files, tiles = [], []
    for img in gt["images"][:num_images]:
        image = read_image(Path(image_root) / img["file_name"])
        image = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        for kp in preds.keypoints[preds.image_ids == int(img["id"])]:
            scaled = kp.copy()
            scaled[:, :2] = (scaled[:, :2] + 0.5) * upscale - 0.5
            image = draw_pose(image, scaled, skeleton, threshold=threshold)
        files.append(write_png(out / f"{Path(img['file_name']).stem}.png", image))
        tiles.append(image)
    if tiles:
        files.append(write_png(out.parent / "predictions.png", make_grid(tiles, cols=4)))
    return files


def run_demo(out_dir: str | os.PathLike = "out/demo", data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
             minutes: float | None = None, seed: int = 0, progress: Callable[..., Any] | None = None, *,
             config: str | os.PathLike | None = None, overrides: Sequence[str] = (),
             data: DataSettings = DataSettings(), eval_every: float = 60.0, eval_images: int | None = 50,
             num_pictures: int = 8, threads: int | None = None, init: str = "kaiming",
             on_event: Callable[[str, dict], None] | None = None) -> dict[str, Any]:
    """Synthetic data -> time-boxed training -> held-out COCO AP (GT boxes, flip test) -> files in out_dir.

    minutes: training budget (None: the config's TRAIN.MAX_MINUTES); eval_every: training seconds between
    held-out evaluations on the first `eval_images` val images (None: all; 0 disables them); progress: a tqdm-like
    factory; on_event(kind, info) reports steps ("data", "model", "eval", "final"). Returns what metrics.json holds
    plus the curve and file paths.
    """
    from posekit.config import build_model_from_config, config_to_yaml, model_spec
    from posekit.engine import checkpoint as ckpt
    from posekit.engine.predict import configure_codec

    def event(kind: str, info: dict) -> None:
        if on_event is not None:
            on_event(kind, info)

    if threads:
        torch.set_num_threads(int(threads))
    wall = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = demo_config(config, data_dir, minutes, seed, overrides)
    splits = ensure_data(data_dir, seed, data, progress=progress)
    event("data", splits)

    torch.manual_seed(seed)
    model, codec, skeleton = build_model_from_config(cfg)
    configure_codec(cfg, codec)
    if init == "kaiming":
        kaiming_init(model)
    spec = model_spec(cfg)
    (out / "config.yaml").write_text(config_to_yaml(cfg))
    held_out = HeldOut(cfg, codec, skeleton)
    event("model", {"model": spec.name, "codec": spec.codec, "input_size": list(spec.input_size),
                    "heatmap_size": list(spec.heatmap_size), "minutes": cfg.TRAIN.MAX_MINUTES,
                    "threads": torch.get_num_threads(), "val_people": len(held_out.records)})

    def evaluate(net: nn.Module) -> float:
        return held_out.evaluate(net, eval_images, cfg.TEST.FLIP_TEST)[0]["AP"]

    trained = train_timed(cfg, model, codec, skeleton, evaluate=evaluate if eval_every > 0 else None,
                          eval_every=eval_every, progress=progress, on_event=on_event)
    ckpt.atomic_save({k: v.contiguous() for k, v in model.state_dict().items()}, out / "model.pth")

    start = time.perf_counter()
    metrics, preds, results = held_out.evaluate(model, None, cfg.TEST.FLIP_TEST)
    eval_seconds = time.perf_counter() - start
    curve = trained["curve"]
    final_point = {"minutes": trained["train_seconds"] / 60.0, "iteration": trained["iterations"],
                   "ap": metrics["AP"], "eval_seconds": eval_seconds, "full": True}
    curve.append(final_point)
    event("final", final_point)

    summary: dict[str, Any] = dict(metrics)
    summary.update({
        "train_minutes": trained["train_seconds"] / 60.0,
        "budget_minutes": float(cfg.TRAIN.MAX_MINUTES),
        "iterations": trained["iterations"],
        "epochs": trained["epochs"],
        "images_seen": trained["images_seen"],
        "train_images_per_s": trained["images_per_s"],
        "model": spec.name,
        "codec": spec.codec,
        "input_size": list(spec.input_size),
        "heatmap_size": list(spec.heatmap_size),
        "threads": torch.get_num_threads(),
        "flip_test": bool(cfg.TEST.FLIP_TEST),
        "boxes": "gt",
        "train_images": trained["train_images"],
        "train_people": trained["train_people"],
        "val_images": len(held_out.gt["images"]),
        "val_people": len(held_out.records),
        "eval_seconds": eval_seconds,
        "target_ap": TARGET_AP,
        "seed": seed,
        "timing": "train_minutes counts the training loop only (batch loading, forward, backward, optimizer "
                  "steps); data generation and held-out evaluations are not counted",
    })
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "curve.json").write_text(json.dumps(curve, indent=1) + "\n")
    (out / "results.json").write_text(json.dumps(results))
    title = (f"{spec.name} ({spec.codec}, {spec.input_size[1]}x{spec.input_size[0]}), "
             f"{torch.get_num_threads()} threads: final AP {metrics['AP']:.3f}")
    curve_png = plot_curve(curve, out / "curve.png", title=title)
    pictures = draw_predictions(preds, held_out.gt, splits["val"]["images"], skeleton, out / "predictions",
                                num_images=num_pictures)
    summary["total_seconds"] = time.perf_counter() - wall
    return {**summary, "curve": curve, "data": splits, "out_dir": str(out),
            "files": {"weights": str(out / "model.pth"), "config": str(out / "config.yaml"),
                      "metrics": str(out / "metrics.json"), "curve_png": str(curve_png),
                      "curve_json": str(out / "curve.json"), "results": str(out / "results.json"),
                      "pictures": [str(p) for p in pictures]}}
