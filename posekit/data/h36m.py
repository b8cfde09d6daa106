"""Loaders of 3-D top-down records (posekit.data.body3d.Body3DRecord): Human3.6M in the common 3DMPPE json layout,
Human3.6M in mmpose's h36m_coco.json + cameras.pkl layout, and posekit's synthetic 3-D humans (`posekit synth`).

Human3.6M (18 joints, skeleton "h36m"): the 17 H36M joints + Thorax = mean of the shoulders (3DMPPE adds it);
root Pelvis (0); joints_cam in mm; joints_img = cam2pixel(joints_cam) with the pinhole f, c as 3DMPPE (lens
distortion, which the 2-D H36M labels include, is kept in record.extra["k"/"p"]; see posekit.camera.project).
Common layout (3DMPPE / RootNet release): ROOT/annotations/Human36M_subject{S}_{data,camera,joint_3d}.json and
ROOT/images/<file_name>; cameras {cam_idx: {R, t (mm), f, c}} with X_cam = R X_world + t; joint_3d
{action_idx: {subaction_idx: {frame_idx: 17 x [x, y, z] world mm}}}. Splits are 3DMPPE's, by "protocol" (repo
naming, kept on purpose): protocol 1 = train S1,5,6,7,8,9 / test S11 (scored with rigid PA-MPJPE), protocol 2 =
train S1,5,6,7,8 / test S9,11 (MPJPE). Frames: every 5th for training, every 64th for testing.
mmpose layout: keypoints_3d are world metres and cameras.pkl holds R (camera-to-world) and T (camera centre,
metres): X_cam = (X_world - T) @ R, times 1000. Its category names list left joints at indices 1-3 / 11-13, but the
data are in H36M order (index 1 is the RIGHT hip: checked geometrically in the tests), so joints are read by
index, not by those names.
Synthetic humans (skeleton "coco_pelvis"): COCO-17 + pelvis (mean of the hips, index 17, the root) from the
annotations' keypoints_3d (camera mm) and cam_intrinsics; every joint is visible (the 3-D labels are exact even
where the 2-D visibility flag says occluded); the crop box is the visible-mask bbox after process_bbox.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posekit import skeletons
from posekit.camera import cam2pixel, world2cam, world2cam_mmpose
from posekit.codecs.body3d import process_bbox
from posekit.data.body3d import Body3DRecord
from posekit.data.coco import read_json
from posekit.errors import DataError

H36M_SKELETON = skeletons.get("h36m")
SYNTH_SKELETON = skeletons.get("coco_pelvis")
H36M_ROOT = 0
H36M_EVAL_JOINTS = tuple(range(17))  # Thorax (17) excluded, Pelvis included (as 3DMPPE)
SYNTH_ROOT = 17
PROTOCOL_SUBJECTS = {1: {"train": (1, 5, 6, 7, 8, 9), "test": (11,)}, 2: {"train": (1, 5, 6, 7, 8), "test": (9, 11)}}
SAMPLING = {"train": 5, "test": 64}
# The 15 actions in 3DMPPE's order (action_idx 2..16 -> 0..14); the same list as posekit.evaluation.mpjpe's.
H36M_ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
                "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether")
# mmpose / original H36M action names -> the 3DMPPE action list
_ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog", "WalkTogether": "WalkTogether"}


def add_thorax(joints: np.ndarray) -> np.ndarray:
    """17 H36M joints [17, C] -> 18 with Thorax = mean of L/R shoulders (11, 14) appended, as 3DMPPE."""
    j = np.asarray(joints)
    if j.shape[0] != 17:
        raise DataError(f"H36M joints: expected 17 rows, got {j.shape}")
    return np.concatenate([j, (j[11:12] + j[14:15]) * 0.5], axis=0)


def action_id(name: str) -> int:
    """Index into H36M_ACTIONS of an action name such as 'Directions_1' or 'WalkingDog 1' (-1 if unknown)."""
    base = name.split("_")[0].split(" ")[0]
    base = _ACTION_ALIASES.get(base, base)
    return H36M_ACTIONS.index(base) if base in H36M_ACTIONS else -1


def check_camera_and_joints(f: Any, c: Any, joints: Any, camera_where: str, joints_where: str) -> None:
    """DataError naming the file and field when the intrinsics (f > 0, finite f and c, two values each) or the
    3-D joints (finite) cannot give 2-D targets: f = 0 would put every joint on the principal point, a NaN
    stops training at the first step."""
    try:
        fv, cv = np.asarray(f, np.float64).reshape(-1), np.asarray(c, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{camera_where}: f and c must be numbers, got f={f!r} c={c!r}") from None
    if fv.size not in (1, 2) or cv.size != 2 or not np.isfinite(fv).all() or not np.isfinite(cv).all() \
            or not (fv > 0).all():
        raise DataError(f"{camera_where}: expected a focal length f (px, one or two values > 0) and a principal "
                        f"point c [cx, cy], all finite; got f={fv.tolist()} c={cv.tolist()}")
    j = np.asarray(joints, np.float64)
    bad = np.argwhere(~np.isfinite(j))
    if bad.size:
        raise DataError(f"{joints_where}: joint {int(bad[0][0])} has a non-finite coordinate "
                        f"{float(j[tuple(bad[0])])} ({len(np.unique(bad[:, 0]))} joints affected)")


def _record(path: str, image_id: int, bbox: Sequence[float], width: float, height: float, joint_cam: np.ndarray,
            f: np.ndarray, c: np.ndarray, root: int, ann_id: int, extra: dict[str, Any],
            aspect_ratio: float = 1.0) -> Body3DRecord | None:
    box = process_bbox(bbox, width, height, aspect_ratio)
    if box is None:
        return None
    joint_cam = np.asarray(joint_cam, dtype=np.float64)
    joints_img = cam2pixel(joint_cam, f, c)
    return Body3DRecord(image_path=path, image_id=int(image_id), bbox=box, joints_img=joints_img,
                        joints_vis=np.ones(len(joint_cam), dtype=np.float32), joints_cam=joint_cam,
                        root_cam=joint_cam[root].copy(), f=np.asarray(f, np.float32).reshape(2),
                        c=np.asarray(c, np.float32).reshape(2), have_depth=True,
                        image_size=(int(width), int(height)), ann_id=int(ann_id), extra=extra)


def load_h36m(root: str | os.PathLike, split: str = "train", protocol: int = 2,
              subjects: Sequence[int] | None = None, sampling: int | None = None) -> list[Body3DRecord]:
    """Human3.6M in the common 3DMPPE json layout under ROOT -> Body3DRecords (18 joints, mm)."""
    if protocol not in PROTOCOL_SUBJECTS:
        raise DataError(f"H36M protocol: expected 1 or 2, got {protocol}")
    if split not in SAMPLING:
        raise DataError(f"H36M split: expected 'train' or 'test', got {split!r}")
    root = Path(root)
    subjects = PROTOCOL_SUBJECTS[protocol][split] if subjects is None else tuple(subjects)
    step = SAMPLING[split] if sampling is None else int(sampling)
    records: list[Body3DRecord] = []
    for s in subjects:
        base = root / "annotations" / f"Human36M_subject{s}"
        files = {k: Path(f"{base}_{k}.json") for k in ("data", "camera", "joint_3d")}
        for k, p in files.items():
            if not p.is_file():
                raise DataError(f"H36M subject {s}: missing {p} (the {k} file of the common 3DMPPE layout)")
        data, cams, joints = (read_json(files[k]) for k in ("data", "camera", "joint_3d"))
        images = {img["id"]: img for img in data.get("images", [])}
        for i, ann in enumerate(data.get("annotations", [])):
            where = f"{files['data']}: annotations[{i}]"
            img = images.get(ann.get("image_id"))
            if img is None:
                raise DataError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
            if int(img.get("frame_idx", 0)) % step != 0:
                continue
            try:
                cam = cams[str(img["cam_idx"])]
                world = np.asarray(joints[str(img["action_idx"])][str(img["subaction_idx"])][str(img["frame_idx"])],
                                   dtype=np.float64)
                R, t = np.asarray(cam["R"], np.float64), np.asarray(cam["t"], np.float64)
                f, c = np.asarray(cam["f"], np.float32), np.asarray(cam["c"], np.float32)
            except KeyError as e:
                raise DataError(f"{where}: no camera / 3-D joints for key {e.args[0]!r} "
                                f"(subject {s}, image {img.get('file_name')})") from None
            check_camera_and_joints(f, c, world, f"{files['camera']}: camera {img['cam_idx']!r}",
                                    f"{files['joint_3d']}: action {img['action_idx']} subaction "
                                    f"{img['subaction_idx']} frame {img['frame_idx']}")
            joint_cam = add_thorax(world2cam(world, R, t))
            rec = _record(str(root / "images" / img["file_name"]), img["id"], ann["bbox"], img["width"],
                          img["height"], joint_cam, f, c, H36M_ROOT, ann.get("id", i),
                          {"subject": s, "action_id": int(img["action_idx"]) - 2, "file_name": img["file_name"]})
            if rec is not None:
                records.append(rec)
    return records


def _mmpose_parts(file_name: str) -> tuple[str, str, str]:
    """'S1_Directions_1.54138969_000001.jpg' -> ('S1', 'Directions_1', '54138969')."""
    stem = Path(file_name).stem
    try:
        subject, rest = stem.split("_", 1)
        action, cam_frame = rest.rsplit(".", 1)
        cam = cam_frame.split("_")[0]
    except ValueError:
        raise DataError(f"mmpose H36M file name {file_name!r}: expected S<k>_<Action>.<camera>_<frame>.jpg") from None
    return subject, action, cam


def load_h36m_mmpose(ann_file: str | os.PathLike, cameras_file: str | os.PathLike,
                     image_root: str | os.PathLike) -> list[Body3DRecord]:
    """mmpose's H36M sample layout (h36m_coco.json with world keypoints_3d in metres + cameras.pkl)."""
    data = read_json(ann_file)
    with open(cameras_file, "rb") as fh:
        cams = pickle.load(fh)  # noqa: S301 - a local dataset file of numpy arrays
    images = {img["id"]: img for img in data.get("images", [])}
    records: list[Body3DRecord] = []
    for i, ann in enumerate(data.get("annotations", [])):
        where = f"{ann_file}: annotations[{i}]"
        img = images.get(ann.get("image_id"))
        if img is None:
            raise DataError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        subject, action, cam_id = _mmpose_parts(img["file_name"])
        cam = cams.get((subject, cam_id))
        if cam is None:
            raise DataError(f"{cameras_file}: no camera ({subject!r}, {cam_id!r}) for {img['file_name']}")
        kp3d = np.asarray(ann.get("keypoints_3d", []), dtype=np.float64)
        if kp3d.size != 17 * 4:
            raise DataError(f"{where}: keypoints_3d must hold 17 x [x, y, z, v], got {kp3d.size} values")
        world = kp3d.reshape(17, 4)[:, :3]
        check_camera_and_joints(cam.get("f"), cam.get("c"), world, f"{cameras_file}: camera ({subject!r}, {cam_id!r})",
                                f"{where} (id {ann.get('id')}) field 'keypoints_3d'")
        joint_cam = add_thorax(world2cam_mmpose(world, cam["R"], cam["T"]) * 1000.0)
        folder = f"{subject}/{Path(img['file_name']).stem.rsplit('_', 1)[0]}"
        kp2d = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        extra = {"subject": int(subject[1:]), "action_id": action_id(action), "file_name": img["file_name"],
                 "keypoints_2d": kp2d, "k": np.asarray(cam["k"]).reshape(-1), "p": np.asarray(cam["p"]).reshape(-1)}
        rec = _record(str(Path(image_root) / folder / img["file_name"]), img["id"], ann["bbox"], img["width"],
                      img["height"], joint_cam, np.asarray(cam["f"]).reshape(2), np.asarray(cam["c"]).reshape(2),
                      H36M_ROOT, ann.get("id", i), extra)
        if rec is not None:
            records.append(rec)
    return records


