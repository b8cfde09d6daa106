"""HRNet against the official pose_hrnet fixtures: keys, params, outputs, init, official configs, PRTR backbone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import posekit.models
from posekit.errors import ConfigError
from posekit.models.hrnet import (
    W18_SMALL_V2,
    HRNetConfig,
    PoseHighResolutionNet,
    build_hrnet,
    hrnet_config,
    prtr_hrnet_w32_backbone,
    stage,
)

PAPER_PARAMS = {32: 28_536_113, 48: 63_595_745}
PRTR_PREFIX = "backbone.0.body."


def _keys_shapes(model: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


def _assert_close(out: np.ndarray, ref: np.ndarray) -> None:
    """The fixtures' suggested tolerance: atol = 1e-5 * max|ref|, rtol = 1e-4."""
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))


@pytest.mark.parametrize("width", [32, 48])
def test_hrnet_keys_shapes_params_match_manifest(reference_dir, width):
    man = json.loads((reference_dir / f"manifests/pose_hrnet_w{width}_256x192.json").read_text())
    with torch.device("meta"):
        model = posekit.models.build(f"hrnet_w{width}_256x192")
    assert _keys_shapes(model) == [(k, s) for k, s, _ in man["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == man["num_parameters"] == PAPER_PARAMS[width]


def test_official_yaml_builds_the_manifest_model(reference_dir):
    cfg = yaml.safe_load((reference_dir / "configs/hrnet_repo/coco/hrnet/w48_384x288_adam_lr1e-3.yaml")
                         .read_text())["MODEL"]
    man = json.loads((reference_dir / "manifests/pose_hrnet_w48_256x192.json").read_text())
    with torch.device("meta"):
        model = PoseHighResolutionNet(HRNetConfig.from_official(cfg["EXTRA"], cfg["NUM_JOINTS"]))
    assert _keys_shapes(model) == [(k, s) for k, s, _ in man["state_dict"]]


@pytest.mark.parametrize("name", ["pose_hrnet_tiny", "pose_hrnet_tiny_k3_bottleneck"])
def test_tiny_hrnet_reproduces_official_output(reference_dir, formula_weights, tensor_digest, name):
    meta = json.loads((reference_dir / f"models/{name}.json").read_text())
    model = PoseHighResolutionNet(HRNetConfig.from_official(meta["MODEL"]["EXTRA"], meta["MODEL"]["NUM_JOINTS"]))
    model.eval()
    assert _keys_shapes(model) == [(k, s) for k, s, _ in meta["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == meta["num_parameters"]
    shipped = torch.load(reference_dir / meta["state_dict_file"], weights_only=True)
    regenerated = formula_weights(model)
    for key, t in shipped.items():
        assert torch.equal(regenerated[key], t), key
        assert tensor_digest(t) == meta["state_dict_sha256_16"][key], key
    model.load_state_dict(shipped, strict=True)
    io = np.load(reference_dir / f"models/{name}.npz")
    with torch.no_grad():
        out = model(torch.from_numpy(io["input"])).numpy()
    assert out.shape == tuple(meta["output_shape"])
    _assert_close(out, io["output"])


@pytest.mark.slow
@pytest.mark.parametrize("width", [32, 48])
def test_full_size_hrnet_outputs_match_official(reference_dir, formula_weights, width):
    x = torch.from_numpy(np.load(reference_dir / "models/input_full_1x3x256x192.npz")["input"])
    ref = np.load(reference_dir / "models/full_outputs_formula_weights.npz")[f"pose_hrnet_w{width}_256x192"]
    model = build_hrnet(hrnet_config(width)).eval()
    model.load_state_dict(formula_weights(model), strict=True)
    with torch.no_grad():
        out = model(x).numpy()
    _assert_close(out, ref)


def test_prtr_backbone_keys_match_manifest_and_give_2048_channels_at_stride_32(reference_dir):
    man = json.loads((reference_dir / "manifests/prtr_hrnet_w32_384x288.json").read_text())
    with torch.device("meta"):
        model = prtr_hrnet_w32_backbone()
    ref = [(k[len(PRTR_PREFIX):], s) for k, s, _ in man["state_dict"] if k.startswith(PRTR_PREFIX)]
    assert _keys_shapes(model) == ref
    tiny = json.loads((reference_dir / "models/prtr_tiny.json").read_text())
    model = PoseHighResolutionNet(HRNetConfig.from_official(tiny["MODEL"]["EXTRA"], head="cls")).eval()
    ref = [(k[len(PRTR_PREFIX):], s) for k, s, _ in tiny["state_dict"] if k.startswith(PRTR_PREFIX)]
    assert _keys_shapes(model) == ref
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 128, 96))
    assert out.shape == (2, 2048, 4, 3)


def test_official_init_when_built_without_weights():
    torch.manual_seed(0)
    model = posekit.models.build("hrnet_w16_tiny_128x96")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    w = torch.cat([m.weight.detach().flatten() for m in convs])
    assert abs(float(w.std()) - 0.001) < 0.00005 and abs(float(w.mean())) < 0.00005
    assert all(m.bias is None or torch.all(m.bias == 0) for m in convs)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_changing_width_of_an_existing_branch_uses_that_branch():
    """The official forward feeds y_list[-1] here (a crash: 16 channels into an 8->12 conv); we feed y_list[0]."""
    cfg = HRNetConfig(stage1=stage(1, "BOTTLENECK", [1], [8]), stage2=stage(1, "BASIC", [1, 1], [8, 16]),
                      stage3=stage(1, "BASIC", [1, 1, 1], [12, 16, 32]),
                      stage4=stage(1, "BASIC", [1, 1, 1, 1], [12, 16, 32, 64]), num_joints=3)
    model = PoseHighResolutionNet(cfg).eval()
    assert model.transition2[0] is not None and model.transition2[1] is None
    seen = {}
    model.stage2.register_forward_hook(lambda m, i, o: seen.update(stage2=o))  # hooks return None
    model.transition2[0].register_forward_hook(lambda m, i, o: seen.update(t20=i[0]))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 128, 96))
    assert out.shape == (1, 3, 32, 24)
    assert seen["t20"] is seen["stage2"][0]


