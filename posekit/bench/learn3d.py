"""`posekit bench learn3d`: 3DMPPE PoseNet trained on posekit's synthetic 3-D people for a CPU time budget, scored on
held-out people generated with a new seed; variants side by side (from scratch, 2-D initialised, mixed 2-D/3-D).

Data (generated under --data on first use, reused after): `train` (3-D people, --seed), `val` (held-out, --val-seed,
never trained on) and `train2d` (more synthetic people, --seed + 2, read as a COCO keypoints set: 2-D labels only,
have_depth 0, for the mixed variant). The recipe is configs/synth/posenet3d_hrnet.yaml (the demo's HRNet backbone,
96x64 crops, bfloat16 autocast where the CPU has it); each variant is the recipe with a few overrides (VARIANTS).
Training goes through the one engine (`posekit.engine.train.fit`, cosine schedule over the training minutes) with a
held-out evaluation every --every training minutes (not counted as training): the curve.

Scores (flip test, camera frame, mm, all 18 joints): MPJPE and PA-MPJPE (rigid, 3DMPPE's) with the GT root depth,
as 3DMPPE's use_gt_info; then with the root depth from the person's box instead (Z = sqrt(fx fy) x S / sqrt(box
area), S fitted on the training people; the box is the annotation's visible-area box): root-relative MPJPE, absolute
MPJPE (no root alignment) and the root joint's 3-D error. A mean-pose baseline (the mean root-relative training
pose at the GT root) is scored by the same code. Library functions return dicts and print nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "synth" / "posenet3d_hrnet.yaml"
DEFAULT_INIT = "out/demo/model.pth"  # what `posekit demo` / `make demo` writes
HELP = ("3-D PoseNet on synthetic 3-D people: held-out MPJPE / PA-MPJPE / root error vs training minutes, "
        "variants side by side")
# name -> (what it is, overrides of the recipe). {init} is the 2-D checkpoint, {data} the data folder.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "scratch": ("from scratch (He init), 3-D data only", ["MODEL.PRETRAINED=", "BODY3D.TRAIN_2D_FORMAT="]),
    "init2d": ("backbone from the 2-D demo model, 3-D data only", ["MODEL.PRETRAINED={init}",
                                                                    "BODY3D.TRAIN_2D_FORMAT="]),
    "mixed": ("2-D initialised + synthetic 2-D people mixed in", ["MODEL.PRETRAINED={init}",
                                                                   "BODY3D.TRAIN_2D_FORMAT=coco"]),
    "mixed_scratch": ("from scratch + synthetic 2-D people mixed in", ["MODEL.PRETRAINED=",
                                                                        "BODY3D.TRAIN_2D_FORMAT=coco"]),
}
METRICS = ("MPJPE", "PA-MPJPE", "PA-MPJPE-similarity", "3DPCK", "AUC")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=15.0, help="training minutes per variant (default 15)")
    parser.add_argument("--variants", default="mixed",
                        help=f"comma-separated, run one after the other: {', '.join(VARIANTS)} (default mixed = "
                             "the recipe)")
    parser.add_argument("--init-2d", default=DEFAULT_INIT,
                        help=f"2-D heatmap checkpoint for the backbone (default {DEFAULT_INIT}, from `posekit demo`)")
    parser.add_argument("--every", type=float, default=1.0, help="training minutes between held-out evaluations")
    parser.add_argument("--out", default="out/bench_learn3d", help="output folder (one subfolder per variant)")
    parser.add_argument("--data", default="data/synth3d", help="synthetic data folder (default data/synth3d)")
    parser.add_argument("--config", default=str(CONFIG), help="recipe (default configs/synth/posenet3d_hrnet.yaml)")
    parser.add_argument("--num-train", type=int, default=3000, help="3-D training images (default 3000)")
    parser.add_argument("--num-2d", type=int, default=3000, help="2-D training images for the mix (default 3000)")
    parser.add_argument("--num-val", type=int, default=200, help="held-out images (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="training data and training seed")
    parser.add_argument("--val-seed", type=int, default=1003, help="held-out data seed (default 1003)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--h36m", default=None,
                        help="Human3.6M sample folder (mmpose layout) to run each model on; default: "
                             "../shared/data/h36m/mmpose when present, 'none' to skip")
    parser.add_argument("--quiet", action="store_true", help="no progress output on stderr while training")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for every variant")


# ------------------------------------------------------------------------------------------------------------
# Library


def ensure_synth3d(data_dir: str | os.PathLike, num_train: int, num_val: int, num_2d: int = 0, seed: int = 0,
                   val_seed: int = 1003, max_yaw: float = 90.0, image_size: tuple[int, int] = (192, 192),
                   max_subjects: int = 2) -> dict[str, Any]:
    """Generate data_dir/{train,val,train2d} unless they exist with these settings; returns their summaries."""
    from posekit.data.synth import generate
    from posekit.errors import ConfigError

    if val_seed in (seed, seed + 2):
        raise ConfigError(f"--val-seed {val_seed}: the held-out people need a seed no training set uses "
                          f"({seed}, {seed + 2})")
    out = {}
    for split, n, s in (("train", num_train, seed), ("val", num_val, val_seed), ("train2d", num_2d, seed + 2)):
        if n <= 0:
            continue
        folder = Path(data_dir) / split
        want = {"seed": s, "max_yaw": max_yaw, "image_size": list(image_size), "max_subjects": max_subjects}
        try:
            info = json.loads((folder / "annotations.json").read_text())
            ok = all(info["info"].get(k) == v for k, v in want.items()) and len(info["images"]) == n
        except (OSError, ValueError, KeyError):
            ok = False
        if ok:
            out[split] = {"reused": True, "num_images": n, "seed": s}
            continue
        t0 = time.perf_counter()
        summary = generate(folder, n, max_subjects=max_subjects, seed=s, image_size=image_size, max_yaw=max_yaw)
        out[split] = {"reused": False, "num_images": n, "seed": s, "num_instances": summary["num_instances"],
                      "seconds": round(time.perf_counter() - t0, 1)}
    return out


def mean_pose_baseline(train_records: list, test_records: list, skeleton: Any) -> dict[str, float]:
    """Metrics of predicting the mean root-relative training pose for every test person (placed at its GT root)."""
    from posekit.engine.tasks.body3d import joint_layout, score_body3d

    root, _ = joint_layout(skeleton)
    rel = np.stack([r.joints_cam - r.joints_cam[root] for r in train_records])
    mean = rel.mean(axis=0)
    pred = np.stack([mean + r.joints_cam[root] for r in test_records]).astype(np.float32)
    return score_body3d(pred, test_records, skeleton)


def raw_boxes(ann_file: str | os.PathLike) -> dict[int, np.ndarray]:
    """Annotation id -> the annotation's own box (xywh, the visible area), as a detector would give it."""
    data = json.loads(Path(ann_file).read_text())
    return {int(a["id"]): np.asarray(a["bbox"], np.float64) for a in data["annotations"]}


