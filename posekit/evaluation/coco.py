"""COCO keypoint AP/AR through pycocotools (the library of record) or faster-coco-eval, and CrowdPose AP(E/M/H).

One path for every dataset and results file: the ground truth and the results are validated first (clear errors
for unknown image ids, wrong keypoint counts, NaNs; a warning and AP 0 for an empty list), then handed unchanged to
the evaluator. CrowdPose follows xtcocotools' 'keypoints_crowd' (use_area=False: OKS area = 0.53 x box area;
detections without any positive keypoint score dropped; AP per crowd-index split) on top of pycocotools.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import gc
import io
import json
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from posekit.errors import DataError
from posekit.skeletons import COCO17, CROWDPOSE14, DEFAULT_SIGMA, Skeleton, from_coco_category

STAT_NAMES = ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")
CROWDPOSE_STAT_NAMES = ("AP", "AP .5", "AP .75", "AR", "AR .5", "AR .75", "AP (E)", "AP (M)", "AP (H)")
BACKENDS = ("pycocotools", "faster_coco_eval")
# xtcocotools / CrowdPose `get_type_result(first=0.2, second=0.8)`: easy < 0.2 <= medium < 0.8 <= hard.
CROWD_INDEX_SPLIT = (0.2, 0.8)
CROWD_AREA_FACTOR = 0.53  # xtcocotools use_area=False: area = bbox w * h * 0.53

GroundTruth = str | os.PathLike | dict
Results = str | os.PathLike | Sequence[dict]
Sigmas = Sequence[float] | np.ndarray | Skeleton | None


def _read_json(path: str | os.PathLike, what: str) -> Any:
    """The parsed file: orjson (~4x faster than json on results files), json where orjson refuses (NaN literals)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return json.loads(raw)  # accepts NaN / Infinity, which the validation then names; or raises the error
    except FileNotFoundError:
        raise DataError(f"{what} file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{what} file {path} is not valid JSON: {e}") from None


def _name(source: GroundTruth | Results) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else "<in-memory>"


def load_ground_truth(gt: GroundTruth, *, use_area: bool = True) -> dict:
    """COCO keypoint ground truth (path or dict) checked and completed; returns a new dict pycocotools accepts.

    Fills `iscrowd` (0) and `num_keypoints` (count of v > 0) where absent. With `use_area=False` every
    annotation's `area` becomes 0.53 x box area, as xtcocotools does for CrowdPose.
    """
    src = _name(gt)
    data = _read_json(gt, "ground-truth") if isinstance(gt, (str, os.PathLike)) else gt
    if not isinstance(data, dict):
        raise DataError(f"{src}: ground truth must be a COCO dict with images/annotations/categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{src}: ground truth has no '{key}' list")
    if data is gt:  # a caller's dict: copy what is completed here and what the evaluators mark ('ignore')
        data = {**gt, "annotations": [dict(a) if isinstance(a, dict) else a for a in gt["annotations"]],
                "categories": copy.deepcopy(gt["categories"])}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img:
            raise DataError(f"{src}: images[{i}] has no 'id'")
    num_kpts = None
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DataError(f"{src}: annotations[{i}] is a {type(ann).__name__}, expected an object")
        where = f"{src}: annotations[{i}] (id {ann.get('id', '?')})"
        for key in ("id", "image_id", "category_id", "keypoints", "bbox"):
            if key not in ann:
                raise DataError(f"{where} has no '{key}'")
        kp = ann["keypoints"]
        if not isinstance(kp, list) or len(kp) % 3:
            raise DataError(f"{where}: 'keypoints' must be a flat list x1,y1,v1,..., got length {len(kp)}")
        if num_kpts is None:
            num_kpts = len(kp) // 3
        elif len(kp) != 3 * num_kpts:
            raise DataError(f"{where}: {len(kp) // 3} keypoints, the other annotations have {num_kpts}")
        ann.setdefault("iscrowd", 0)
        if "num_keypoints" not in ann:
            ann["num_keypoints"] = int(sum(1 for v in kp[2::3] if v > 0))
        if not use_area:
            bb = ann["bbox"]
            ann["area"] = bb[3] * bb[2] * CROWD_AREA_FACTOR
        elif "area" not in ann:
            raise DataError(f"{where} has no 'area' (COCO OKS divides by it); add it, or evaluate with "
                            f"use_area=False / --metric crowdpose (area = 0.53 x box area)")
    _check_unique_ids(data, src)
    if not any(a["num_keypoints"] > 0 and not a["iscrowd"] for a in data["annotations"]):
        raise DataError(f"{src}: ground truth has no non-crowd annotation with a labelled keypoint, so every AP/AR "
                        "would be -1; is this the right file?")
    return data


