"""Drawing: skeletons on images, heatmap overlays, image grids, PNG writing."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from posekit.errors import DataError
from posekit.skeletons import Skeleton


def limb_colors(n: int) -> list[tuple[int, int, int]]:
    """n distinct RGB colours spread over the hue circle."""
    out = []
    for i in range(max(n, 1)):
        r, g, b = colorsys.hsv_to_rgb(i / max(n, 1), 0.85, 1.0)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def draw_pose(image: np.ndarray, keypoints: np.ndarray, skeleton: Skeleton, threshold: float = 0.3,
              radius: int | None = None, thickness: int | None = None, show_scores: bool = False,
              box: Sequence[float] | None = None, label: str | None = None) -> np.ndarray:
    """Draw one person's keypoints [K,3] (x, y, score-or-visibility) on a copy of an RGB image."""
    out = np.ascontiguousarray(image.copy())
    scale = max(out.shape[:2]) / 400.0
    radius = radius or max(2, int(round(3 * scale)))
    thickness = thickness or max(1, int(round(2 * scale)))
    kp = np.asarray(keypoints, dtype=np.float64)
    ok = kp[:, 2] > threshold
    colors = limb_colors(len(skeleton.links))
    if box is not None:
        x, y, w, h = (int(round(v)) for v in box)
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 255, 255), thickness, cv2.LINE_AA)
        if label:
            cv2.putText(out, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale + 0.2,
                        (255, 255, 255), 1, cv2.LINE_AA)
    for (a, b), color in zip(skeleton.links, colors):
        if ok[a] and ok[b]:
            pa = (int(round(kp[a, 0])), int(round(kp[a, 1])))
            pb = (int(round(kp[b, 0])), int(round(kp[b, 1])))
            cv2.line(out, pa, pb, color, thickness, cv2.LINE_AA)
    for j in np.flatnonzero(ok):
        p = (int(round(kp[j, 0])), int(round(kp[j, 1])))
        cv2.circle(out, p, radius, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(out, p, max(1, radius - 1), (255, 60, 60) if j in skeleton.upper_body_ids else (60, 120, 255),
                   -1, cv2.LINE_AA)
        if show_scores:
            cv2.putText(out, f"{kp[j, 2]:.2f}", (p[0] + radius, p[1] - radius), cv2.FONT_HERSHEY_SIMPLEX,
                        0.3 * scale + 0.1, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def heatmap_overlay(image: np.ndarray, heatmaps: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Overlay the max over joints of heatmaps [K,h,w] on an RGB image, as a JET colour map."""
    hm = np.clip(np.max(np.asarray(heatmaps, dtype=np.float32), axis=0), 0.0, 1.0)
    hm = cv2.resize(hm, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colored = cv2.applyColorMap((hm * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    return (image.astype(np.float32) * (1 - alpha) + colored.astype(np.float32) * alpha).astype(np.uint8)


def make_grid(images: Sequence[np.ndarray], cols: int = 4, cell: tuple[int, int] | None = None,
              pad: int = 2) -> np.ndarray:
    """Tile RGB images into one grid image; each cell is resized to `cell` (w, h) or the first image's size."""
    if not images:
        raise DataError("make_grid: no images to lay out (expected at least one)")
    cw, ch = cell or (images[0].shape[1], images[0].shape[0])
    rows = (len(images) + cols - 1) // cols
    grid = np.full((rows * (ch + pad) + pad, cols * (cw + pad) + pad, 3), 32, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        tile = cv2.resize(img, (cw, ch), interpolation=cv2.INTER_AREA)
        y, x = pad + r * (ch + pad), pad + c * (cw + pad)
        grid[y:y + ch, x:x + cw] = tile
    return grid


def write_png(path: str | Path, image_rgb: np.ndarray) -> Path:
    """Write an RGB image as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image_rgb[:, :, ::-1]))
    if not ok:
        raise OSError(f"could not encode a PNG of shape {np.shape(image_rgb)} for {path}")
    path.write_bytes(data.tobytes())  # Python writes any file name (OpenCV's imwrite crashes on non-UTF-8 ones)
    return path


def plot_curve(curve: Sequence[dict], path: str | Path, title: str = "", target: float | None = None,
               metric: str = "AP") -> Path:
    """PNG of training loss (log scale) and held-out `metric` against training minutes (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss = [(p["minutes"], p["loss"]) for p in curve if "loss" in p]
    val = [(p["minutes"], p[metric]) for p in curve if metric in p]
    fig, ax1 = plt.subplots(figsize=(7, 4), dpi=110)
    if loss:
        ax1.plot(*zip(*loss), color="tab:blue", lw=1, label="training loss")
        ax1.set_yscale("log")
    ax1.set_xlabel("training minutes (wall-clock)")
    ax1.set_ylabel("training loss", color="tab:blue")
    ax2 = ax1.twinx()
    if val:
        ax2.plot(*zip(*val), "o-", color="tab:red", label=f"held-out {metric}")
    if target is not None:
        ax2.axhline(target, color="tab:red", ls=":", lw=1, label=f"target {metric} {target:.2f}")
    if metric == "AP":
        ax2.set_ylim(0, 1)
    ax2.set_ylabel(f"{metric}, held-out split", color="tab:red")
    lines, lines2 = ax1.get_legend_handles_labels(), ax2.get_legend_handles_labels()
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


def draw_results(results: Sequence[dict], images: Sequence[dict], pixels: Sequence[np.ndarray], skeleton: Skeleton,
                 out_dir: str | Path, upscale: int = 2, threshold: float = 0.2, grid: str | Path | None = None,
                 min_score: float = 0.0) -> list[Path]:
    """PNGs of COCO images (`images`: COCO image dicts, `pixels`: their RGB arrays, as the caller read them) with the
    COCO `results` of each drawn, and a grid of them."""
    out = Path(out_dir)
    by_image: dict[int, list[dict]] = {}
    for r in results:
        by_image.setdefault(int(r["image_id"]), []).append(r)
    files, tiles = [], []
    for img, image in zip(images, pixels, strict=True):
        image = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        for r in by_image.get(int(img["id"]), []):
            if float(r.get("score", 1.0)) < min_score:
                continue
            kp = np.asarray(r["keypoints"], np.float64).reshape(-1, 3).copy()
            kp[:, :2] = (kp[:, :2] + 0.5) * upscale - 0.5
            image = draw_pose(image, kp, skeleton, threshold=threshold)
        files.append(write_png(out / f"{Path(img['file_name']).stem}.png", image))
        tiles.append(image)
    if tiles and grid is not None:
        files.append(write_png(grid, make_grid(tiles, cols=4)))
    return files
