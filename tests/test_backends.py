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

from posekit import models
from posekit.bench.common import randomise
from posekit.errors import ConfigError
from posekit.export import session_options
from posekit.inference import PoseEstimator
from posekit.runtime import backends

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
    from posekit.runtime.topdown import forward_flip, torch_runner

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
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = tmp_path / "xdg" / "posekit" / "onnx"
    model = Tiny().eval()
    weights = tmp_path / "w.pth"
    torch.save(model.state_dict(), weights)
    path, exported = backends.export_cached(model, "tiny", (16, 24), weights)
    assert exported and path.parent == cache and len(calls) == 1  # in the user cache, not next to the weights
    assert not list(tmp_path.glob("*.onnx"))
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
    # weights of the same name in another folder (another run's model_best.pth): their own files, none evicted
    (tmp_path / "run2").mkdir()
    torch.save(again.state_dict(), tmp_path / "run2" / "w.pth")
    twin, exported = backends.export_cached(again, "tiny", (16, 24), tmp_path / "run2" / "w.pth")
    assert exported and twin != new and new.exists() and twin.parent == cache
    # --cache-dir / cache_dir: there instead
    mine, exported = backends.export_cached(again, "tiny", (16, 24), weights, cache_dir=tmp_path / "mine")
    assert exported and mine.parent == tmp_path / "mine"


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

    opts = session_options(intra_op_threads=3, execution_mode="parallel", graph_optimization="basic",
                                    cpu_mem_arena=False, spinning=False)
    assert opts.intra_op_num_threads == 3 and opts.inter_op_num_threads == 1
    assert opts.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert not opts.enable_cpu_mem_arena
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    default = session_options()
    assert default.intra_op_num_threads == torch.get_num_threads()
    assert default.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert default.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    monkeypatch.setenv("POSEKIT_ORT_SPIN", "0")
    assert session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(ConfigError, match="unknown onnxruntime session option"):
        session_options(threads=2)


def test_state_hash_follows_every_tensor() -> None:
    a = models.build("hrnet_w16_tiny_128x96")
    h0 = backends.state_hash(a)
    assert backends.state_hash(a) == h0
    with torch.no_grad():
        next(iter(a.buffers())).add_(1e-3)
    assert backends.state_hash(a) != h0
    assert os.path.basename(str(backends.user_cache_dir())) == "onnx"


# ---------------------------------------------------------------------------------------------------------------
# onnxruntime-int8
#
# Truth: the fp32 ONNX session of the same export (itself equal to eager, above). int8 changes the numbers by
# design, so the checks are (a) heatmap correlation per crop and joint (measured on these seeded crops: mean 0.9964,
# min 0.9929 for hrnet_w16_tiny; the test allows mean >= 0.99, min >= 0.98), and (b) decoded keypoints where the
# fp32 heatmap decides them: when the fp32 peak exceeds every value outside its 3x3 neighbourhood by more than twice
# the largest int8 error on that heatmap, the int8 argmax must lie in that neighbourhood (<= sqrt(2) heatmap px
# away), and the msra quarter-pixel refinement adds <= 0.25 sqrt(2) on each side: <= 1.5 sqrt(2) heatmap px in all
# (8.5 input px at stride 4; 12.5 % of these joints are decided that strictly). Random weights give flat heatmaps
# with near-ties (10-12 % of joints jump by up to 150 px), so over all joints only the median move (0 measured) and
# the share within 1.5 heatmap px (measured 88 %, allowed >= 75 %) are checked; trained weights (the demo model)
# move keypoints by 0.17 image px on average (see posekit.backends).


def _decided(heat: np.ndarray, err: np.ndarray) -> np.ndarray:
    """[N,K] mask: fp32 peak above everything outside its 3x3 neighbourhood by more than 2 x err[N,K]."""
    n, k, h, w = heat.shape
    flat = heat.reshape(n, k, -1)
    peak = flat.argmax(-1)
    py, px = np.divmod(peak, w)
    yy, xx = np.mgrid[0:h, 0:w]
    far = (np.abs(yy[None, None] - py[..., None, None]) > 1) | (np.abs(xx[None, None] - px[..., None, None]) > 1)
    outside = np.where(far, heat, -np.inf).reshape(n, k, -1).max(-1)
    return flat.max(-1) - outside > 2 * err


def _reference_and(weights_dir: Path, name: str, reference: str, backend: str,
                   **kwargs) -> tuple[PoseEstimator, PoseEstimator, np.ndarray]:
    """Two estimators (fp32 `reference`, `backend`) on the same seeded random weights, and 8 crops to compare on."""
    path = weights_dir / f"{name}-{backend}.pth"
    save_random_weights(name, path)
    return (PoseEstimator(name, weights=path, backend=reference, batch_size=8),
            PoseEstimator(name, weights=path, backend=backend, batch_size=8, **kwargs), crops_for(name, 8))


