"""The CPU demo recipe: synthetic people -> `fit` (time budget) -> held-out COCO AP with flip test -> pictures.

`run_demo(out_dir)` generates (or reuses) a train and a held-out val split of posekit's synthetic humans (same
generator settings, different seeds), trains the demo config (posekit/configs/demo.yaml, shipped in the package)
with the one training engine for TRAIN.MAX_MINUTES of training time, scores the held-out split (GT boxes, flip test)
with the engine's task evaluation, and writes to out_dir next to fit's own files: model.pth (a posekit weights file
with its ModelSpec) and config.yaml (so `posekit test out/demo/config.yaml --weights out/demo/model.pth` re-scores
it), metrics.json, curve.json, curve.png (training loss and held-out AP vs training minutes), results.json (COCO
results) and predictions/*.png.

Training time counts the training loop only (batch loading, forward, backward, optimizer steps); data generation,
model construction and the held-out evaluations are timed separately and reported.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from posekit.errors import ConfigError

DEFAULT_DATA_DIR = Path("data") / "synth_demo"
TARGET_AP = 0.70


def default_config() -> Path:
    """The demo YAML shipped inside the package."""
    return Path(str(resources.files("posekit") / "configs" / "demo.yaml"))


@dataclass(frozen=True)
class DataSettings:
    """The synthetic splits: same generator settings, different seeds (val = train seed + 1)."""

    num_train: int = 4500  # 3x the 1500 images of earlier demos: +0.012 AP at equal iterations (less overfitting)
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

    path = Path(config) if config else default_config()
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


def _loss_curve(log_path: Path) -> list[dict[str, Any]]:
    points = []
    for line in log_path.read_text().splitlines():
        entry = json.loads(line)
        if "loss" in entry and "train_minutes" in entry:
            points.append({"minutes": entry["train_minutes"], "iteration": entry["iteration"], "loss": entry["loss"]})
    return points


def run_demo(out_dir: str | os.PathLike = "out/demo", data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
             minutes: float | None = None, seed: int = 0, progress: Callable[..., Any] | None = None, *,
             config: str | os.PathLike | None = None, overrides: Sequence[str] = (),
             data: DataSettings = DataSettings(), eval_every: float | None = None, num_pictures: int = 8,
             threads: int | None = None, on_event: Callable[[str, dict], None] | None = None) -> dict[str, Any]:
    """Synthetic data -> fit for the time budget -> held-out COCO AP (GT boxes, flip test) -> files in out_dir.

    minutes: training budget (None: the config's TRAIN.MAX_MINUTES); eval_every: training seconds between held-out
    evaluations (None: the config's TRAIN.VAL_EVERY_MINUTES; 0 disables them); on_event(kind, info): "data",
    "model", "eval", "final". Returns what metrics.json holds plus the curve and file paths.
    """
    from posekit.engine.spec import model_spec
    from posekit.engine.train import autocast_dtype, fit

    def event(kind: str, info: dict) -> None:
        if on_event is not None:
            on_event(kind, info)

    if threads:
        torch.set_num_threads(int(threads))
    wall = time.perf_counter()
    out = Path(out_dir)
    extra = [] if eval_every is None else [f"TRAIN.VAL_EVERY_MINUTES={eval_every / 60.0}"]
    cfg = demo_config(config, data_dir, minutes, seed, [*extra, *overrides])
    splits = ensure_data(data_dir, seed, data, progress=progress)
    event("data", splits)
    spec = model_spec(cfg)
    # the AP target is the default heatmap demo's; another config or model (PRTR, AE, ...) has none
    target = TARGET_AP if config is None and not any(str(o).startswith("MODEL.") for o in overrides) else None
    event("model", {"model": spec.name, "codec": spec.codec, "input_size": list(spec.input_size),
                    "heatmap_size": list(spec.heatmap_size), "minutes": cfg.TRAIN.MAX_MINUTES,
                    "threads": torch.get_num_threads(),
                    "autocast": autocast_dtype(cfg, torch.device("cpu"))})

    def fit_event(kind: str, info: dict) -> None:
        if kind == "eval":
            event("eval", {"minutes": info["train_minutes"], "iteration": info["iteration"],
                           "ap": info["metrics"]["AP"]})

    trained = fit(cfg, out, progress=progress, on_event=fit_event, device="cpu")
    task, built = _final_model(cfg, trained, spec, out)
    start = time.perf_counter()
    metrics, results = task.evaluate(cfg, built.model, built, torch.device("cpu"))
    eval_seconds = time.perf_counter() - start
    iterations = int(trained["iteration"])
    curve = _loss_curve(out / "log.jsonl") + [{"minutes": e["train_minutes"], "iteration": e["iteration"],
                                                "AP": e["metrics"]["AP"]} for e in trained["evals"]]
    final_point = {"minutes": trained["train_minutes"], "iteration": iterations, "AP": metrics["AP"],
                   "eval_seconds": eval_seconds, "full": True}
    curve.append(final_point)
    event("final", {**final_point, "ap": metrics["AP"]})

    gt = json.loads(Path(cfg.DATASET.TEST_ANN).read_text())
    summary = _summary(cfg, spec, trained, metrics, gt, eval_seconds, target, seed)
    files = _write_files(out, cfg, spec, summary, curve, results, gt, built, target, num_pictures)
    summary["total_seconds"] = time.perf_counter() - wall
    return {**summary, "curve": curve, "data": splits, "out_dir": str(out), "files": files}


def _final_model(cfg: Any, trained: dict[str, Any], spec: Any, out: Path) -> tuple[Any, Any]:
    """(task, built network with the run's final weights loaded); the weights go to out/model.pth with their spec."""
    from posekit.engine import checkpoint as ckpt
    from posekit.engine.tasks import task_for
    from posekit.engine.test import load_weights
    from posekit.modelspec import weights_file

    task = task_for(cfg)
    built = task.build(cfg)
    load_weights(built.model, trained["final_weights"] or trained["last_weights"], cfg)
    ckpt.atomic_save(weights_file(built.model.state_dict(), spec), out / "model.pth")
    return task, built


def _summary(cfg: Any, spec: Any, trained: dict[str, Any], metrics: dict[str, float], gt: dict[str, Any],
             eval_seconds: float, target: float | None, seed: int) -> dict[str, Any]:
    """What metrics.json holds: the held-out metrics, the training budget and rate, the model and the settings."""
    iterations = int(trained["iteration"])
    batch = cfg.TRAIN.BATCH_SIZE_PER_GPU
    summary: dict[str, Any] = dict(metrics)
    summary.update({
        "train_minutes": trained["train_minutes"], "budget_minutes": float(cfg.TRAIN.MAX_MINUTES),
        "iterations": iterations, "images_seen": iterations * batch,
        "train_images_per_s": iterations * batch / max(trained["train_minutes"] * 60.0, 1e-9),
        "model": spec.name, "codec": spec.codec, "input_size": list(spec.input_size),
        "heatmap_size": list(spec.heatmap_size), "threads": torch.get_num_threads(),
        "autocast": trained.get("autocast"), "flip_test": bool(cfg.TEST.FLIP_TEST), "boxes": "gt",
        "val_images": len(gt["images"]),
        "val_people": len(gt["annotations"]), "eval_seconds": eval_seconds, "target_ap": target, "seed": seed,
        "timing": "train_minutes counts the training loop only (batch loading, forward, backward, optimizer "
                  "steps); data generation and held-out evaluations are not counted",
    })
    return summary


def _write_files(out: Path, cfg: Any, spec: Any, summary: dict[str, Any], curve: list[dict], results: list[dict],
                 gt: dict[str, Any], built: Any, target: float | None, num_pictures: int) -> dict[str, Any]:
    """metrics.json, curve.json / .png, results.json and the prediction pictures; their paths."""
    from posekit.data.images import read_image
    from posekit.vis import draw_results, plot_curve

    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "curve.json").write_text(json.dumps(curve, indent=1) + "\n")
    (out / "results.json").write_text(json.dumps(results))
    title = (f"{spec.name} ({spec.codec}, {spec.input_size[1]}x{spec.input_size[0]}), "
             f"{torch.get_num_threads()} threads: final AP {summary['AP']:.3f}")
    curve_png = plot_curve(curve, out / "curve.png", title=title, target=target)
    shown = gt["images"][:num_pictures]
    pixels = [read_image(Path(cfg.DATASET.TEST_IMAGES) / img["file_name"]) for img in shown]
    pictures = draw_results(results, shown, pixels, built.skeleton, out / "predictions", grid=out / "predictions.png")
    return {"weights": str(out / "model.pth"), "config": str(out / "config.yaml"),
            "metrics": str(out / "metrics.json"), "curve_png": str(curve_png), "curve_json": str(out / "curve.json"),
            "results": str(out / "results.json"), "pictures": [str(p) for p in pictures]}
