"""The training loop: `fit(cfg, out_dir)` - a plain, readable loop in the style of torchvision's references.

Data order and augmentation are pure functions of (TRAIN.SEED, epoch, index) (see posekit.data.topdown), so a run
resumed from any checkpoint - including one written mid-epoch at TRAIN.MAX_ITERS or on Ctrl-C - sees exactly the
batches the uninterrupted run would have seen; on CPU the weights match bit for bit. Under `torchrun` (RANK /
WORLD_SIZE set) the loop uses DistributedDataParallel (nccl on GPU, gloo on CPU) with per-rank sampling.

`fit` = build (the config's Task, posekit.engine.tasks), resume (`resume_from`), loop (`train_one_epoch` per epoch),
save. Time budgets TRAIN.MAX_MINUTES (training time; evaluation excluded) / MAX_ITERS stop with a checkpoint;
TRAIN.LR_SCHEDULE multistep (official) or cosine (over the budget); TRAIN.INIT official or he; held-out evaluation at
epoch ends (VAL_EVERY) and every VAL_EVERY_MINUTES / VAL_EVERY_ITERS; mid-epoch checkpoints every
CHECKPOINT_EVERY_MINUTES / _ITERS. Ctrl-C and SIGTERM stop after the current step with a checkpoint.

Files in out_dir: checkpoint.pth (full state + config + model spec; every epoch, periodically and at every stop),
model_best.pth, final_state.pth (completed runs) / last_state.pth (stopped runs): posekit weights files (official
state_dict key names + the ModelSpec, posekit.modelspec), config.yaml (what actually ran), log.jsonl (one JSON object
per logged step / evaluation / epoch), tb/ (TensorBoard scalars, when tensorboard imports).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from posekit.config import Config, config_from_yaml, config_to_dict, config_to_yaml
from posekit.engine import checkpoint as ckpt
from posekit.engine.build import build_optimizer, build_scheduler, cosine_factor, init_weights
from posekit.engine.prefetch import Prefetcher, prefetched
from posekit.engine.spec import model_spec
from posekit.engine.tasks import task_for
from posekit.engine.tasks.base import Batch, Built, Criterion, Task
from posekit.errors import CheckpointError, ConfigError, DataError, TrainingError
from posekit.modelspec import weights_file
from posekit.runtime.hardware import cpu_has_native_bf16

# ----------------------------------------------------------------------------------------------------------------
# Distributed setup


@dataclass(frozen=True)
class DistInfo:
    """Process rank, world size and the device this process trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """True on the process that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1


def setup_distributed(device: str | None = None) -> DistInfo:
    """Init the process group when torchrun set RANK/WORLD_SIZE (nccl on GPU, gloo on CPU); `device` overrides.

    """
    info = _dist_info()
    if device is not None:
        info = DistInfo(info.rank, info.world_size, info.local_rank, torch.device(device))
    return info


def _dist_info() -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if "RANK" not in os.environ or world <= 1:
        return DistInfo(device=torch.device("cuda" if cuda else "cpu"))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():  # long timeout: ranks > 0 wait at a barrier while rank 0 validates
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2))
    return DistInfo(rank=rank, world_size=world, local_rank=local,
                    device=torch.device(f"cuda:{local}" if cuda else "cpu"))


def autocast_dtype(cfg: Config, device: torch.device) -> str | None:
    """The autocast a run trains under: float16 on CUDA (TRAIN.AMP), bfloat16 on a CPU with native bf16
    (TRAIN.CPU_AMP), else None."""
    if device.type == "cuda":
        return "float16" if cfg.TRAIN.AMP else None
    return "bfloat16" if device.type == "cpu" and cfg.TRAIN.CPU_AMP and cpu_has_native_bf16() else None


class ResumableSampler(DistributedSampler):
    """DistributedSampler (seeded permutation per epoch, rank slice) that can skip the first `start` samples."""

    def __init__(self, dataset: Any, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


# ----------------------------------------------------------------------------------------------------------------
# Pieces built from the config


def load_pretrained(cfg: Config, model: nn.Module) -> Any:
    """MODEL.PRETRAINED into the model: every tensor that fits by name and shape (a posekit checkpoint or weights
    file of another task's network, an official or ImageNet checkpoint; roots in EXTRA.PRETRAINED_LAYERS when
    given); returns the load report (posekit.models.weights.PretrainedReport)."""
    from posekit.models.weights import load_pretrained_weights

    path = Path(cfg.MODEL.PRETRAINED)
    if not path.is_file():
        raise ConfigError(f"MODEL.PRETRAINED {path} not found; download it or override MODEL.PRETRAINED=''")
    return load_pretrained_weights(model, path, cfg.MODEL.EXTRA.get("PRETRAINED_LAYERS") or ())


def set_bn_eval(model: nn.Module) -> None:
    """Put every BatchNorm layer in eval mode (running statistics are used and not updated)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def optimizer_step(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any,
                   clip_max_norm: float = 0.0) -> None:
    """Backward and one optimizer step (through the AMP GradScaler when there is one), with optional clipping."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if clip_max_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), clip_max_norm)
        optimizer.step()
        return
    scaler.scale(loss).backward()
    if clip_max_norm > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), clip_max_norm)
    scaler.step(optimizer)
    scaler.update()


@dataclass
class EpochStats:
    """Running loss / accuracy / throughput of one epoch (this process)."""

    loss: float = 0.0
    acc: float = 0.0
    acc_images: int = 0
    images: int = 0
    last_loss: float = 0.0
    start: float = field(default_factory=time.monotonic)

    def add(self, loss: float, acc: float | None, n: int) -> None:
        """Account one batch of n images."""
        self.last_loss = loss
        self.loss += loss * n
        self.images += n
        if acc is not None:
            self.acc += acc * n
            self.acc_images += n

    @property
    def images_per_s(self) -> float:
        """Training throughput of this process so far."""
        return self.images / max(time.monotonic() - self.start, 1e-9)

    def summary(self, epoch: int, iteration: int, lr: float) -> dict[str, Any]:
        """The per-epoch dict given to `on_epoch` and written to log.jsonl."""
        return {"epoch": epoch, "iteration": iteration, "lr": lr, "loss": self.loss / max(self.images, 1),
                "acc": self.acc / self.acc_images if self.acc_images else None,
                "seconds": time.monotonic() - self.start}


def _add_scalars(writer: Any, prefix: str, values: dict[str, Any], step: int) -> None:
    if writer is not None:
        for k, v in values.items():
            if v is not None:
                writer.add_scalar(f"{prefix}/{k}", v, step)


class _StopFlag:
    """Ctrl-C / SIGTERM set a flag the loop checks after each step; a second one interrupts at once."""

    def __init__(self) -> None:
        self.stop = False
        self._old: Any = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            for sig, old in self._old.items():
                signal.signal(sig, old)


def _tensorboard(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: scalars go to log.jsonl only
        return None
    return SummaryWriter(str(path))


def _reduce_mean(value: torch.Tensor, info: DistInfo) -> float:
    if info.distributed:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= info.world_size
    return float(value)


# ----------------------------------------------------------------------------------------------------------------
# Resume


# Keys that only say how long / how often a run goes on: a resumed run may change them.
RUN_LENGTH_KEYS = {"TRAIN.END_EPOCH", "TRAIN.MAX_ITERS", "TRAIN.MAX_MINUTES", "TRAIN.VAL_EVERY", "TRAIN.RESUME",
                   "TRAIN.VAL_EVERY_MINUTES", "TRAIN.VAL_EVERY_ITERS", "TRAIN.CHECKPOINT_EVERY_MINUTES",
                   "TRAIN.CHECKPOINT_EVERY_ITERS", "TRAIN.CHECKPOINT", "AUTO_RESUME", "PRINT_FREQ", "WORKERS",
                   "PIN_MEMORY", "OUTPUT_DIR", "DEBUG.DEBUG", "TEST.BATCH_SIZE_PER_GPU", "TRAIN.BAD_SAMPLES"}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "EXTRA":
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(saved: Config, cfg: Config) -> list[str]:
    """'KEY: saved -> now' for every key that differs, run-length keys excepted."""
    a, b = _flat(config_to_dict(saved)), _flat(config_to_dict(cfg))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in RUN_LENGTH_KEYS and not k.startswith("DEBUG.") and a.get(k) != b.get(k)]


@dataclass
class Progress:
    """Where a run is: epoch in progress, steps done in it, optimizer steps, training seconds, best metric."""

    epoch: int = 0
    epoch_iteration: int = 0
    iteration: int = 0
    train_seconds: float = 0.0
    best: float | None = None


def resume_from(path: Path, cfg: Config, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                scaler: Any) -> Progress:
    """Load a training checkpoint into model/optimizer/scheduler/RNGs; refuse one of a different experiment."""
    state = ckpt.load_training_checkpoint(path)
    saved = config_from_yaml(state["config"], f"{path} (stored config)")
    diffs = config_differences(saved, cfg)
    if diffs:
        raise CheckpointError(f"{path} was trained with other settings ({'; '.join(diffs[:8])}"
                              f"{' ...' if len(diffs) > 8 else ''}); resume with the same settings (only run-length "
                              "keys such as TRAIN.END_EPOCH / MAX_MINUTES may change) or train into a new --out")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    ckpt.restore_scheduler(scheduler, state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    ckpt.set_rng_state(state["rng"])
    extra = state.get("extra") or {}
    return Progress(epoch=state["epoch"], epoch_iteration=state["epoch_iteration"], iteration=state["iteration"],
                    train_seconds=float(extra.get("train_seconds", 0.0)), best=state["best_metric"])


# ----------------------------------------------------------------------------------------------------------------
# One epoch


@dataclass(frozen=True)
class BadSample:
    """A training item whose loading failed (TRAIN.BAD_SAMPLES=skip): its index and the error message."""

    index: int
    message: str


class SkipBadSamples(torch.utils.data.Dataset):
    """A dataset whose items that raise DataError (corrupt image, bad record) become BadSample markers."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation of `epoch` (when the dataset has one)."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except DataError as e:
            return BadSample(int(index), str(e))


