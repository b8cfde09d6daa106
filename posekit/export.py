"""ONNX export of a pose network, verified against PyTorch in onnxruntime.

`export_onnx(model, input_size, path)` exports any module; `export_weights(...)` exports a weights file with the
model spec it carries (posekit weights) or the zoo model / config a user names, refusing a mismatch; the sessions
use the tuned options of `posekit.backends.SESSION_OPTIONS`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree

from posekit.errors import ConfigError

OPSET = 18


def _flat_outputs(out: Any) -> list[np.ndarray]:
    """The tensors of a model output (tensor, tuple, list or dict) as numpy arrays, in ONNX output order."""
    leaves, _ = _pytree.tree_flatten(out)
    return [t.detach().cpu().numpy() for t in leaves if isinstance(t, torch.Tensor)]


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU InferenceSession for an exported model (posekit.backends' tuned session options)."""
    from posekit.backends import ort_session

    return ort_session(path, intra_op_threads=threads)


def add_metadata(path: str | Path, props: dict[str, str]) -> None:
    """Set metadata_props (key -> string) of an ONNX file in place."""
    import onnx

    m = onnx.load(str(path))
    existing = {p.key: p for p in m.metadata_props}
    for k, v in props.items():
        if k in existing:
            existing[k].value = str(v)
        else:
            entry = m.metadata_props.add()
            entry.key, entry.value = k, str(v)
    onnx.save(m, str(path))


def run_onnx(session: Any, x: np.ndarray) -> list[np.ndarray]:
    """Run an onnxruntime session on one float32 input batch."""
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})


def export_onnx(model: nn.Module, input_size: tuple[int, int], path: str | Path, dynamic_batch: bool = False,
                opset: int = OPSET, return_scale: bool = False) -> float | tuple[float, float]:
    """Export `model` (eval mode, input [N,3,h,w] with input_size=(w,h)) to ONNX at `path`; returns the max abs
    difference between onnxruntime and PyTorch outputs on a random input (batch 2 if dynamic_batch else 1), and
    with return_scale also the max |PyTorch output|."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    w, h = input_size
    try:
        # a batch-1 example lets torch.export specialise the batch to 1 in some graphs (PRTR's attention)
        example = torch.randn(2 if dynamic_batch else 1, 3, h, w, generator=torch.Generator().manual_seed(0))
        dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
        # The exporter reports progress on stdout/stderr and warns about opset conversions: library code is quiet.
        onnx_log = logging.getLogger("torch.onnx")
        level = onnx_log.level
        onnx_log.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (example,), str(path), input_names=["input"], opset_version=opset,
                                  dynamic_shapes=dynamic_shapes, external_data=False, dynamo=True)
        finally:
            onnx_log.setLevel(level)
        check = torch.randn(2 if dynamic_batch else 1, 3, h, w, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            ref = _flat_outputs(model(check))
        got = run_onnx(onnx_session(path), check.numpy())
    finally:
        model.train(was_training)
    if len(got) != len(ref):
        raise ConfigError(f"{path}: ONNX model has {len(got)} outputs, PyTorch {len(ref)}")
    diffs = []
    for a, b in zip(got, ref, strict=True):
        if a.shape != b.shape:
            raise ConfigError(f"{path}: ONNX output shape {a.shape} != PyTorch {b.shape}")
        diffs.append(float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0)
    if return_scale:
        return max(diffs), max((float(np.abs(b).max()) for b in ref if b.size), default=0.0)
    return max(diffs)