def _check_unique_ids(data: dict, src: str) -> None:
    """DataError naming repeated annotation ids, or image ids shared by different images.

    pycocotools and faster-coco-eval key annotations and images by id: a repeated annotation id silently drops
    ground truth (and changes AP); an image id given to two different files pools their people into one image.
    Identical repeated image entries are harmless and allowed.
    """
    counts = collections.Counter(a["id"] for a in data["annotations"])
    if len(counts) != len(data["annotations"]):
        dup = sorted((i for i, n in counts.items() if n > 1), key=str)
        raise DataError(f"{src}: {len(dup)} annotation ids are used more than once (first: {dup[:5]}); "
                        "the evaluators key annotations by id, so every annotation needs its own id")
    first: dict[Any, dict] = {}
    for i, img in enumerate(data["images"]):
        seen = first.setdefault(img["id"], img)
        if seen is not img and seen != img:
            raise DataError(f"{src}: images[{i}] repeats image id {img['id']!r} of a different image "
                            f"({seen.get('file_name')!r} vs {img.get('file_name')!r}); image ids must be unique")


def num_keypoints(gt: dict) -> int:
    """K of a loaded ground truth (from its annotations, else from its first category's keypoint names)."""
    for ann in gt["annotations"]:
        return len(ann["keypoints"]) // 3
    for cat in gt["categories"]:
        if isinstance(cat.get("keypoints"), list) and cat["keypoints"]:
            return len(cat["keypoints"])
    raise DataError("ground truth has neither keypoint annotations nor categories[].keypoints names")


def resolve_sigmas(gt: dict, sigmas: Sigmas = None, default: Skeleton | None = None) -> np.ndarray:
    """OKS sigmas: given > category 'sigmas' > `default` skeleton > skeleton named by the category > COCO's (K=17).

    A custom skeleton without sigmas gets 0.072 per keypoint, with a warning (K=17: COCO's, as pycocotools).
    """
    k = num_keypoints(gt)
    if isinstance(sigmas, Skeleton):
        sigmas = sigmas.sigmas
    if sigmas is not None:
        arr = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        if arr.shape[0] != k:
            raise DataError(f"{arr.shape[0]} OKS sigmas given for a ground truth with {k} keypoints")
        return arr
    cats = [c for c in gt["categories"] if isinstance(c.get("keypoints"), list) and len(c["keypoints"]) == k]
    if cats and cats[0].get("sigmas"):
        return resolve_sigmas(gt, cats[0]["sigmas"])
    if default is not None and default.num_keypoints == k:
        return default.sigmas_array
    if cats:
        # links play no part in OKS (and some real files carry another skeleton's links): leave them out
        cat = {key: v for key, v in cats[0].items() if key != "skeleton"}
        skel = from_coco_category(cat, source="ground truth categories[0]")
        if skel.sigmas != (DEFAULT_SIGMA,) * k:
            return skel.sigmas_array
        if k == COCO17.num_keypoints:
            warnings.warn(f"keypoint names of {skel.name!r} are not COCO's and no sigmas are given: using the COCO "
                          f"sigmas, as pycocotools does; pass sigmas= for another skeleton", stacklevel=3)
            return COCO17.sigmas_array
        warnings.warn(f"no OKS sigmas for the custom skeleton {skel.name!r} ({k} keypoints): using "
                      f"{DEFAULT_SIGMA} for every keypoint; pass sigmas= for meaningful AP", stacklevel=3)
        return skel.sigmas_array
    if k == COCO17.num_keypoints:
        return COCO17.sigmas_array
    raise DataError(f"ground truth has {k} keypoints and no categories[].keypoints names: pass sigmas=")


