"""Domain adaptation (posekit.engine.adapt): fixture-exact pseudo-label math, the temporal rule, the weighted joint
loss, gradient reversal, AdaBN, pseudo-label diagnostics against hand-made labels, refusals, and end-to-end runs on a
tiny generated test bed (pseudo labels and pictures written, spec-carrying weights that `posekit test / infer /
export` accept, resumed run == uninterrupted run)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from posekit.codecs import bearpaw as B
from posekit.config import config_from_dict
from posekit.engine import adapt as A
from posekit.engine.adapt import testbeds
from posekit.errors import ConfigError, DataError
from posekit.losses import build_loss

TINY_BED = testbeds.TestBed("quadruped", (96, 96), num_source=12, num_target=8, num_val=6, num_human=8,
                            sequence_length=4, seed=3)


@pytest.fixture(scope="module")
def bed(tmp_path_factory) -> dict[str, Path]:
    return testbeds.ensure(tmp_path_factory.mktemp("adapt_bed"), TINY_BED, workers=1)


def tiny_config(bed: dict[str, Path], overrides: tuple[str, ...] = (), **adapt):
    """A tiny quadruped adaptation config: tiny HRNet at 64x64, bearpaw codec, 3 epochs of 2 steps."""
    def split(name):
        return str(bed[name] / "annotations.json"), str(bed[name] / "images")

    raw = {"WORKERS": 0,
           "MODEL": {"ZOO": "hrnet_w16_tiny_128x96", "IMAGE_SIZE": [64, 64], "CODEC": "bearpaw", "SIGMA": 1.0},
           "DATASET": {"FORMAT": "coco", "SKELETON": "ap10k", "TRAIN_ANN": split("source")[0],
                       "TRAIN_IMAGES": split("source")[1], "TEST_ANN": split("target_val")[0],
                       "TEST_IMAGES": split("target_val")[1]},
           "TRAIN": {"BATCH_SIZE_PER_GPU": 3, "END_EPOCH": 3, "OPTIMIZER": "adam", "LR": 1e-3, "INIT": "he",
                     "CPU_AMP": False},
           "TEST": {"BATCH_SIZE_PER_GPU": 6},
           "ADAPT": {"METHOD": "ccssl", "TARGET_ANN": split("target_train")[0],
                     "TARGET_IMAGES": split("target_train")[1], "HUMAN_ANN": split("human")[0],
                     "HUMAN_IMAGES": split("human")[1], "SOURCE_EPOCHS": 1, "ROUND_EVERY": 1,
                     "ITERS_PER_EPOCH": 2, "NUM_TRANSFORM": 5, "PICTURES": 4, **adapt}}
    return config_from_dict(raw, list(overrides), source="<tiny adapt>")


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
    # ~1.6e-6. Measured on AMD AVX-512: 0 with OpenCV 5.0; 4.5e-7 with 5.1 at every SIMD level; 3.6e-7 with
    # cv2.setUseOptimized(False). OpenCV 4.x warps another way (2e-3): pyproject asks for opencv >= 5.
    tol = back_warp_tolerance(out, official)
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
        return torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=A.collate, drop_last=True)

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


# -- schedule, diagnostics, AdaBN, reversal ramp ------------------------------------------------------------------


def test_explicit_kept_schedule():
    conf = np.random.default_rng(1).random((40, 17))
    for r, kept in enumerate((0.2, 0.5, 0.5)):
        thr, drop = A.threshold_for_round(conf, r, 10, kept=(0.2, 0.5))
        assert drop == pytest.approx(1 - kept)
        assert A.threshold_mask(conf, thr).mean() == pytest.approx(kept, abs=1 / conf.size)
    thr, drop = A.threshold_for_round(conf, 2, 10)  # no schedule: the official rule at epoch 20
    assert (thr, drop) == A.confidence_threshold(conf, 20)[:2]


def test_precision_against_hand_made_labels():
    # 2 images x 3 joints, norm 100 px -> a label is correct within 5 px of the GT
    gt = np.zeros((2, 3, 3))
    gt[..., 2] = 1
    gt[1, 2, 2] = 0  # not labelled: never counted
    pred = np.zeros((2, 3, 3))
    pred[0, :, :2] = [[3, 4], [6, 0], [0, 0]]  # distances 5 (correct), 6 (wrong), 0 (correct)
    pred[1, :, :2] = [[0, 4.9], [5.1, 0], [0, 0]]  # 4.9 correct, 5.1 wrong, unlabelled
    pred[..., 2] = [[0.9, 0.8, 0.1], [0.7, 0.2, 0.95]]
    mask = np.array([[1, 1, 0], [1, 0, 1]])
    rep = A.precision(pred, mask, gt, np.array([100.0, 100.0]), bins=5)
    assert rep["kept_precision"] == pytest.approx(2 / 3)  # kept labelled: (0,0) ok, (0,1) wrong, (1,0) ok
    assert rep["dropped_precision"] == pytest.approx(1 / 2)  # (0,2) ok, (1,1) wrong
    assert rep["all_precision"] == pytest.approx(3 / 5) and rep["labelled"] == 5 and rep["kept_labelled"] == 3
    # bins of one, lowest confidence first: 0.1 ok, 0.2 wrong, 0.7 ok, 0.8 wrong, 0.9 ok
    assert [d["precision"] for d in rep["deciles"]] == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert [d["confidence"] for d in rep["deciles"]] == pytest.approx([0.1, 0.2, 0.7, 0.8, 0.9])


def test_adabn_reestimates_batchnorm_on_target_images():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    net[0].running_mean.fill_(5.0)  # "source" statistics
    batches = [torch.randn(4, 3, 5, 5) * 2 + 1 for _ in range(3)]
    before = net[1].weight.detach().clone()
    seen = A.adabn(net, batches)
    assert seen == 12 and not net.training and torch.equal(net[1].weight, before)
    # cumulative average over equal batches = mean of the per-batch statistics (unbiased variance)
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    vars_ = torch.stack([b.transpose(0, 1).reshape(3, -1).var(dim=1, unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(net[0].running_mean, means, rtol=0, atol=1e-5)
    torch.testing.assert_close(net[0].running_var, vars_, rtol=0, atol=1e-5)
    assert net[0].momentum == 0.1  # restored


def test_reversal_ramp():
    assert A.grl_coefficient(0.3, -1.0, 0.0) == 1.0  # full strength (official reading)
    assert A.grl_coefficient(0.0, -1.0, 1.0) == 0.0
    assert A.grl_coefficient(0.5, -1.0, 1.0) == pytest.approx(2 / (1 + np.exp(-5)) - 1)
    assert A.grl_coefficient(1.0, -2.0, 0.5) == pytest.approx(2 * (2 / (1 + np.exp(-10)) - 1))


def test_epoch_batches_resume_inside_an_epoch():
    whole = A.epoch_batches(23, 4, seed=1, epoch=2, salt=1)
    assert len(whole) == 5 and all(len(b) == 4 for b in whole)
    assert A.epoch_batches(23, 4, seed=1, epoch=2, salt=1, start=3) == whole[3:]
    assert A.epoch_batches(23, 4, seed=1, epoch=3, salt=1) != whole


# -- settings and refusals ----------------------------------------------------------------------------------------


def test_settings_from_config_and_official_preset(bed):
    a = A.adapt_config(tiny_config(bed, ("ADAPT.TARGET_WEIGHT=2", "ADAPT.KEPT=[0.3,0.6]")))
    assert a.method == "ccssl" and a.target_weight == 2 and a.kept == (0.3, 0.6) and a.batch_size == 3
    o = A.adapt_config(tiny_config(bed, ("ADAPT.PRESET=official", "ADAPT.TARGET_WEIGHT=2")))
    assert (o.optimizer, o.lr, o.target_weight, o.kept, o.bn, o.aug_scale, o.grl_ramp, o.lr_decay) == (
        "rmsprop", 2.5e-4, 10.0, (), "domain", "official", 0.0, "none")
    with pytest.raises(ConfigError, match="ADAPT.METHOD"):
        A.adapt_config(tiny_config(bed, ("ADAPT.METHOD=dann",)))
    with pytest.raises(ConfigError, match="ADAPT.KEPT"):
        A.adapt_config(tiny_config(bed, ("ADAPT.KEPT=[0.2,1.5]",)))


def test_pseudo_labels_from_an_untrained_network_are_refused(bed, tmp_path):
    with pytest.raises(ConfigError, match="untrained network"):
        A.run(tiny_config(bed, ("ADAPT.SOURCE_EPOCHS=0",)), tmp_path / "x", device="cpu")


def test_human_target_for_an_animal_source_is_refused(bed):
    from posekit.skeletons import get

    human = A.Split(str(bed["human"] / "annotations.json"), str(bed["human"] / "images"))
    with pytest.raises(DataError, match="human keypoint set"):
        A.load_as(human, False, 1.0, get("ap10k"))


def test_test_bed_plans():
    q = testbeds.plan(testbeds.BEDS["quadruped"])
    tt = q["target_train"]
    assert tt["style"] == "B" and tt["outline_color"] == testbeds.OUTLINE and tt["motion"] >= 0.1
    assert tt["num_images"] // tt["sequence_length"] >= 100  # hundreds of subjects / sequences
    assert q["source"]["style"] == "A" and "outline_color" not in q["source"]
    assert "human" not in testbeds.plan(testbeds.TestBed("quadruped", (64, 64), 4, 4, 4, num_human=0))


def test_outline_color_option_changes_only_the_ink():
    from posekit.data.synth.scene import SynthConfig, render_sample

    base = SynthConfig(kind="quadruped", style="B", max_subjects=1, image_size=(96, 96))
    a = render_sample(5, 0, base)
    b = render_sample(5, 0, SynthConfig(**{**base.__dict__, "outline_color": testbeds.OUTLINE}))
    assert np.array_equal(a.ids, b.ids)  # same scene and labels
    assert a.instances[0].keypoints.tolist() == b.instances[0].keypoints.tolist()
    assert not np.array_equal(a.image, b.image)


# -- end to end ---------------------------------------------------------------------------------------------------


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_ccssl_end_to_end_and_resume_mid_epoch(bed, tmp_path):
    cfg = tiny_config(bed)
    events = []
    full = A.run(cfg, tmp_path / "full", device="cpu", on_event=lambda k, i: events.append((k, i)))
    assert full["stop_reason"] == "completed" and full["epoch"] == 3 and full["iteration"] == 6
    for r, drop in ((0, 0.8), (1, 0.6)):  # official rule: round r = epoch 10 r
        data = json.loads((tmp_path / "full" / f"pseudo_labels/round_{r:02d}.json").read_text())
        info = data["info"]
        assert info["drop_fraction"] == pytest.approx(drop)
        conf = np.array([a["confidence"] for a in data["annotations"]])
        assert info["threshold"] == A.confidence_threshold(conf, 10 * r)[0]
        kept = np.array([a["keypoints"][2::3] for a in data["annotations"]]) > 0
        np.testing.assert_array_equal(kept, conf > info["threshold"])
        assert info["diagnostics"]["labelled"] > 0 and len(info["diagnostics"]["deciles"]) == 10
        assert (tmp_path / "full" / "pictures" / f"round_{r:02d}.png").is_file()
    assert [k for k, _ in events].count("pseudo_labels") == 2
    hist = full["history"]
    assert "loss_target" not in hist[0] and hist[1]["loss_target"] > 0
    assert "PCK@0.05 nose" in full["metrics"] and full["units"] > 0
    w = _weights(tmp_path / "full" / "final_state.pth")
    assert w["format"] == "posekit-weights-v1" and w["spec"]["codec"] == "bearpaw"
    assert w["spec"]["skeleton"] == "ap10k" and "ADAPT" in w["spec"]["config_yaml"]
    # stopped after 3 steps (inside epoch 2), resumed: the same weights, labels and history, bit for bit
    part = A.run(cfg, tmp_path / "part", device="cpu", stop_after=3)
    assert part["stop_reason"] == "stopped" and part["final_weights"] is None and part["iteration"] == 3
    rest = A.run(cfg, tmp_path / "part", device="cpu", resume=True)
    assert rest["stop_reason"] == "completed" and rest["iteration"] == 6
    a, b = w["state_dict"], _weights(tmp_path / "part" / "final_state.pth")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for r in (0, 1):
        name = f"pseudo_labels/round_{r:02d}.json"
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "part" / name).read_bytes()
    assert json.dumps(rest["history"]) == json.dumps(full["history"])
    with pytest.raises(Exception, match="other adapt settings"):
        A.run(tiny_config(bed, ("ADAPT.TARGET_WEIGHT=3",)), tmp_path / "part", device="cpu", resume=True)


@pytest.mark.slow
def test_adapted_weights_work_in_test_infer_and_export(bed, tmp_path):
    """Every adapt weights file carries its model spec: `posekit test`, `infer` and `export` take it as any other."""
    from posekit.cli import main

    cfg = tiny_config(bed, ("TRAIN.END_EPOCH=1", "ADAPT.METHOD=adabn", "ADAPT.SOURCE_EPOCHS=0"))
    res = A.run(cfg, tmp_path / "run", device="cpu")
    weights = res["final_weights"]
    yaml_path = tmp_path / "adapt.yaml"
    from posekit.config import config_to_yaml

    yaml_path.write_text(config_to_yaml(cfg))
    assert main(["test", str(yaml_path), "--weights", weights, "--out", str(tmp_path / "t"), "--json",
                 "--no-progress", "TEST.FLIP_TEST=false"]) == 0
    img = next((bed["target_val"] / "images").glob("*.jpg"))
    assert main(["infer", "--weights", weights, str(img), "--out", str(tmp_path / "i")]) == 0
    assert json.loads((tmp_path / "i" / "keypoints.json").read_text())
    assert main(["export", "--weights", weights, "--out", str(tmp_path / "m.onnx")]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 0


@pytest.mark.slow
def test_wscda_end_to_end(bed, tmp_path):
    res = A.run(tiny_config(bed, ("TRAIN.END_EPOCH=2", "ADAPT.METHOD=wscda")), tmp_path / "ws", device="cpu")
    hist = res["history"]
    assert hist[0]["loss_ddl"] > 0 and hist[0]["loss_human"] > 0
    assert hist[0].get("loss_target", 0.0) == 0.0  # no PPLO labels yet: the target only feeds the discriminator
    assert hist[1]["loss_target"] > 0  # PPLO labels from round 0 on
    state = torch.load(tmp_path / "ws" / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert any(k.startswith("body.") for k in state["extra"]["discriminator"])
    assert (tmp_path / "ws" / "pseudo_labels/round_00.json").is_file()


@pytest.mark.slow
def test_init_from_source_weights_starts_there(bed, tmp_path):
    src = A.run(tiny_config(bed, ("TRAIN.END_EPOCH=1", "ADAPT.METHOD=source", "ADAPT.SOURCE_EPOCHS=0")),
                tmp_path / "src", device="cpu")
    # ccssl from those weights with LR ~0: round-0 labels come from exactly the source network
    cfg = tiny_config(bed, ("TRAIN.END_EPOCH=1", "ADAPT.SOURCE_EPOCHS=0", f"ADAPT.INIT={src['final_weights']}",
                            "TRAIN.LR=1e-12", "ADAPT.LR_DECAY=none"))
    res = A.run(cfg, tmp_path / "ad", device="cpu")
    a, b = _weights(src["final_weights"])["state_dict"], _weights(res["final_weights"])["state_dict"]
    for k in a:
        if "running" not in k and "num_batches" not in k:  # BN statistics move in train mode
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="another model spec"):
        A.run(tiny_config(bed, ("TRAIN.END_EPOCH=1", "ADAPT.SOURCE_EPOCHS=0", "MODEL.IMAGE_SIZE=[96,96]",
                                f"ADAPT.INIT={src['final_weights']}")), tmp_path / "bad", device="cpu")


def test_real_animal_samples_load_as_target(data_dir, bed):
    """AP-10K (same joints), Animal-Pose and Horse-10 (mapped by name) load as target train / val data."""
    from posekit.skeletons import get

    sk = get("ap10k")
    for rel, mapped in (("ap10k/mmpose/test_ap10k.json", False), ("animalpose/mmpose/test_animalpose.json", True),
                        ("horse10/mmpose/test_horse10.json", True)):
        split = A.Split(str(data_dir / rel), str((data_dir / rel).parent))
        recs, was_mapped = A.load_as(split, True, 1.0, sk)
        assert was_mapped == mapped and recs and all(r.keypoints.shape == (17, 3) for r in recs)
        assert all(Path(r.image_path).is_file() for r in recs)
