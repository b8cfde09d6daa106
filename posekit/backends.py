"""Inference backends behind one interface: eager PyTorch, BN-folded eager, ONNX Runtime (exported once, cached).

A backend is a callable `backend(x) -> torch.Tensor`: a normalised float32 batch [N,3,h,w] in, the network's main
output (`posekit.runtime.main_output`, float32 on the input's device) out, with attributes `name` and `note`.
`create(kind, model, input_size, ...)` builds one; `kind` is

- "torch": the model as built (eval mode, no autograd);
- "folded": BatchNorm folded into the preceding conv/deconv (`posekit.models.fuse`), same numbers up to rounding;
- "onnxruntime": the model's main output exported with `posekit.export` (dynamic batch) and run on ONNX Runtime's
  CPU provider with the session options of `SESSION_OPTIONS`;
- "auto": onnxruntime when it is importable, the device is the CPU and the model exports; else folded; else torch.
  Whatever "auto" could not use is said in `backend.note`.

ONNX cache. The exported file is keyed by a SHA-256 of the model's state dict (so it changes whenever the weights
do), the model name, input size, opset, posekit and torch versions:
`<weights folder>/<weights stem>.<model>.<w>x<h>.opset<N>.<key16>.onnx`, written atomically (temp file + rename);
older files of the same stem/model/size/opset (stale weights) are removed when a new one is written. When the
weights folder is not writable (or there are no weights: random init, a model passed in), the cache is
`$XDG_CACHE_HOME/posekit/onnx/` (default ~/.cache). A cached file is re-used across runs without exporting again.

Session options (`SESSION_OPTIONS`): intra-op threads = torch's thread count (so one `--threads` / torch setting
drives both libraries), inter-op threads 1 with sequential execution (these networks are one chain of convs:
parallel execution only adds scheduling), full graph optimisation (ORT_ENABLE_ALL: conv+BN+activation fusion, NCHWc
layouts), CPU memory arena and memory pattern on, intra-op spin-waiting on (`POSEKIT_ORT_SPIN=0` turns it off).
Measured with `posekit bench inference --onnx --ort-options` (2 threads, 256x192, one run on a shared, loaded
2-core host, so indicative only), img/s at batch 1 / 8:

    model            tuned (these)   plain SessionOptions()   spinning off
    HRNet-W32        11.1 / 12.5      8.2 / 12.1               9.1 / 12.7
    SimpleBaseline   11.8 / 17.4     10.8 / 16.4              10.2 / 16.7
    LPN-50           42.7 / 52.6     20.2 / 45.3              28.8 / 44.6

(parallel execution and basic optimisation were slower in earlier runs: 36-68 % of tuned at batch 8). The tuned
options differ from onnxruntime's defaults mainly by fixing the thread counts explicitly; on a quiet machine
expect the tuned and plain columns to be close.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posekit.errors import ConfigError, PosekitError
from posekit.runtime import main_output

KINDS = ("auto", "torch", "folded", "onnxruntime")

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


class MainOutput(nn.Module):
    """`main_output(model(x))` as a module: what is exported, so an ONNX file has exactly one output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)  # a new Module starts in training mode: keep the wrapped model's mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return main_output(self.model(x))


class TorchBackend:
    """Eager PyTorch (optionally a BN-folded copy) on the model's device."""

    def __init__(self, model: nn.Module, name: str = "torch", note: str = "") -> None:
        self.model = model.eval()
        self.name = name
        self.note = note

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return main_output(self.model(x)).float()


class OnnxBackend:
    """An ONNX Runtime session of an exported model; torch tensors in and out (CPU)."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, exported: bool, note: str = "", **session_overrides: Any) -> None:
        self.path = Path(path)
        self.exported = exported  # True when this process wrote the file (False: cache hit)
        self.note = note
        self.session = ort_session(self.path, **session_overrides)
        self._input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        out = self.session.run(None, {self._input: arr})[0]
        return torch.from_numpy(out).to(x.device)


# ---------------------------------------------------------------------------------------------------------------
# ONNX cache


def state_hash(model: nn.Module) -> str:
    """SHA-256 (hex) of a model's state dict: names, dtypes, shapes and bytes of every tensor, in order."""
    h = hashlib.sha256()
    for key, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80] or "model"


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/posekit/onnx (default ~/.cache/posekit/onnx)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "posekit" / "onnx"


