"""PRTR network against the official two_stage fixtures: keys/shapes, params, GMACs, tiny-model outputs, YAMLs."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import posekit.models
from posekit.errors import ConfigError
from posekit.models.complexity import measure
from posekit.models.prtr import (
    FrozenBatchNorm2d,
    PoseTransformer,
    PRTRConfig,
    prtr_from_official,
    sine_position_encoding,
)

FULL = {"prtr_res50_384x288": (41_505_236, 11.05), "prtr_hrnet_w32_384x288": (57_234_004, 21.70)}
ZOO = ["prtr_res50_384x288", "prtr_res101_384x288", "prtr_hrnet_w32_384x288", "prtr_res50_512x384",
       "prtr_res101_512x384", "prtr_hrnet_w32_512x384", "prtr_res50_256x256_mpii", "prtr_res50_384x384_mpii",
       "prtr_res101_256x256_mpii", "prtr_res152_256x256_mpii", "prtr_hrnet_w32_256x256_mpii",
       "prtr_hrnet_w32_384x384_mpii", "prtr_hrnet_tiny_128x96"]


def _keys_shapes(model: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


def _assert_close(out: torch.Tensor, ref: np.ndarray) -> None:
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))


@pytest.mark.parametrize("name", sorted(FULL))
def test_full_size_keys_shapes_params_gmacs_match_manifest(reference_dir, name):
    man = json.loads((reference_dir / f"manifests/{name}.json").read_text())
    with torch.device("meta"):  # shapes and MAC counts need no arithmetic
        model = posekit.models.build(name)
    assert _keys_shapes(model) == [(k, s) for k, s, _ in man["state_dict"]]
    params, gmacs = FULL[name]
    assert sum(p.numel() for p in model.parameters()) == params == man["num_parameters"]
    m = measure(model, tuple(man["MODEL"]["IMAGE_SIZE"]))
    assert round(m["gmacs"], 2) == gmacs
    assert m["gmacs"] * 1e9 == man["flops"]["macs"]
    # strict load of a state_dict with exactly the manifest's keys and shapes
    model.load_state_dict({k: torch.zeros(s, dtype=torch.int64 if t == "int64" else torch.float32)
                           for k, s, t in man["state_dict"]}, strict=True, assign=True)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_entries_are_prtr_tasks_with_the_coord_codec(name):
    e = posekit.models.entry(name)
    assert e.task == "prtr" and e.codec == "coord" and e.family == "prtr"
    assert e.skeleton == ("mpii" if name.endswith("_mpii") else "coco")


def test_zoo_mpii_and_deeper_backbones_build():
    for name in ("prtr_res101_384x288", "prtr_res152_256x256_mpii", "prtr_hrnet_w32_256x256_mpii"):
        with torch.device("meta"):
            model = posekit.models.build(name)
        assert model.class_embed.out_features == (17 if name.endswith("_mpii") else 18)


def test_small_model_is_cpu_sized():
    model = posekit.models.build("prtr_hrnet_tiny_128x96")
    m = measure(model, (96, 128))
    assert round(m["gmacs"], 3) == 0.168 and m["params"] == 4_296_244
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 128, 96))
    assert out["pred_logits"].shape == (2, 34, 18) and len(out["aux_outputs"]) == 1


def test_tiny_reproduces_official_outputs(reference_dir, formula_weights, tensor_digest):
    meta = json.loads((reference_dir / "models/prtr_tiny.json").read_text())
    model = prtr_from_official(meta["MODEL"]).eval()
    assert _keys_shapes(model) == [(k, s) for k, s, _ in meta["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == meta["num_parameters"]
    sd = formula_weights(model)
    for key, t in sd.items():
        assert tensor_digest(t) == meta["state_dict_sha256_16"][key], key
    model.load_state_dict(sd, strict=True)
    io = np.load(reference_dir / "models/prtr_tiny.npz")
    with torch.no_grad():
        out = model(torch.from_numpy(io["input"]))
    _assert_close(out["pred_logits"], io["pred_logits"])
    _assert_close(out["pred_coords"], io["pred_coords"])
    assert len(out["aux_outputs"]) == 1
    _assert_close(out["aux_outputs"][0]["pred_logits"], io["aux0_pred_logits"])
    _assert_close(out["aux_outputs"][0]["pred_coords"], io["aux0_pred_coords"])


def _official_yamls(reference_dir: Path) -> list[Path]:
    return sorted((reference_dir / "configs/prtr_repo").rglob("*.yaml"))


def test_every_official_yaml_builds_or_refuses_clearly(reference_dir):
    from posekit.config import load_config

    manifests = {"coco/transformer/res50_384x288_adamw_lr1e-4.yaml": "prtr_res50_384x288",
                 "coco/transformer/w32_384x288_adamw_lr1e-4.yaml": "prtr_hrnet_w32_384x288"}
    paths = _official_yamls(reference_dir)
    assert len(paths) == 18
    built = 0
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = load_config(path)
        raw = {"NAME": cfg.MODEL.NAME, "NUM_JOINTS": cfg.MODEL.NUM_JOINTS, "EXTRA": cfg.MODEL.EXTRA}
        if "deformable" in str(path):
            with pytest.raises(ConfigError, match="MultiScaleDeformableAttention"):
                prtr_from_official(raw)
            continue
        cfg_obj = PRTRConfig.from_official(raw)
        assert cfg_obj.num_joints == (16 if "mpii" in str(path) else 17)
        rel = str(path.relative_to(reference_dir / "configs/prtr_repo"))
        with torch.device("meta"):  # shapes only: no weight initialisation work
            model = prtr_from_official(raw)
        if rel in manifests:
            man = json.loads((reference_dir / f"manifests/{manifests[rel]}.json").read_text())
            assert _keys_shapes(model) == [(k, s) for k, s, _ in man["state_dict"]], rel
        else:  # same layout as the zoo entry of that backbone
            zoo = {"resnet50": "prtr_res50_384x288", "resnet101": "prtr_res101_384x288",
                   "resnet152": "prtr_res152_256x256_mpii", "hrnet": "prtr_hrnet_w32_384x288"}[cfg_obj.backbone]
            with torch.device("meta"):
                ref = posekit.models.build(zoo, num_joints=cfg_obj.num_joints)
            assert _keys_shapes(model) == _keys_shapes(ref), rel
        built += 1
    assert built == 16


def test_frozen_bn_and_frozen_stem():
    model = posekit.models.build("prtr_res50_384x288")
    body = model.backbone[0].body
    assert isinstance(body.bn1, FrozenBatchNorm2d)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters()
                      if n.startswith(("backbone.0.body.conv1", "backbone.0.body.layer1"))}
    # forward = x * w / sqrt(var + 1e-5) + (b - mean * w / sqrt(var + 1e-5)); torchvision checkpoints load too
    bn = FrozenBatchNorm2d(3)
    bn.load_state_dict({"weight": torch.tensor([1.0, 2.0, 3.0]), "bias": torch.tensor([0.5, 0.0, -1.0]),
                        "running_mean": torch.tensor([0.1, 0.2, 0.3]), "running_var": torch.tensor([1.0, 4.0, 0.25]),
                        "num_batches_tracked": torch.tensor(7)})
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    ref = torch.nn.functional.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, 1e-5)
    torch.testing.assert_close(bn(x), ref)


def test_sine_encoding_closed_form():
    pos = sine_position_encoding(3, 4, num_pos_feats=8)
    assert pos.shape == (1, 16, 3, 4)
    y = 2 * math.pi * 2 / (3 + 1e-6)  # row 1 (count 2 of 3)
    x = 2 * math.pi * 3 / (4 + 1e-6)  # column 2 (count 3 of 4)
    for i in range(8):
        freq = 10000 ** (2 * (i // 2) / 8)
        f = math.sin if i % 2 == 0 else math.cos
        assert pos[0, i, 1, 2].item() == pytest.approx(f(y / freq), abs=1e-6)
        assert pos[0, 8 + i, 1, 2].item() == pytest.approx(f(x / freq), abs=1e-6)


def test_pre_norm_adds_the_encoder_norm_and_runs():
    cfg = PRTRConfig(backbone="resnet18", hidden_dim=16, nheads=2, enc_layers=1, dec_layers=2, dim_feedforward=32,
                     num_queries=20, pre_norm=True, aux_loss=False)
    model = PoseTransformer(cfg).eval()
    keys = model.state_dict().keys()
    assert "transformer.encoder.norm.weight" in keys and "transformer.decoder.norm.weight" in keys
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    assert set(out) == {"pred_logits", "pred_coords", "out"}
    torch.testing.assert_close(out["out"], torch.cat([out["pred_logits"], out["pred_coords"]], -1))
    assert float(out["pred_coords"].min()) >= 0 and float(out["pred_coords"].max()) <= 1


def test_bad_configs_name_the_key():
    with pytest.raises(ConfigError, match="NUM_LAYERS"):
        PRTRConfig.from_official({"NAME": "pose_transformer", "EXTRA": {"NUM_LAYERS": 77}})
    with pytest.raises(ConfigError, match="NUM_QUERIES"):
        PoseTransformer(PRTRConfig(backbone="resnet18", num_queries=10))
    with pytest.raises(ConfigError, match="DILATION"):
        PoseTransformer(PRTRConfig(backbone="resnet18", dilation=True))


def _micro_prtr() -> PoseTransformer:
    from posekit.models.hrnet import HRNetConfig, stage

    hr = HRNetConfig(stage1=stage(1, "BOTTLENECK", [1], [8]), stage2=stage(1, "BASIC", [1, 1], [8, 16]),
                     stage3=stage(1, "BASIC", [1, 1, 1], [8, 16, 32]),
                     stage4=stage(1, "BASIC", [1, 1, 1, 1], [8, 16, 32, 64]), head="cls")
    torch.manual_seed(0)
    return PoseTransformer(PRTRConfig(backbone="hrnet", hrnet=hr, hidden_dim=32, nheads=2, enc_layers=1,
                                      dec_layers=2, dim_feedforward=64, num_queries=20)).eval()


@pytest.mark.slow
def test_onnx_export_parity_with_dynamic_batch(tmp_path):
    pytest.importorskip("onnxruntime")
    from posekit.export import export_onnx, onnx_session, run_onnx
    from posekit.runtime.backends import MainOutput

    model = _micro_prtr()
    diff = export_onnx(MainOutput(model).eval(), (64, 64), tmp_path / "prtr.onnx", dynamic_batch=True)
    assert diff < 1e-4
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    (got,) = run_onnx(onnx_session(tmp_path / "prtr.onnx"), x.numpy())
    with torch.no_grad():
        ref = model(x)["out"].numpy()
    assert got.shape == (3, 20, 20) and np.abs(got - ref).max() < 1e-4


def test_pose_estimator_runs_prtr_with_the_official_flip_test():
    from posekit import codecs, skeletons
    from posekit.inference import PoseEstimator

    model = _micro_prtr()
    image = np.random.default_rng(0).integers(0, 255, (80, 60, 3), dtype=np.uint8)
    box = np.array([[5.0, 4.0, 40.0, 60.0]])
    est = PoseEstimator("prtr_hrnet_tiny_128x96", model=model, flip_test=True, backend="torch")
    est_plain = PoseEstimator("prtr_hrnet_tiny_128x96", model=model, flip_test=False, backend="torch")
    (pose,) = est(image, box)
    (plain,) = est_plain(image, box)
    # reference: both passes decoded separately and averaged (official get_final_preds_match + validate)
    crops, centers, sizes = est.crop(image, box)
    from posekit.runtime.topdown import to_input

    x = to_input(crops)
    with torch.no_grad():
        a, b = model(x), model(torch.flip(x, dims=(3,)))
    codec = codecs.build("coord", input_size=est.input_size, num_keypoints=17)
    kp, sc = codec.decode_flip_test(a, b, skeletons.get("coco").flip_index)
    from posekit import geometry

    xy = geometry.transform_preds(kp, centers, sizes, est.input_size)
    np.testing.assert_allclose(pose.keypoints[:, :2], xy[0], atol=1e-3)
    np.testing.assert_allclose(pose.keypoints[:, 2], sc[0], atol=1e-5)
    assert not np.allclose(pose.keypoints[:, :2], plain.keypoints[:, :2])


def test_hr_feature_prtr_feeds_the_pose_hrnets_stride4_map():
    """feature='hr': backbone.0.body is a pose HRNet without final_layer; token_pool / value_pos change the tokens."""
    from dataclasses import replace

    from posekit.models import prtr as P

    torch.manual_seed(0)
    model = posekit.models.build("prtr_hrnet_w16_tiny_hr_128x96").eval()
    pose = posekit.models.build("hrnet_w16_tiny_128x96").eval()
    body = {k[len("backbone.0.body."):]: v for k, v in model.state_dict().items() if k.startswith("backbone.0.body.")}
    missing, unexpected = pose.load_state_dict(body, strict=False)
    assert missing == ["final_layer.weight", "final_layer.bias"] and not unexpected
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        assert torch.equal(model.backbone[0](x), pose.forward_features(x)[0])  # 16 channels at stride 4
        pooled = P.build_prtr(replace(P.DEMO_HR, token_pool=2)).eval()
        pooled.load_state_dict(model.state_dict())
        no_pos = P.build_prtr(replace(P.DEMO_HR, value_pos=False)).eval()
        no_pos.load_state_dict(model.state_dict())
        a, b, c = model(x)["pred_coords"], pooled(x)["pred_coords"], no_pos(x)["pred_coords"]
    assert a.shape == b.shape == c.shape == (2, 17, 2)
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