def load_results(results: Results, gt: dict, source: str | None = None) -> list[dict]:
    """A COCO keypoint results list (path or list) checked against the ground truth (a list is shallow-copied)."""
    return _load_results(results, gt, source)[0]


def _load_results(results: Results, gt: dict, source: str | None = None) -> tuple[list[dict], np.ndarray]:
    """load_results + the keypoint values as a float64 array [N, 3K] (what faster loading builds on)."""
    src = source or _name(results)
    data = _read_json(results, "results") if isinstance(results, (str, os.PathLike)) else results
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, (list, tuple)):
        raise DataError(f"{src}: results must be a list of {{image_id, category_id, keypoints, score}}")
    k = num_keypoints(gt)
    values = _keypoint_values(data, k)
    if values is None:  # something is malformed: the item-by-item check names it
        _check_items(data, k, src)
    # a file's dicts are ours to annotate; a caller's list is copied (loading adds id / area / bbox in place)
    out = data if isinstance(results, (str, os.PathLike)) else [dict(r) for r in data]
    if not out:
        return out, np.zeros((0, 3 * k))
    if values is None:
        try:
            values = np.asarray([r["keypoints"] for r in out], dtype=np.float64)
        except (TypeError, ValueError):
            bad_i = next(i for i, r in enumerate(out) if not _numbers(r["keypoints"]))
            raise DataError(f"{src}: results[{bad_i}] (image_id {out[bad_i]['image_id']}) has non-numeric keypoint "
                            "values") from None
    raw_scores = [r["score"] for r in out]
    scores = np.asarray(raw_scores)  # numeric dtype: all numbers, unless a bool hides among floats
    if (scores.dtype.kind not in "fiu" or any(type(v) is bool for v in raw_scores)) and not _numbers(raw_scores):
        bad_i = next(i for i, v in enumerate(raw_scores) if not _numbers([v]))
        raise DataError(f"{src}: results[{bad_i}] (image_id {out[bad_i]['image_id']}) has a non-numeric score "
                        f"{out[bad_i]['score']!r}")
    scores = scores.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1) | ~np.isfinite(scores))
    if bad.size:
        raise DataError(f"{src}: {bad.size} results have NaN/infinite keypoints or score "
                        f"(first: results[{bad[0]}], image_id {out[bad[0]]['image_id']})")
    img_ids = {img["id"] for img in gt["images"]}
    unknown = sorted({r["image_id"] for r in out} - img_ids, key=str)
    if unknown:
        raise DataError(f"{src}: {len(unknown)} image ids are not in the ground truth (first: {unknown[:5]}); "
                        f"results must use the ground truth's images[].id")
    cat_ids = {c["id"] for c in gt["categories"]}
    unknown = sorted({r["category_id"] for r in out} - cat_ids, key=str)
    if unknown:
        raise DataError(f"{src}: category ids {unknown[:5]} are not in the ground truth (it has {sorted(cat_ids)})")
    return out, values


def _keypoint_values(data: Sequence[Any], k: int) -> np.ndarray | None:
    """The [N, 3K] float64 keypoints when every item is a complete result dict with 3K values, else None."""
    if not all(type(r) is dict and "image_id" in r and "category_id" in r and "score" in r for r in data):
        return None
    try:
        kps = [r["keypoints"] for r in data]
        # dtype inferred, not forced: numbers given as strings ("12.5") or None show as a non-numeric dtype
        values = np.asarray(kps)
    except (KeyError, TypeError, ValueError):
        return None
    if values.dtype.kind not in "fiu" or values.shape != (len(data), 3 * k):
        return None
    return values.astype(np.float64, copy=False)


