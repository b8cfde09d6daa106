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
