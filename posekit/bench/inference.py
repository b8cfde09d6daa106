"""`posekit bench inference`: CPU images/s of zoo models at batch 1 and 8, eager vs BN-folded vs onnxruntime.

Variants: `eager` (the model as built), `folded` (BatchNorm folded into convs via torch.fx), `folded_cl` (folded,
channels_last memory format) and, with --onnx, `onnxruntime` (torch.onnx.export of the eager model, CPU provider).
Weights are seeded random values with non-trivial BatchNorm statistics (speed does not depend on them; they make
the reported max relative difference to eager meaningful). Timings are wall clock on a possibly shared machine:
compare variants within one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posekit import models
from posekit.errors import ConfigError
from posekit.export import export_onnx, onnx_session, run_onnx
from posekit.models.fuse import fold_batchnorm
from posekit.tables import format_table

HELP = "CPU images/s of zoo models (batch 1 and 8): eager, BN-folded, channels_last, onnxruntime (--onnx)"

DEFAULT_MODELS = ("simplebaseline_res50_256x192", "hrnet_w32_256x192", "lpn_50_256x192")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"zoo model names (default: those of {', '.join(DEFAULT_MODELS)} that are registered)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--input-size", nargs=2, type=int, default=[192, 256], metavar=("W", "H"),
                        help="input width and height (default 192 256 for every model)")
    parser.add_argument("--iters", type=int, default=3, help="timed forwards per case (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch / onnxruntime threads (default: torch's)")
    parser.add_argument("--onnx", action="store_true", help="also export to ONNX and time onnxruntime")


def _time(fn: Callable[[], Any], iters: int, warmup: int) -> tuple[float, float]:
    """(wall, process CPU) seconds per call: `warmup` untimed calls, then medians over `iters` timed calls."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(max(iters, 1)):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Seeded He-normal conv weights and random BatchNorm affine/statistics, so outputs are O(1) and diffs mean
    something (the official init gives ~1e-12 outputs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d | torch.nn.Linear):
                fan_in = m.weight[0].numel() if not isinstance(m, torch.nn.ConvTranspose2d) else \
                    m.weight.shape[0] * m.weight[0, 0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d) and m.running_var is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5 + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def _torch_runner(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    def call() -> Any:
        with torch.inference_mode():
            return model(x)

    return call


def bench_model(name: str, batch_sizes: list[int], input_size: tuple[int, int], iters: int, warmup: int,
                onnx: bool, threads: int) -> list[dict[str, Any]]:
    """Rows (variant, batch, images/s, max |diff| / max |eager output|) for one model."""
    model = models.build(name).eval()
    randomise(model)
    w, h = input_size
    variants: dict[str, torch.nn.Module] = {"eager": model}
    notes = {}
    try:
        folded = fold_batchnorm(model)
        variants["folded"] = folded
        variants["folded_cl"] = folded.to(memory_format=torch.channels_last)
    except ConfigError as e:
        notes["folded"] = str(e)
    session = None
    if onnx:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.onnx"
            export_onnx(model, input_size, path, dynamic_batch=True)
            session = onnx_session(path, threads=threads)
    rows = []
    gen = torch.Generator().manual_seed(0)
    for batch in batch_sizes:
        x = torch.randn(batch, 3, h, w, generator=gen)
        with torch.inference_mode():
            ref = model(x)
        ref = ref if isinstance(ref, torch.Tensor) else None
        scale = (float(ref.abs().max()) or 1.0) if ref is not None else 1.0
        for variant, net in variants.items():
            xin = x.contiguous(memory_format=torch.channels_last) if variant.endswith("_cl") else x
            sec, cpu = _time(_torch_runner(net, xin), iters, warmup)
            diff = None
            if ref is not None and variant != "eager":
                with torch.inference_mode():
                    diff = float((net(xin) - ref).abs().max()) / scale
            rows.append({"model": name, "variant": variant, "batch": batch, "images_per_s": batch / sec,
                         "images_per_cpu_s": batch / cpu, "ms_per_batch": 1000 * sec, "max_rel_diff": diff})
        if session is not None:
            xn = x.numpy()
            sec, cpu = _time(lambda: run_onnx(session, xn), iters, warmup)  # noqa: B023 - called in this iteration
            diff = float(np.abs(run_onnx(session, xn)[0] - ref.numpy()).max()) / scale if ref is not None else None
            rows.append({"model": name, "variant": "onnxruntime", "batch": batch, "images_per_s": batch / sec,
                         "images_per_cpu_s": batch / cpu, "ms_per_batch": 1000 * sec, "max_rel_diff": diff})
    for variant, msg in notes.items():
        rows.append({"model": name, "variant": variant, "batch": None, "images_per_s": None, "images_per_cpu_s": None,
                     "ms_per_batch": None,
                     "max_rel_diff": None, "note": msg})
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    known = models.names()
    names = args.models or [n for n in DEFAULT_MODELS if n in known]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"--models: unknown {', '.join(unknown)}; `posekit models` lists the zoo")
    threads = args.threads or torch.get_num_threads()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows = []
        for name in names:
            rows += bench_model(name, list(args.batch_sizes), tuple(args.input_size), args.iters, args.warmup,
                                args.onnx, threads)
    finally:
        torch.set_num_threads(previous)
    return {"threads": threads, "input_size": list(args.input_size), "iters": args.iters, "warmup": args.warmup,
            "torch": torch.__version__, "rows": rows}


def render(result: dict[str, Any]) -> str:
    batches = sorted({r["batch"] for r in result["rows"] if r["batch"] is not None})
    table: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for r in result["rows"]:
        if r["batch"] is not None:
            table.setdefault((r["model"], r["variant"]), {})[r["batch"]] = r
    rows = []
    for (model, variant), by_batch in table.items():
        diffs = [r["max_rel_diff"] for r in by_batch.values() if r["max_rel_diff"] is not None]
        rows.append([model, variant]
                    + [round(by_batch[b]["images_per_s"], 1) if b in by_batch else "-" for b in batches]
                    + [round(by_batch[b]["images_per_cpu_s"], 1) if b in by_batch else "-" for b in batches]
                    + [f"{max(diffs):.1e}" if diffs else "-"])
    w, h = result["input_size"]
    head = (f"CPU inference at {h}x{w}, {result['threads']} threads, median of {result['iters']} forwards "
            f"after {result['warmup']} warm-up. img/s: wall clock (noisy on a shared machine); img/CPU-s: images per "
            f"second of process CPU time (robust to sharing at 1 thread; inflated by OpenMP spin-waits otherwise)")
    notes = [f"{r['model']} {r['variant']}: {r['note']}" for r in result["rows"] if r.get("note")]
    body = format_table(rows, ["model", "variant"] + [f"b{b} img/s" for b in batches]
                        + [f"b{b} img/CPU-s" for b in batches] + ["max|diff|/max|eager|"], digits=1)
    return "\n".join([head, body] + notes)
