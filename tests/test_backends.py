"""Inference backends: same keypoints as eager PyTorch on the same crops; the ONNX export cache.

Truth: the eager PyTorch model (the reference implementation of every zoo network, fixture-tested in
tests/models). Weights are seeded random values with non-trivial BatchNorm statistics (posekit.bench.inference's
`randomise`), so heatmaps are O(1) and a backend that computed anything else would move the decoded keypoints by
whole heatmap pixels (4 input px). Measured max keypoint difference to eager (crop input px, 8 crops, flip on):
msra models (hrnet_w16_tiny, res18) 0.0 px for folded and onnxruntime (argmax decoding is discrete; scores within
7e-7); LPN-50 (continuous beta soft-argmax) 6.1e-5 px folded, 4.6e-5 px onnxruntime. The test allows 1e-3 px.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit import backends, models
from posekit.bench.inference import randomise
from posekit.errors import ConfigError
from posekit.inference import PoseEstimator

KP_TOL = 1e-3  # crop input px
MODELS = ["hrnet_w16_tiny_128x96",
          pytest.param("simplebaseline_res18_128x96", marks=pytest.mark.slow),
          pytest.param("lpn_50_256x192", marks=pytest.mark.slow)]


def save_random_weights(name: str, path: Path, seed: int = 0) -> torch.nn.Module:
    """A zoo model with seeded O(1) weights saved as an official-style checkpoint; returns the model."""
    model = models.build(name).eval()
    randomise(model, seed)
    torch.save({"state_dict": model.state_dict()}, path)
    return model


def crops_for(name: str, n: int = 5, seed: int = 1) -> np.ndarray:
    """Smooth random uint8 crops [n,h,w,3] at the model's input size (blurred noise: image-like statistics)."""
    import cv2

    w, h = models.entry(name).input_size
    rng = np.random.default_rng(seed)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        noise = rng.integers(0, 256, (h // 4, w // 4, 3)).astype(np.uint8)
        out[i] = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return out


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("weights")


@pytest.mark.parametrize("name", MODELS)
def test_every_backend_gives_eager_keypoints(name: str, weights_dir: Path) -> None:
    path = weights_dir / f"{name}.pth"
    save_random_weights(name, path)
    crops = crops_for(name)
    ref = PoseEstimator(name, weights=path, backend="torch", batch_size=3)
    kp_ref, sc_ref = ref.predict_crops(crops)
    assert ref.backend.name == "torch" and np.abs(sc_ref).max() > 0.05  # non-trivial outputs (LPN scores are small)
    for kind in ("folded", "onnxruntime", "auto"):
        est = PoseEstimator(name, weights=path, backend=kind, batch_size=3)
        assert est.backend.name == {"auto": "onnxruntime"}.get(kind, kind)
        if kind == "auto":  # the export made for "onnxruntime" just before is re-used
            assert not est.backend.exported
        kp, sc = est.predict_crops(crops)
        diff = float(np.abs(kp - kp_ref).max())
        assert diff <= KP_TOL, (kind, diff)
        np.testing.assert_allclose(sc, sc_ref, atol=1e-4)
        # flip off: the same agreement without the mirrored half of the batch
        est.flip_test = ref.flip_test = False
        assert np.abs(est.predict_crops(crops)[0] - ref.predict_crops(crops)[0]).max() <= KP_TOL
        ref.flip_test = True


def test_flip_in_one_batch_equals_two_forwards() -> None:
    """The mirrored crops as the second half of one batch give the official two-forward average."""
    from posekit import codecs
    from posekit.runtime import forward_flip, torch_runner

    name = "simplebaseline_res18_128x96"
    model = models.build(name).eval()
    randomise(model)
    e = models.entry(name)
    codec = codecs.build(e.codec, input_size=e.input_size, heatmap_size=e.heatmap_size, num_keypoints=17)
    x = torch.randn(3, 3, 128, 96, generator=torch.Generator().manual_seed(0))
    flip_index = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])
    with torch.no_grad():
        official = (model(x) + codec.flip_back(model(torch.flip(x, dims=(3,))), flip_index)) * 0.5
    got = forward_flip(torch_runner(model), x, codec, flip_index)
    assert float((got - official).abs().max()) <= 1e-5 * float(official.abs().max())