def _check_items(data: Sequence[Any], k: int, src: str) -> None:
    """Raise DataError naming the first result that is not a dict with image_id, category_id, score, 3K keypoints."""
    for i, r in enumerate(data):
        if not isinstance(r, dict):
            raise DataError(f"{src}: results[{i}] is a {type(r).__name__}, expected a dict")
        for key in ("image_id", "category_id", "keypoints", "score"):
            if key not in r:
                raise DataError(f"{src}: results[{i}] has no '{key}'")
        kp = r["keypoints"]
        if not isinstance(kp, (list, tuple, np.ndarray)) or len(kp) != 3 * k:
            got = len(kp) if isinstance(kp, (list, tuple, np.ndarray)) else type(kp).__name__
            raise DataError(f"{src}: results[{i}] (image_id {r['image_id']}) has {got} keypoint values; the "
                            f"ground truth has {k} keypoints, so {3 * k} values (x, y, score) are expected")
        if not _numbers(np.asarray(kp, dtype=object).reshape(-1)):
            bad = next(v for v in np.asarray(kp, dtype=object).reshape(-1) if not _numbers([v]))
            raise DataError(f"{src}: results[{i}] (image_id {r['image_id']}) has a non-numeric keypoint value "
                            f"{bad!r} ({type(bad).__name__}); expected numbers (x, y, score)")


def _numbers(values: Any) -> bool:
    """True when every value is an int/float (not bool, not str)."""
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)


def _quiet() -> contextlib.AbstractContextManager:
    return contextlib.redirect_stdout(io.StringIO())


def _load_res_keypoints(coco_cls: type, coco_gt: Any, results: list[dict], values: np.ndarray,
                        print_function: Any) -> Any:
    """faster-coco-eval's `loadRes` for keypoint results, with the per-result box/area loop vectorised.

    Same fields and values as the library (id = index + 1, bbox = keypoint extent [x0, y0, x1-x0, y1-y0], area =
    its product, float64 arithmetic, results that are validated shallow copies, so the dicts are annotated in
    place as loadRes does); tested equal to loadRes on every field.
    """
    x, y = values[:, 0::3], values[:, 1::3]
    x0, x1, y0, y1 = x.min(axis=1), x.max(axis=1), y.min(axis=1), y.max(axis=1)
    w, h = x1 - x0, y1 - y0
    area = (w * h).tolist()
    boxes = np.stack([x0, y0, w, h], axis=1).tolist()
    for i, (ann, a, b) in enumerate(zip(results, area, boxes), 1):
        ann["area"] = a
        ann["id"] = i
        ann["bbox"] = b
    res = coco_cls(print_function=print_function)
    res.dataset["info"] = copy.deepcopy(coco_gt.dataset.get("info", {}))
    res.dataset["images"] = list(coco_gt.dataset["images"])
    res.dataset["categories"] = copy.deepcopy(coco_gt.dataset["categories"])
    res.dataset["annotations"] = results
    res.createIndex()
    return res