def fit_root_box_size(records: list, boxes: dict[int, np.ndarray], root: int) -> float:
    """S (mm) of the box prior Z = sqrt(fx fy) x S / sqrt(box area): the median over the training people."""
    s = [r.joints_cam[root, 2] * np.sqrt(max(boxes[r.ann_id][2] * boxes[r.ann_id][3], 1.0)) / np.sqrt(r.f[0] * r.f[1])
         for r in records if r.ann_id in boxes]
    return float(np.median(s))


def with_root_depth(joints_cam: np.ndarray, old_z: np.ndarray, new_z: np.ndarray, f: np.ndarray,
                    c: np.ndarray) -> np.ndarray:
    """Camera joints [N,J,3] back-projected at another root depth: the same pixels, Z shifted by new - old."""
    z = joints_cam[..., 2:3]
    uv = joints_cam[..., :2] / z * f[:, None, :] + c[:, None, :]
    z2 = z + (new_z - old_z)[:, None, None]
    return np.concatenate([(uv - c[:, None, :]) / f[:, None, :] * z2, z2], axis=-1)


def root_from_box_metrics(results: list[dict], records: list, skeleton: Any, boxes: dict[int, np.ndarray],
                          box_size: float) -> dict[str, float]:
    """MPJPE (root-relative), absolute MPJPE and root error (mm) with root depths from the boxes instead of GT."""
    from posekit.engine.tasks.body3d import joint_layout, score_body3d
    from posekit.runtime.body3d import root_depth_from_box

    root, _ = joint_layout(skeleton)
    pred = np.stack([np.asarray(r["joints_cam"], np.float64) for r in results])
    gt = np.stack([r.joints_cam for r in records])
    f = np.stack([r.f for r in records]).astype(np.float64)
    c = np.stack([r.c for r in records]).astype(np.float64)
    z_gt = np.array([r["root_depth"] for r in results])
    z_box = np.array([root_depth_from_box(boxes[r.ann_id], r.f, box_size ** 2) for r in records])
    moved = with_root_depth(pred, z_gt, z_box, f, c)
    rel = score_body3d(moved.astype(np.float32), records, skeleton)["MPJPE"]
    return {"MPJPE": rel, "MPJPE-abs": float(np.linalg.norm(moved - gt, axis=-1).mean()),
            "root_error": float(np.linalg.norm(moved[:, root] - gt[:, root], axis=-1).mean()),
            "root_depth_error": float(np.abs(z_box - gt[:, root, 2]).mean()), "box_size_mm": box_size}


