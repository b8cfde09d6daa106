"""LPN against the official lpn-pytorch fixtures: keys/shapes, parameter counts, tiny and full-size outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import posekit.models
from posekit.errors import ConfigError
from posekit.models.lpn import LPN, GCBlock, lpn

DEPTHS = (50, 101, 152)


def _keys_shapes(model: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


def _assert_close(out: np.ndarray, ref: np.ndarray) -> None:
    """The fixtures' suggested tolerance: atol = 1e-5 * max|ref|, rtol = 1e-4."""
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))


@pytest.mark.parametrize("depth", DEPTHS)
def test_lpn_keys_shapes_and_params_match_manifest(reference_dir, depth):
    man = json.loads((reference_dir / f"manifests/lpn_{depth}_256x192.json").read_text())
    model = lpn(depth)
    assert _keys_shapes(model) == [(k, s) for k, s, _ in man["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == man["num_parameters"]


def test_lpn_param_counts_are_the_papers():
    expected = {50: 2_911_153, 101: 5_353_458, 152: 7_377_459}
    for depth, n in expected.items():
        assert sum(p.numel() for p in lpn(depth).parameters()) == n


def test_lpn_tiny_reproduces_official_output(reference_dir, formula_weights, tensor_digest):
    meta = json.loads((reference_dir / "models/lpn_tiny.json").read_text())
    extra = meta["MODEL"]["EXTRA"]
    model = LPN(layers=meta["layers"], num_joints=meta["MODEL"]["NUM_JOINTS"],
                deconv_filters=extra["NUM_DECONV_FILTERS"], deconv_kernels=extra["NUM_DECONV_KERNELS"],
                deconv_with_bias=extra["DECONV_WITH_BIAS"], final_conv_kernel=extra["FINAL_CONV_KERNEL"]).eval()
    assert _keys_shapes(model) == [(k, s) for k, s, _ in meta["state_dict"]]
    shipped = torch.load(reference_dir / "models/lpn_tiny.pt")
    regenerated = formula_weights(model)
    for key, t in shipped.items():
        assert torch.equal(regenerated[key], t), key
        assert tensor_digest(t) == meta["state_dict_sha256_16"][key], key
    model.load_state_dict(shipped, strict=True)
    io = np.load(reference_dir / "models/lpn_tiny.npz")
    with torch.no_grad():
        out = model(torch.from_numpy(io["input"])).numpy()
    assert out.shape == tuple(meta["output_shape"])
    _assert_close(out, io["output"])


@pytest.mark.parametrize("depth", DEPTHS)
def test_lpn_full_size_outputs_match_official(reference_dir, formula_weights, depth):
    x = torch.from_numpy(np.load(reference_dir / "models/input_full_1x3x256x192.npz")["input"])
    ref = np.load(reference_dir / "models/lpn_full_outputs_formula_weights.npz")[f"lpn_{depth}_256x192"]
    model = lpn(depth).eval()
    model.load_state_dict(formula_weights(model), strict=True)
    with torch.no_grad():
        out = model(x).numpy()
    _assert_close(out, ref)


def test_gc_block_is_attention_pooled_channel_add():
    torch.manual_seed(0)
    block = GCBlock(8, 16).eval()
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(2, 8, 5, 4)
    # closed form: context_c = sum_p softmax_p(w.x_p + b) x_{c,p}; out = x + MLP(context)
    logits = torch.einsum("c,nchw->nhw", block.conv_mask.weight[0, :, 0, 0], x) + block.conv_mask.bias
    attn = torch.softmax(logits.flatten(1), dim=1)
    context = torch.einsum("ncp,np->nc", x.flatten(2), attn)[:, :, None, None]
    with torch.no_grad():
        expected = x + block.channel_add_conv(context)
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-6)


def test_lpn_official_training_init():
    model = lpn(50)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.std().item() - 0.001) < 1e-4
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert model.layer1[0].att.conv_mask.bias.item() == 0.0  # the GC block's own init keeps biases at 0


def test_lpn_layer4_keeps_stride_and_head_doubles_twice():
    model = lpn(50).eval()
    feats = {}

    def keep(module, inputs, output):
        feats["l4"] = tuple(output.shape)

    model.layer4.register_forward_hook(keep)
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 256, 192))
    assert feats["l4"] == (1, 512, 16, 12)  # output stride 16
    assert out.shape == (1, 17, 64, 48)


def test_lpn_zoo_entries_build_with_overrides():
    for depth in DEPTHS:
        name = f"lpn_{depth}_256x192"
        e = posekit.models.entry(name)
        assert (e.input_size, e.heatmap_size, e.codec, e.skeleton) == ((192, 256), (48, 64), "beta_soft_argmax", "coco")
        assert e.codec_cfg["beta"] == 160.0
    model = posekit.models.build("lpn_50_256x192", num_joints=14)
    assert not model.training
    assert model.final_layer.out_channels == 14


def test_lpn_bad_config_raises():
    with pytest.raises(ConfigError, match="depth"):
        lpn(34)
    with pytest.raises(ConfigError, match="layers"):
        LPN(layers=[1, 1, 1])


def test_lpn_info_matches_official_complexity(reference_dir):
    man = json.loads((reference_dir / "manifests/lpn_50_256x192.json").read_text())
    info = posekit.models.info("lpn_50_256x192")
    assert info["params"] == man["num_parameters"]
    assert info["gmacs"] == pytest.approx(man["flops"]["GMACs"], rel=1e-6)
    assert info["paper_gflops"] == pytest.approx(man["official_get_model_summary"]["reported_GFLOPs"], rel=1e-6)
