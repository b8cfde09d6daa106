"""`posekit bench inference`: a tiny run gives a JSON object whose folded/ONNX variants agree with eager."""

from __future__ import annotations

import json

import pytest

from posekit.cli import main


def test_bench_inference_json_tiny(capsys):
    argv = ["bench", "inference", "--json", "--models", "hrnet_w16_tiny_128x96", "--input-size", "96", "128",
            "--batch-sizes", "1", "2", "--iters", "1", "--warmup", "0", "--threads", "1"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    from posekit.runtime.hardware import cpu_has_native_bf16

    variants = ("torch", "folded", "folded_cl", *(("torch-bf16",) if cpu_has_native_bf16() else ()))
    rows = [r for r in result["rows"] if r["batch"] is not None]  # batch None: a backend that is not available
    assert {(r["variant"], r["batch"]) for r in rows} == {(v, b) for v in variants for b in (1, 2)}
    assert all(r["images_per_s"] > 0 for r in rows)
    assert all(r["max_rel_diff"] < 1e-4 for r in rows if r["variant"] not in ("torch", "torch-bf16"))
    assert all(r["max_rel_diff"] < 0.1 for r in rows if r["variant"] == "torch-bf16")  # 8 significant bits
    # GFLOP/s = 2 x MACs x img/s, and its fraction of the GEMM rate measured in the same run
    gemm = result["gemm_gflops"]
    assert gemm["reference"] == max(gemm["numpy"], gemm["torch"]) > 0
    for r in rows:
        assert r["gflops"] == pytest.approx(r["gflop_per_image"] * r["images_per_s"])
        assert r["gemm_fraction"] == pytest.approx(r["gflops"] / gemm["reference"])


@pytest.mark.slow
def test_bench_inference_onnx_table(capsys):
    argv = ["bench", "inference", "--models", "simplebaseline_res18_128x96", "--input-size", "96", "128",
            "--batch-sizes", "1", "--iters", "1", "--warmup", "0", "--onnx", "--ort-options", "--no-gemm"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "onnxruntime" in out and "b1 img/s" in out and "ort_plain" in out and "ort_nospin" in out