def variant_overrides(name: str, init_2d: str, data_dir: str | os.PathLike) -> list[str]:
    """The recipe overrides of a variant (its checkpoint and data paths filled in)."""
    from posekit.errors import ConfigError

    if name not in VARIANTS:
        raise ConfigError(f"unknown learn3d variant {name!r}; expected one of {', '.join(VARIANTS)}")
    out = [o.format(init=init_2d, data=data_dir) for o in VARIANTS[name][1]]
    if "BODY3D.TRAIN_2D_FORMAT=coco" in out:
        out += [f"BODY3D.TRAIN_2D_ANN={Path(data_dir) / 'train2d' / 'annotations.json'}",
                f"BODY3D.TRAIN_2D_IMAGES={Path(data_dir) / 'train2d' / 'images'}"]
    return out


def _curve(out: Path, evals: list[dict]) -> list[dict[str, Any]]:
    """Training loss (log.jsonl) and held-out metrics against training minutes."""
    points: list[dict[str, Any]] = []
    log = out / "log.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            e = json.loads(line)
            if "loss" in e and "train_minutes" in e:
                points.append({"minutes": e["train_minutes"], "loss": e["loss"]})
    for e in evals:
        points.append({"minutes": e["train_minutes"], "iteration": e["iteration"],
                       **{k: e["metrics"][k] for k in ("MPJPE", "PA-MPJPE")}})
    return sorted(points, key=lambda p: p["minutes"])


