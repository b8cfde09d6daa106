"""ONNX export verified in onnxruntime against PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posekit.export import export_onnx, onnx_session, run_onnx
from posekit.models.hrnet import HRNetConfig, PoseHighResolutionNet


@pytest.mark.slow  # torch.onnx.export (dynamo) takes 10-50 s on 2 shared cores
def test_tiny_hrnet_exports_with_dynamic_batch(reference_dir, tmp_path):
    meta = json.loads((reference_dir / "models/pose_hrnet_tiny.json").read_text())
    model = PoseHighResolutionNet(HRNetConfig.from_official(meta["MODEL"]["EXTRA"], meta["MODEL"]["NUM_JOINTS"]))
    model.load_state_dict(torch.load(reference_dir / "models/pose_hrnet_tiny.pt", weights_only=True))
    model.train()  # export must use eval mode and give the mode back
    path = tmp_path / "tiny.onnx"
    diff = export_onnx(model, (96, 128), path, dynamic_batch=True)
    assert model.training and path.is_file()
    assert diff < 1e-4
    io = np.load(reference_dir / "models/pose_hrnet_tiny.npz")  # [2,3,128,96] -> official output
    out = run_onnx(onnx_session(path), io["input"])[0]
    ref = io["output"]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))


def test_opset_is_honoured_or_refused(tmp_path):
    """The exporter falls back to opset 18 when it cannot convert: that must be an error, never a wrong claim."""
    pytest.importorskip("onnx")
    from posekit.errors import ConfigError
    from posekit.export import onnx_opset

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Upsample(scale_factor=2))
    path = tmp_path / "m.onnx"
    export_onnx(model, (16, 16), path, opset=20)
    assert onnx_opset(path) == 20
    with pytest.raises(ConfigError, match=r"opset 7 was requested but .* could only write opset 18"):
        export_onnx(model, (16, 16), tmp_path / "seven.onnx", opset=7)
    assert not (tmp_path / "seven.onnx").exists()
    with pytest.raises(ConfigError, match=r"opset 99 is out of range"):
        export_onnx(model, (16, 16), tmp_path / "many.onnx", opset=99)
