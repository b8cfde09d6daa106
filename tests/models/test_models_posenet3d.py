"""3DMPPE ResPoseNet against the official fixtures: keys/shapes, params, traced GMACs, formula-weight outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import posekit.models
from posekit.codecs.integral import soft_argmax_3d
from posekit.errors import ConfigError
from posekit.losses import body3d_l1_loss
from posekit.models.complexity import count_macs
from posekit.models.posenet3d import ResPoseNet, SoftArgmax3D


def _assert_close(out: np.ndarray, ref: np.ndarray) -> None:
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))


def _meta_model(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return posekit.models.build(name)


def test_manifest_strict_keys_params_and_gmacs(reference_dir):
    man = json.loads((reference_dir / "manifests/3dmppe_resposenet_r50_j18.json").read_text())
    model = posekit.models.build("posenet3d_res50_256x256")
    sd = model.state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(k, s) for k, s, _ in man["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == man["num_parameters"] == 34_291_392
    # strict load of a state_dict with exactly the official keys
    model.load_state_dict({k: torch.zeros(s, dtype=getattr(torch, d)) for k, s, d in man["state_dict"]}, strict=True)
    assert count_macs(model, (256, 256)) == man["flops"]["macs"]
    assert round(man["flops"]["macs"] / 1e9, 3) == 8.425


@pytest.mark.parametrize("name,params", [("posenet3d_res101_256x256", 53_283_520),
                                         ("posenet3d_res152_256x256", 68_927_168)])
def test_deeper_backbones_build_with_official_head(name, params):
    model = _meta_model(name)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.head.final_layer.out_channels == 18 * 64 and model.head.deconv_layers[0].in_channels == 2048


def test_formula_io_coord_head_and_loss(reference_dir, formula_weights, tensor_digest):
    meta = json.loads((reference_dir / "models/3dmppe_resposenet_r50_j18_formula.json").read_text())
    io = np.load(reference_dir / "models/3dmppe_resposenet_r50_j18_formula_io.npz")
    model = ResPoseNet(depth=meta["config"]["resnet_type"], num_joints=meta["config"]["joint_num"],
                       depth_dim=meta["config"]["depth_dim"]).eval()
    sd = formula_weights(model)
    for key in ("backbone.conv1.weight", "head.final_layer.weight", "head.deconv_layers.1.running_var"):
        assert tensor_digest(sd[key]) == meta["state_dict_sha256_16"][key]
    model.load_state_dict(sd, strict=True)
    x = torch.from_numpy(io["input"])
    with torch.no_grad():
        volume = model.forward_heatmaps(x)
        coord = model.soft_argmax(volume)
    assert list(volume.shape) == list(io["head_output_shape"])
    _assert_close(volume[:, :64].numpy(), io["head_output_joint0"])
    _assert_close(coord.numpy(), io["coord"])
    # the codec's soft-argmax gives the same numbers as the network layer
    np.testing.assert_allclose(soft_argmax_3d(volume, 18, 64).numpy(), coord.numpy(), rtol=0, atol=1e-6)
    loss = body3d_l1_loss(coord, torch.from_numpy(io["target_coord"]), torch.from_numpy(io["target_vis"]),
                          torch.from_numpy(io["target_have_depth"]), reduction="none")
    _assert_close(loss.numpy(), io["loss_coord"])


def test_soft_argmax_layer_matches_official_fixture(reference_dir):
    io = np.load(reference_dir / "codecs/3dmppe_soft_argmax.npz")
    cases = sorted({k.split("_")[0] for k in io.files})
    for case in cases:
        b, j, d, h, w = (int(v) for v in io[f"{case}_shape_BJDHW"])
        out = SoftArgmax3D(j, d)(torch.from_numpy(io[f"{case}_heatmaps"])).numpy()
        _assert_close(out, io[f"{case}_coord"])


def test_official_init_and_small_model():
    model = posekit.models.build("posenet3d_res50_256x256")
    w = torch.cat([m.weight.flatten() for m in model.head.modules()
                   if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)])
    assert abs(w.std().item() - 0.001) < 1e-4
    assert torch.all(model.head.final_layer.bias == 0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    small = posekit.models.build("posenet3d_res18_128x128")
    with torch.no_grad():
        out = small(torch.zeros(2, 3, 128, 128))
        vol = small.forward_heatmaps(torch.zeros(1, 3, 128, 128))
    assert out.shape == (2, 18, 3) and vol.shape == (1, 18 * 32, 32, 32)
    info = posekit.models.entry("posenet3d_res18_128x128")
    assert info.task == "body3d" and info.skeleton == "coco_pelvis"


def test_bad_options_raise():
    with pytest.raises(ConfigError, match="depth"):
        ResPoseNet(depth=20)
    with pytest.raises(ConfigError, match="unknown posenet3d option"):
        posekit.models.build("posenet3d_res50_256x256", num_deconv=2)


@pytest.mark.slow
def test_small_model_exports_to_onnx_with_coords_output(tmp_path):
    from posekit.export import export_onnx

    model = posekit.models.build("posenet3d_res18_128x128")
    diff, scale = export_onnx(model, (128, 128), tmp_path / "p3d.onnx", dynamic_batch=True, return_scale=True)
    assert diff <= 1e-4 * max(scale, 1.0)  # the ONNX graph ends in the soft-argmax: [N, 18, 3] coords


def test_official_3dmppe_snapshot_layout_loads(tmp_path, reference_dir):
    """3DMPPE saves {'epoch', 'network': DataParallel state_dict ('module.' keys), 'optimizer'}."""
    from posekit.models.weights import load_checkpoint

    man = json.loads((reference_dir / "manifests/3dmppe_resposenet_r50_j18.json").read_text())
    sd = {f"module.{k}": torch.full(s, 0.5, dtype=getattr(torch, d)) for k, s, d in man["state_dict"]}
    torch.save({"epoch": 24, "network": sd, "optimizer": {"state": {}, "param_groups": []}}, tmp_path / "snap.pth")
    model = posekit.models.build("posenet3d_res50_256x256")
    report = load_checkpoint(model, tmp_path / "snap.pth", strict=True)
    assert report.ok and torch.all(model.head.final_layer.bias == 0.5)


def test_hrnet_3d_backbone_from_a_2d_heatmap_checkpoint_with_load_report(tmp_path):
    """A posekit 2-D heatmap HRNet (the demo model's network) initialises the 3-D model's backbone: the report lists
    every backbone tensor as loaded (values copied), the 3-D head as left at its init, the 2-D final layer as
    skipped."""
    from posekit.models.weights import load_pretrained_weights

    torch.manual_seed(1)
    net2d = posekit.models.build("hrnet_w16_tiny_128x96")
    for p in net2d.parameters():  # distinctive values
        p.data.uniform_(-1, 1)
    path = tmp_path / "demo_like.pth"
    torch.save({"state_dict": net2d.state_dict()}, path)
    net3d = posekit.models.build("posenet3d_hrnet_w16_tiny_128x96")
    head_before = {k: v.clone() for k, v in net3d.state_dict().items() if k.startswith("head.")}
    report = load_pretrained_weights(net3d, path)
    sd2, sd3 = net2d.state_dict(), net3d.state_dict()
    backbone = [k for k in sd2 if not k.startswith("final_layer.")]
    assert sorted(report.loaded) == sorted(f"backbone.{k}" for k in backbone)
    assert all(torch.equal(sd3[f"backbone.{k}"], sd2[k]) for k in backbone)
    assert sorted(report.missing) == sorted(k for k in head_before if not k.endswith("num_batches_tracked"))
    assert all(torch.equal(sd3[k], v) for k, v in head_before.items())
    assert sorted(k for k, _ in report.skipped) == ["final_layer.bias", "final_layer.weight"]
    assert report.source_prefix == "" and report.target_prefix == "backbone."
    text = report.summary()
    assert "head" in text and "final_layer" in text