class Tiny(torch.nn.Module):
    """conv + BN + ReLU + conv: exports in about a second."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                       torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_onnx_cache_reused_and_invalidated(tmp_path: Path, monkeypatch) -> None:
    import posekit.export as export_mod

    calls = []
    original = export_mod.export_onnx

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(export_mod, "export_onnx", counting)
    model = Tiny().eval()
    weights = tmp_path / "w.pth"
    torch.save(model.state_dict(), weights)
    path, exported = backends.export_cached(model, "tiny", (16, 24), weights)
    assert exported and path.parent == tmp_path and len(calls) == 1  # cached next to the weights
    stamp = path.stat().st_mtime_ns
    # another run (a fresh model with the same weights): the file is re-used, nothing exported
    again = Tiny().eval()
    again.load_state_dict(torch.load(weights, weights_only=True))
    assert backends.export_cached(again, "tiny", (16, 24), weights) == (path, False)
    assert len(calls) == 1 and path.stat().st_mtime_ns == stamp
    b = backends.create("onnxruntime", again, (16, 24), name="tiny", weights=weights)
    assert not b.exported and b.path == path and len(calls) == 1
    x = torch.randn(3, 3, 24, 16)
    np.testing.assert_allclose(b(x).numpy(), again(x).detach().numpy(), atol=1e-5)
    # another input size or opset: another file; the weights' file is kept
    other, exported = backends.export_cached(again, "tiny", (24, 32), weights)
    assert exported and other != path and path.exists()
    # changed weights (same file name): a new key, one export, the stale file of that size removed
    with torch.no_grad():
        again.net[1].running_mean.add_(0.5)
    torch.save(again.state_dict(), weights)
    new, exported = backends.export_cached(again, "tiny", (16, 24), weights)
    assert exported and new != path and not path.exists() and other.exists()
    # a read-only weights folder: the cache goes to $XDG_CACHE_HOME/posekit/onnx
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(backends, "writable", lambda folder: Path(folder) != tmp_path.resolve())
    ro, exported = backends.export_cached(again, "tiny", (16, 24), weights)
    assert exported and ro.parent == tmp_path / "xdg" / "posekit" / "onnx"
    assert backends.export_cached(again, "tiny", (16, 24), weights) == (ro, False)


def test_auto_falls_back_when_the_model_does_not_export(tmp_path: Path) -> None:
    class NumpyInside(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 17, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(torch.nn.functional.avg_pool2d(x, 4))
            if float(y.mean()) > 1e9:  # data-dependent Python control flow: neither exportable nor fx-traceable
                y = y * 2
            return y

    b = backends.create("auto", NumpyInside(), (96, 128), name="numpy_inside", cache_dir=tmp_path)
    assert b.name in ("folded", "torch") and "ONNX export failed" in b.note
    with pytest.raises(ConfigError, match="onnxruntime"):
        backends.create("onnxruntime", NumpyInside(), (96, 128), name="numpy_inside", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="backend"):
        backends.create("tensorrt", NumpyInside(), (96, 128))


def test_random_weights_auto_does_not_export() -> None:
    est = PoseEstimator("simplebaseline_res18_128x96")
    assert est.backend.name == "folded" and "no weights file" in est.backend.note


def test_session_options_are_applied(monkeypatch) -> None:
    import onnxruntime as ort

    opts = backends.session_options(intra_op_threads=3, execution_mode="parallel", graph_optimization="basic",
                                    cpu_mem_arena=False, spinning=False)
    assert opts.intra_op_num_threads == 3 and opts.inter_op_num_threads == 1
    assert opts.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert not opts.enable_cpu_mem_arena
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    default = backends.session_options()
    assert default.intra_op_num_threads == torch.get_num_threads()
    assert default.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert default.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    monkeypatch.setenv("POSEKIT_ORT_SPIN", "0")
    assert backends.session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(ConfigError, match="unknown onnxruntime session option"):
        backends.session_options(threads=2)


def test_state_hash_follows_every_tensor() -> None:
    a = models.build("hrnet_w16_tiny_128x96")
    h0 = backends.state_hash(a)
    assert backends.state_hash(a) == h0
    with torch.no_grad():
        next(iter(a.buffers())).add_(1e-3)
    assert backends.state_hash(a) != h0
    assert os.path.basename(str(backends.user_cache_dir())) == "onnx"