def skipping_collate(collate: Callable[[Sequence[Any]], Batch]) -> Callable[[Sequence[Any]], Batch]:
    """collate over the good items; the bad ones go to batch.meta['skipped'] (inputs None when all are bad)."""

    def wrapped(items: Sequence[Any]) -> Batch:
        bad = [x for x in items if isinstance(x, BadSample)]
        good = [x for x in items if not isinstance(x, BadSample)]
        batch = collate(good) if good else Batch(inputs=None)  # type: ignore[arg-type]
        batch.meta["skipped"] = [(b.index, b.message) for b in bad]
        return batch

    return wrapped


def unwrap_worker_error(e: BaseException) -> str:
    """The original message of an error raised in a DataLoader worker (not 'Caught X in DataLoader worker')."""
    text = str(e)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


def float32_outputs(outputs: Any) -> Any:
    """The network's outputs (tensors, or lists / tuples / dicts of them) with low-precision tensors as float32."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, dict):
        return {k: float32_outputs(v) for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(float32_outputs(v) for v in outputs)
    return outputs


@dataclass
class StepHooks:
    """What a caller of `train_one_epoch` hooks into each step (each optional).

    set_lr(iteration) before the step; after_step(step, iteration, loss, logs, batch, outputs) -> stop reason or
    'completed'; all_finite(loss) -> bool (default: torch.isfinite on this process); on_skip(step, [(index, message)])
    for the items SkipBadSamples dropped from a batch.
    """

    set_lr: Callable[[int], None] | None = None
    after_step: Callable[[int, int, torch.Tensor, dict[str, float], Batch, Any], str] | None = None
    all_finite: Callable[[torch.Tensor], bool] | None = None
    on_skip: Callable[[int, list], None] | None = None


@dataclass
class StepSettings:
    """How each step runs: AMP (use_amp, with a GradScaler `scaler` on CUDA fp16), gradient clipping, NHWC batches
    (`channels_last`: with a channels_last model ~1.3x faster CPU training with oneDNN), `prefetch` > 0 batches
    prepared ahead in a background thread."""

    use_amp: bool = False
    scaler: Any = None
    clip_max_norm: float = 0.0
    channels_last: bool = False
    prefetch: int = 0


def train_one_epoch(model: nn.Module, criterion: Criterion, loader: Any, optimizer: torch.optim.Optimizer, *,
                    device: torch.device, epoch: int, start_step: int = 0, iteration: int = 0,
                    hooks: StepHooks | None = None, settings: StepSettings | None = None) -> tuple[str, int, int]:
    """Train over `loader` (Batches) from `start_step`; returns (stop reason or 'completed', last step + 1, iteration).

    Each step: LR (hooks.set_lr), forward (autocast with settings.use_amp), loss (in float32), non-finite check
    (TrainingError), backward, clipping, optimizer step; then hooks.after_step says whether to stop.
    """
    h, s = hooks or StepHooks(), settings or StepSettings()
    set_lr, after_step, all_finite, on_skip = h.set_lr, h.after_step, h.all_finite, h.on_skip
    use_amp, channels_last = s.use_amp, s.channels_last
    step = start_step - 1
    stop = "completed"
    batches = prefetched(loader, s.prefetch)
    try:
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except DataError as e:
                raise DataError(unwrap_worker_error(e)) from None
            step += 1
            if batch.meta.get("skipped") and on_skip is not None:
                on_skip(step, batch.meta["skipped"])
            if batch.inputs is None:  # every item of this batch was bad (TRAIN.BAD_SAMPLES=skip): no step
                continue
            batch = batch.to(device)
            if channels_last and batch.inputs.dim() == 4:
                batch.inputs = batch.inputs.contiguous(memory_format=torch.channels_last)
            if set_lr is not None:
                set_lr(iteration)
            with torch.autocast(device.type, enabled=use_amp):
                outputs = model(batch.inputs)
            loss, logs = criterion(float32_outputs(outputs) if use_amp else outputs, batch.targets)
            finite = all_finite(loss) if all_finite is not None else bool(torch.isfinite(loss.detach()).all())
            if not finite:
                raise TrainingError(f"non-finite loss ({float(loss.detach()):.4g}) at epoch {epoch} step {step} "
                                    f"(iteration {iteration + 1})")
            optimizer_step(loss, model, optimizer, s.scaler, s.clip_max_norm)
            iteration += 1
            if after_step is not None:
                stop = after_step(step, iteration, loss, logs, batch, outputs)
                if stop != "completed":
                    break
    finally:
        if isinstance(batches, Prefetcher):
            batches.close()
    return stop, step + 1, iteration


# ----------------------------------------------------------------------------------------------------------------
# The loop


@dataclass
class Parts:
    """Everything `fit` trains with, built from the config (see `build_parts`)."""

    task: Task
    built: Built
    model: nn.Module  # the network (DDP-wrapped under torchrun); built.model is the bare one
    dataset: Any
    collate: Callable[[Sequence[Any]], Batch]
    sampler: ResumableSampler
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    criterion: Criterion
    pretrained: Any = None  # the MODEL.PRETRAINED load report (posekit.models.weights.PretrainedReport)


def build_parts(cfg: Config, task: Task, info: DistInfo) -> Parts:
    """Network (seeded init, pretrained backbone), dataset + sampler, optimizer (task groups), schedule, loss."""
    t = cfg.TRAIN
    if info.device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
        torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC
        torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED
    torch.manual_seed(t.SEED)  # weight initialisation
    built = task.build(cfg)
    init_weights(built.model, t.INIT)
    report = load_pretrained(cfg, built.model) if cfg.MODEL.PRETRAINED and cfg.MODEL.INIT_WEIGHTS else None
    model = built.model.to(info.device)
    if t.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)
    dataset, collate = task.train_dataset(cfg, built), task.collate
    if t.BAD_SAMPLES == "skip":
        dataset, collate = SkipBadSamples(dataset), skipping_collate(task.collate)
    sampler = ResumableSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=t.SHUFFLE, seed=t.SEED)
    if t.SYNC_BN and info.distributed and info.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = build_optimizer(cfg, task.param_groups(cfg, model))
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
    scheduler = build_scheduler(cfg, optimizer)
    if t.BEGIN_EPOCH and scheduler is not None:  # the official schedule starts at BEGIN_EPOCH
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * t.LR_FACTOR ** sum(m <= t.BEGIN_EPOCH for m in t.LR_STEP)
        scheduler.last_epoch = t.BEGIN_EPOCH
    scaler = torch.amp.GradScaler("cuda") if (t.AMP and info.device.type == "cuda") else None
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if info.device.type == "cuda" else None)
    return Parts(task, built, model, dataset, collate, sampler, optimizer, scheduler, scaler,
                 task.criterion(cfg, built), report)


class TrainClock:
    """Training seconds (evaluation excluded), carried over a resume."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.base, self.segment = seconds, time.monotonic()

    def seconds(self) -> float:
        """Training seconds so far."""
        return self.base + time.monotonic() - self.segment

    def pause(self) -> float:
        """Stop counting (before an evaluation); returns the training seconds."""
        self.base, self.segment = self.seconds(), time.monotonic()
        return self.base

    def resume(self) -> None:
        """Count again (after an evaluation)."""
        self.segment = time.monotonic()