def learn3d(out_dir: str | os.PathLike, minutes: float = 15.0, data_dir: str | os.PathLike = "data/synth3d",
            variant: str = "mixed", init_2d: str = DEFAULT_INIT, config: str | os.PathLike = CONFIG,
            every: float = 1.0, seed: int = 0, overrides: list[str] | None = None, progress: Any = None,
            on_event: Any = None, data: dict[str, Any] | None = None,
            h36m: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train one variant for `minutes` of training wall-clock (data already generated), score it on the held-out
    people (pictures of a few in out_dir/pictures) and, with `h36m` (the mmpose sample folder), on real frames."""
    import torch

    from posekit.config import load_config
    from posekit.engine.tasks import task_for
    from posekit.engine.tasks.body3d import joint_layout, load_records_3d
    from posekit.engine.train import fit
    from posekit.errors import ConfigError
    from posekit.models.weights import load_checkpoint
    from posekit.vis import plot_curve

    ov = variant_overrides(variant, init_2d, data_dir)
    if any(o == f"MODEL.PRETRAINED={init_2d}" for o in ov) and not Path(init_2d).is_file():
        raise ConfigError(f"learn3d variant {variant!r} starts from a 2-D model: {init_2d} not found (run `posekit "
                          "demo` first, or pass --init-2d a posekit hrnet_w16_tiny checkpoint)")
    out = Path(out_dir)
    cfg = load_config(config, [f"DATASET.ROOT={data_dir}", f"TRAIN.MAX_MINUTES={minutes}", f"TRAIN.SEED={seed}",
                               f"TRAIN.VAL_EVERY_MINUTES={every}", f"OUTPUT_DIR={out}", *ov, *(overrides or [])],
                      warn=False)
    torch.manual_seed(seed)
    summary = fit(cfg, out, progress=progress, device="cpu", on_event=on_event)
    task = task_for(cfg)
    built = task.build(cfg)
    weights = summary.get("final_weights") or summary.get("last_weights")
    load_checkpoint(built.model, weights, strict=True)
    t0 = time.perf_counter()
    metrics, results = task.evaluate(cfg, built.model, built, torch.device("cpu"))
    eval_seconds = time.perf_counter() - t0
    train_recs, test_recs = load_records_3d(cfg, "train"), load_records_3d(cfg, "test")
    root, _ = joint_layout(built.skeleton)
    train_boxes = raw_boxes(Path(data_dir) / "train" / "annotations.json")
    box_size = fit_root_box_size(train_recs, train_boxes, root)
    boxed = root_from_box_metrics(results, test_recs, built.skeleton,
                                  raw_boxes(Path(data_dir) / "val" / "annotations.json"), box_size)
    baseline = mean_pose_baseline(train_recs, test_recs, built.skeleton)
    curve = _curve(out, summary.get("evals", []))
    png = plot_curve(curve, out / "curve.png", metric="MPJPE", title=f"learn3d {variant}: held-out MPJPE (mm)")
    iters = summary.get("iteration") or 0
    pictures = held_out_pictures(results, test_recs, built.skeleton, out / "pictures")
    real = (h36m_samples(built.model, built.codec, built.skeleton, h36m, out / "pictures", built.skeleton.flip_pairs)
            if h36m else None)
    result = {
        "variant": variant, "description": VARIANTS[variant][0], "model": cfg.MODEL.ZOO,
        "input_size": list(built.spec.input_size), "config": str(config), "overrides": ov + list(overrides or []),
        "budget_minutes": minutes, "train_minutes": summary.get("train_minutes"), "iterations": iters,
        "batch_size": cfg.TRAIN.BATCH_SIZE_PER_GPU, "stop_reason": summary.get("stop_reason"),
        "crops_per_s": iters * cfg.TRAIN.BATCH_SIZE_PER_GPU / max(60.0 * (summary.get("train_minutes") or 0), 1e-9),
        "autocast": summary.get("autocast"), "threads": torch.get_num_threads(),
        "train_people": len(train_recs), "val_people": len(test_recs), "data": data,
        "eval_seconds": eval_seconds, "flip_test": cfg.TEST.FLIP_TEST,
        "gt_root": {k: metrics[k] for k in METRICS}, "box_root": boxed,
        "mean_pose_baseline": {k: baseline[k] for k in METRICS},
        "per_joint_MPJPE": {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("MPJPE/")},
        "curve": [p for p in curve if "MPJPE" in p], "png": str(png), "weights": str(weights), "out_dir": str(out),
        "pictures": pictures, "h36m": real,
    }
    (out / "learn3d.json").write_text(json.dumps(result, indent=1))
    return result


def _crop_view(image: np.ndarray, box: np.ndarray, pred_uv: np.ndarray, skeleton: Any, gt_uv: np.ndarray | None,
               size: int = 240) -> np.ndarray:
    """The box's region of an RGB image, upscaled, with the predicted 2-D skeleton (and the GT joints as rings)."""
    import cv2

    from posekit.vis import draw_pose

    x, y, w, h = (float(v) for v in box)
    s = size / max(w, h)
    m = np.array([[s, 0, size / 2 - s * (x + w / 2)], [0, s, size / 2 - s * (y + h / 2)]])
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR)

    def to_crop(uv: np.ndarray) -> np.ndarray:
        return np.column_stack([uv[:, :2] @ m[:, :2].T + m[:, 2], np.ones(len(uv))])

    crop = draw_pose(crop, to_crop(pred_uv), skeleton)
    if gt_uv is not None:  # GT joints as white rings over the predicted skeleton
        for u, v, _ in to_crop(gt_uv):
            cv2.circle(crop, (int(round(u)), int(round(v))), 4, (255, 255, 255), 1, cv2.LINE_AA)
    return crop


def person_picture(image: np.ndarray, box: np.ndarray, pred_cam: np.ndarray, gt_cam: np.ndarray, f: np.ndarray,
                   c: np.ndarray, skeleton: Any, root: int, title: str) -> np.ndarray:
    """One row: the person's crop with projected joints, then prediction vs GT in 3-D seen from the camera and from
    the side (root-aligned)."""
    from posekit.vis import make_grid
    from posekit.vis.skeleton3d import skeleton_3d_image

    def uv(cam: np.ndarray) -> np.ndarray:
        return cam[:, :2] / cam[:, 2:3] * f + c

    views = [_crop_view(image, box, uv(pred_cam), skeleton, uv(gt_cam))]
    for azim, name in ((-90.0, "camera view"), (0.0, "side view")):
        views.append(skeleton_3d_image([pred_cam, gt_cam], skeleton, labels=["prediction", "GT"], root=root,
                                       size=(320, 320), elev=10.0, azim=azim, title=f"{title}, {name}"))
    return make_grid(views, cols=3, cell=(320, 320))