def writable(folder: Path) -> bool:
    """True when a file can be created in `folder` (tried, not guessed from permission bits)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".posekit-write-test.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class CacheKey:
    """What an exported file depends on."""

    model: str
    input_size: tuple[int, int]
    opset: int
    weights_hash: str
    posekit_version: str
    torch_version: str

    def digest(self) -> str:
        """16 hex digits over every field."""
        text = "|".join(str(v) for v in (self.model, self.input_size, self.opset, self.weights_hash,
                                          self.posekit_version, self.torch_version))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(key: CacheKey, weights: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """Where the ONNX file of `key` lives: next to the weights if writable, else in the user cache."""
    w, h = key.input_size
    if cache_dir is not None:
        folder, stem = Path(cache_dir), Path(weights).stem if weights else "random"
    elif weights is not None and writable(Path(weights).resolve().parent):
        folder, stem = Path(weights).resolve().parent, Path(weights).stem
    else:
        folder = user_cache_dir()
        stem = Path(weights).stem if weights else "noweights"
    return folder / f"{_slug(stem)}.{_slug(key.model)}.{w}x{h}.opset{key.opset}.{key.digest()}.onnx"


def export_cached(model: nn.Module, name: str, input_size: tuple[int, int], weights: str | Path | None = None,
                  opset: int | None = None, cache_dir: str | Path | None = None,
                  tolerance: float = 1e-3) -> tuple[Path, bool]:
    """(path, exported): the cached ONNX file of `model`'s main output, exporting it when absent.

    The export is verified against PyTorch (max abs difference <= tolerance x max |output|), written to a temp
    file and renamed; stale exports of the same weights stem / model / size / opset are removed.
    """
    import posekit
    from posekit.export import OPSET, export_onnx

    opset = int(opset or OPSET)
    key = CacheKey(name, (int(input_size[0]), int(input_size[1])), opset, state_hash(model), posekit.__version__,
                   torch.__version__)
    path = cache_path(key, weights, cache_dir)
    if path.is_file() and path.stat().st_size > 0:
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        diff, scale = export_onnx(MainOutput(model).eval(), key.input_size, tmp, dynamic_batch=True, opset=opset,
                                  return_scale=True)
        if not diff <= tolerance * max(scale, 1e-12):
            raise ConfigError(f"{name}: ONNX export differs from PyTorch by {diff:.3g} (output scale {scale:.3g})")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    prefix = path.name[: -len(f"{key.digest()}.onnx")]
    for old in path.parent.glob(f"{glob_escape(prefix)}*.onnx"):
        if old != path and re.fullmatch(re.escape(prefix) + r"[0-9a-f]{16}\.onnx", old.name):
            old.unlink(missing_ok=True)
    return path, True


def glob_escape(text: str) -> str:
    """`text` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", text)


# ---------------------------------------------------------------------------------------------------------------
# factory


def _fold(model: nn.Module) -> nn.Module:
    from posekit.models.fuse import fold_batchnorm

    return fold_batchnorm(model)


def create(kind: str, model: nn.Module, input_size: tuple[int, int], name: str = "model",
           weights: str | Path | None = None, device: str | torch.device = "cpu",
           cache_dir: str | Path | None = None, export: bool = True,
           **session_overrides: Any) -> TorchBackend | OnnxBackend:
    """The backend `kind` (see KINDS) for an eval-mode `model` on `device`; export=False keeps "auto" from
    exporting to ONNX (e.g. random weights: nothing worth caching)."""
    if kind not in KINDS:
        raise ConfigError(f"backend {kind!r}: expected one of {', '.join(KINDS)}")
    device = torch.device(device)
    model = model.to(device).eval()
    notes = []
    if kind in ("auto", "onnxruntime"):
        reason = None
        if kind == "auto" and not export:
            reason = "ONNX export not attempted (no weights file to cache it for)"
        elif device.type != "cpu":
            reason = f"onnxruntime runs on the CPU here, the device is {device}"
        elif not onnxruntime_available():
            reason = "onnxruntime is not installed"
        if reason is None:
            try:
                path, exported = export_cached(model, name, input_size, weights, cache_dir=cache_dir)
                return OnnxBackend(path, exported, **session_overrides)
            except PosekitError as e:
                reason = f"ONNX export failed: {e}"
            except Exception as e:  # noqa: BLE001 - an exporter failure (any type) means "use eager"
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                reason = f"ONNX export failed: {type(e).__name__}: {first[:300]}"
        if kind == "onnxruntime":
            raise ConfigError(f"backend 'onnxruntime' for {name}: {reason}")
        notes.append(reason)
    if kind in ("auto", "folded"):
        try:
            return TorchBackend(_fold(model).to(device), "folded", "; ".join(notes))
        except ConfigError as e:
            if kind == "folded":
                raise
            notes.append(f"BatchNorm folding failed: {e}")
    return TorchBackend(model, "torch", "; ".join(notes))