def test_zoo_variants_and_configs():
    e = posekit.models.entry("hrnet_w32_256x256_mpii")
    assert (e.skeleton, e.input_size, e.heatmap_size) == ("mpii", (256, 256), (64, 64))
    assert posekit.models.entry("dark_hrnet_w32_256x192").codec == "dark"
    assert posekit.models.entry("udp_hrnet_w32_256x192").codec == "udp"
    for name in posekit.models.names():
        e = posekit.models.entry(name)
        if e.family in ("hrnet", "resnet"):  # the declared heatmap size is what the network outputs
            with torch.device("meta"):
                out = posekit.models.build(name)(torch.zeros(1, 3, e.input_size[1], e.input_size[0]))
            assert tuple(out.shape[2:]) == (e.heatmap_size[1], e.heatmap_size[0]), name
    with torch.device("meta"):
        mpii = posekit.models.build("hrnet_w32_256x256_mpii")
        small = posekit.models.build("hrnet_w18_small_256x192")
    assert mpii.final_layer.out_channels == 16
    assert [len(small.stage2), len(small.stage3), len(small.stage4)] == [1, 3, 2]
    assert len(small.layer1) == 2 and W18_SMALL_V2.stage4.num_channels == (18, 36, 72, 144)
    model = posekit.models.build("hrnet_w16_tiny_128x96", num_joints=4)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 128, 96)).shape == (1, 4, 32, 24)


def test_bad_configs_raise_config_error():
    with pytest.raises(ConfigError, match="NUM_BLOCKS"):
        stage(1, "BASIC", [1], [8, 16]).__class__(1, 2, "BASIC", (1,), (8, 16))
    with pytest.raises(ConfigError, match="BLOCK"):
        stage(1, "BASICS", [1], [8])
    with pytest.raises(ConfigError, match="STAGE3"):
        HRNetConfig.from_official({"STAGE2": {"BLOCK": "BASIC", "NUM_BLOCKS": [1, 1], "NUM_CHANNELS": [8, 16]}})
    with pytest.raises(ConfigError, match="unknown HRNet option"):
        build_hrnet(hrnet_config(8), num_jionts=3)
    with pytest.raises(ConfigError, match="FINAL_CONV_KERNEL"):
        build_hrnet(hrnet_config(8), final_conv_kernel=5)