def held_out_pictures(results: list[dict], records: list, skeleton: Any, out_dir: str | os.PathLike,
                      count: int = 6) -> list[str]:
    """PNGs of `count` held-out people (evenly spread over the split): crop, 3-D prediction next to the GT."""
    from posekit.data.images import read_image
    from posekit.engine.tasks.body3d import joint_layout
    from posekit.evaluation.mpjpe import mpjpe
    from posekit.vis import write_png

    root, _ = joint_layout(skeleton)
    paths = []
    for k in np.linspace(0, len(records) - 1, min(count, len(records))).astype(int):
        r, res = records[k], results[k]
        pred = np.asarray(res["joints_cam"], np.float64)
        err = float(mpjpe(pred[None], r.joints_cam[None], root=root).mean())
        row = person_picture(read_image(r.image_path), np.asarray(res["bbox"]), pred, r.joints_cam, r.f, r.c, skeleton,
                             root, f"held-out {k}: MPJPE {err:.0f} mm")
        paths.append(str(write_png(Path(out_dir) / f"person_{k:04d}.png", row)))
    return paths


def common_skeleton(skeleton: Any, other_names: list[str]) -> tuple[Any, np.ndarray, np.ndarray]:
    """The joints `skeleton` shares by name with another joint list: (sub-skeleton, indices in skeleton, in other)."""
    from posekit.data.body3d import joint_mapping
    from posekit.skeletons import Skeleton

    idx_other = joint_mapping(other_names, skeleton.keypoints)
    mine = np.flatnonzero(idx_other >= 0)
    new = {int(j): n for n, j in enumerate(mine)}
    sub = Skeleton(name=f"{skeleton.name}&common", keypoints=tuple(skeleton.keypoints[j] for j in mine),
                   links=tuple((new[a], new[b]) for a, b in skeleton.links if a in new and b in new),
                   sigmas=tuple(skeleton.sigmas[j] for j in mine),
                   upper_body_ids=tuple(new[j] for j in skeleton.upper_body_ids if j in new))
    return sub, mine, idx_other[mine]


def h36m_samples(model: Any, coder: Any, skeleton: Any, folder: str | os.PathLike, out_dir: str | os.PathLike,
                 flip_pairs: Any = None) -> dict[str, Any]:
    """The model on real Human3.6M frames (mmpose sample layout: h36m_coco.json, cameras.pkl): GT box, GT root
    depth and the dataset's camera; MPJPE / PA-MPJPE over the joints both skeletons name alike (pelvis-aligned).
    Illustrative only: a handful of frames and a model trained on synthetic people with other hip / head joints."""
    from posekit.data.h36m import load_h36m_mmpose
    from posekit.data.images import read_image
    from posekit.evaluation.mpjpe import mpjpe
    from posekit.runtime.body3d import predict_poses_3d
    from posekit.skeletons import get as get_skeleton
    from posekit.vis import write_png

    folder = Path(folder)
    ann = folder / "h36m_coco.json"
    records = load_h36m_mmpose(ann, folder / "cameras.pkl", folder)
    boxes = raw_boxes(ann)
    sub, mine, theirs = common_skeleton(skeleton, list(get_skeleton("h36m").keypoints))
    root = sub.keypoints.index("pelvis")
    rows, pictures = [], []
    for r in records:
        image = read_image(r.image_path)
        box = boxes[r.ann_id]
        pose = predict_poses_3d(model, image, [box], coder, flip_pairs=flip_pairs, f=r.f, c=r.c,
                                root_depths=[r.root_depth])[0]
        pred, gt = pose.joints_cam[mine].astype(np.float64), r.joints_cam[theirs]
        e = float(mpjpe(pred[None], gt[None], root=root).mean())
        pa = float(mpjpe(pred[None], gt[None], align="rigid", root=root).mean())
        name = Path(r.image_path).stem
        rows.append({"image": name, "MPJPE": e, "PA-MPJPE": pa})
        row = person_picture(image, box, pred, gt, r.f, r.c, sub, root, f"{name}: MPJPE {e:.0f} mm")
        pictures.append(str(write_png(Path(out_dir) / f"h36m_{name}.png", row)))
    return {"joints": list(sub.keypoints), "samples": rows, "pictures": pictures,
            "MPJPE": float(np.mean([x["MPJPE"] for x in rows])) if rows else None,
            "PA-MPJPE": float(np.mean([x["PA-MPJPE"] for x in rows])) if rows else None}


# ------------------------------------------------------------------------------------------------------------
# CLI


