"""3-D crop targets: the official depth box and bins, visibility, flip / rotation consistency between pixels and
targets, occlusion, colour, input normalisation, 2-D/3-D mixing and joint remapping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posekit.codecs.body3d import normalize_input, output_to_image, patch_transform
from posekit.data.body3d import (
    Aug3D,
    Body3DAugment,
    Body3DDataset,
    Body3DRecord,
    MixedDataset,
    collate_body3d,
    encode_joints,
    joint_mapping,
    occlusion_box,
    records_from_2d,
)
from posekit.data.records import PoseRecord
from posekit.errors import ConfigError
from posekit.skeletons import get as get_skeleton

H36M = get_skeleton("h36m")


def _record(path: str, joints: np.ndarray, root_z: float = 4000.0) -> Body3DRecord:
    cam = np.zeros((len(joints), 3))
    cam[:, 2] = joints[:, 2]
    return Body3DRecord(image_path=path, image_id=1, bbox=np.array([40.0, 40.0, 120.0, 120.0]),
                        joints_img=joints.astype(np.float64), joints_vis=np.ones(len(joints), np.float32),
                        joints_cam=cam, root_cam=np.array([0.0, 0.0, root_z]), image_size=(200, 200))


def test_encode_depth_box_and_bins():
    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # identity crop of 256 px
    joints = np.array([[128, 128, 4000], [0, 0, 3000], [10, 10, 4999], [10, 10, 5000], [300, 10, 4000],
                       [10, 10, 2999]], dtype=np.float64)
    coords, vis = encode_joints(joints, np.ones(6), 4000.0, m, (256, 256), (64, 64), 64, 2000.0)
    np.testing.assert_allclose(coords[0], [32, 32, 32])  # root: middle bin
    np.testing.assert_allclose(coords[1], [0, 0, 0])  # -1000 mm: bin 0 (inside)
    assert coords[2, 2] == pytest.approx(63.968, abs=1e-3)  # +999 mm: 31.25 mm per bin
    assert vis.tolist() == [1, 1, 1, 0, 0, 0]  # +1000 mm, x outside the crop, -1001 mm: invisible


def _dot_image(tmp_path, points: np.ndarray) -> str:
    img = np.zeros((200, 200, 3), np.uint8)
    for k, (x, y) in enumerate(points):
        cv2.circle(img, (int(round(x)), int(round(y))), 2, (255, 255 - 40 * k, 40 * k), -1)
    path = str(tmp_path / "dots.png")
    cv2.imwrite(path, img)
    return path


def test_rotation_scale_move_pixels_and_targets_together(tmp_path):
    joints = np.array([[80.0, 70.0, 4000.0], [130.0, 120.0, 4200.0]])
    path = _dot_image(tmp_path, joints[:, :2])
    ds = Body3DDataset([_record(path, joints)], flip_pairs=[], input_size=(128, 128), output_size=(32, 32),
                       augment=Body3DAugment(), train=True)
    ds.sample = ds.sample  # noqa: PLW0127 - readability: we call sample() below
    rng_aug = Aug3D(scale=1.2, rotation=30.0)
    import posekit.data.body3d as b3d

    orig = b3d.sample_aug
    b3d.sample_aug = lambda rng, cfg: rng_aug
    try:
        s = ds.sample(0)
    finally:
        b3d.sample_aug = orig
    gray = s["rgb"].max(axis=2)
    for k in range(2):
        x, y = s["coord"][k, :2] * 4  # output px -> crop px
        win = gray[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4]
        assert win.max() > 200, k
    assert s["coord"][1, 2] - s["coord"][0, 2] == pytest.approx(200 / 2000 * 64, abs=1e-4)  # depth unrotated


def test_flip_mirrors_crop_and_swaps_joints(tmp_path):
    joints = np.zeros((18, 3))
    joints[:, 0] = np.linspace(60, 140, 18)
    joints[:, 1] = np.linspace(50, 150, 18)
    joints[:, 2] = 4000 + np.arange(18) * 10
    path = _dot_image(tmp_path, joints[:3, :2])
    rec = _record(path, joints)
    plain = Body3DDataset([rec], H36M.flip_pairs, input_size=(64, 64), output_size=(16, 16), train=False)
    flip_cfg = Body3DAugment(scale_factor=0, rotation_prob=0, flip_prob=1, color_factor=0, occlusion_prob=0)
    flipped = Body3DDataset([rec], H36M.flip_pairs, input_size=(64, 64), output_size=(16, 16), augment=flip_cfg)
    a, b = plain.sample(0), flipped.sample(0)
    assert b["augmentation"].flip
    # centre -> w/2: crop pixel x of the flipped crop shows pixel w - x of the plain one
    np.testing.assert_allclose(b["rgb"][:, 1:], a["rgb"][:, :0:-1], atol=1.0)
    idx = H36M.flip_index
    np.testing.assert_allclose(b["coord"][:, 0], 16 - a["coord"][idx, 0], atol=1e-4)
    np.testing.assert_allclose(b["coord"][:, 1:], a["coord"][idx, 1:], atol=1e-4)


def test_occlusion_colour_and_normalisation():
    rng = np.random.default_rng(0)
    bbox = np.array([10.0, 20.0, 100.0, 80.0])
    for _ in range(50):
        x, y, w, h = occlusion_box(rng, bbox, 200, 150)
        assert 0 <= x and 0 <= y and x + w < 200 and y + h < 150  # inside the image (official: not the box)
        assert w * h <= 0.7 * bbox[2] * bbox[3] + 1
    rgb = np.full((2, 2, 3), 255.0, np.float32)
    std = normalize_input(rgb, "standard")
    off = normalize_input(rgb, "official_255")
    mean, sd = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(std[:, 0, 0], (1 - mean) / sd, rtol=1e-6)
    np.testing.assert_allclose(off[:, 0, 0], (255 - mean) / sd, rtol=1e-6)  # roughly 1100: the official input
    with pytest.raises(ConfigError, match="official_255"):
        normalize_input(rgb, "caffe")


def test_output_to_image_is_the_inverse_of_the_crop():
    bbox = np.array([[40.0, 30.0, 120.0, 120.0]])
    m = patch_transform((100.0, 90.0), (120.0, 120.0), 1.0, 0.0, (256, 256))
    joints = np.array([[70.0, 60.0, 4300.0], [150.0, 140.0, 3600.0]])
    coords, _ = encode_joints(joints, np.ones(2), 4000.0, m, (256, 256), (64, 64))
    back = output_to_image(coords[None].astype(np.float64), bbox, np.array([4000.0]), (64, 64))
    np.testing.assert_allclose(back[0], joints, atol=1e-3)


def test_mixed_batches_and_joint_remapping(tmp_path):
    mpii = get_skeleton("mpii")
    kp = np.zeros((16, 3), np.float32)
    kp[:, :2] = np.arange(32).reshape(16, 2) + 50
    kp[:, 2] = 1
    pr = PoseRecord(image_path=_dot_image(tmp_path, kp[:2, :2]), image_id=5, center=np.array([100.0, 100.0]),
                    size=np.array([150.0, 150.0]), keypoints=kp, box=np.array([30.0, 30.0, 140.0, 140.0]),
                    image_size=(200, 200))
    recs2d = records_from_2d([pr], mpii.keypoints, H36M.keypoints)
    r = recs2d[0]
    assert not r.have_depth and r.joints_vis.sum() == 16  # every MPII joint has an H36M namesake ...
    names = dict(zip(H36M.keypoints, joint_mapping(mpii.keypoints, H36M.keypoints), strict=True))
    assert mpii.keypoints[names["neck"]] == "upper_neck" and mpii.keypoints[names["head"]] == "head_top"
    assert names["torso"] == -1 and names["nose"] == -1  # ... and torso / nose are absent (vis 0)
    joints3 = np.tile(np.array([[100.0, 100.0, 4000.0]]), (18, 1))
    d3 = Body3DDataset([_record(pr.image_path, joints3)] * 3, H36M.flip_pairs, input_size=(64, 64),
                       output_size=(16, 16), train=False)
    d2 = Body3DDataset(recs2d, H36M.flip_pairs, input_size=(64, 64), output_size=(16, 16), train=False)
    mixed = MixedDataset([d3, d2])
    assert len(mixed) == 6
    images, targets, meta = collate_body3d([mixed[i] for i in range(len(mixed))])
    assert images.shape == (6, 3, 64, 64) and targets["have_depth"].flatten().tolist() == [1, 1, 1, 0, 0, 0]
    assert targets["coord"].shape == (6, 18, 3) and targets["vis"].shape == (6, 18, 1)
    assert meta["image_id"] == [1, 1, 1, 5, 5, 5]


def test_mixed_shares_fix_each_epochs_fractions_and_read_every_item():
    class Ids:
        def __init__(self, tag: str, n: int) -> None:
            self.tag, self.n = tag, n

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> tuple[str, int]:
            return self.tag, i

    a, b = Ids("3d", 3), Ids("2d", 5)
    equal = MixedDataset([a, b])  # official make_same_len: each set as long as the longest
    assert equal.counts == [5, 5] and len(equal) == 10
    mixed = MixedDataset([a, b], shares=[0.75, 0.25])  # M = max(3 / 0.75, 5 / 0.25) = 20 -> 15 + 5 items
    assert mixed.counts == [15, 5]
    items = [mixed[i] for i in range(len(mixed))]
    assert [t for t, _ in items].count("2d") / len(items) == 0.25
    assert sorted(i for t, i in items if t == "3d") == sorted(list(range(3)) * 5)  # 3-D set read 5x in full
    assert sorted(i for t, i in items if t == "2d") == list(range(5))
    with pytest.raises(ConfigError, match="positive shares"):
        MixedDataset([a, b], shares=[1.0, 0.0])
    with pytest.raises(IndexError):
        mixed[len(mixed)]
