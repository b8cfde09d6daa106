"""Domain adaptation rounds (posekit.engine.adapt): fixture-exact pseudo-label math, the temporal rule, the
weighted joint loss, gradient reversal, and end-to-end rounds on tiny generated source / target domains
(pseudo labels written, thresholds follow the schedule, resumed run == uninterrupted run)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from posekit.codecs import bearpaw as B
from posekit.engine import adapt as A
from posekit.losses import build_loss

TINY = dict(model="hourglass_bearpaw_1stack_128x128", model_overrides={"num_feats": 16}, input_size=(64, 64),
            epochs=3, source_epochs=1, round_every=1, iters_per_epoch=2, batch_size=3, target_batch_size=3,
            human_batch_size=3, num_transform=5, optimizer="adam", lr=1e-3, eval_batch_size=6)


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> A.Domains:
    sizes = A.BuiltinDomains(num_source=12, num_target=8, num_val=6, num_human=8, sequence_length=4,
                             image_size=(96, 96), seed=3)
    return A.builtin_domains(tmp_path_factory.mktemp("adapt_domains"), sizes, workers=1)


# -- fixture-exact pieces ----------------------------------------------------------------------------------------


U32 = 2.0 ** -24  # float32 unit roundoff


def back_warp_tolerance(model_out: np.ndarray, avg: np.ndarray) -> float:
    """Bound on |ours - official| for the averaged back-warped maps when only the CPU's float kernels differ.

    Each pass is two float32 bilinear interpolations (warpAffine, then resize) whose source positions are the
    same fixed-point grid on every CPU (OpenCV's INTER_BITS = 5 is algorithm, not SIMD). An interpolated value
    is a combination of <= 4 inputs |v| <= M with weights >= 0 summing to 1; evaluated as 4 terms or as two
    separable 2-term passes, with weights rounded to float32 and with or without FMA, it carries at most
    8 roundings of a quantity <= M: |error| <= 8 u M. Two kernels thus differ by <= 16 u M per interpolation;
    the resize passes the warp's difference on with gain <= 1, so a pass differs by <= 32 u M, and so does the
    float64 mean of the 5 passes. The final cast to float32 adds at most one ulp <= 2 u max|avg|.
    """
    return 32 * U32 * float(np.abs(model_out).max()) + 2 * U32 * float(np.abs(avg).max())


@pytest.mark.parametrize("case", [0, 1])
def test_prediction_check_back_warp_is_official(reference_dir, case):
    ref = np.load(reference_dir / "codecs/ccssl_bearpaw.npz")
    torch.manual_seed(int(ref[f"pc_case{case}_seed"]))
    params = A.draw_pass_params(5, 256 / 200.0)
    np.testing.assert_array_equal(params, ref[f"pc_case{case}_crop_args"][:, 2:])
    out, official = ref[f"pc_case{case}_model_out"], ref[f"pc_case{case}_score_map_avg"]
    avg = A.average_back_warped(out, params, 256 / 200.0, 256)
    tol = back_warp_tolerance(out, official)  # ~1.6e-6; measured: 4.5e-7 on AMD AVX-512
    np.testing.assert_allclose(avg, official, rtol=0, atol=tol)
    kpts = ref[f"pc_case{case}_generated_kpts"]
    # final_preds on the official map is exact; on ours it is too, since every comparison it makes (argmax
    # winner vs runner-up, the quarter-offset neighbour differences) has a margin above 2 tol in this fixture.
    flat = np.sort(official.reshape(18, -1), axis=1)
    assert (flat[:, -1] - flat[:, -2]).min() > 2 * tol
    for maps in (official, avg):
        np.testing.assert_array_equal(B.final_preds(maps[None], [[128, 128]], [1.28], [64, 64])[0], kpts[:, :2])
    np.testing.assert_array_equal(official.reshape(18, -1).max(1), kpts[:, 2])
    np.testing.assert_allclose(avg.reshape(18, -1).max(1), kpts[:, 2], rtol=0, atol=tol)
    np.testing.assert_array_equal(B.kpts_to_heatmap(kpts), ref[f"pc_case{case}_target"])


def test_threshold_rule_is_official(reference_dir):
    ref = np.load(reference_dir / "codecs/ccssl_bearpaw.npz")
    for i, epoch in enumerate(ref["th_epochs"]):
        thr, p, s = A.confidence_threshold(ref["th_confidence"], int(epoch))
        assert thr == ref["th_ccl_thresh"][i] and p == ref["th_p"][i]
        np.testing.assert_array_equal(s, ref["th_sorted_confidence"])
        np.testing.assert_array_equal(A.threshold_mask(ref["th_confidence"], thr), ref["th_mask"][i])


def test_schedule_keeps_20_to_80_percent():
    conf = np.random.default_rng(0).random((50, 17))
    kept = [A.threshold_mask(conf, A.confidence_threshold(conf, 10 * r)[0]).mean() for r in range(6)]
    np.testing.assert_allclose(kept, [0.2, 0.4, 0.6, 0.8, 0.8, 0.8], atol=0.01)
    assert A.drop_fraction(30) == 0.2  # 1 - 0.02 * 40 = 0.19999999999999996 is replaced by 0.2


def test_pass_warp_and_back_warp_are_inverse():
    """A blob at p in the identity crop, seen through a scaled / rotated pass, is warped back to p."""
    codec = B.BearpawCodec((128, 128), (32, 32), num_keypoints=1)
    p = np.array([[80.0, 44.0]])
    for factor, rot in ((1.2, 25.0), (0.8, -40.0)):
        m = A.pass_matrix((128, 128), factor, rot)
        q = p @ m[:, :2].T + m[:, 2]
        maps = codec.encode(q, np.ones(1))["target"]
        back = A.back_warp(maps, factor, rot)
        y, x = np.unravel_index(back[0].argmax(), back[0].shape)
        assert abs(4 * x - p[0, 0]) <= 4 and abs(4 * y - p[0, 1]) <= 4


def test_temporal_update_rule():
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur((rng.random((96, 96)) * 255).astype(np.uint8), (0, 0), 2)
    shifted = np.roll(base, (2, 3), axis=(0, 1))  # content moves +3 px in x, +2 px in y
    prev = np.array([[40.0, 40.0, 0.8], [50.0, 30.0, 0.8], [20.0, 60.0, 0.0]], np.float32)
    cur = np.array([[10.0, 10.0, 0.5], [53.0, 32.0, 0.79], [0.0, 0.0, 0.1]], np.float32)
    out = A.temporal_update(base, shifted, prev, cur)
    np.testing.assert_allclose(out[0, :2], [43.0, 42.0], atol=0.5)  # 0.5/0.8 < 0.9: flow replaces it
    assert out[0, 2] == pytest.approx(0.8 * 0.9)
    np.testing.assert_array_equal(out[1], cur[1])  # 0.79/0.8 >= 0.9: the prediction stays
    np.testing.assert_array_equal(out[2], cur[2])  # previous confidence 0: no flow
    stored = prev.copy()  # a 3.6 px move is rejected with max_move 1: predictions stay
    out = A.temporal_update(base, shifted, stored, cur, max_move=1.0)
    np.testing.assert_array_equal(out, cur)
    np.testing.assert_array_equal(stored, prev)  # fixed: the previous labels are not modified ...
    A.temporal_update(base, shifted, stored, cur, max_move=1.0, zero_previous_on_reject=True)
    assert stored[0, 2] == 0 and stored[1, 2] == 0  # ... unless the released code's quirk is asked for


# -- loss, batches, gradient reversal ----------------------------------------------------------------------------


def test_joint_loss_is_source_plus_weighted_target():
    g = torch.Generator().manual_seed(0)
    out = [torch.rand(5, 4, 8, 8, generator=g) for _ in range(2)]  # two stacks
    tgt = torch.rand(5, 4, 8, 8, generator=g)
    w = (torch.rand(5, 4, 1, generator=g) > 0.3).float()
    gamma = 10.0
    sw = torch.tensor([1 / 3] * 3 + [gamma / 2] * 2)
    targets = {"target": tgt, "target_weight": w, "sample_weight": sw, "domain_id": torch.tensor([0, 0, 0, 1, 1])}
    loss, logs = A.adapt_criterion()({"heatmaps": out}, targets)
    mse = build_loss("mse", True)
    want = sum(mse(o[:3], tgt[:3], w[:3]) + gamma * mse(o[3:], tgt[3:], w[3:]) for o in out)
    assert float(loss) == pytest.approx(float(want), rel=1e-6)
    assert logs["loss_target"] == pytest.approx(float(sum(gamma * mse(o[3:], tgt[3:], w[3:]) for o in out)), rel=1e-6)


def test_joint_batches_weights_and_domain_labels():
    def loader(n, value):
        ds = [(torch.full((3, 4, 4), value), torch.zeros(2, 1, 1), torch.ones(2, 1), {}) for _ in range(n)]
        return torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=A._collate, drop_last=True)

    jb = A.JointBatches([("source", loader(6, 0.0), 1.0), ("human", loader(4, 1.0), 1.0),
                         ("target", loader(8, 2.0), 10.0)])
    batches = list(jb)
    assert len(batches) == 2  # the shortest loader (official zip)
    b = batches[0]
    assert b.meta["sizes"] == [2, 2, 2]
    np.testing.assert_allclose(b.targets["sample_weight"].numpy(), [0.5, 0.5, 0.5, 0.5, 5.0, 5.0])
    np.testing.assert_array_equal(b.targets["domain_y"].numpy(), [1, 1, 0, 0, 1, 1])
    np.testing.assert_array_equal(b.targets["domain_z"].numpy(), [0, 0, 0, 0, 1, 1])


def test_gradient_reversal():
    x = torch.ones(3, requires_grad=True)
    (A.grad_reverse(x, 2.0) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-2.0, -4.0, -6.0])


def test_human_keypoints_map_to_the_animal_skeleton():
    from posekit.data.records import PoseRecord
    from posekit.skeletons import get

    kp = np.arange(17 * 3, dtype=np.float32).reshape(17, 3) + 1
    rec = PoseRecord("x.jpg", 1, np.zeros(2), np.ones(2), kp)
    out = A.map_keypoints_by_name([rec], get("coco").keypoints, get("ap10k").keypoints, A.HUMAN_TO_ANIMAL)[0]
    ap = get("ap10k").keypoints
    coco = get("coco").keypoints
    np.testing.assert_array_equal(out.keypoints[ap.index("left_front_paw")], kp[coco.index("left_wrist")])
    np.testing.assert_array_equal(out.keypoints[ap.index("nose")], kp[coco.index("nose")])
    assert out.keypoints[ap.index("root_of_tail")].max() == 0 and out.keypoints[ap.index("neck")].max() == 0


# -- end to end --------------------------------------------------------------------------------------------------


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_ccssl_round_end_to_end_and_resume(domains, tmp_path):
    cfg = A.AdaptConfig(method="ccssl", **TINY)
    events = []
    full = A.adapt(cfg, domains, tmp_path / "full", device="cpu", on_event=lambda k, i: events.append((k, i)))
    assert full["stop_reason"] == "completed" and full["epoch"] == 3
    # pseudo labels written per round, thresholds follow the schedule (round r = official epoch 10 r)
    for r, drop in ((0, 0.8), (1, 0.6)):
        data = json.loads((tmp_path / "full" / f"pseudo_labels/round_{r:02d}.json").read_text())
        assert data["info"]["drop_fraction"] == pytest.approx(drop)
        conf = np.array([a["confidence"] for a in data["annotations"]])
        thr, _, _ = A.confidence_threshold(conf, 10 * r)
        assert data["info"]["threshold"] == thr
        kept = np.array([a["keypoints"][2::3] for a in data["annotations"]]) > 0
        np.testing.assert_array_equal(kept, conf > thr)
        assert abs(kept.mean() - (1 - drop)) < 0.05
    # target loss present (weighted by 10) after the first round, not in the source-only epoch
    hist = full["history"]
    assert "loss_target" not in hist[0] and hist[1]["loss_target"] > 0
    assert full["metrics"]["PCK@0.05"] >= 0 and "PCK@0.05 nose" in full["metrics"]
    assert (tmp_path / "full" / "round_00.pth").is_file() and (tmp_path / "full" / "round_01.pth").is_file()
    # interrupted after epoch 2, resumed: the same weights, labels and history, bit for bit
    part = A.adapt(cfg, domains, tmp_path / "part", device="cpu", stop_after=2)
    assert part["stop_reason"] == "stopped" and part["final_weights"] is None
    rest = A.adapt(cfg, domains, tmp_path / "part", device="cpu", resume=True)
    assert rest["stop_reason"] == "completed"
    a, b = _state(tmp_path / "full" / "final_state.pth"), _state(tmp_path / "part" / "final_state.pth")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for r in (0, 1):
        name = f"pseudo_labels/round_{r:02d}.json"
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "part" / name).read_bytes()
    assert json.dumps(rest["history"]) == json.dumps(full["history"])
    with pytest.raises(Exception, match="other adapt settings"):
        A.adapt(A.copy_config(cfg, lr=2e-3), domains, tmp_path / "part", device="cpu", resume=True)


@pytest.mark.slow
def test_wscda_end_to_end(domains, tmp_path):
    cfg = A.AdaptConfig(method="wscda", **{**TINY, "epochs": 2})
    res = A.adapt(cfg, domains, tmp_path / "ws", device="cpu")
    hist = res["history"]
    assert hist[0]["loss_ddl"] > 0 and hist[0]["loss_human"] > 0
    assert hist[0].get("loss_target", 0.0) == 0.0  # no PPLO labels yet: the target only feeds the discriminator
    assert hist[1]["loss_target"] > 0  # PPLO labels from round 0 on
    state = _state(tmp_path / "ws" / "checkpoint.pth")["model"]
    assert any(k.startswith("discriminator.") for k in state)
    assert (tmp_path / "ws" / "pseudo_labels/round_00.json").is_file()
    # init from a plain network state_dict: the run starts from exactly those weights
    src = _state(tmp_path / "ws" / "final_state.pth")
    one = A.adapt(A.copy_config(cfg, method="source", epochs=1, iters_per_epoch=1, lr=0.0), domains,
                  tmp_path / "init", device="cpu", init_weights=tmp_path / "ws" / "final_state.pth")
    got = _state(one["final_weights"])
    for k, v in src.items():
        if "running" not in k and "num_batches" not in k:  # BN statistics move in train mode even at lr 0
            assert torch.equal(got[k], v), k


def test_real_animal_samples_load_as_target(data_dir, domains, tmp_path):
    """AP-10K (same joints), Animal-Pose and Horse-10 (mapped by name) load as target train / val data."""
    from posekit.skeletons import get

    sk = get("ap10k")
    for rel, mapped in (("ap10k/mmpose/test_ap10k.json", False), ("animalpose/mmpose/test_animalpose.json", True),
                        ("horse10/mmpose/test_horse10.json", True)):
        split = A.Split(str(data_dir / rel), str((data_dir / rel).parent))
        recs, was_mapped = A.load_as(split, True, 1.0, sk)
        assert was_mapped == mapped and recs and all(r.keypoints.shape == (17, 3) for r in recs)
        assert all(Path(r.image_path).is_file() for r in recs)
    real = A.Split(str(data_dir / "ap10k/mmpose/test_ap10k.json"), str(data_dir / "ap10k/mmpose"))
    doms = A.Domains(domains.source, real, real)
    cfg = A.AdaptConfig(method="ccssl", **{**TINY, "epochs": 1, "source_epochs": 0, "iters_per_epoch": 1,
                                           "target_batch_size": 2, "num_transform": 2, "eval_batch_size": 2,
                                           "flip_pseudo": True})
    res = A.adapt(cfg, doms, tmp_path / "real", device="cpu")
    data = json.loads((tmp_path / "real" / "pseudo_labels/round_00.json").read_text())
    assert len(data["annotations"]) == 2 and "AP" in res["metrics"]


@pytest.mark.slow
def test_bearpaw_zoo_model_trains_through_the_engine(domains, tmp_path):
    """The CC-SSL network + bearpaw codec is an ordinary zoo entry: `posekit train` runs it on the source split."""
    from posekit.cli import main

    cfg = tmp_path / "bearpaw.yaml"
    cfg.write_text("\n".join([
        "WORKERS: 0", "MODEL:", "  ZOO: hourglass_bearpaw_1stack_128x128", "  IMAGE_SIZE: [64, 64]", "DATASET:",
        "  FORMAT: coco", f"  TRAIN_ANN: {domains.source.ann_file}", f"  TRAIN_IMAGES: {domains.source.image_root}",
        f"  TEST_ANN: {domains.target_val.ann_file}", f"  TEST_IMAGES: {domains.target_val.image_root}", "TRAIN:",
        "  BATCH_SIZE_PER_GPU: 3", "  END_EPOCH: 1", "  MAX_ITERS: 2", "  VAL_EVERY: 0"]) + "\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert (tmp_path / "run" / "checkpoint.pth").is_file()
