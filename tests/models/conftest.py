"""Model-test helpers: the reference fixtures' deterministic weight formula and tensor digests."""

from __future__ import annotations

import hashlib
import zlib

import numpy as np
import pytest
import torch


def formula_tensor(key: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """The RNG-free weight of one state_dict entry, as defined in ../shared/reference/INDEX.md."""
    numel = int(np.prod(shape)) if shape else 1
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    seed = np.uint64(zlib.crc32(key.encode("utf-8")))
    mask = np.uint64(0xFFFFFFFF)
    h = (np.arange(numel, dtype=np.uint64) * np.uint64(2654435761) + seed) & mask
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & mask
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & mask
    h ^= h >> np.uint64(16)
    u = h.astype(np.float64) / 2.0**32
    if key.endswith("running_var"):
        v = 0.5 + u
    elif key.endswith("running_mean"):
        v = (u - 0.5) * 0.2
    elif len(shape) >= 2:
        v = (2 * u - 1) * np.sqrt(3.0 / (numel // shape[0]))
    elif len(shape) == 1 and key.endswith("weight"):
        v = 0.75 + 0.5 * u
    else:
        v = (u - 0.5) * 0.2
    return torch.from_numpy(v.reshape(shape).astype(np.float32))


def formula_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Formula weights for every entry of the model's state_dict."""
    return {k: formula_tensor(k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


def sha256_16(t: torch.Tensor) -> str:
    """First 16 hex digits of sha256 of the tensor's C-order little-endian bytes (float32 / int64)."""
    arr = t.detach().cpu().contiguous().numpy()
    arr = arr.astype("<f4") if arr.dtype.kind == "f" else arr.astype("<i8")
    return hashlib.sha256(arr.tobytes()).hexdigest()[:16]


@pytest.fixture(scope="session")
def formula_weights():
    """Function model -> formula state_dict (see ../shared/reference/INDEX.md)."""
    return formula_state_dict


@pytest.fixture(scope="session")
def tensor_digest():
    """Function tensor -> the fixtures' `state_dict_sha256_16` digest."""
    return sha256_16
