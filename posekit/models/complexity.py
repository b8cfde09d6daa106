"""Model complexity measured on the model: parameters, GMACs (FlopCounterMode) and the papers' "GFLOPs"."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def _dummy_input(model: nn.Module, input_size: tuple[int, int]) -> torch.Tensor:
    """A zero batch of one [1, 3, h, w] on the model's device and dtype; input_size is (w, h)."""
    p = next(model.parameters(), None)
    kw: dict[str, Any] = {} if p is None else {"device": p.device, "dtype": p.dtype}
    w, h = input_size
    return torch.zeros(1, 3, h, w, **kw)


def count_macs(model: nn.Module, input_size: tuple[int, int]) -> int:
    """Multiply-accumulates of one forward at batch 1: FlopCounterMode total (conv/mm/bmm/attention) / 2."""
    return _count(model, input_size)[0]


def count_paper_gflops(model: nn.Module, input_size: tuple[int, int]) -> float:
    """The official `get_model_summary` number: sum over conv/deconv/linear leaves of weight numel x output
    spatial size (Linear: output numel x in_features), / 1024**3. Deconvs count stride**2 times their MACs."""
    return _count(model, input_size)[1]


def _count(model: nn.Module, input_size: tuple[int, int]) -> tuple[int, float]:
    """(MACs by FlopCounterMode, official-counter GFLOPs) from one batch-1 forward."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += output.numel() * module.in_features
        else:
            total += module.weight.numel() * output.shape[2:].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, COUNTED)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(_dummy_input(model, input_size))
    finally:
        for h in handles:
            h.remove()
    return counter.get_total_flops() // 2, total / 1024**3


def _on_meta(model: nn.Module) -> nn.Module | None:
    """A shape-only (meta device) eval copy of the model, or None when it cannot be made."""
    try:
        return copy.deepcopy(model).to("meta").eval()
    except (RuntimeError, NotImplementedError, TypeError):
        return None


def measure(model: nn.Module, input_size: tuple[int, int]) -> dict[str, Any]:
    """params, params_m, gmacs (true MACs / 1e9) and paper_gflops (official counter) at batch 1, input (w, h).

    Counting runs on a meta-device copy (shapes only, no arithmetic) and falls back to the model itself.
    """
    params = count_params(model)
    meta = None if next(model.parameters(), torch.empty(0)).is_meta else _on_meta(model)
    for net in ([meta] if meta is not None else []) + [model]:
        was_training = net.training
        net.eval()
        try:
            macs, paper = _count(net, input_size)
            break
        except (RuntimeError, NotImplementedError):
            if net is model:
                raise
        finally:
            net.train(was_training)
    return {"params": params, "params_m": params / 1e6, "gmacs": macs / 1e9, "paper_gflops": paper}