def synth_joints_cam(keypoints_3d: Sequence[Sequence[float]]) -> np.ndarray:
    """17 COCO camera-space joints (mm) -> 18 with the pelvis (mean of the hips 11, 12) appended."""
    j = np.asarray(keypoints_3d, dtype=np.float64).reshape(-1, 3)
    if j.shape != (17, 3):
        raise DataError(f"synthetic keypoints_3d: expected 17 x [X, Y, Z], got {j.shape}")
    return np.concatenate([j, (j[11:12] + j[12:13]) * 0.5], axis=0)


def load_synth3d(ann_file: str | os.PathLike, image_root: str | os.PathLike | None = None,
                 aspect_ratio: float = 1.0) -> list[Body3DRecord]:
    """posekit synthetic humans (annotations.json with keypoints_3d + cam_intrinsics) -> 18-joint Body3DRecords
    (boxes processed to the network input's w / h `aspect_ratio`)."""
    ann_file = Path(ann_file)
    image_root = Path(image_root) if image_root is not None else ann_file.parent / "images"
    data = read_json(ann_file)
    images = {img["id"]: img for img in data.get("images", [])}
    records: list[Body3DRecord] = []
    for i, ann in enumerate(data.get("annotations", [])):
        where = f"{ann_file}: annotations[{i}]"
        if "keypoints_3d" not in ann or "cam_intrinsics" not in ann:
            raise DataError(f"{where}: no keypoints_3d / cam_intrinsics (not a `posekit synth` human file?)")
        img = images.get(ann.get("image_id"))
        if img is None:
            raise DataError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        cam = ann["cam_intrinsics"]
        if not isinstance(cam, Mapping) or "f" not in cam or "c" not in cam:
            raise DataError(f"{where} (id {ann.get('id')}) field 'cam_intrinsics': expected {{\"f\": [fx, fy], "
                            f"\"c\": [cx, cy]}}, got {cam!r}")
        joint_cam = synth_joints_cam(ann["keypoints_3d"])
        check_camera_and_joints(cam["f"], cam["c"], joint_cam[:17], f"{where} (id {ann.get('id')}) field "
                                "'cam_intrinsics'", f"{where} (id {ann.get('id')}) field 'keypoints_3d'")
        if np.any(joint_cam[:, 2] <= 0):
            raise DataError(f"{where}: a joint has Z <= 0 (behind the camera)")
        rec = _record(str(image_root / img["file_name"]), img["id"], ann["bbox"], img["width"], img["height"],
                      joint_cam, np.asarray(cam["f"], np.float64), np.asarray(cam["c"], np.float64), SYNTH_ROOT,
                      ann.get("id", i), {"keypoints_2d": np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)},
                      aspect_ratio)
        if rec is not None:
            records.append(rec)
    return records


