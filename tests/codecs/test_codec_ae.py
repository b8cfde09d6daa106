"""Associative Embedding codec against the official pose-ae-train outputs (ae_targets / ae_group / ae_multiscale)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import posekit.codecs
from posekit.codecs import associative_embedding as ae
from posekit.evaluation import coco_keypoints
from posekit.runtime import bottomup


@pytest.fixture(scope="module")
def targets(reference_dir):
    return np.load(reference_dir / "codecs/ae_targets.npz")


@pytest.fixture(scope="module")
def grouping(reference_dir):
    return np.load(reference_dir / "codecs/ae_group.npz")


@pytest.fixture(scope="module")
def multiscale(reference_dir):
    return np.load(reference_dir / "codecs/ae_multiscale.npz")


# -- targets --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", range(6))
def test_targets_bit_exact(targets, case):
    kp = targets[f"case{case}_keypoints"].reshape(-1, 17, 3)
    res = int(targets[f"case{case}_output_res"])
    codec = posekit.codecs.build("ae", input_size=(4 * res, 4 * res), heatmap_size=(res, res), num_keypoints=17)
    assert codec.sigma == res / 64
    enc = codec.encode_maps(kp)
    np.testing.assert_array_equal(enc["heatmaps"], targets[f"case{case}_heatmaps"])
    np.testing.assert_array_equal(enc["refs"], targets[f"case{case}_refs"])
    # input px (x4 is exact in floating point) gives the same targets
    kp_in = kp.copy()
    kp_in[..., :2] *= 4
    np.testing.assert_array_equal(codec.encode(kp_in)["heatmaps"], enc["heatmaps"])


def test_kernel_and_whole_image_transform_exact(targets):
    np.testing.assert_array_equal(ae.gaussian_patch(2.0), targets["gaussian_res128"])
    np.testing.assert_array_equal(ae.gaussian_patch(1.0), targets["gaussian_res64"])
    for i in range(len(targets["tf_scale"])):
        m = ae.whole_image_transform(targets["tf_center"][i], 200 * targets["tf_scale"][i], targets["tf_res"][i],
                                     targets["tf_rot"][i])
        np.testing.assert_array_equal(m, targets["tf_mat"][i])
        np.testing.assert_array_equal(ae.kpt_affine(targets["tf_points"][i], m[:2]), targets["tf_points_out"][i])


def test_more_than_max_people_keeps_heatmaps_and_drops_extra_refs():
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(0, 64, (33, 17, 2)), np.ones((33, 17, 1))], axis=2)
    codec = posekit.codecs.build("ae", input_size=(256, 256), heatmap_size=(64, 64))
    enc = codec.encode_maps(kp)
    assert enc["refs"].shape == (30, 17, 2) and enc["refs"][:, :, 1].all()
    assert enc["heatmaps"].max() == 1.0


# -- grouping (HeatmapParser) ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", range(4))
def test_candidates_exact(grouping, case):
    tag_k, loc_k, val_k = ae.nms_topk(grouping[f"case{case}_det"], grouping[f"case{case}_tag"], 30)
    np.testing.assert_array_equal(tag_k, grouping[f"case{case}_calc_tag_k"][0])
    np.testing.assert_array_equal(loc_k, grouping[f"case{case}_calc_loc_k"][0])
    np.testing.assert_array_equal(val_k, grouping[f"case{case}_calc_val_k"][0])


def _same(a: np.ndarray, ref: np.ndarray) -> None:
    assert a.size == ref.size
    if ref.size:
        np.testing.assert_array_equal(a, ref)


@pytest.mark.parametrize("case", range(4))
def test_grouping_adjust_scores_refine_exact(grouping, case):
    det, tag = grouping[f"case{case}_det"], grouping[f"case{case}_tag"]
    _same(ae.parse(det, tag, adjust_peaks=False), grouping[f"case{case}_grouped_noadjust"])
    _same(ae.parse(det, tag), grouping[f"case{case}_grouped"])
    people, scores = ae.group(det, tag)
    _same(people, grouping[f"case{case}_refined"])
    np.testing.assert_array_equal(scores.astype(np.float32), grouping[f"case{case}_scores"].astype(np.float32))


def test_tie_case_with_scipy_differs_only_in_the_assignment(grouping, monkeypatch):
    """Case 2 is built from ties (7 identical candidates, near-identical tags). Without munkres (the scipy fallback)
    another equally cheap assignment is picked at 2 joints: same candidates, same number of people, and every stage
    after the assignment exact on the official input."""
    from scipy.optimize import linear_sum_assignment

    def scipy_only(cost):
        r, c = linear_sum_assignment(cost)
        return [(int(i), int(j)) for i, j in zip(r, c)]

    monkeypatch.setattr(ae, "min_cost_assignment", scipy_only)
    det, tag = grouping["case2_det"], grouping["case2_tag"]
    ref_na, ref = grouping["case2_grouped_noadjust"], grouping["case2_grouped"]
    ours = ae.parse(det, tag, adjust_peaks=False)
    assert ours.shape == ref_na.shape and not np.array_equal(ours, ref_na)
    key = lambda a: sorted(map(tuple, a.reshape(-1, 5)[a.reshape(-1, 5)[:, 2] > 0].tolist()))  # noqa: E731
    assert key(ours) == key(ref_na)
    np.testing.assert_array_equal(ae.adjust(ref_na.copy(), det), ref)
    np.testing.assert_array_equal(np.float32([p[:, 2].mean() for p in ref]), grouping["case2_scores"])
    refined = np.stack([ae.refine(det, tag, p.copy()) for p in ref])
    np.testing.assert_array_equal(refined, grouping["case2_refined"])


def test_parser_rules_threshold_and_30_people():
    k, h, w = 17, 32, 32
    det = np.zeros((k, h, w), np.float32)
    tag = np.zeros((k, h, w, 1), np.float32)
    det[0, 5, 5] = 0.099  # not above the detection threshold (float32(0.1) is above 0.1, as in the official)
    assert ae.parse(det, tag).shape == (0, 17, 4)
    det[0, 5, 5] = 0.5
    tag[0, 5, 5] = 3.0
    det[5, 20, 20] = 0.9  # shoulder with a tag 0.8 away: same person
    tag[5, 20, 20] = 3.8
    det[6, 25, 25] = 0.9  # 1.1 from the person's mean tag (3.4): a new person (distance must be < 1)
    tag[6, 25, 25] = 4.5
    people = ae.parse(det, tag)
    assert len(people) == 2
    assert people[0][5, 2] == np.float32(0.9) and people[1][6, 2] == np.float32(0.9)
    # 30 people seeded by the nose: later joint types are skipped entirely (ignore_too_much)
    det[:] = 0
    ys, xs = np.meshgrid(np.arange(1, 31, 3)[:6], np.arange(1, 31, 3)[:5], indexing="ij")
    det[0, ys.ravel(), xs.ravel()] = 0.9
    tag[0, ys.ravel(), xs.ravel(), 0] = np.arange(30) * 5.0
    det[1, 2, 2] = 0.9
    people = ae.parse(det, tag)
    assert len(people) == 30 and (people[:, 1, 2] == 0).all()


def test_decode_round_trip_and_flip():
    codec = posekit.codecs.build("ae", input_size=(256, 256), heatmap_size=(64, 64), num_keypoints=17)
    rng = np.random.default_rng(1)
    gt = np.concatenate([rng.integers(8, 248, (3, 17, 2)).astype(np.float64), np.full((3, 17, 1), 2.0)], axis=2)
    gt[:, :, :2] = np.floor(gt[:, :, :2] / 4) * 4 + 1.5  # map pixel centres, 4 px apart per map px
    out = codec.perfect_outputs(gt)
    people, scores = codec.decode_people(out)
    assert len(people) == 3 and np.allclose(scores, 1.0)
    order = np.argsort([p[0, 0] for p in people])
    got = people[order][:, :, :2]
    want = gt[np.argsort(gt[:, 0, 0])][:, :, :2]
    assert np.abs(got - want).max() <= 2.0  # adjust: +0.25 map px on ties, map px = 4 input px
    flip_index = posekit.skeletons.get("coco").flip_index
    flipped = out[np.concatenate([flip_index, 17 + flip_index])][:, :, ::-1]
    people_f, _ = codec.decode_people(out, flipped, flip_index)
    assert len(people_f) == 3
    # the generic contract: a batch in, the best person of each image out
    kps, scores = codec.decode(np.stack([out, out]))
    assert kps.shape == (2, 17, 2) and scores.shape == (2, 17) and (scores > 0).all()
    one = codec.encode(gt[0, :, :2], np.ones(17))
    assert one["target"].shape == (17, 64, 64) and one["refs"][0, :, 1].all() and not one["refs"][1:].any()


# -- multi-scale + flip aggregation (test.py multiperson) -----------------------------------------------------------

def _stub(ms, case: int):
    calls = iter([ms[f"case{case}_call{i}_out"] for i in range(2 * len(ms[f"case{case}_scales"]))])

    def net(batch: np.ndarray) -> np.ndarray:
        outs = []
        for _ in range(len(batch)):
            o = next(calls)
            full = np.full((2, 68, *o.shape[1:]), -5.0, np.float32)  # as the fixture: stack 0 = 99, 34:68 = -5
            full[0] = 99.0
            full[1, :34] = o
            outs.append(full)
        return np.stack(outs)

    return net


@pytest.mark.parametrize("case", range(5))
def test_multiscale_aggregation_and_people(multiscale, case):
    ms = multiscale
    image, flip_ref = ms["image"], ms["flipRef"]
    scales = ms[f"case{case}_scales"]
    per_scale = bottomup.multiscale_outputs(_stub(ms, case), image, scales, 512, flip=True)
    for i, (s, _, _, warp, side) in enumerate(per_scale):
        np.testing.assert_array_equal(warp, ms[f"case{case}_warp_mats"][i])
        warped, _, _ = bottomup.warp_for_scale(image, s, 512)
        if f"warped_input_res{side}" in ms.files:
            np.testing.assert_array_equal(warped, ms[f"warped_input_res{side}"])
    agg = ae.aggregate(per_scale, 17, flip_ref, 1)
    if f"case{case}_parse_det" in ms.files:
        np.testing.assert_allclose(agg.det, ms[f"case{case}_parse_det"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(agg.tag, ms[f"case{case}_parse_tag"], rtol=0, atol=1e-5)
        parsed = ae.parse(agg.det, agg.tag)
        ref = ms[f"case{case}_parsed"]
        assert parsed.size == ref.size
        if ref.size:
            np.testing.assert_allclose(parsed, ref, rtol=0, atol=1e-5)
    else:
        assert agg is None  # every scale skipped
    codec = posekit.codecs.build("ae")
    people, scores = bottomup.group_image(per_scale, codec, flip_ref)
    ref = ms[f"case{case}_grouped"]
    assert people.shape[0] == ref.shape[0]
    if ref.size:
        np.testing.assert_allclose(people, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
        np.testing.assert_allclose(scores, ms[f"case{case}_scores"], rtol=0, atol=1e-6)


def test_coco_result_rule():
    person = np.zeros((17, 3), np.float32)
    person[0] = (10, 20, 0.5)
    person[5] = (30, 40, 0.7)
    kp = ae.coco_keypoints(person)
    assert (kp[:, 2] == 1).all()
    np.testing.assert_array_equal(kp[0, :2], (10, 20))
    np.testing.assert_array_equal(kp[3, :2], (20, 30))  # mean of the found joints


# -- real multi-person COCO ground truth ----------------------------------------------------------------------------

@pytest.mark.parametrize("ann", ["coco/coco_mini_obmutescence/person_keypoints_val2017.json",
                                 "coco/mmpose/test_coco.json"])
def test_grouping_perfect_maps_of_coco_people_gives_ap_1(data_dir, ann):
    """Perfect heatmaps (target Gaussians) and tags (2*(i+1) on person i's blobs) of every labelled COCO person,
    at image resolution, grouped by the parser: COCO AP 1.0 via pycocotools. An isolated symmetric peak is adjusted
    by -0.25 (tie) + 0.5 = +0.25 map px, removed here. refine is not applied: with tags this far apart it fills a
    person's unlabelled joints with other people's joints, which pycocotools may match to one-joint people."""
    path = data_dir / ann
    data = json.loads(path.read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    per_image: dict = {}
    for a in data["annotations"]:
        if not a.get("iscrowd") and a["num_keypoints"] > 0:
            per_image.setdefault(a["image_id"], []).append(np.asarray(a["keypoints"], float).reshape(17, 3))
    assert sum(len(v) > 1 for v in per_image.values()) >= 2  # real multi-person images
    results = []
    for image_id, people in per_image.items():
        maps = ae.perfect_maps(np.stack(people), sizes[image_id], sigma=1.0)
        grouped = ae.parse(maps[:17], maps[17:])
        assert len(grouped) == len(people)
        for p in grouped:
            kp = ae.coco_keypoints(p)
            kp[:, :2] -= 0.25
            results.append({"image_id": image_id, "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                            "score": float(p[:, 2].mean())})
    stats = coco_keypoints(path, results)
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)


def test_subpixel_targets_centre_the_gaussian_on_the_true_point():
    """subpixel=True: same window and rules as the official patch, values of the Gaussian at the pixel centres."""
    sigma, w, h = 1.0, 16, 12
    kp = np.array([[[5.3, 7.8, 1], [0.2, 11.9, 1], [16.5, 3.0, 1]] + [[0, 0, 0]] * 14], dtype=np.float64)
    maps = ae.generate_heatmaps(kp, (w, h), sigma, subpixel=True)
    official = ae.generate_heatmaps(kp, (w, h), sigma)
    for j, (x, y, _) in enumerate(kp[0, :2]):
        c, r = int(x), int(y)
        rows, cols = np.nonzero(official[j])  # the official window (clipped to the map)
        assert rows.min() == max(0, r - 4) and cols.min() == max(0, c - 4)
        ys, xs = np.mgrid[0:h, 0:w]
        expect = np.exp(-((xs + 0.5 - x) ** 2 + (ys + 0.5 - y) ** 2) / (2 * sigma ** 2))
        inside = np.zeros((h, w), bool)
        inside[max(0, r - 4):r + 5, max(0, c - 4):c + 5] = True
        np.testing.assert_allclose(maps[j][inside], expect[inside], rtol=1e-6)
        assert not maps[j][~inside].any()
    assert not maps[2].any() and not official[2].any()  # x = 16.5 is outside a 16-px map either way
    # decoding (+0.5, then +-0.25 towards the larger neighbour) lands within 0.25 px of the true point
    codec = ae.AssociativeEmbeddingCodec((64, 48), (w, h), sigma=sigma, subpixel=True)
    assert np.array_equal(codec.encode_maps(kp)["heatmaps"], maps)
    det = maps[:1]
    people = ae.parse(det, np.zeros((1, h, w, 1), np.float32), ae.ParserParams(joint_order=(0,)))
    assert np.abs(people[0, 0, :2] - kp[0, 0, :2]).max() <= 0.25