class Run:
    """One training run's state and side effects: log, TensorBoard, checkpoints, evaluations, stop rules."""

    def __init__(self, cfg: Config, parts: Parts, out: Path, info: DistInfo, prog: Progress,
                 on_event: Callable[[str, dict[str, Any]], None] | None) -> None:
        self.cfg, self.p, self.out, self.info, self.prog = cfg, parts, out, info, prog
        self.net = parts.built.model  # bare network (no DDP wrapper) for saving and evaluation
        self.metric = parts.task.primary_metric(cfg)
        self.higher = parts.task.higher_is_better(cfg)
        self.event = on_event if (on_event is not None and info.main) else (lambda kind, data: None)
        self.writer = _tensorboard(out / "tb") if info.main else None
        self.log = open(out / "log.jsonl", "a") if info.main else None  # noqa: SIM115 - closed in close()
        self.clock = TrainClock(prog.train_seconds)
        self.last_ckpt, self.last_val = time.monotonic(), prog.train_seconds
        self.history: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.steps_per_epoch = math.ceil(parts.sampler.num_samples / cfg.TRAIN.BATCH_SIZE_PER_GPU)
        self.autocast = autocast_dtype(cfg, info.device)
        self.amp = self.autocast is not None

    # -- files ----------------------------------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> None:
        """One JSON line in log.jsonl."""
        if self.log is not None:
            self.log.write(json.dumps(entry) + "\n")
            self.log.flush()

    def save(self, epoch: int, epoch_iteration: int) -> None:
        """The full training state, atomically (rank 0)."""
        if not self.info.main:
            return
        t, p, spec = self.cfg.TRAIN, self.p, self.p.built.spec
        ckpt.save_training_checkpoint(
            Path(t.CHECKPOINT) if t.CHECKPOINT else self.out / "checkpoint.pth", model=self.net,
            optimizer=p.optimizer, scheduler=p.scheduler, epoch=epoch, iteration=self.prog.iteration,
            epoch_iteration=epoch_iteration, best_metric=self.prog.best, config_yaml=config_to_yaml(self.cfg),
            scaler=p.scaler, spec=spec.to_dict() if spec is not None else None,
            extra={"metric": self.metric, "train_seconds": self.clock.seconds()})
        self.last_ckpt = time.monotonic()

    def save_weights(self, name: str) -> None:
        """A posekit weights file (state_dict + model spec) in the output folder."""
        if self.info.main:
            ckpt.atomic_save(weights_file(self.net.state_dict(), self.p.built.spec), self.out / name)

    def skip(self, step: int, items: list) -> None:
        """Record samples that TRAIN.BAD_SAMPLES=skip left out."""
        for index, message in items:
            self.skipped.append({"epoch": self.prog.epoch, "step": step, "index": index, "error": message})
            self.record({"skipped": self.skipped[-1]})
            if self.info.main:
                with open(self.out / "skipped_samples.jsonl", "a") as f:
                    f.write(json.dumps(self.skipped[-1]) + "\n")

    # -- evaluation and schedule ----------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Held-out metrics (time not counted as training); keeps model_best.pth."""
        minutes = self.clock.pause() / 60.0
        metrics, _ = self.p.task.evaluate(self.cfg, self.net, self.p.built, self.info.device, split="test")
        self.net.train()
        if self.cfg.TRAIN.FREEZE_BN:
            set_bn_eval(self.net)
        value, best = metrics.get(self.metric), self.prog.best
        improved = value is not None and (best is None or (value > best if self.higher else value < best))
        if improved:
            self.prog.best = float(value)
            self.save_weights("model_best.pth")
        entry = {"epoch": self.prog.epoch, "iteration": self.prog.iteration, "train_minutes": minutes,
                 "metrics": metrics, "best": improved}
        self.evals.append(entry)
        self.record({"eval": entry})
        _add_scalars(self.writer, "val", metrics, self.prog.iteration)
        self.event("eval", entry)
        self.clock.resume()
        return metrics

    def set_lr(self, iteration: int) -> None:
        """TRAIN.LR_SCHEDULE cosine: the LR of this step from the fraction of the budget spent."""
        if self.p.scheduler is not None:
            return
        t = self.cfg.TRAIN
        if t.MAX_MINUTES:
            fraction = self.clock.seconds() / (60.0 * t.MAX_MINUTES)
        elif t.MAX_ITERS:
            fraction = iteration / t.MAX_ITERS
        else:
            fraction = iteration / max(1, self.steps_per_epoch * (t.END_EPOCH - t.BEGIN_EPOCH))
        for group in self.p.optimizer.param_groups:
            group["lr"] = group["base_lr"] * cosine_factor(fraction)

    def _due(self, every_iters: int, every_minutes: float, since: float, now: float) -> bool:
        return bool((every_iters and self.prog.iteration % every_iters == 0)
                    or (every_minutes and now - since >= 60.0 * every_minutes))

    # -- one epoch ------------------------------------------------------------------------------------------
    def epoch(self, flag: _StopFlag, progress: Callable[..., Any] | None) -> str:
        """Train the epoch in progress from its saved step; returns the stop reason ('completed' at its end)."""
        cfg, t, p, prog, info = self.cfg, self.cfg.TRAIN, self.p, self.prog, self.info
        epoch, skip = prog.epoch, prog.epoch_iteration
        p.sampler.set_epoch(epoch)
        if hasattr(p.dataset, "set_epoch"):
            p.dataset.set_epoch(epoch)
        p.sampler.start = skip * t.BATCH_SIZE_PER_GPU
        loader = DataLoader(p.dataset, batch_size=t.BATCH_SIZE_PER_GPU, sampler=p.sampler, num_workers=cfg.WORKERS,
                            pin_memory=cfg.PIN_MEMORY and info.device.type == "cuda", collate_fn=p.collate,
                            generator=torch.Generator().manual_seed(t.SEED + epoch))
        p.model.train()
        if t.FREEZE_BN:
            set_bn_eval(p.model)
        bar = progress(total=self.steps_per_epoch, initial=skip, desc=f"epoch {epoch}") if (
            progress and info.main) else None
        stats = EpochStats()

        def after_step(step: int, iteration: int, loss: torch.Tensor, logs: dict[str, float], batch: Batch,
                       outputs: Any) -> str:
            prog.iteration, prog.epoch_iteration = iteration, step + 1
            reason = _stop_reason(cfg, iteration, self.clock.seconds(), flag.stop, info)
            log_now = iteration == 1 or iteration % max(1, cfg.PRINT_FREQ) == 0 or reason != "completed"
            if log_now:  # the task's extra logs (e.g. heatmap accuracy) cost a few ms: only on logged steps
                logs = {**logs, **p.task.step_logs(p.built, outputs, batch.targets)}
            stats.add(float(loss.detach()), logs.get("acc"), len(batch.inputs))
            if log_now:
                self._log_step(epoch, step, iteration, loss, logs, batch, outputs)
            if bar is not None:
                bar.update(1)
                if log_now:
                    acc = logs.get("acc")
                    bar.set_postfix(loss=f"{stats.last_loss:.3g}", acc="-" if acc is None else f"{acc:.3f}",
                                    img_s=f"{stats.images_per_s * info.world_size:.1f}", refresh=False)
            if info.main and self._due(t.VAL_EVERY_ITERS, t.VAL_EVERY_MINUTES, self.last_val, self.clock.seconds()):
                self.last_val = self.clock.seconds()
                self.validate()
            reason = _stop_reason(cfg, iteration, self.clock.seconds(), flag.stop, info)  # after this step's work
            if reason == "completed" and self._due(t.CHECKPOINT_EVERY_ITERS, t.CHECKPOINT_EVERY_MINUTES,
                                                   self.last_ckpt, time.monotonic()):
                self.save(epoch, step + 1)
                self.event("checkpoint", {"epoch": epoch, "step": step + 1, "iteration": iteration})
            return reason

        try:
            reason, end_step, _ = train_one_epoch(
                p.model, p.criterion, loader, p.optimizer, device=info.device, epoch=epoch, start_step=skip,
                iteration=prog.iteration,
                hooks=StepHooks(set_lr=self.set_lr, after_step=after_step, all_finite=lambda x: _all_finite(x, info),
                                on_skip=self.skip),
                settings=StepSettings(use_amp=self.amp, scaler=p.scaler, clip_max_norm=t.CLIP_MAX_NORM,
                                      channels_last=t.CHANNELS_LAST,
                                      prefetch=t.PREFETCH if self.cfg.WORKERS == 0 else 0))
        except TrainingError as e:
            ckpt = self.out / "checkpoint.pth"
            kept = (f"the last good checkpoint is {ckpt}" if ckpt.is_file() else
                    f"no checkpoint was written before it (none in {self.out}): nothing to resume")
            raise TrainingError(f"{e}; {kept} - lower TRAIN.LR, check the data (a NaN / infinite label or camera "
                                "value gives this at once), or turn TRAIN.AMP off") from None
        except DataError as e:
            self.save(epoch, prog.epoch_iteration)  # nothing lost: resume continues after the last good step
            raise DataError(f"{e} (training stopped at epoch {epoch} step {prog.epoch_iteration}; the checkpoint "
                            f"{self.out / 'checkpoint.pth'} continues from there; TRAIN.BAD_SAMPLES=skip skips bad "
                            "samples and lists them)") from None
        finally:
            if bar is not None:
                bar.close()
        if reason != "completed":
            self.save(epoch, end_step)  # mid-epoch checkpoint: resume continues at the next step
            return reason
        self._end_epoch(stats)
        return reason

    def _log_step(self, epoch: int, step: int, iteration: int, loss: torch.Tensor, logs: dict[str, float],
                  batch: Batch, outputs: Any) -> None:
        entry = {"iteration": iteration, "epoch": epoch, "step": step, "loss": _reduce_mean(loss.detach(), self.info),
                 "lr": self.p.optimizer.param_groups[0]["lr"], "train_minutes": self.clock.seconds() / 60.0,
                 "world_size": self.info.world_size, **logs}
        self.record(entry)
        _add_scalars(self.writer, "train", {k: v for k, v in entry.items()
                                            if k not in ("iteration", "epoch", "step", "world_size")}, iteration)
        if self.cfg.DEBUG.DEBUG and self.info.main:
            self.p.task.debug_images(self.cfg, self.p.built, self.out / "debug", f"train_e{epoch}_i{iteration}",
                                     batch, outputs)

    def _end_epoch(self, stats: EpochStats) -> None:
        t, prog = self.cfg.TRAIN, self.prog
        summary = stats.summary(prog.epoch, prog.iteration, self.p.optimizer.param_groups[0]["lr"])
        if self.p.scheduler is not None:
            self.p.scheduler.step()
        prog.epoch, prog.epoch_iteration = prog.epoch + 1, 0
        if self.info.main and t.VAL_EVERY > 0 and (prog.epoch % t.VAL_EVERY == 0 or prog.epoch == t.END_EPOCH):
            summary["metrics"] = self.validate()
            summary["best"] = self.evals[-1]["best"]
        if self.info.distributed:
            dist.barrier()  # ranks > 0 wait for rank 0's validation
        self.save(prog.epoch, 0)
        self.record({"epoch_end": summary})
        self.history.append(summary)

    def close(self) -> None:
        """Close the log and TensorBoard writer, leave the process group."""
        if self.writer is not None:
            self.writer.close()
        if self.log is not None:
            self.log.close()
        if self.info.distributed and dist.is_initialized():
            dist.destroy_process_group()

    def summary(self, stop_reason: str) -> dict[str, Any]:
        """What `fit` returns."""
        out = self.out

        def file(name: str) -> str | None:
            return str(out / name) if (out / name).exists() else None

        return {"stop_reason": stop_reason, "epoch": self.prog.epoch, "iteration": self.prog.iteration,
                "train_minutes": self.clock.seconds() / 60.0, "best_metric": self.prog.best, "metric": self.metric,
                "history": self.history, "evals": self.evals, "skipped_samples": self.skipped,
                "checkpoint": str(out / "checkpoint.pth"), "best_weights": file("model_best.pth"),
                "final_weights": file("final_state.pth"), "last_weights": file("last_state.pth"),
                "rank": self.info.rank, "world_size": self.info.world_size,
                "autocast": self.autocast}