def _pairwise_mean(a: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Row means sum(row[:n]) / n, bit-equal to numpy's `np.sum(row[:n]) / n` (rows of `a` zero after n).

    numpy adds a contiguous row of n < 8 values left to right from 0.0, and 8 <= n <= 128 values with eight
    interleaved partial sums combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then the n % 8 tail left to right.
    Adding the padding zeros is exact, so both orders are reproduced for every row at once.
    """
    m = a.shape[1]
    width = max(8, -(-m // 8) * 8)
    if width > m:
        a = np.concatenate([a, np.zeros((a.shape[0], width - m))], axis=1)
    seq = np.zeros(a.shape[0])
    for i in range(8):
        seq = seq + a[:, i]
    main = n - n % 8  # values in the eight partial sums
    r = a[:, :8].copy()
    for b in range(8, width, 8):
        r = r + np.where((main > b)[:, None], a[:, b:b + 8], 0.0)
    res = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + ((r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))
    for i in range(8, width):
        res = res + np.where(i >= main, a[:, i], 0.0)
    return np.where(n < 8, seq, res) / n


def batched_oks(pairs: list[tuple[list[dict], list[dict]]], sigmas: np.ndarray, use_area: bool = True,
                dt_values: np.ndarray | None = None) -> list[np.ndarray]:
    """OKS matrices [D,G] of (score-sorted detections, ground truths) pairs, all in one vectorised pass.

    The arithmetic of pycocotools / faster-coco-eval `computeOks` element by element (visible ground-truth
    keypoints only; for a ground truth without visible keypoints the distance to its doubled box, all keypoints),
    with the per-row mean reproduced bit for bit (`_pairwise_mean`). `dt_values`: the detections' keypoints as
    rows of an array indexed by annotation id - 1 (as `_load_res_keypoints` numbers them), instead of re-reading them.
    """
    sizes = [(len(d), len(g)) for d, g in pairs]
    out: list[Any] = [[] for _ in pairs]  # the library returns [] when either side is empty
    live = [i for i, (nd, ng) in enumerate(sizes) if nd and ng]
    if not live:
        return out
    if dt_values is not None:
        d = dt_values[np.fromiter((dt["id"] - 1 for i in live for dt in pairs[i][0]), np.int64)]
    else:
        d = np.asarray([dt["keypoints"] for i in live for dt in pairs[i][0]], dtype=np.float64)
    g = np.asarray([gt["keypoints"] for i in live for gt in pairs[i][1]], dtype=np.float64)
    bb = np.asarray([gt["bbox"] for i in live for gt in pairs[i][1]], dtype=np.float64).reshape(-1, 4)
    if use_area:
        area = np.asarray([gt["area"] for i in live for gt in pairs[i][1]], dtype=np.float64)
    else:
        area = bb[:, 3] * bb[:, 2] * 0.53
    di, gi, d_off, g_off = [], [], 0, 0
    for i in live:
        nd, ng = sizes[i]
        di.append(d_off + np.repeat(np.arange(nd), ng))
        gi.append(g_off + np.tile(np.arange(ng), nd))
        d_off, g_off = d_off + nd, g_off + ng
    di_a, gi_a = np.concatenate(di), np.concatenate(gi)
    var = (np.asarray(sigmas, dtype=np.float64) * 2) ** 2
    vis = g[:, 2::3] > 0
    k1 = vis.sum(axis=1)
    none = k1 == 0
    xd, yd = d[di_a, 0::3], d[di_a, 1::3]
    xg, yg = g[gi_a, 0::3], g[gi_a, 1::3]
    dx, dy = xd - xg, yd - yg
    pn = none[gi_a]
    if pn.any():
        b = bb[gi_a[pn]]
        x0, x1 = (b[:, 0] - b[:, 2])[:, None], (b[:, 0] + b[:, 2] * 2)[:, None]
        y0, y1 = (b[:, 1] - b[:, 3])[:, None], (b[:, 1] + b[:, 3] * 2)[:, None]
        xdn, ydn = xd[pn], yd[pn]
        dx[pn] = np.maximum(0.0, x0 - xdn) + np.maximum(0.0, xdn - x1)
        dy[pn] = np.maximum(0.0, y0 - ydn) + np.maximum(0.0, ydn - y1)
    e = (dx**2 + dy**2) / var / (area[gi_a][:, None] + np.spacing(1)) / 2
    keep = vis | none[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")  # kept keypoints first, in their order
    ex = np.exp(-e)
    ex = np.take_along_axis(ex, order[gi_a], axis=1)
    ex[~np.take_along_axis(keep, order, axis=1)[gi_a]] = 0.0
    oks = _pairwise_mean(ex, np.where(none, keep.shape[1], k1)[gi_a])
    pos = 0
    for i in live:
        nd, ng = sizes[i]
        out[i] = oks[pos:pos + nd * ng].reshape(nd, ng)
        pos += nd * ng
    return out


def _batched_oks_class(base: type) -> type:
    """A faster-coco-eval COCOeval whose OKS matrices are computed for all images at once after `_prepare`."""

    class BatchedOKS(base):  # type: ignore[misc, valid-type]
        def _prepare(self) -> None:
            super()._prepare()
            p = self.params
            self._oks_cache = {}
            if len(p.kpt_oks_sigmas) > 128:  # numpy sums longer rows recursively: keep the library's path
                return
            keys = list(getattr(self, "_nonempty_iou_pairs", None) or
                        [(i, c) for i in p.imgIds for c in (p.catIds if p.useCats else [-1])])
            pairs = []
            for img_id, cat_id in keys:
                gts = self.gt_dataset.get(img_id, cat_id)
                dts = self.dt_dataset.get(img_id, cat_id)
                inds = np.argsort([-dt["score"] for dt in dts], kind="mergesort")
                dts = [dts[i] for i in inds][: p.maxDets[-1]]
                pairs.append((dts, gts))
            oks = batched_oks(pairs, np.asarray(p.kpt_oks_sigmas), self.use_area, getattr(self, "dt_values", None))
            self._oks_cache = dict(zip(keys, oks))

        def computeOks(self, imgId: Any, catId: Any) -> Any:  # noqa: N802, N803 - the library's names
            cache = getattr(self, "_oks_cache", {})
            if (imgId, catId) in cache:
                return cache[(imgId, catId)]
            return super().computeOks(imgId, catId)

    return BatchedOKS


def run_cocoeval(gt: dict, results: list[dict], sigmas: np.ndarray, backend: str = "pycocotools",
                 values: np.ndarray | None = None, fast_oks: bool = True) -> Any:
    """Evaluate + accumulate + summarize with the chosen library; returns its COCOeval object (stats in `.stats`).

    faster_coco_eval: with `values` (the results' keypoints [N,3K], from validation) the results are indexed
    without the library's per-result loop, and with `fast_oks` the OKS matrices of all images are computed in one
    vectorised pass; both are bit-equal to the library's own code (tested), and leave its C++ matching and
    accumulation as they are.
    """
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with _quiet():
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            if results:
                coco_dt = coco_gt.loadRes(results)
            else:
                coco_dt = COCO()
                coco_dt.dataset = {"images": list(gt["images"]), "categories": copy.deepcopy(gt["categories"]),
                                   "annotations": []}
                coco_dt.createIndex()
            ev = COCOeval(coco_gt, coco_dt, "keypoints")
            ev.params.kpt_oks_sigmas = sigmas
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return ev
    if backend == "faster_coco_eval":
        from faster_coco_eval import COCO as FCOCO
        from faster_coco_eval import COCOeval_faster

        def silent(*args: Any, **kwargs: Any) -> None:
            return None

        with _quiet():
            coco_gt = FCOCO(gt, print_function=silent)
            if values is not None and len(results):
                coco_dt = _load_res_keypoints(FCOCO, coco_gt, results, values, silent)
            else:
                coco_dt = coco_gt.loadRes(results)
            # Never touch params.useSegm: setting it (even to None) switches faster-coco-eval to bbox IoU.
            cls = _batched_oks_class(COCOeval_faster) if fast_oks else COCOeval_faster
            ev = cls(coco_gt, coco_dt, iouType="keypoints", kpt_oks_sigmas=list(sigmas), print_function=silent)
            if fast_oks and values is not None and len(results):
                ev.dt_values = values  # rows by annotation id - 1, as _load_res_keypoints numbered them
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return ev
    raise DataError(f"unknown evaluation backend {backend!r}; expected one of {BACKENDS}")


def _warn_empty(src: str) -> None:
    warnings.warn(f"{src}: the results list is empty, so every AP/AR is 0", stacklevel=3)


@contextlib.contextmanager
def _no_cyclic_gc() -> Any:
    """Pause Python's cyclic garbage collector: parsing and matching create ~10^5 acyclic objects, whose
    allocation triggers full collections (measured: 0.27-0.30 s instead of 0.29-0.43 s for 17k results)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def coco_keypoints(gt_json_path: GroundTruth, results: Results, sigmas: Sigmas = None,
                   backend: str = "pycocotools") -> dict[str, float]:
    """COCO keypoint AP/AR: the 10 pycocotools stats by name, in pycocotools order."""
    if backend not in BACKENDS:
        raise DataError(f"unknown evaluation backend {backend!r}; expected one of {BACKENDS}")
    with _no_cyclic_gc():
        gt = load_ground_truth(gt_json_path)
        res, values = _load_results(results, gt)
        if not res:
            _warn_empty(_name(results))
        ev = run_cocoeval(gt, res, resolve_sigmas(gt, sigmas), backend, values=values)
        return {name: float(v) for name, v in zip(STAT_NAMES, np.asarray(ev.stats)[:10])}


def crowd_index_split(gt: dict, split: tuple[float, float] = CROWD_INDEX_SPLIT) -> tuple[list, list, list]:
    """Image ids split by `crowdIndex` into easy (< split[0]), medium (< split[1]) and hard."""
    groups: tuple[list, list, list] = ([], [], [])
    for img in gt["images"]:
        if "crowdIndex" not in img:
            raise DataError(f"image {img['id']} has no 'crowdIndex' (CrowdPose ground truth is needed for AP(E/M/H))")
        ci = img["crowdIndex"]
        groups[0 if ci < split[0] else 1 if ci < split[1] else 2].append(img["id"])
    return groups


def _subset_precision_pycocotools(ev: Any, img_ids: Sequence) -> np.ndarray:
    """Accumulate pycocotools' existing per-image matches over a subset of images; precision [T,R,K,A,M]."""
    pe = ev._paramsEval
    wanted = set(img_ids)
    pos = [n for n, i in enumerate(pe.imgIds) if i in wanted]
    n_img, n_area = len(pe.imgIds), len(pe.areaRng)
    n_cat = len(pe.catIds) if pe.useCats else 1
    sub = copy.copy(ev)
    sub.evalImgs = [ev.evalImgs[(k * n_area + a) * n_img + n] for k in range(n_cat) for a in range(n_area)
                    for n in pos]
    sub._paramsEval = copy.deepcopy(pe)
    sub._paramsEval.imgIds = [pe.imgIds[n] for n in pos]
    sub.params = copy.deepcopy(ev.params)
    sub.params.imgIds = list(sub._paramsEval.imgIds)
    with _quiet():
        sub.accumulate()
    return sub.eval["precision"]


def _subset_precision_faster(ev: Any, img_ids: Sequence) -> np.ndarray:
    """Re-run faster-coco-eval on a subset of images; precision [T,R,K,A,M]."""
    if not img_ids:
        p = ev.params
        return -np.ones((len(p.iouThrs), len(p.recThrs), len(p.catIds), len(p.areaRng), len(p.maxDets)))
    sub = copy.copy(ev)
    sub.params = copy.deepcopy(ev.params)
    sub.params.imgIds = list(img_ids)
    with _quiet():
        sub.evaluate()
        sub.accumulate()
    return sub.eval["precision"]


def crowdpose_keypoints(gt_json_path: GroundTruth, results: Results, sigmas: Sigmas = None,
                        backend: str = "pycocotools",
                        split: tuple[float, float] = CROWD_INDEX_SPLIT) -> dict[str, float]:
    """CrowdPose AP/AR and AP (E)/(M)/(H) by crowd index, as xtcocotools 'keypoints_crowd' with use_area=False."""
    if backend not in BACKENDS:
        raise DataError(f"unknown evaluation backend {backend!r}; expected one of {BACKENDS}")
    gt = load_ground_truth(gt_json_path, use_area=False)
    groups = crowd_index_split(gt, split)
    res = load_results(results, gt)
    if not res:
        _warn_empty(_name(results))
    # xtcocotools drops detections whose keypoint scores are all <= 0 before matching.
    res = [r for r in res if any(v > 0 for v in r["keypoints"][2::3])]
    ev = run_cocoeval(gt, res, resolve_sigmas(gt, sigmas, default=CROWDPOSE14), backend)
    s = np.asarray(ev.stats)
    values = [s[0], s[1], s[2], s[5], s[6], s[7]]
    subset = _subset_precision_pycocotools if backend == "pycocotools" else _subset_precision_faster
    for ids in groups:
        precision = subset(ev, ids)
        # xtcocotools: mean over the whole 'all'-area precision block (-1 entries included), rounded to 4 places.
        values.append(round(np.mean(precision[:, :, :, 0, :]), 4))
    return {name: float(v) for name, v in zip(CROWDPOSE_STAT_NAMES, values)}


def gt_as_results(gt: GroundTruth, score: float = 1.0) -> list[dict]:
    """Ground-truth annotations with keypoints (not crowd) written as a results list: a perfect prediction."""
    data = load_ground_truth(gt, use_area=False)
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": list(a["keypoints"]),
             "score": score} for a in data["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]


__all__ = [
    "BACKENDS", "CROWDPOSE_STAT_NAMES", "CROWD_INDEX_SPLIT", "STAT_NAMES", "coco_keypoints", "crowd_index_split",
    "crowdpose_keypoints", "gt_as_results", "load_ground_truth", "load_results", "resolve_sigmas", "run_cocoeval",
]
