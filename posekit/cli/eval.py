"""`posekit eval`: score any results file against ground truth (COCO / CrowdPose OKS AP, MPII PCKh, PCK)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from posekit.errors import ConfigError, DataError

HELP = "evaluate a results file: COCO or CrowdPose OKS AP/AR, MPII PCKh, PCK@alpha (table or --json)"
METRICS = ("coco", "crowdpose", "pckh", "pck")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True,
                        help="ground truth: COCO keypoint JSON (coco, crowdpose, pck) or MPII gt_valid.mat (pckh)")
    parser.add_argument("--results", required=True,
                        help="predictions: COCO results JSON (image_id, category_id, keypoints, score); for pckh a "
                             ".mat with 'preds' [N,16,2] or 'pos_pred_src' [16,2,N] (1-based, MATLAB), or a "
                             ".json/.npy array [N,16,2] in 0-based pixels")
    parser.add_argument("--metric", choices=METRICS, default=None,
                        help="default: pckh for a .mat ground truth, else coco")
    parser.add_argument("--backend", choices=("pycocotools", "faster_coco_eval"), default="pycocotools",
                        help="COCO evaluator (default pycocotools, the library of record)")
    parser.add_argument("--sigmas", default=None,
                        help="OKS sigmas: a skeleton name (coco, crowdpose, aic, ap10k, mpii) or comma-separated "
                             "values (default: from the ground truth's category)")
    parser.add_argument("--pck-thr", type=float, default=0.05, help="PCK threshold alpha (default 0.05)")
    parser.add_argument("--pck-norm", choices=("bbox", "torso"), default="bbox",
                        help="PCK normaliser: ground-truth box size or torso size (default bbox)")
    parser.add_argument("--hrnet-mean01", action="store_true",
                        help="pckh: compute Mean@0.1 at threshold 0.11 as the HRNet code does (its quirk)")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")


def _sigmas(text: str | None) -> object:
    if text is None:
        return None
    from posekit import skeletons

    if text.strip().lower() in skeletons.names():
        return skeletons.get(text.strip())
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--sigmas {text!r}: expected a skeleton name {skeletons.names()} or numbers") from None


def _mpii_predictions(path: Path) -> tuple[np.ndarray, bool]:
    """Predictions [N,16,2] and whether they are 0-based."""
    from posekit.evaluation.pck import load_mpii_predictions

    if path.suffix.lower() == ".mat":
        return load_mpii_predictions(path), False
    if path.suffix.lower() not in (".npy", ".json"):
        raise DataError(f"{path}: pckh predictions must be .mat, .npy or .json")
    try:
        raw = np.load(path) if path.suffix.lower() == ".npy" else json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: results file not found") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read pckh predictions ({e})") from None
    if isinstance(raw, (list, dict)) and any(isinstance(r, dict) for r in (raw if isinstance(raw, list) else [raw])):
        raise DataError(f"{path} is a COCO-style results file (objects with image_id / keypoints); --metric pckh "
                        "takes MPII predictions (a .mat, or an array [N, 16, 2]); use --metric coco or pck for it")
    try:
        arr = np.asarray(raw)  # dtype inferred: strings or ragged lists are not numbers
    except (TypeError, ValueError):
        arr = np.asarray([None])
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{path}: pckh predictions must be numbers, an array [N, 16, 2 or 3]")
    arr = arr.astype(np.float64)
    if arr.ndim != 3 or arr.shape[1] != 16 or arr.shape[2] < 2:
        raise DataError(f"{path}: expected an array [N, 16, 2 or 3], got shape {list(arr.shape)}")
    return arr[:, :, :2], True


def evaluate(args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    """The metric name and its values for the parsed arguments."""
    from posekit.evaluation import coco, pck

    gt, results = Path(args.gt), Path(args.results)
    metric = args.metric or ("pckh" if gt.suffix.lower() == ".mat" else "coco")
    if metric != "pckh" and gt.suffix.lower() == ".mat":
        raise ConfigError(f"--gt {gt}: a .mat ground truth is MPII's, scored with --metric pckh (not {metric}); "
                          f"--metric {metric} takes a COCO keypoint JSON")
    if metric == "coco":
        return metric, coco.coco_keypoints(gt, results, sigmas=_sigmas(args.sigmas), backend=args.backend)
    if metric == "crowdpose":
        return metric, coco.crowdpose_keypoints(gt, results, sigmas=_sigmas(args.sigmas), backend=args.backend)
    if metric == "pckh":
        preds, zero_based = _mpii_predictions(results)
        return metric, pck.mpii_pckh(preds, gt, zero_based=zero_based, hrnet_mean01=args.hrnet_mean01)
    return metric, pck.pck_coco(gt, results, thr=args.pck_thr, norm=args.pck_norm)


def render(metric: str, values: dict[str, float]) -> str:
    """A readable two-column table."""
    from posekit.cli.tables import format_table

    digits = 2 if metric == "pckh" else 4
    title = {"coco": "COCO keypoints (OKS)", "crowdpose": "CrowdPose keypoints (OKS)", "pckh": "MPII PCKh@0.5 (%)",
             "pck": "PCK"}[metric]
    return title + "\n" + format_table([[k, v] for k, v in values.items()], ["metric", "value"], digits=digits)


def run(args: argparse.Namespace) -> int:
    metric, values = evaluate(args)
    print(json.dumps(values) if args.json else render(metric, values))
    return 0