def test_int8_keypoints_close_to_fp32(weights_dir: Path) -> None:
    name = "hrnet_w16_tiny_128x96"
    fp, q, crops = _reference_and(weights_dir, name, "onnxruntime", backends.INT8,
                                  calibration=crops_for(name, 16, seed=7))  # calibrated on other crops than compared
    assert q.backend.name == backends.INT8 and q.backend.path.name.endswith(".onnx")
    x = fp.network_inputs(crops)
    hf, hq = fp.backend(x).numpy(), q.backend(x).numpy()
    n, k = hf.shape[:2]
    f, g = hf.reshape(n, k, -1), hq.reshape(n, k, -1)
    fc, gc = f - f.mean(-1, keepdims=True), g - g.mean(-1, keepdims=True)
    corr = (fc * gc).sum(-1) / np.sqrt((fc**2).sum(-1) * (gc**2).sum(-1))
    assert corr.mean() >= 0.99 and corr.min() >= 0.98, (corr.mean(), corr.min())
    assert np.abs(hf - hq).max() > 1e-4  # it is really another (quantised) computation
    # flip test off: the network outputs above decode to these keypoints directly
    fp.flip_test = q.flip_test = False
    kf, _ = fp.predict_crops(crops)
    kq, _ = q.predict_crops(crops)
    stride = fp.input_size[0] / fp.heatmap_size[0]
    hf1, hq1 = fp.backend(fp.network_inputs(crops)).numpy(), q.backend(q.network_inputs(crops)).numpy()
    decided = _decided(hf1, np.abs(hf1 - hq1).reshape(len(crops), k, -1).max(-1))
    assert decided.mean() >= 0.1, decided.mean()  # enough joints are compared (measured 12.5 %: flat heatmaps)
    moved = np.linalg.norm(kf - kq, axis=-1)
    assert moved[decided].max() <= 1.5 * np.sqrt(2) * stride, moved[decided].max()
    # all joints: most argmaxes stay (measured: median move 0, 88 % within 1.5 heatmap px on 16 crops)
    assert np.median(moved) <= 0.5 * stride and (moved <= 1.5 * stride).mean() >= 0.75, moved


