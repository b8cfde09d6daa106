"""SimpleBaseline (pose_resnet) against the official HRNet-repo fixtures: keys, params, outputs, init, configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import posekit.models
from posekit.errors import ConfigError
from posekit.models.resnet import (
    BasicBlock,
    Bottleneck,
    PoseResNet,
    PoseResNetConfig,
    ResNetBackbone,
    build_pose_resnet,
)

PAPER_PARAMS = {50: 33_999_697, 101: 52_991_825, 152: 68_635_473}


def _keys_shapes(model: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


def _assert_close(out: np.ndarray, ref: np.ndarray) -> None:
    """The fixtures' suggested tolerance: atol = 1e-5 * max|ref|, rtol = 1e-4."""
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_pose_resnet_keys_shapes_params_match_manifest(reference_dir, depth):
    man = json.loads((reference_dir / f"manifests/pose_resnet_{depth}_256x192.json").read_text())
    with torch.device("meta"):
        model = posekit.models.build(f"simplebaseline_res{depth}_256x192")
    assert _keys_shapes(model) == [(k, s) for k, s, _ in man["state_dict"]]
    n = sum(p.numel() for p in model.parameters())
    assert n == man["num_parameters"] == PAPER_PARAMS[depth]


def test_official_yaml_builds_the_manifest_model(reference_dir):
    cfg = yaml.safe_load((reference_dir / "configs/hrnet_repo/coco/resnet/res101_256x192_d256x3_adam_lr1e-3.yaml")
                         .read_text())["MODEL"]
    man = json.loads((reference_dir / "manifests/pose_resnet_101_256x192.json").read_text())
    with torch.device("meta"):
        model = PoseResNet(PoseResNetConfig.from_official(cfg["EXTRA"], cfg["NUM_JOINTS"]))
    assert _keys_shapes(model) == [(k, s) for k, s, _ in man["state_dict"]]


@pytest.mark.parametrize("name", ["pose_resnet18_d64", "pose_resnet18_k432_bias_final3"])
def test_small_pose_resnet_reproduces_official_output(reference_dir, formula_weights, tensor_digest, name):
    meta = json.loads((reference_dir / f"models/{name}.json").read_text())
    model = PoseResNet(PoseResNetConfig.from_official(meta["MODEL"]["EXTRA"], meta["MODEL"]["NUM_JOINTS"])).eval()
    assert _keys_shapes(model) == [(k, s) for k, s, _ in meta["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == meta["num_parameters"]
    weights = formula_weights(model)
    bad = [k for k, t in weights.items() if tensor_digest(t) != meta["state_dict_sha256_16"][k]]
    assert not bad, f"formula weights differ from the fixture digests: {bad[:5]}"
    model.load_state_dict(weights, strict=True)
    io = np.load(reference_dir / f"models/{name}.npz")
    with torch.no_grad():
        out = model(torch.from_numpy(io["input"])).numpy()
    assert out.shape == tuple(meta["output_shape"])
    _assert_close(out, io["output"])


@pytest.mark.slow
@pytest.mark.parametrize("depth", [50, 101, 152])
def test_full_size_pose_resnet_outputs_match_official(reference_dir, formula_weights, depth):
    x = torch.from_numpy(np.load(reference_dir / "models/input_full_1x3x256x192.npz")["input"])
    ref = np.load(reference_dir / "models/full_outputs_formula_weights.npz")[f"pose_resnet_{depth}_256x192"]
    model = build_pose_resnet(depth).eval()
    model.load_state_dict(formula_weights(model), strict=True)
    with torch.no_grad():
        out = model(x).numpy()
    _assert_close(out, ref)


def test_official_init_when_built_without_weights():
    torch.manual_seed(0)
    model = posekit.models.build("simplebaseline_res18_128x96")
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            assert abs(float(m.weight.detach().std()) - 0.001) < 0.0002, name
            assert abs(float(m.weight.detach().mean())) < 0.0002, name
            if m.bias is not None:
                assert torch.all(m.bias == 0), name
        elif isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0), name
    assert not model.training  # build() returns eval-ready models


def test_output_shape_is_quarter_resolution_and_overrides_apply():
    model = posekit.models.build("simplebaseline_res18_128x96", num_joints=5)
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 128, 96))
    assert out.shape == (2, 5, 32, 24)
    entry = posekit.models.entry("simplebaseline_res50_256x256_mpii")
    assert entry.skeleton == "mpii" and entry.heatmap_size == (64, 64)
    with torch.device("meta"):
        assert posekit.models.build("simplebaseline_res50_256x256_mpii").final_layer.out_channels == 16


@pytest.mark.parametrize("kernel,size", [(4, 8), (3, 8), (2, 8)])
def test_deconv_kernels_double_the_size(kernel, size):
    model = PoseResNet(PoseResNetConfig(depth=18, num_deconv_layers=1, num_deconv_filters=(8,),
                                        num_deconv_kernels=(kernel,), final_conv_kernel=3))
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 32 * size, 32 * size))
    assert out.shape[-2:] == (2 * size, 2 * size)


def test_bad_configs_raise_config_error():
    with pytest.raises(ConfigError, match="NUM_DECONV_KERNELS"):
        PoseResNet(PoseResNetConfig(depth=18, num_deconv_kernels=(4, 4, 5)))
    with pytest.raises(ConfigError, match="depth"):
        PoseResNet(PoseResNetConfig(depth=20))
    with pytest.raises(ConfigError, match="FINAL_CONV_KERNEL"):
        PoseResNet(PoseResNetConfig(depth=18, final_conv_kernel=5))
    with pytest.raises(ConfigError, match="unknown pose_resnet option"):
        build_pose_resnet(18, num_jionts=3)
    with pytest.raises(ConfigError, match="NUM_LAYERS"):
        PoseResNetConfig.from_official({"NUM_DECONV_LAYERS": 3})


def test_backbone_blocks_are_the_resnet_residual_functions():
    torch.manual_seed(0)
    basic, bottle = BasicBlock(4, 4).eval(), Bottleneck(16, 4).eval()
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():  # eval BN with default stats is identity, so the blocks are relu(f(x) + x)
        y = torch.relu(basic.conv2(torch.relu(basic.conv1(x))) + x)
        torch.testing.assert_close(basic(x), y)
        x16 = torch.randn(1, 16, 6, 6)
        y = torch.relu(bottle.conv3(torch.relu(bottle.conv2(torch.relu(bottle.conv1(x16))))) + x16)
        torch.testing.assert_close(bottle(x16), y)
    backbone = ResNetBackbone(18)
    feats = backbone.forward_features(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1:] for f in feats] == [(64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)]
    assert [k.split(".")[0] for k in backbone.state_dict()][:2] == ["conv1", "bn1"]