def _progress(args: argparse.Namespace) -> tuple[Any, Any]:
    """A tqdm factory and an event printer on stderr (None, None with --quiet)."""
    if args.quiet:
        return None, None
    from functools import partial

    from tqdm import tqdm

    def event(kind: str, info: dict[str, Any]) -> None:
        if kind == "eval":
            m = info["metrics"]
            tqdm.write(f"  held-out at {info['train_minutes']:.1f} training min (iteration {info['iteration']}): "
                       f"MPJPE {m['MPJPE']:.1f} mm, PA-MPJPE {m['PA-MPJPE']:.1f} mm", file=sys.stderr)
        elif kind == "pretrained":
            tqdm.write(f"  pretrained: {info.get('summary', '')}", file=sys.stderr)

    return partial(tqdm, file=sys.stderr, unit="it", dynamic_ncols=True, leave=False, mininterval=2.0), event


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Generate the data once, train and score each variant in turn."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    for name in names:
        variant_overrides(name, args.init_2d, args.data)  # unknown names fail before any work
    progress, event = _progress(args)
    if event is not None:
        print(f"data: {args.data} (train seed {args.seed}, held-out seed {args.val_seed})", file=sys.stderr)
    data = ensure_synth3d(args.data, args.num_train, args.num_val, args.num_2d, args.seed, args.val_seed)
    h36m = args.h36m
    if h36m is None:
        from posekit.bench.common import shared_dir

        found = shared_dir() / "data" / "h36m" / "mmpose"
        h36m = str(found) if (found / "h36m_coco.json").is_file() else None
    elif h36m.lower() == "none":
        h36m = None
    runs = []
    for name in names:
        if event is not None:
            print(f"variant {name}: {VARIANTS[name][0]}, {args.minutes:g} training minutes", file=sys.stderr)
        runs.append(learn3d(Path(args.out) / name, args.minutes, args.data, name, args.init_2d, args.config,
                            args.every, args.seed, args.overrides, progress, event, data, h36m))
    return {"budget_minutes": args.minutes, "data": data, "runs": runs}


def render(result: dict[str, Any]) -> str:
    """Variants side by side, then the per-joint errors and the curve of the last one."""
    from posekit.cli.tables import format_table

    runs = result["runs"]
    rows = [[r["variant"], f"{r['train_minutes']:.1f}", r["iterations"], f"{r['crops_per_s']:.0f}",
             f"{r['gt_root']['MPJPE']:.1f}", f"{r['gt_root']['PA-MPJPE']:.1f}", f"{r['box_root']['MPJPE']:.1f}",
             f"{r['box_root']['MPJPE-abs']:.1f}", f"{r['box_root']['root_error']:.1f}"] for r in runs]
    b = runs[0]["mean_pose_baseline"]
    rows.append(["mean pose", "-", "-", "-", f"{b['MPJPE']:.1f}", f"{b['PA-MPJPE']:.1f}", "-", "-", "-"])
    head = (f"{runs[0]['model']} at {runs[0]['input_size'][1]}x{runs[0]['input_size'][0]}, {runs[0]['threads']} "
            f"threads; held-out {runs[0]['val_people']} people (new seed), flip test, mm")
    table = format_table(rows, ["variant", "train min", "iterations", "crops/s", "MPJPE (GT root)", "PA-MPJPE",
                                "MPJPE (box root)", "abs MPJPE", "root error"])
    last = runs[-1]
    joints = format_table([[k, f"{v:.1f}"] for k, v in last["per_joint_MPJPE"].items()], ["joint", "MPJPE"])
    curve = format_table([[f"{p['minutes']:.2f}", p["iteration"], f"{p['MPJPE']:.1f}", f"{p['PA-MPJPE']:.1f}"]
                          for p in last["curve"]], ["train min", "iteration", "MPJPE", "PA-MPJPE"])
    lines = [head, table, "", f"per joint ({last['variant']}, GT root):", joints, "",
             f"held-out curve ({last['variant']}):", curve, f"curve: {last['png']}",
             f"held-out people: {', '.join(last['pictures'][:2])} ..."]
    if last.get("h36m"):
        h = last["h36m"]
        lines += ["", f"real Human3.6M frames (illustrative; GT box and root, {len(h['joints'])} shared joints): "
                      f"MPJPE {h['MPJPE']:.0f} mm, PA-MPJPE {h['PA-MPJPE']:.0f} mm over {len(h['samples'])} frames; "
                      f"{', '.join(h['pictures'][:1])} ..."]
    return "\n".join(lines)
