"""`posekit bench e2e`: end-to-end top-down inference, people/s and images/s, posekit vs an official-style loop.

Images and boxes: the four COCO val2017 images of ../shared/data/coco/mmpose with their person detections
(test_coco_det_AP_H_56.json, score >= --box-threshold: 33 boxes at 0.3), or `--images N` generated images (blurred
noise with random boxes) when ../shared is absent. Both loops run in the same process, on the same images and
boxes, with the same network weights (seeded random values with non-trivial BatchNorm statistics, saved once under
$XDG_CACHE_HOME/posekit/bench so the ONNX export is cached across runs), interleaved `--repeat` times (medians):

- posekit: `PoseEstimator.images(paths, boxes=...)` = what `posekit infer` runs (file reading, crops, one network
  batch per group of images with the flip test as its second half, decode, rescoring), with `--backend`;
- official-style: per image `cv2.imread`, per box the official `_xywh2cs` + `get_affine_transform` +
  3-channel `cv2.warpAffine`, ToTensor + Normalize (numpy, per crop), eager PyTorch forwards of the image's crops
  and of their mirror (two forwards, as the official `validate`), numpy `flip_back` + shift, decode.

Setup time (network build, weights loading, ONNX export or cache load) is reported apart, not in the rates.
The max keypoint difference between the two loops is reported (the same model; expected <= 1e-3 px with
onnxruntime, exact up to float rounding with torch). Wall clock on a possibly shared machine: compare within a run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from posekit.bench.common import bench_weights, coco_inputs, generated_inputs
from posekit.cli.tables import format_table
from posekit.errors import ConfigError

HELP = "end-to-end people/s and images/s of posekit infer vs an official-style eager loop on COCO images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from posekit.runtime import backends

    parser.add_argument("--model", default="hrnet_w32_256x192", help="zoo model (default hrnet_w32_256x192)")
    parser.add_argument("--backend", default="auto",
                        choices=backends.KINDS,
                        help="posekit side (default auto; onnxruntime-int8 calibrates on the first batch, in the "
                             "untimed warm-up pass)")
    parser.add_argument("--box-threshold", type=float, default=0.3, help="detection score threshold (default 0.3)")
    parser.add_argument("--images", type=int, default=0,
                        help="use N generated images instead of the COCO samples (default: COCO when available)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved timed passes per loop (median)")
    parser.add_argument("--batch-size", type=int, default=32, help="posekit person crops per network batch")
    parser.add_argument("--threads", type=int, default=None, help="torch / onnxruntime threads (default torch's)")
    parser.add_argument("--no-flip", action="store_true", help="disable the flip test in both loops")


class OfficialLoop:
    """The official HRNet test procedure, image by image, in plain eager PyTorch + numpy + OpenCV."""

    def __init__(self, model: torch.nn.Module, codec: Any, flip_index: np.ndarray | None,
                 input_size: tuple[int, int]) -> None:
        self.model, self.codec, self.flip_index = model.eval(), codec, flip_index
        self.input_size = input_size
        self.mean = np.array([0.485, 0.456, 0.406], np.float32)
        self.std = np.array([0.229, 0.224, 0.225], np.float32)

    def image(self, path: Path, boxes: np.ndarray) -> np.ndarray:
        """Keypoints [M,K,3] in image px of one image's boxes."""
        from posekit import geometry

        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        w, h = self.input_size
        crops, centers, sizes = [], [], []
        for box in boxes:
            c, s = geometry.box_xywh_to_center_size(box[:4], aspect_ratio=w / h, padding=1.25)
            scale = s / geometry.PIXEL_STD
            trans = geometry.get_affine_transform(c, scale, 0, (w, h))
            crop = cv2.warpAffine(rgb, trans, (w, h), flags=cv2.INTER_LINEAR)
            crops.append(((crop.astype(np.float32) / 255.0 - self.mean) / self.std).transpose(2, 0, 1))  # ToTensor
            centers.append(c)
            sizes.append(s)
        if not crops:
            return np.zeros((0, self.codec.num_keypoints, 3))
        x = torch.from_numpy(np.stack(crops))
        with torch.no_grad():
            out = self.model(x)
            out = (out[-1] if isinstance(out, (list, tuple)) else out).numpy()
            if self.flip_index is not None:
                flipped = self.model(torch.from_numpy(np.ascontiguousarray(x.numpy()[:, :, :, ::-1])))
                flipped = (flipped[-1] if isinstance(flipped, (list, tuple)) else flipped).numpy()
                out = (out + self.codec.flip_back(flipped, self.flip_index)) * 0.5
        coords, maxvals = self.codec.decode(out)
        xy = geometry.transform_preds(coords, np.array(centers), np.array(sizes), self.input_size,
                                      kind=self.codec.affine)
        return np.concatenate([xy, np.asarray(maxvals, np.float64)[..., None]], axis=-1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    from posekit import models
    from posekit.inference import PoseEstimator

    if args.model not in models.names():
        raise ConfigError(f"--model {args.model!r}: not a zoo model; `posekit models` lists them")
    threads = args.threads or torch.get_num_threads()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    tmp = tempfile.TemporaryDirectory(prefix="posekit-bench-e2e-")
    try:
        found = None if args.images else coco_inputs(args.box_threshold)
        source = "coco" if found else "generated"
        paths, boxes = found if found else generated_inputs(Path(tmp.name), args.images or 8)
        n_people = int(sum(len(b) for b in boxes.values()))
        weights = bench_weights(args.model)
        t0 = time.perf_counter()
        est = PoseEstimator(args.model, weights=weights, backend=args.backend, flip_test=not args.no_flip,
                            batch_size=args.batch_size)
        setup = time.perf_counter() - t0
        official = OfficialLoop(models.build(args.model), est.codec, est.flip_index, est.input_size)
        official.model.load_state_dict(torch.load(weights, weights_only=True))

        def posekit_pass() -> list[np.ndarray]:
            return [np.stack([p.keypoints for p in r.poses]) if r.poses else np.zeros((0, 17, 3))
                    for r in est.images(paths, boxes=boxes)]

        def official_pass() -> list[np.ndarray]:
            return [official.image(p, boxes[p.name]) for p in paths]

        times: dict[str, list[float]] = {"posekit": [], "official": []}
        outputs: dict[str, list[np.ndarray]] = {}
        posekit_pass()  # warm-up (ONNX Runtime / oneDNN first-call costs)
        official_pass()
        for _ in range(max(args.repeat, 1)):
            for name, fn in (("posekit", posekit_pass), ("official", official_pass)):
                t = time.perf_counter()
                outputs[name] = fn()
                times[name].append(time.perf_counter() - t)
    finally:
        torch.set_num_threads(previous)
        tmp.cleanup()
    diffs = [float(np.abs(a[..., :2] - b[..., :2]).max()) for a, b in zip(outputs["posekit"], outputs["official"])
             if len(a)]
    rows = {}
    for name, ts in times.items():
        sec = float(np.median(ts))
        rows[name] = {"seconds": sec, "people_per_s": n_people / sec, "images_per_s": len(paths) / sec}
    return {"model": args.model, "backend": est.backend.name, "backend_note": est.backend.note, "source": source,
            "images": len(paths), "people": n_people, "flip_test": not args.no_flip, "threads": threads,
            "repeat": args.repeat, "setup_seconds": setup, "rows": rows,
            "speedup": rows["official"]["seconds"] / rows["posekit"]["seconds"],
            "max_keypoint_diff_px": max(diffs) if diffs else 0.0}


def render(result: dict[str, Any]) -> str:
    rows = [[name, round(r["people_per_s"], 2), round(r["images_per_s"], 2), round(r["seconds"], 3)]
            for name, r in result["rows"].items()]
    head = (f"{result['model']} end to end on {result['images']} {result['source']} images, {result['people']} "
            f"boxes, flip test {'on' if result['flip_test'] else 'off'}, {result['threads']} threads, median of "
            f"{result['repeat']} interleaved passes; posekit backend {result['backend']} (setup "
            f"{result['setup_seconds']:.1f} s, not timed)")
    tail = (f"posekit / official-style: {result['speedup']:.2f}x; max keypoint difference "
            f"{result['max_keypoint_diff_px']:.2g} px")
    note = [f"note: {result['backend_note']}"] if result.get("backend_note") else []
    body = format_table(rows, ["loop", "people/s", "images/s", "s per pass"], digits=2)
    return "\n".join([head, body, tail] + note)
