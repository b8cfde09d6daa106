"""`posekit export`: a checkpoint -> ONNX that onnxruntime runs equal to PyTorch."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.cli import main

MODEL = "hrnet_w16_tiny_128x96"


def randomised_checkpoint(path: Path) -> torch.nn.Module:
    """Save a checkpoint of MODEL with O(1)-scale random weights and BN statistics (the official init gives
    near-zero outputs, which would make any ONNX comparison trivially pass); return the model."""
    from posekit import models

    model = models.build(MODEL)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith(("running_var", ".weight")) and t.ndim == 1:  # BN scale / variance
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif t.ndim > 1:  # conv / deconv kernels, He-scaled
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
        # scale the last layer so outputs have heatmap-like magnitudes (std 0.5): an absolute tolerance then means
        # what it means for a trained network
        x = torch.randn(2, 3, 128, 96, generator=g)
        factor = 0.5 / float(model.eval()(x).std())
        model.final_layer.weight.mul_(factor)
        model.final_layer.bias.mul_(factor)
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)
    return model.eval()


@pytest.mark.slow
def test_export_matches_pytorch(tmp_path: Path, capsys) -> None:
    import onnxruntime as ort

    model = randomised_checkpoint(tmp_path / "w.pth")
    onnx_path = tmp_path / "model.onnx"
    rc = main(["export", "--model", MODEL, "--weights", str(tmp_path / "w.pth"), "--out", str(onnx_path),
               "--dynamic-batch", "--tolerance", "1e-4"])
    out = capsys.readouterr().out
    assert rc == 0, out
    printed = float(re.search(r"max abs diff onnxruntime vs PyTorch: (\S+)", out).group(1))
    assert printed <= 1e-4
    # independent check: another batch size (dynamic axis) on inputs of image-like scale
    x = torch.randn(3, 3, 128, 96, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = model(x).numpy()
    assert 0.2 < ref.std() < 2.0  # outputs of heatmap-like scale, not trivially small
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == ref.shape == (3, 17, 32, 24)
    assert np.abs(got - ref).max() <= 1e-4


def test_export_refuses_without_weights(tmp_path: Path, capsys) -> None:
    rc = main(["export", "--model", MODEL, "--out", str(tmp_path / "m.onnx")])
    assert rc == 1
    assert "--random-weights" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_export_rejects_mismatched_checkpoint(tmp_path: Path, capsys) -> None:
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}}, tmp_path / "w.pth")
    rc = main(["export", "--model", MODEL, "--weights", str(tmp_path / "w.pth"), "--out", str(tmp_path / "m.onnx")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "checkpoint" in err and "w.pth" in err


@pytest.mark.slow
def test_export_of_the_bottom_up_ae_model_matches_pytorch(tmp_path: Path, capsys) -> None:
    """`posekit export` of the small Associative Embedding model (coordinate channels, 5-D stacked output):
    onnxruntime gives PyTorch's detection and tag maps within 1e-4 on O(1)-scale weights."""
    import onnxruntime as ort

    from posekit import models

    model = models.build("ae_hourglass_small_128")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith(("running_var", ".weight")) and t.ndim == 1:
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif t.ndim > 1:
                t.copy_(torch.randn(t.shape, generator=g) * (1.0 / t[0].numel()) ** 0.5)
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
        x = torch.rand(2, 3, 128, 128, generator=g)
        for head in model.outs:  # outputs of heatmap / tag scale (std ~1)
            head.conv.weight.mul_(1.0 / float(model.eval()(x).std()))
    torch.save({"state_dict": model.state_dict()}, tmp_path / "ae.pth")
    onnx_path = tmp_path / "ae.onnx"
    rc = main(["export", "--model", "ae_hourglass_small_128", "--weights", str(tmp_path / "ae.pth"),
               "--out", str(onnx_path), "--dynamic-batch", "--tolerance", "1e-4"])
    out = capsys.readouterr().out
    assert rc == 0, out
    x = torch.rand(3, 3, 128, 128, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    assert ref.shape == (3, 2, 34, 32, 32) and 0.3 < ref.std() < 3.0
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4


def test_export_opset_printed_is_the_files_or_refused(tmp_path: Path, capsys) -> None:
    rc = main(["export", "--model", MODEL, "--random-weights", "--out", str(tmp_path / "m7.onnx"), "--opset", "7"])
    assert rc == 1 and not (tmp_path / "m7.onnx").exists()
    assert "opset 7 was requested but" in capsys.readouterr().err
    rc = main(["export", "--model", MODEL, "--random-weights", "--out", str(tmp_path / "m.onnx"), "--opset", "99"])
    assert rc == 1 and "opset 99 is out of range" in capsys.readouterr().err
