"""ONNX export of a pose network, verified against PyTorch in onnxruntime.

`export_onnx(model, input_size, path)` exports any module; `export_weights(...)` exports a weights file with the
model spec it carries (posekit weights) or the zoo model / config a user names, refusing a mismatch; the sessions
use the tuned options of `SESSION_OPTIONS` (also the sessions of posekit.runtime.backends).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
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
    """An onnxruntime CPU InferenceSession for an exported model (the tuned SESSION_OPTIONS below)."""
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
    _check_opset_range(opset)
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
        _check_written_opset(path, opset)
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


def onnx_opset(path: str | Path) -> int:
    """The default-domain (ai.onnx) opset version an ONNX file declares."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _check_opset_range(opset: int) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or not 7 <= opset <= newest:
        raise ConfigError(f"ONNX opset {opset!r} is out of range: the installed onnx knows opsets up to {newest}; "
                          f"posekit exports {OPSET} by default (torch's exporter writes >= 18, converting down "
                          "only where it can)")


def _check_written_opset(path: Path, opset: int) -> None:
    """ConfigError (and no file left) when the exporter wrote another opset than asked (it falls back silently)."""
    got = onnx_opset(path)
    if got != opset:
        path.unlink(missing_ok=True)
        raise ConfigError(f"ONNX opset {opset} was requested but torch's exporter could only write opset {got} for "
                          f"this model (it implements >= 18 and converts down only where it can); nothing was "
                          f"written to {path}. Use --opset {got} or newer")


# Measured defaults (see the module docstring); `session_options(**overrides)` changes any of them.
SESSION_OPTIONS: dict[str, Any] = {
    "intra_op_threads": None,  # None: torch.get_num_threads()
    "inter_op_threads": 1,
    "execution_mode": "sequential",  # or "parallel"
    "graph_optimization": "all",  # disable | basic | extended | all
    "cpu_mem_arena": True,
    "mem_pattern": True,
    "spinning": None,  # None: $POSEKIT_ORT_SPIN (default on)
}


def onnxruntime_available() -> bool:
    """True when onnxruntime can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def session_options(**overrides: Any) -> Any:
    """An onnxruntime.SessionOptions with SESSION_OPTIONS (updated by `overrides`) applied."""
    import onnxruntime as ort

    cfg = {**SESSION_OPTIONS, **overrides}
    unknown = sorted(set(cfg) - set(SESSION_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown onnxruntime session option(s) {unknown}; expected {sorted(SESSION_OPTIONS)}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(cfg["intra_op_threads"] or torch.get_num_threads())
    opts.inter_op_num_threads = int(cfg["inter_op_threads"] or 1)
    modes = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL, "parallel": ort.ExecutionMode.ORT_PARALLEL}
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    try:
        opts.execution_mode = modes[cfg["execution_mode"]]
        opts.graph_optimization_level = levels[cfg["graph_optimization"]]
    except KeyError as e:
        raise ConfigError(f"onnxruntime session option value {e.args[0]!r} not in {sorted(modes) + sorted(levels)}"
                          ) from None
    opts.enable_cpu_mem_arena = bool(cfg["cpu_mem_arena"])
    opts.enable_mem_pattern = bool(cfg["mem_pattern"])
    spin = cfg["spinning"]
    if spin is None:
        spin = os.environ.get("POSEKIT_ORT_SPIN", "1") not in ("0", "false", "no")
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.log_severity_level = 3
    return opts


def ort_session(path: str | Path, **overrides: Any) -> Any:
    """An ONNX Runtime CPU InferenceSession of an .onnx file with the tuned SESSION_OPTIONS."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("onnxruntime is not installed (pip install 'posekit[export]')") from None
    return ort.InferenceSession(str(path), sess_options=session_options(**overrides),
                                providers=["CPUExecutionProvider"])
