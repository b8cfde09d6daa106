"""Write a synthetic COCO-format keypoint dataset (JPEG images + annotations.json), in parallel and reproducibly."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from posekit.data.synth.scene import SynthConfig, render_sample
from posekit.data.synth.tracks import render_track_frame
from posekit.errors import ConfigError

ANNOTATIONS = "annotations.json"
IMAGES = "images"


def file_name(index: int) -> str:
    """File name of image `index` inside DIR/images."""
    return f"{index:06d}.jpg"


def coco_category(cfg: SynthConfig) -> dict:
    """The COCO `categories` entry: keypoint names and 1-based skeleton links of the kind's skeleton."""
    sk = cfg.spec.skeleton
    return {
        "id": 1,
        "name": cfg.spec.category,
        "supercategory": cfg.spec.category,
        "keypoints": list(sk.keypoints),
        "skeleton": [[a + 1, b + 1] for a, b in sk.links],
    }


def _r(x: float) -> float:
    return round(float(x), 2)


def _make_image(index: int, seed: int, cfg: SynthConfig, image_dir: str) -> tuple[dict, list[dict]]:
    """Render image `index`, write its JPEG and return its COCO image entry and annotations (ids not yet set)."""
    sample = render_track_frame(seed, index, cfg) if cfg.tracks else render_sample(seed, index, cfg)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    if not ok:
        raise ConfigError(f"synth: JPEG encoding of image {index} failed")
    name = file_name(index)
    Path(image_dir, name).write_bytes(data.tobytes())
    w, h = cfg.image_size
    cam = sample.camera
    anns = []
    for inst in sample.instances:
        kps = []
        for x, y, v in inst.keypoints:
            kps += [_r(x), _r(y), int(v)]
        anns.append({
            "image_id": index + 1,
            "category_id": 1,
            "keypoints": kps,
            "num_keypoints": inst.num_keypoints,
            "bbox": [_r(v) for v in inst.bbox],
            "area": inst.area,
            "iscrowd": 0,
            "segmentation": inst.rle,
            "keypoints_3d": [[_r(c) for c in p] for p in inst.keypoints_3d],
            "cam_intrinsics": {"f": [_r(cam.f), _r(cam.f)], "c": [_r(cam.cx), _r(cam.cy)]},
            **({"track_id": inst.track_id, "bbox_head": inst.head_box} if cfg.tracks else {}),
        })
    image = {"id": index + 1, "file_name": name, "width": w, "height": h}
    if cfg.sequence_length > 1:  # ordered frames: which sequence and which frame (absent for plain datasets)
        image["sequence_id"], image["frame_index"] = divmod(index, cfg.sequence_length)
    if cfg.tracks:  # PoseTrack-style video fields
        image.update(vid_id=image["sequence_id"], frame_id=image["frame_index"], nframes=cfg.sequence_length,
                     is_labeled=True)
    return image, anns


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _context() -> mp.context.BaseContext:
    """Worker processes start from a clean single-threaded server (forkserver), never by forking this process:
    a fork copies the locks of running threads (OpenCV's pool, torch), and workers could hang on them."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["posekit.data.synth.generate"])
        return ctx
    return mp.get_context("spawn")


@contextlib.contextmanager
def _workers_without_main() -> Iterator[None]:
    """Start worker processes that do not import the caller's __main__ module (while the pool starts them).

    forkserver / spawn workers import the script that called generate() as __mp_main__ before they run a task; a
    script without an `if __name__ == "__main__":` guard then calls generate() again in every worker, which fails
    while the worker bootstraps, and the pool restarts the worker forever (megabytes of tracebacks, no end). The
    workers only run posekit functions, so the script is hidden from the preparation data they receive: any script
    works, guarded or not. The pool starts all its workers in its constructor, inside this block.
    """
    main = sys.modules.get("__main__")
    saved = {k: vars(main)[k] for k in ("__file__", "__spec__") if main is not None and k in vars(main)}
    try:
        for key in saved:
            if key == "__spec__":
                main.__spec__ = None
            else:
                delattr(main, key)
        yield
    finally:
        for key, value in saved.items():
            setattr(main, key, value)


SYNTH_DESCRIPTION = "posekit synthetic figures"  # info.description of every annotations.json written here


def check_output_folder(out: Path) -> None:
    """ConfigError when `out` holds a dataset that posekit synth did not write (its annotations.json or images
    would be overwritten); a folder written by an earlier `posekit synth` may be regenerated."""
    ann, images = out / ANNOTATIONS, out / IMAGES
    if ann.exists():
        try:
            ours = json.loads(ann.read_text()).get("info", {}).get("description") == SYNTH_DESCRIPTION
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise ConfigError(f"{out} holds an {ANNOTATIONS} that posekit synth did not write: it and the images "
                              "there would be overwritten; choose an empty or new folder")
    elif images.is_dir() and any(not re.fullmatch(r"\d{6}\.jpg", f.name) for f in images.iterdir()):
        # (only synth's own NNNNNN.jpg names, e.g. of an interrupted run, may be overwritten)
        raise ConfigError(f"{images} already holds files and there is no posekit synth {ANNOTATIONS} beside "
                          "them: they would be overwritten; choose an empty or new folder")


def default_workers() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def generate(out_dir: str | os.PathLike, num_images: int, kind: str = "human", style: str = "A",
             max_subjects: int = 3, seed: int = 0, workers: int | None = None,
             image_size: tuple[int, int] = (256, 256), progress: Callable[[int], None] | None = None,
             **options) -> dict:
    """Render `num_images` images to DIR/images/NNNNNN.jpg and write DIR/annotations.json (COCO keypoints).

    Image i depends only on (seed, i), so the output is byte-identical for a seed whatever the worker count.
    `options` are further SynthConfig fields (size_range, max_overlap, truncation, clutter, jpeg_quality, max_yaw,
    sequence_length, motion: ordered sequences, each image entry then has sequence_id and frame_index; tracks: people
    walking through each sequence with identities, PoseTrack-style vid_id / frame_id / nframes in the image entries
    and track_id / bbox_head in the annotations, see posekit.data.synth.tracks).
    `progress(n)` is called in this process after every n finished images. Returns a summary dict.
    """
    if num_images < 1:
        raise ConfigError(f"synth num_images: expected >= 1, got {num_images}")
    try:
        cfg = SynthConfig(kind=kind, style=style, max_subjects=max_subjects,
                          image_size=(int(image_size[0]), int(image_size[1])), **options)
    except TypeError as e:
        raise ConfigError(f"synth: unknown option ({e})") from None
    workers = min(default_workers() if workers is None else max(1, int(workers)), num_images)
    out = Path(out_dir)
    check_output_folder(out)
    image_dir = out / IMAGES
    image_dir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    work = partial(_make_image, seed=seed, cfg=cfg, image_dir=str(image_dir))
    results = []
    if workers == 1:
        _init_worker()
        for i in range(num_images):
            results.append(work(i))
            if progress:
                progress(1)
    else:
        chunk = max(1, min(16, num_images // (workers * 8)))
        with _workers_without_main():
            pool = _context().Pool(workers, initializer=_init_worker)
        with pool:
            for res in pool.imap(work, range(num_images), chunksize=chunk):
                results.append(res)
                if progress:
                    progress(1)
    images, annotations = [], []
    for image, anns in results:
        images.append(image)
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, **ann})
    dataset = {
        "info": {"description": SYNTH_DESCRIPTION, "kind": kind, "style": style, "seed": seed,
                 "max_subjects": max_subjects, "image_size": list(cfg.image_size), "max_yaw": cfg.max_yaw,
                 "size_range": list(cfg.size_range),
                 **({"sequence_length": cfg.sequence_length, "motion": cfg.motion} if cfg.sequence_length > 1 else {}),
                 **({"tracks": True} if cfg.tracks else {})},
        "images": images,
        "annotations": annotations,
        "categories": [coco_category(cfg)],
    }
    ann_file = out / ANNOTATIONS
    tmp = ann_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dataset, separators=(",", ":")))
    tmp.replace(ann_file)
    seconds = time.perf_counter() - start
    vis = np.array([a["keypoints"][2::3] for a in annotations]) if annotations else np.zeros((0, 1))
    return {
        "out_dir": str(out),
        "ann_file": str(ann_file),
        "image_root": str(image_dir),
        "kind": kind,
        "style": style,
        "seed": seed,
        "num_images": num_images,
        "num_instances": len(annotations),
        "visible_fraction": float((vis == 2).mean()) if vis.size else 0.0,
        "occluded_fraction": float((vis == 1).mean()) if vis.size else 0.0,
        "workers": workers,
        "seconds": seconds,
        "images_per_s": num_images / max(seconds, 1e-9),
    }