def test_int8_cache_reused_and_invalidated(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # a cache of this test's own
    calls = []
    original = backends._quantize

    def counting(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(backends, "_quantize", counting)
    model = Tiny().eval()
    weights = tmp_path / "w.pth"
    torch.save(model.state_dict(), weights)
    gen = torch.Generator().manual_seed(0)
    calib = torch.randn(6, 3, 24, 16, generator=gen)
    b = backends.create(backends.INT8, model, (16, 24), name="tiny", weights=weights, calibration=calib)
    assert b.quantized and b.path.parent == b.fp32_path.parent == tmp_path / "xdg" / "posekit" / "onnx"
    assert len(calls) == 1  # beside the fp32 file, in the cache
    assert b.path.name.startswith(b.fp32_path.stem + ".int8.")
    x = torch.randn(3, 3, 24, 16, generator=gen)
    ref = model(x).detach()
    # int8 of a tiny net on other inputs than calibrated on: measured 10 % of the output's max |value|
    assert float((b(x) - ref).abs().max()) <= 0.2 * float(ref.abs().max())
    # another run, a fresh model with the same weights and calibration: re-used, nothing quantised
    again = Tiny().eval()
    again.load_state_dict(torch.load(weights, weights_only=True))
    b2 = backends.create(backends.INT8, again, (16, 24), name="tiny", weights=weights, calibration=calib.clone())
    assert not b2.quantized and not b2.exported and b2.path == b.path and len(calls) == 1
    # no calibration data: the first batch run calibrates; the same data as before -> the same cached file
    lazy = backends.create(backends.INT8, again, (16, 24), name="tiny", weights=weights)
    assert lazy.path is None
    np.testing.assert_array_equal(lazy(calib).numpy(), b2(calib).numpy())
    assert lazy.path == b.path and not lazy.quantized and len(calls) == 1
    # other calibration data: another file, quantised once; the first is kept
    b3 = backends.create(backends.INT8, again, (16, 24), name="tiny", weights=weights, calibration=calib[:3])
    assert b3.quantized and b3.path != b.path and b.path.exists() and len(calls) == 2
    # other settings: another file
    b4 = backends.create(backends.INT8, again, (16, 24), name="tiny", weights=weights, calibration=calib,
                         int8_settings={"activations": "int8"})
    assert b4.quantized and b4.path not in (b.path, b3.path) and len(calls) == 3
    # changed weights: a new fp32 export and int8 file; the int8 files of the stale export are removed
    with torch.no_grad():
        again.net[0].weight.mul_(1.5)
    torch.save(again.state_dict(), weights)
    b5 = backends.create(backends.INT8, again, (16, 24), name="tiny", weights=weights, calibration=calib)
    assert b5.quantized and b5.exported and len(calls) == 4
    assert not b.path.exists() and not b3.path.exists() and not b4.path.exists() and b5.path.exists()
    assert sorted(p.name for p in b5.path.parent.glob("*.onnx")) == sorted([b5.fp32_path.name, b5.path.name])


def test_auto_never_picks_int8(tmp_path: Path) -> None:
    model = Tiny().eval()
    weights = tmp_path / "w.pth"
    torch.save(model.state_dict(), weights)
    q = backends.create(backends.INT8, model, (16, 24), name="tiny", weights=weights,
                        calibration=torch.randn(4, 3, 24, 16))
    assert q.path.exists()  # even with an int8 file in the cache
    auto = backends.create("auto", model, (16, 24), name="tiny", weights=weights)
    assert auto.name == "onnxruntime" and auto.path == q.fp32_path
    assert backends.INT8 in backends.KINDS


def test_int8_calibration_api(weights_dir: Path) -> None:
    name = "hrnet_w16_tiny_128x96"
    path = weights_dir / f"{name}-calib.pth"
    save_random_weights(name, path)
    crops = crops_for(name, 4, seed=3)
    # calibration given as uint8 crops == the lazy default (the first network batch: these crops and their mirrors)
    given = PoseEstimator(name, weights=path, backend=backends.INT8, batch_size=4, calibration=crops)
    lazy = PoseEstimator(name, weights=path, backend=backends.INT8, batch_size=4)
    assert lazy.backend.path is None
    kp_lazy, _ = lazy.predict_crops(crops)
    assert lazy.backend.path == given.backend.path and not lazy.backend.quantized
    np.testing.assert_array_equal(kp_lazy, given.predict_crops(crops)[0])
    with pytest.raises(ConfigError, match="calibration"):
        PoseEstimator(name, weights=path, backend="onnxruntime", calibration=crops)
    with pytest.raises(ConfigError, match=r"calibration batch 0: expected normalised float crops \[N,3,128,96\]"):
        backends.calibration_batches(torch.zeros(2, 3, 64, 48), (96, 128))
    with pytest.raises(ConfigError, match="empty"):
        backends.calibration_batches([], (96, 128))


def test_int8_without_quantization_module_is_a_clear_error(monkeypatch) -> None:
    import sys

    from posekit.errors import PosekitError

    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)  # import fails as if not installed
    assert not backends.quantization_available()
    with pytest.raises(PosekitError, match=r"onnxruntime-int8.*onnxruntime\.quantization"):
        backends.create(backends.INT8, Tiny().eval(), (16, 24), name="tiny", calibration=torch.randn(2, 3, 24, 16))


needs_bf16 = pytest.mark.skipif(not __import__("posekit.runtime.hardware", fromlist=["x"]).cpu_has_native_bf16(),
                                reason="this CPU has no native bfloat16 (AVX512-BF16 / AMX): torch-bf16 is refused")


@needs_bf16
def test_bf16_heatmaps_and_keypoints_close_to_fp32(weights_dir: Path) -> None:
    fp, bf, crops = _reference_and(weights_dir, "hrnet_w16_tiny_128x96", "torch", backends.BF16)
    assert bf.backend.name == backends.BF16 and not bf.backend.note  # folded
    fp.flip_test = bf.flip_test = False  # the network outputs below then decode to the keypoints directly
    x = fp.network_inputs(crops)
    hf, hb = fp.backend(x).numpy(), bf.backend(x).numpy()
    assert hb.dtype == np.float32 and hb.shape == hf.shape
    rel = np.abs(hf - hb).max() / np.abs(hf).max()
    assert 1e-4 < rel < 0.1, rel  # really bfloat16 (8 significant bits), yet the same heatmaps
    n, k = hf.shape[:2]
    f, g = hf.reshape(n, k, -1), hb.reshape(n, k, -1)
    fc, gc = f - f.mean(-1, keepdims=True), g - g.mean(-1, keepdims=True)
    corr = (fc * gc).sum(-1) / np.sqrt((fc**2).sum(-1) * (gc**2).sum(-1))
    assert corr.min() >= 0.999, corr.min()
    kf, _ = fp.predict_crops(crops)
    kb, _ = bf.predict_crops(crops)
    decided = _decided(hf, np.abs(hf - hb).reshape(n, k, -1).max(-1))
    assert decided.mean() >= 0.1, decided.mean()
    stride = fp.input_size[0] / fp.heatmap_size[0]
    moved = np.abs(kf - kb)[decided]  # a clear peak stays; only the quarter-pixel step may turn (0.5 heatmap px)
    assert moved.max() <= 0.5 * stride + 1e-6 and np.median(moved) <= 1e-6, moved.max()


def test_bf16_refused_without_native_bf16(monkeypatch) -> None:
    from posekit.runtime import hardware

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    model = models.build("hrnet_w16_tiny_128x96").eval()
    with pytest.raises(ConfigError, match="no native bfloat16"):
        backends.create(backends.BF16, model, (96, 128))
