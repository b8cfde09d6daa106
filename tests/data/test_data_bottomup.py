"""Bottom-up dataset: whole-image geometry, official flip convention, crowd mask, colour jitter, determinism."""

from __future__ import annotations

import numpy as np
import pytest

import posekit.codecs
from posekit.data.bottomup import (
    BottomUpAugment,
    BottomUpDataset,
    collate_bottomup,
    load_bottomup_records,
    region_mask,
)
from posekit.data.synth import generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_bu")
    info = generate(out, 4, max_subjects=4, seed=3, workers=1, image_size=(128, 128))
    return info


def _codec():
    return posekit.codecs.build("ae", input_size=(128, 128), heatmap_size=(32, 32), num_keypoints=17, sigma=1.0)


def test_identity_geometry_targets_and_refs(synth):
    records, skel = load_bottomup_records(synth["ann_file"], synth["image_root"])
    assert records and all(r.keypoints.shape[1:] == (17, 3) for r in records)
    ds = BottomUpDataset(records, _codec(), skel, augment=None, train=False)
    for i in range(len(ds)):
        s = ds.sample(i)
        rec = records[i]
        want = rec.keypoints[:, :, :2] * 32 / 128  # centre = image centre, side = max(h, w): a pure 1/4 scale
        np.testing.assert_allclose(s.keypoints[:, :, :2], want, atol=1e-9)
        vis = (rec.keypoints[:, :, 2] > 0) & (want >= 0).all(2) & (want < 32).all(2)
        assert s.refs[:, :, 1].sum() == vis[:30].sum()
        for p, j in zip(*np.nonzero(vis)):
            assert s.heatmaps[j, int(want[p, j, 1]), int(want[p, j, 0])] == 1.0
        assert s.mask.min() == 1.0  # no crowd, image fills the input
        np.testing.assert_array_equal(s.image, ds.reader.read(rec.image_path)[0][:, :, ::-1].astype(np.float32) / 255)
    x, targets, meta = collate_bottomup([ds[0], ds[1]])
    assert x.shape == (2, 3, 128, 128) and x.dtype.is_floating_point and float(x.max()) <= 1.0
    assert targets["heatmaps"].shape == (2, 17, 32, 32) and targets["masks"].shape == (2, 32, 32)
    assert targets["refs"].shape == (2, 30, 17, 2) and meta["image_id"] == [records[0].image_id, records[1].image_id]


def test_official_flip_convention(synth):
    records, skel = load_bottomup_records(synth["ann_file"], synth["image_root"])
    codec = _codec()
    plain = BottomUpDataset(records, codec, skel, augment=None, train=False).sample(0)
    flip_only = BottomUpAugment(scale_factor=0.0, rotation=0.0, translate=0.0, flip=True, flip_prob=1.0, color=False)
    s = BottomUpDataset(records, codec, skel, augment=flip_only, train=True).sample(0)
    assert s.flipped
    np.testing.assert_array_equal(s.image, plain.image[:, ::-1])
    fi = skel.flip_index
    np.testing.assert_allclose(s.keypoints[:, :, 0], 32 - plain.keypoints[:, fi, 0])  # x -> w - x, not w - 1 - x
    np.testing.assert_allclose(s.keypoints[:, :, 1], plain.keypoints[:, fi, 1])
    frac = plain.keypoints[:, :, 0] % 1
    if (frac != 0).all():  # then int(32 - x) = 31 - int(x): the flipped targets are the mirrored ones
        np.testing.assert_array_equal(s.heatmaps, plain.heatmaps[fi][:, :, ::-1])


def test_augmentation_is_deterministic_in_range_and_consistent(synth):
    records, skel = load_bottomup_records(synth["ann_file"], synth["image_root"])
    codec = _codec()
    ds = BottomUpDataset(records, codec, skel, augment=BottomUpAugment(), train=True, seed=7)
    a, b = ds.sample(1), ds.sample(1)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.heatmaps, b.heatmaps)
    ds.set_epoch(1)
    c = ds.sample(1)
    assert not np.array_equal(a.image, c.image)
    for s in (a, c):
        assert s.image.min() >= 0 and s.image.max() <= 1
        assert 0.75 * 128 <= s.side <= 1.25 * 128 and abs(s.rotation) <= 30
        # heatmap-resolution keypoints = input-resolution keypoints / 4 (same transform at both resolutions)
        kp = records[1].keypoints[:, :, :2].astype(np.float64)
        kin = kp @ s.matrix[:, :2].T + s.matrix[:, 2]
        if s.flipped:
            kin = kin[:, skel.flip_index]
            kin[:, :, 0] = 128 - kin[:, :, 0]
        np.testing.assert_allclose(s.keypoints[:, :, :2], kin / 4, atol=1e-6)
        # black border outside the image is masked
        assert s.mask.min() in (0.0, 1.0)


def test_crowd_region_is_masked(data_dir):
    root = data_dir / "coco/coco_mini_obmutescence"
    records, skel = load_bottomup_records(root / "person_keypoints_val2017.json", root / "val2017")
    rec = next(r for r in records if r.image_path.endswith("000000217285.jpg"))
    assert rec.crowd
    full = region_mask(rec)
    assert 0 < full.mean() < 1
    codec = posekit.codecs.build("ae", input_size=(256, 256), heatmap_size=(64, 64), num_keypoints=17, sigma=1.0)
    ds = BottomUpDataset([rec], codec, skel, augment=None, train=False)
    s = ds.sample(0)
    # the warped mask is the full-resolution crowd mask seen through the whole-image transform
    ys, xs = np.nonzero(s.mask == 0)
    assert len(ys)
    inv = np.linalg.inv(np.vstack([s.matrix, [0, 0, 1]]))[:2]
    pts = np.stack([xs * 4 + 2, ys * 4 + 2], 1) @ inv[:, :2].T + inv[:, 2]
    inside = (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (pts[:, 0] < rec.width) & (pts[:, 1] < rec.height)
    px = pts[inside].astype(int)
    assert (full[px[:, 1], px[:, 0]] == 0).mean() > 0.8