def h36m_common_json(records: Sequence[Body3DRecord]) -> dict[str, Mapping]:
    """Records (with subject / action in extra) -> the common-layout dicts {data, camera, joint_3d} of ONE subject,
    world = camera frame (R = I, t = 0). For tests and for converting small samples."""
    images, anns, cams, joints = [], [], {}, {}
    for n, r in enumerate(records):
        cam_idx, frame = n + 1, n * 64  # one camera entry per record
        act = int(r.extra.get("action_id", 0)) + 2
        images.append({"id": n, "file_name": Path(r.image_path).name, "width": r.image_size[0],
                       "height": r.image_size[1], "subject": r.extra.get("subject", 1), "action_idx": act,
                       "subaction_idx": 1, "cam_idx": cam_idx, "frame_idx": frame})
        x, y, w, h = r.extra.get("raw_bbox", r.bbox)
        anns.append({"id": n, "image_id": n, "bbox": [float(x), float(y), float(w), float(h)]})
        cams[str(cam_idx)] = {"R": np.eye(3).tolist(), "t": [0.0, 0.0, 0.0], "f": [float(v) for v in r.f],
                              "c": [float(v) for v in r.c]}
        joints.setdefault(str(act), {}).setdefault("1", {})[str(frame)] = r.joints_cam[:17].tolist()
    return {"data": {"images": images, "annotations": anns}, "camera": cams, "joint_3d": joints}
