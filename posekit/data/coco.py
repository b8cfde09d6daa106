"""COCO-format keypoint annotations and person detections -> `PoseRecord`s (official HRNet cleaning rules).

Works for any COCO-format keypoint set (COCO, CrowdPose, AIC, OCHuman, AP-10K, Animal-Pose, ATRW, Horse-10,
Animal Kingdom, custom K-keypoint sets): the keypoint count and the skeleton come from the file's `categories`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posekit import geometry, skeletons
from posekit.data.records import PoseRecord
from posekit.errors import DataError, DataWarning
from posekit.skeletons import Skeleton

DEFAULT_ASPECT_RATIO = 192 / 256


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; DataError naming the file when it is missing or not valid JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def _field(obj: Any, key: str, where: str, source: str) -> Any:
    """obj[key] or a DataError naming the file, the entry and the field."""
    if not isinstance(obj, Mapping):
        raise DataError(f"{source}: {where} must be an object, got {type(obj).__name__}")
    if key not in obj:
        raise DataError(f"{source}: {where} has no field {key!r}")
    return obj[key]


def _list_field(data: Any, key: str, source: str) -> list:
    value = _field(data, key, "top level", source)
    if not isinstance(value, list):
        raise DataError(f"{source}: top-level field {key!r} must be a list, got {type(value).__name__}")
    return value


_HEAD_ALIASES = {"head": "head_top", "top_head": "head_top"}


def _norm_name(name: Any) -> str:
    n = "_".join(str(name).strip().lower().replace("-", " ").split())
    for short, long in (("r_", "right_"), ("l_", "left_")):
        if n.startswith(short):
            n = long + n[len(short):]
    return _HEAD_ALIASES.get(n, n)


def _builtin_for(names: list) -> Skeleton | None:
    """The built-in skeleton whose keypoint names equal `names` up to case, spaces and head-top aliases."""
    key = [_norm_name(n) for n in names]
    for name in skeletons.names():
        skel = skeletons.get(name)
        if [_norm_name(n) for n in skel.keypoints] == key:
            return skel
    return None


def _skeleton_from_categories(categories: list, source: str) -> Skeleton:
    """Skeleton of the first category with keypoint names (built-in when the names match one)."""
    for i, cat in enumerate(categories):
        if isinstance(cat, Mapping) and cat.get("keypoints"):
            builtin = _builtin_for(cat["keypoints"])
            if builtin is not None:
                return builtin
            k = len(cat["keypoints"])
            links = cat.get("skeleton") or []
            try:
                ok = all(len(link) == 2 and all(1 <= int(v) <= k for v in link) for link in links)
            except (TypeError, ValueError):
                ok = False
            if not ok:  # e.g. CrowdPose files carry the 17-keypoint COCO links: links are only for drawing
                cat = {key: value for key, value in cat.items() if key != "skeleton"}
            return skeletons.from_coco_category(cat, source=f"{source}: categories[{i}]")
    raise DataError(f"{source}: no entry of 'categories' has a non-empty 'keypoints' list; pass skeleton=")


def _keypoint_category_ids(categories: list, num_keypoints: int) -> tuple[set[int], set[int]]:
    """(ids of categories with K keypoints, ids of all listed categories)."""
    ok, listed = set(), set()
    for cat in categories:
        if not isinstance(cat, Mapping) or "id" not in cat:
            continue
        listed.add(cat["id"])
        kpts = cat.get("keypoints")
        # categories without names (e.g. Halpe) are accepted when the caller gave the skeleton
        if kpts is None or len(kpts) in (0, num_keypoints):
            ok.add(cat["id"])
    return ok, listed


def _images_by_id(images: list, source: str) -> dict[Any, Mapping]:
    by_id: dict[Any, Mapping] = {}
    for i, img in enumerate(images):
        img_id = _field(img, "id", f"images[{i}]", source)
        _field(img, "file_name", f"images[{i}] (id {img_id})", source)
        by_id.setdefault(img_id, img)  # some files repeat image entries; the first one wins
    return by_id


def _check_unique_annotation_ids(annotations: list, source: str) -> None:
    """DataError naming annotation ids used more than once (COCO evaluation keys annotations by id)."""
    ids = [ann["id"] for ann in annotations if isinstance(ann, Mapping) and "id" in ann]
    counts = Counter(ids)
    if len(counts) != len(ids):
        dup = sorted((i for i, n in counts.items() if n > 1), key=str)
        raise DataError(f"{source}: {len(dup)} annotation ids are used more than once (first: {dup[:5]}); COCO "
                        "evaluation keys annotations by id (a repeated id drops people and changes AP): give every "
                        "annotation its own id")


def _as_int_id(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _parse_keypoints(ann: Mapping, k: int, where: str, source: str) -> np.ndarray:
    raw = _field(ann, "keypoints", where, source)
    try:
        arr = np.asarray(raw, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{source}: {where} field 'keypoints' must be a list of numbers") from None
    if arr.size != 3 * k:
        raise DataError(f"{source}: {where} field 'keypoints' has {arr.size} values, expected {3 * k} "
                        f"(x, y, v for {k} keypoints)")
    arr = arr.reshape(k, 3)
    if not np.isfinite(arr).all():
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise DataError(f"{source}: {where} field 'keypoints' has a non-finite value at keypoint {bad}")
    flags = set(np.unique(arr[:, 2]).tolist()) - {0.0, 1.0, 2.0}
    if flags:
        raise DataError(f"{source}: {where} field 'keypoints' has visibility flags {sorted(flags)[:5]}; expected 0 "
                        "(not labelled), 1 (labelled, occluded) or 2 (visible)")
    return arr


def _parse_box(ann: Mapping, where: str, source: str) -> list[float]:
    box = _field(ann, "bbox", where, source)
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4:
        raise DataError(f"{source}: {where} field 'bbox' must be [x, y, w, h], got {box!r}")
    if not all(np.isfinite(values)):
        raise DataError(f"{source}: {where} field 'bbox' has a non-finite value: {box!r}")
    return values


def clean_box(box: Sequence[float], width: float, height: float) -> list[float] | None:
    """Official HRNet box cleaning: clip x1,y1,x2,y2 to the image; None if the box is empty."""
    x, y, w, h = box
    x1 = max(0.0, x)
    y1 = max(0.0, y)
    x2 = min(width - 1, x1 + max(0.0, w - 1))
    y2 = min(height - 1, y1 + max(0.0, h - 1))
    if x2 >= x1 and y2 >= y1:
        return [x1, y1, x2 - x1, y2 - y1]
    return None


def _annotations_per_image(annotations: list, by_id: Mapping[Any, Any], source: str
                           ) -> dict[Any, list[tuple[int, Mapping]]]:
    """image id -> [(index, annotation)] in file order, every image of `by_id` present; ids checked unique and an
    annotation of an image not in 'images' is a DataError."""
    _check_unique_annotation_ids(annotations, source)
    per_image: dict[Any, list[tuple[int, Mapping]]] = {img_id: [] for img_id in by_id}
    for i, ann in enumerate(annotations):
        img_id = _field(ann, "image_id", f"annotations[{i}]", source)
        if img_id not in per_image:
            raise DataError(f"{source}: annotations[{i}] (id {ann.get('id')}) has image_id {img_id!r} "
                            "that is not in 'images'")
        per_image[img_id].append((i, ann))
    return per_image


def _box_record(path: str, img_id: Any, box: Sequence[float], keypoints: np.ndarray, aspect_ratio: float,
                padding: float, **fields: Any) -> PoseRecord:
    """A PoseRecord of one person box (xywh px): the crop centre/size from the box, the other fields as given."""
    center, size = geometry.box_xywh_to_center_size(box, aspect_ratio, padding)
    return PoseRecord(image_path=path, image_id=_as_int_id(img_id), center=center, size=size, keypoints=keypoints,
                      box=np.asarray(box, dtype=np.float64), **fields)


def _image_size(img: Mapping) -> tuple[int, int]:
    """(w, h) of a COCO image entry; 0 where it is not given."""
    return int(img.get("width") or 0), int(img.get("height") or 0)


def load_coco(
    ann_file: str | os.PathLike,
    image_root: str | os.PathLike,
    skeleton: Skeleton | None = None,
    aspect_ratio: float = DEFAULT_ASPECT_RATIO,
    padding: float = 1.25,
    train: bool = True,
) -> tuple[list[PoseRecord], Skeleton]:
    """Ground-truth people of a COCO-format keypoint file -> (records, skeleton), as official HRNet `_get_db`.

    Boxes are clipped to the image and kept if area > 0 and x2 >= x1 and y2 >= y1; crowd annotations are
    skipped; with `train` people without any labelled keypoint (max of the keypoint list == 0) are skipped as
    well (the official GT-box test uses the same rule: pass train=True to reproduce it). `aspect_ratio` is the
    network input w/h; `padding` enlarges the box (1.25 official).
    """
    source = str(ann_file)
    data = read_json(ann_file)
    images = _list_field(data, "images", source)
    annotations = _list_field(data, "annotations", source)
    categories = data.get("categories") if isinstance(data, Mapping) else None
    if skeleton is None:
        if not isinstance(categories, list):
            raise DataError(f"{source}: top level has no list field 'categories' to take the skeleton from; "
                            "pass skeleton=")
        skeleton = _skeleton_from_categories(categories, source)
    k = skeleton.num_keypoints
    ok_cats, listed_cats = _keypoint_category_ids(categories if isinstance(categories, list) else [], k)
    named_cats = {c["id"]: bool(c.get("keypoints")) for c in categories or [] if isinstance(c, Mapping) and "id" in c}
    by_id = _images_by_id(images, source)

    per_image = _annotations_per_image(annotations, by_id, source)
    root = Path(image_root)
    records: list[PoseRecord] = []
    other_k: Counter = Counter()  # annotations skipped per category with another keypoint count
    for img_id, anns in per_image.items():
        img = by_id[img_id]
        width = float(img.get("width") or np.inf)
        height = float(img.get("height") or np.inf)
        path = str(root / img["file_name"])
        for i, ann in anns:
            where = f"annotations[{i}] (id {ann.get('id')})"
            cat = ann.get("category_id", 1)
            if cat in listed_cats and cat not in ok_cats:
                other_k[cat] += 1
                continue  # a category with another keypoint set
            if "keypoints" not in ann and cat in listed_cats and not named_cats.get(cat):
                continue  # an annotation of a category without keypoints (e.g. a COCO instances file)
            if ann.get("iscrowd", 0):
                continue
            kpts = _parse_keypoints(ann, k, where, source)
            box = _parse_box(ann, where, source)
            area = float(ann["area"]) if ann.get("area") is not None else box[2] * box[3]
            cleaned = clean_box(box, width, height)
            if cleaned is None or area <= 0:
                continue
            if train and kpts.max() == 0:
                continue
            records.append(_box_record(
                path, img_id, cleaned, kpts.astype(np.float32), aspect_ratio, padding,
                ann_id=_as_int_id(ann.get("id", i)),
                area=area,
                score=1.0,
                iscrowd=0,
                category_id=_as_int_id(cat),
                image_size=_image_size(img),
            ))
    if not records and other_k:
        _raise_other_keypoint_sets(other_k, categories, k, source)
    return records, skeleton


def _raise_other_keypoint_sets(skipped: Counter, categories: Any, k: int, source: str) -> None:
    """DataError: every annotation belongs to a category whose keypoint list is not the expected K."""
    counts = {c["id"]: len(c.get("keypoints") or []) for c in categories or [] if isinstance(c, Mapping) and "id" in c}
    found = ", ".join(f"category {cat} has {counts.get(cat)} keypoints ({n} annotations)" for cat, n in skipped.items())
    raise DataError(f"{source}: no annotation has the {k} keypoints expected (the skeleton of the model / config): "
                    f"{found}; use a model and skeleton with that many keypoints")


def _image_names(ann_file_or_images: Any) -> tuple[dict[Any, Mapping] | None, Skeleton | None, str]:
    """(image id -> image entry, skeleton from the file or None, source name) for the detection loader."""
    if ann_file_or_images is None:
        return None, None, "<none>"
    if isinstance(ann_file_or_images, (str, os.PathLike)):
        source = str(ann_file_or_images)
        data = read_json(ann_file_or_images)
        by_id = _images_by_id(_list_field(data, "images", source), source)
        cats = data.get("categories") if isinstance(data, Mapping) else None
        skel = None
        if isinstance(cats, list) and any(isinstance(c, Mapping) and c.get("keypoints") for c in cats):
            skel = _skeleton_from_categories(cats, source)
        return by_id, skel, source
    if isinstance(ann_file_or_images, Mapping):  # image id -> file name
        return {k: {"id": k, "file_name": v} for k, v in ann_file_or_images.items()}, None, "<images>"
    return _images_by_id(list(ann_file_or_images), "<images>"), None, "<images>"


def load_coco_detections(
    det_file: str | os.PathLike,
    ann_file_or_images: str | os.PathLike | Mapping | Sequence[Mapping] | None,
    image_root: str | os.PathLike,
    score_threshold: float = 0.0,
    skeleton: Skeleton | None = None,
    aspect_ratio: float = DEFAULT_ASPECT_RATIO,
    padding: float = 1.25,
    category_id: int = 1,
) -> list[PoseRecord]:
    """Detector boxes (COCO results list) -> records with zero keypoints (official person detection loader).

    Keeps entries of `category_id` whose score is >= `score_threshold`; boxes are not clipped (official).
    `ann_file_or_images` gives the image file names: a COCO json, a list of image entries, a mapping id ->
    file name, or None for the official '%012d.jpg' naming. K comes from `skeleton`, else from the json's
    categories, else 17.
    """
    source = str(det_file)
    dets = read_json(det_file)
    if not isinstance(dets, list):
        raise DataError(f"{source}: expected a list of detections, got {type(dets).__name__}")
    by_id, file_skeleton, img_source = _image_names(ann_file_or_images)
    skel = skeleton or file_skeleton
    k = skel.num_keypoints if skel is not None else 17
    root = Path(image_root)
    records: list[PoseRecord] = []
    outside = 0
    for i, det in enumerate(dets):
        where = f"entry [{i}]"
        if _field(det, "category_id", where, source) != category_id:
            continue
        img_id = _field(det, "image_id", where, source)
        raw_score = _field(det, "score", where, source)
        try:
            score = float(raw_score)
        except (TypeError, ValueError):
            raise DataError(f"{source}: {where} field 'score' must be a number, got {raw_score!r}") from None
        if not np.isfinite(score):
            raise DataError(f"{source}: {where} field 'score' is {raw_score!r}, expected a finite number")
        if score < score_threshold:
            continue
        box = _parse_box(det, where, source)
        if box[2] <= 0 or box[3] <= 0:
            raise DataError(f"{source}: {where} field 'bbox' has width/height <= 0: {box}")
        if by_id is None:
            path = str(root / f"{int(img_id):012d}.jpg")
            image_size = (0, 0)
        else:
            if img_id not in by_id:
                raise DataError(f"{source}: {where} has image_id {img_id!r} that is not in the images of {img_source}")
            img = by_id[img_id]
            path = str(root / img["file_name"])
            image_size = _image_size(img)
            w, h = image_size
            if w and h and (box[0] >= w or box[1] >= h or box[0] + box[2] <= 0 or box[1] + box[3] <= 0):
                outside += 1  # no pixel of the image inside the box: no pose to estimate there
                continue
        records.append(_box_record(
            path, img_id, box, np.zeros((k, 3), dtype=np.float32), aspect_ratio, padding,
            ann_id=-1,
            area=box[2] * box[3],
            score=score,
            category_id=category_id,
            image_size=image_size,
        ))
    if outside:
        warnings.warn(f"{source}: {outside} detection box(es) lie entirely outside their image and were skipped",
                      DataWarning, stacklevel=2)
    return records