def fit(cfg: Config, out_dir: str | os.PathLike, resume: bool = False, progress: Callable[..., Any] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None, device: str | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train `cfg` into `out_dir` (build, resume, loop, save); returns a summary of the run.

    progress: a tqdm-like factory `progress(total=, initial=, desc=)`; on_epoch: called with each epoch's summary;
    on_event(kind, info): 'pretrained' (MODEL.PRETRAINED load report), 'resume', 'eval' (periodic held-out
    metrics), 'checkpoint'. Only rank 0 reports and writes.
    """
    info = setup_distributed(device)
    out, t, task = Path(out_dir), cfg.TRAIN, task_for(cfg)
    if info.main:
        preflight(cfg, task, out)
    parts = build_parts(cfg, task, info)
    prog = Progress(epoch=t.BEGIN_EPOCH)
    ckpt_path = Path(t.CHECKPOINT) if t.CHECKPOINT else out / "checkpoint.pth"
    resuming = resume or t.RESUME or (cfg.AUTO_RESUME and ckpt_path.is_file())
    if resuming:
        prog = resume_from(ckpt_path, cfg, parts.built.model, parts.optimizer, parts.scheduler, parts.scaler)
    if info.main:
        (out / "config.yaml").write_text(config_to_yaml(cfg))  # what actually runs
        if not resuming and (out / "log.jsonl").exists():  # a fresh run's log holds this run only
            (out / "log.jsonl").unlink()
    run = Run(cfg, parts, out, info, prog, on_event)
    if parts.pretrained is not None:  # what MODEL.PRETRAINED loaded, in log.jsonl and to the caller
        run.record({"pretrained": parts.pretrained.to_dict()})
        run.event("pretrained", {"report": parts.pretrained, "summary": parts.pretrained.summary()})
    if resuming:
        run.event("resume", {"checkpoint": str(ckpt_path), "epoch": prog.epoch, "step": prog.epoch_iteration,
                             "iteration": prog.iteration})
    stop_reason = "completed"
    try:
        with _StopFlag() as flag:
            while prog.epoch < t.END_EPOCH:
                stop_reason = run.epoch(flag, progress)
                if stop_reason != "completed":
                    break
                if on_epoch is not None and info.main:
                    on_epoch(run.history[-1])
        run.save_weights("final_state.pth" if stop_reason == "completed" else "last_state.pth")
        if info.distributed:
            dist.barrier()  # every rank leaves together: none tears gloo down under another's last collective
    finally:
        run.close()
    return run.summary(stop_reason)


def preflight(cfg: Config, task: Task, out: Path) -> None:
    """Every input and output checked before any work: the output folder, pretrained weights, the task's data."""
    ckpt.ensure_writable_dir(out)
    if cfg.MODEL.PRETRAINED and cfg.MODEL.INIT_WEIGHTS and not Path(cfg.MODEL.PRETRAINED).is_file():
        raise ConfigError(f"MODEL.PRETRAINED {cfg.MODEL.PRETRAINED} not found; download it or override "
                          "MODEL.PRETRAINED=''")
    task.preflight(cfg)


def _all_finite(loss: torch.Tensor, info: DistInfo) -> bool:
    """Whether the loss is finite on every rank (so all ranks stop together)."""
    ok = torch.isfinite(loss.detach()).all().to(torch.int32).reshape(1)
    if info.distributed:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def _stop_reason(cfg: Config, iteration: int, train_seconds: float, interrupted: bool, info: DistInfo) -> str:
    """'completed' to go on, else why to stop now (agreed by all ranks under DDP)."""
    t = cfg.TRAIN
    reason = 0
    if t.MAX_ITERS and iteration >= t.MAX_ITERS:
        reason = 1
    elif t.MAX_MINUTES and train_seconds >= 60.0 * t.MAX_MINUTES:
        reason = 2
    elif interrupted:
        reason = 3
    if info.distributed:
        flag = torch.tensor([reason], device=info.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        reason = int(flag.item())
    return ("completed", "max_iters", "max_minutes", "interrupted")[reason]


def spec_summary(cfg: Config) -> dict[str, Any]:
    """What a config trains, for the CLI header."""
    s = model_spec(cfg)
    return {"model": s.name, "task": s.task, "input_size": list(s.input_size), "heatmap_size": list(s.heatmap_size),
            "codec": s.codec, "skeleton": s.skeleton, "num_joints": s.num_joints}
