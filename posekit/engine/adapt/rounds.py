"""The adaptation recipe over the engine: source epochs, then rounds of pseudo labels and joint training.

`run(cfg, out_dir)` trains `ADAPT.METHOD` from the labelled source (DATASET.TRAIN_*) to the unlabelled target
(ADAPT.TARGET_*), every optimizer step through the engine's `train_one_epoch`:
- source: continued source-only training (strong augmentation on the source, as CC-SSL stage 1);
- adabn: the same, then BatchNorm statistics re-estimated on the target images (before scoring and saving);
- ccssl: every ROUND_EVERY epochs pseudo labels are regenerated on the target training images (labels.py) and each
  step trains on one source batch + one pseudo-labelled target batch, loss = L_src + TARGET_WEIGHT x L_trg;
- wscda: source + human + target batches through the domain discriminator (network.py), loss = beta x L_pose +
  L_DDL, with progressive pseudo labels (one identity pass, the same kept-fraction schedule) weighted as W2.

Compute is counted in image-forward units, the same way for every method: a training image 3 (forward + backward),
a labelling pass or an AdaBN image 1; scoring on the held-out split is measurement and not counted. ADAPT.BUDGET
stops a run at a number of units (the bench gives every method the same). The cosine learning-rate decay runs over
the budget (or the epochs).

Checkpoints (out/checkpoint.pth, posekit.engine.checkpoint's format with the Config and the model spec) are written at
every epoch end and when a run stops early (SIGTERM / Ctrl-C, TRAIN.MAX_MINUTES, the budget, `stop_after`): data order
and augmentation are functions of (seed, epoch, index) and a stopped epoch resumes at its next step, so on CPU a
resumed run equals an uninterrupted one bit for bit (a time stop is not reproducible, a resume of it is).
Every weights file written (source_state.pth, round_RR.pth, final_state.pth) is a posekit weights file carrying the
model spec, so `posekit test / infer / export` take it like any other; pseudo_labels/round_RR.json holds each round's
labels with their diagnostics, pictures/round_RR.png their picture.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import torch

from posekit.config import Config, config_from_yaml, config_to_yaml
from posekit.data.augment import AugmentConfig
from posekit.data.topdown import TopDownDataset
from posekit.engine import checkpoint as ckpt
from posekit.engine.adapt import labels as L
from posekit.engine.adapt.data import JointBatches, StrongAugDataset, StrongAugment, loader
from posekit.engine.adapt.network import adabn, adapt_criterion, grl_coefficient
from posekit.engine.adapt.setup import Setup, evaluate_target, identity_batches, load_init, make_optimizer, setup
from posekit.errors import CheckpointError, ConfigError
from posekit.modelspec import weights_file

Event = Callable[[str, dict[str, Any]], None]
RUN_LENGTH_KEYS = ("ADAPT.BUDGET", "ADAPT.PICTURES", "ADAPT.EVAL_EVERY_ROUND")  # a resumed run may change these


@dataclass
class State:
    """Where a run is (stored in the checkpoint's extra)."""

    epoch: int = 0  # epoch in progress
    epoch_step: int = 0  # steps done inside it
    iteration: int = 0
    units: float = 0.0  # image-forward units spent (see the module docstring)
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    pseudo_file: str | None = None
    sums: dict[str, float] = field(default_factory=dict)  # the epoch's summed step logs so far
    count: int = 0


# -- data of an epoch ---------------------------------------------------------------------------------------------


def _source_dataset(st: Setup) -> TopDownDataset:
    a = st.a
    if a.strong_augment:
        flip_only = AugmentConfig(scale_factor=0.0, rotation_factor=0.0, rotation_prob=0.0, flip=True,
                                  half_body_prob=-1.0)
        strong = StrongAugment.scaled(st.codec.input_size[0]) if a.aug_scale == "crop" else StrongAugment()
        return StrongAugDataset(st.source, st.codec, st.skeleton, augment=flip_only, train=True, seed=a.seed,
                                strong=strong)
    return TopDownDataset(st.source, st.codec, st.skeleton, augment=AugmentConfig.mpii(), train=True, seed=a.seed)


def _target_dataset(st: Setup, records: list, salt: int) -> TopDownDataset:
    # bearpaw real-animal augmentation: scale +-25 %, rotation +-30 (p 0.6, clipped at 60), flip, colour gain
    aug = AugmentConfig(scale_factor=0.25, rotation_factor=30.0, rotation_prob=0.6, flip=True, half_body_prob=-1.0,
                        color_jitter=True, brightness=0.2, contrast=0.0)
    return TopDownDataset(records, st.codec, st.skeleton, augment=aug, train=True, seed=st.a.seed + salt)


def _batches(st: Setup, s: State, out: Path, adapting: bool) -> JointBatches:
    """The joint batches of epoch s.epoch from step s.epoch_step on."""
    a, e, k = st.a, s.epoch, s.epoch_step
    labelled = L.read(out / s.pseudo_file, st.target_train) if s.pseudo_file and adapting else None
    src_w = a.w2 if a.method == "wscda" else 1.0
    loaders = [("source", loader(_source_dataset(st), a.batch_size, a.seed, e, 0, a.workers, k), src_w)]
    if a.method == "wscda" and st.human:
        human = TopDownDataset(st.human, st.codec, st.skeleton, augment=AugmentConfig.mpii(), train=True,
                               seed=a.seed + 2)
        loaders.append(("human", loader(human, a.human_batch_size, a.seed, e, 2, a.workers, k), 1.0))
    if a.method == "wscda":
        # the unlabelled target always feeds the discriminator; its pose weight is 0 until PPLO labels exist
        tds = _target_dataset(st, labelled if labelled is not None else st.target_train, 1)
        loaders.append(("target", loader(tds, a.target_batch_size, a.seed, e, 1, a.workers, k),
                        a.w2 if labelled is not None else 0.0))
    elif a.method == "ccssl" and labelled is not None:
        tds = _target_dataset(st, labelled, 1)
        loaders.append(("target", loader(tds, a.target_batch_size, a.seed, e, 1, a.workers, k), a.target_weight))
    return JointBatches(loaders, a.iters_per_epoch, start=k)


# -- one epoch ----------------------------------------------------------------------------------------------------


def progress(st: Setup, s: State, steps: int) -> float:
    """Fraction of the run done: units / budget, else epochs (steps inside the epoch included)."""
    if st.a.budget > 0:
        return min(s.units / st.a.budget, 1.0)
    return min((s.epoch + s.epoch_step / max(steps, 1)) / st.a.epochs, 1.0)


def _train_epoch(st: Setup, s: State, optimizer: torch.optim.Optimizer, batches: JointBatches, limits: Any) -> str:
    """Train the rest of the epoch through the engine's train_one_epoch; returns the stop reason or 'completed'."""
    from posekit.engine.train import StepHooks, StepSettings, train_one_epoch

    a, steps = st.a, batches.steps()
    criterion = adapt_criterion(a.beta if a.method == "wscda" else 1.0, a.w1)

    def set_lr(iteration: int) -> None:
        p = progress(st, s, steps)
        factor = 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * p)) if a.lr_decay == "cosine" else 1.0
        for g in optimizer.param_groups:
            g["lr"] = a.lr * factor
        st.net.grl = grl_coefficient(p, a.alpha, a.grl_ramp)

    def after_step(step: int, iteration: int, loss: torch.Tensor, logs: dict[str, float], batch: Any,
                   outputs: Any) -> str:
        s.epoch_step, s.iteration = step + 1, iteration
        s.units += 3.0 * int(batch.inputs.shape[0])
        s.count += 1
        for key, v in {"loss": float(loss.detach()), **logs}.items():
            s.sums[key] = s.sums.get(key, 0.0) + v
        return limits.check(s)

    batches.on_batch = lambda sizes: setattr(st.net, "sizes", sizes)
    st.net.train()
    try:
        stop, _, _ = train_one_epoch(st.net, criterion, batches, optimizer, device=st.device, epoch=s.epoch,
                                     start_step=s.epoch_step, iteration=s.iteration,
                                     hooks=StepHooks(set_lr=set_lr, after_step=after_step),
                                     settings=StepSettings(use_amp=st.amp, channels_last=st.channels_last))
    finally:
        batches.on_batch = None
        st.net.sizes = []
    return stop


@dataclass
class Limits:
    """When a run stops early: the stop flag (signals), the step count, the budget, the time limit."""

    flag: Any
    stop_after: int | None
    budget: float
    deadline: float | None

    def check(self, s: State) -> str:
        """'completed' to go on, else the stop reason."""
        if self.flag is not None and self.flag.stop:
            return "interrupted"
        if self.stop_after is not None and s.iteration >= self.stop_after:
            return "stopped"
        if self.budget > 0 and s.units >= self.budget:
            return "budget"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "max_minutes"
        return "completed"


# -- rounds, scoring, files ---------------------------------------------------------------------------------------


def _adabn(st: Setup, s: State | None) -> None:
    """Re-estimate BatchNorm statistics on the target training images (counted when a State is given)."""
    seen = adabn(st.net.net, identity_batches(st, st.target_train, st.a.eval_batch_size), st.device)
    if s is not None:
        s.units += float(seen)


def _round(st: Setup, s: State, out: Path, r: int, emit: Event) -> None:
    """Make round r's pseudo labels (with diagnostics and a picture) and point the state at them."""
    if st.a.adabn:
        _adabn(st, s)
    lab = L.generate(st.net.net, st.codec, st.skeleton, st.target_train, st.sequences, st.a, r, st.device)
    s.units += float(lab["passes"])
    norm = [max(rec.size) for rec in st.target_train]
    lab["diagnostics"] = L.precision(lab["keypoints"], lab["mask"], st.hidden_gt, norm)
    s.pseudo_file = f"pseudo_labels/round_{r:02d}.json"
    L.write(out / s.pseudo_file, lab, st.target_train, st.domains.target_train.ann_file)
    if st.a.pictures > 0:
        (out / "pictures").mkdir(exist_ok=True)
        cv2.imwrite(str(out / "pictures" / f"round_{r:02d}.png"),
                    L.picture(st.target_train, lab, st.hidden_gt, st.codec, st.skeleton, st.a.pictures))
    info = {k: lab[k] for k in ("round", "threshold", "drop_fraction", "kept_fraction")}
    s.rounds.append({**info, "epoch": s.epoch, "units": s.units, **lab["diagnostics"]})
    emit("pseudo_labels", s.rounds[-1])


def score(st: Setup) -> dict[str, float]:
    """Held-out target metrics of the current network (AdaBN applied to a copy for the adabn settings)."""
    net = st.net.net
    if not st.a.adabn:
        return evaluate_target(net, st)
    saved = {k: v.clone() for k, v in net.state_dict().items() if "running_" in k or "num_batches" in k}
    adabn(net, identity_batches(st, st.target_train, st.a.eval_batch_size), st.device)
    try:
        return evaluate_target(net, st)
    finally:
        net.load_state_dict(saved, strict=False)


def _save_checkpoint(st: Setup, s: State, optimizer: torch.optim.Optimizer, path: Path) -> None:
    disc = st.net.discriminator.state_dict() if st.net.discriminator is not None else None
    extra = {k: v for k, v in asdict(s).items() if k not in ("epoch", "epoch_step", "iteration")}
    ckpt.save_training_checkpoint(path, model=st.net.net, optimizer=optimizer, scheduler=None, epoch=s.epoch,
                                  iteration=s.iteration, epoch_iteration=s.epoch_step, best_metric=None,
                                  config_yaml=config_to_yaml(st.cfg), spec=st.spec.to_dict(),
                                  extra={**extra, "discriminator": disc})


def _restore(st: Setup, optimizer: torch.optim.Optimizer, path: Path) -> State:
    """Resume: the engine's checkpoint reader, the stored Config compared key by key (run-length keys may change)."""
    from posekit.engine.train import config_differences

    if not path.is_file():
        raise ConfigError(f"adapt --resume: {path} does not exist")
    state = ckpt.load_training_checkpoint(path)
    diffs = [d for d in config_differences(config_from_yaml(state["config"], f"{path} (stored config)"), st.cfg)
             if d.split(":")[0] not in RUN_LENGTH_KEYS]
    if diffs:
        raise CheckpointError(f"{path} was written with other adapt settings ({'; '.join(diffs[:6])}); resume with "
                              "the same settings or adapt into a new --out")
    st.net.net.load_state_dict(state["model"])
    extra = dict(state["extra"])
    if st.net.discriminator is not None:
        st.net.discriminator.load_state_dict(extra["discriminator"])
    optimizer.load_state_dict(state["optimizer"])
    ckpt.set_rng_state(state["rng"])
    keep = {k: extra[k] for k in ("units", "seconds", "history", "rounds", "pseudo_file", "sums", "count")}
    return State(epoch=state["epoch"], epoch_step=state["epoch_iteration"], iteration=state["iteration"], **keep)


def save_weights(st: Setup, path: Path) -> Path:
    """The pose network as a posekit weights file carrying the model spec."""
    return ckpt.atomic_save(weights_file(st.net.net.state_dict(), st.spec), path)


# -- the run ------------------------------------------------------------------------------------------------------


def _epoch_end(st: Setup, s: State, optimizer: torch.optim.Optimizer, out: Path, emit: Event) -> None:
    """Close epoch s.epoch: history entry (scores at round ends and the last epoch), checkpoint, round weights."""
    a = st.a
    s.epoch += 1
    s.epoch_step = 0
    entry: dict[str, Any] = {"epoch": s.epoch, "units": s.units,
                             **{k: v / max(s.count, 1) for k, v in s.sums.items()}}
    s.sums, s.count = {}, 0
    adapted = s.epoch - a.source_epochs
    round_end = adapted > 0 and adapted % a.round_every == 0  # source / adabn: scored at the same points
    if (round_end and a.eval_every_round) or s.epoch in (a.epochs, a.source_epochs):
        entry["metrics"] = score(st)
    s.history.append(entry)
    _save_checkpoint(st, s, optimizer, out / "checkpoint.pth")
    if s.epoch == a.source_epochs and a.source_epochs > 0:
        save_weights(st, out / "source_state.pth")
    if round_end and a.adapting_method:
        save_weights(st, out / f"round_{adapted // a.round_every - 1:02d}.pth")
    emit("epoch", entry)


def _loop(st: Setup, s: State, optimizer: torch.optim.Optimizer, out: Path, emit: Event, limits: Limits) -> str:
    """Epochs until the last one or an early stop; returns the stop reason."""
    a = st.a
    while s.epoch < a.epochs:
        stop = limits.check(s) if s.epoch_step == 0 else "completed"
        if stop != "completed":
            return stop
        adapting = a.adapting_method and s.epoch >= a.source_epochs
        r, at = divmod(s.epoch - a.source_epochs, a.round_every)
        if adapting and at == 0 and s.epoch_step == 0:
            _round(st, s, out, r, emit)
        stop = _train_epoch(st, s, optimizer, _batches(st, s, out, adapting), limits)
        if stop != "completed":
            _save_checkpoint(st, s, optimizer, out / "checkpoint.pth")
            return stop
        _epoch_end(st, s, optimizer, out, emit)
    return "completed"


def run(cfg: Config, out_dir: str | Path, resume: bool = False, device: str | None = None,
        on_event: Event | None = None, stop_after: int | None = None) -> dict[str, Any]:
    """Run ADAPT.METHOD into out_dir (see the module docstring); returns the summary (history, rounds, metrics).

    `resume` continues from out_dir/checkpoint.pth; `stop_after` stops (checkpoint written, stop_reason 'stopped')
    after that many optimizer steps in all. SIGTERM / Ctrl-C stop after the current step with a checkpoint
    (stop_reason 'interrupted'); a second signal interrupts at once.
    """
    from posekit.engine.train import _StopFlag

    out = ckpt.ensure_writable_dir(out_dir)
    st = setup(cfg, device)
    optimizer = make_optimizer(st.a, st.net)
    emit = on_event or (lambda kind, info: None)
    if resume:
        s = _restore(st, optimizer, out / "checkpoint.pth")
    else:
        s = State()
        if st.a.init:
            load_init(st, st.a.init)
            emit("init", {"weights": st.a.init})
    start = time.monotonic() - s.seconds
    deadline = start + 60.0 * st.a.max_minutes if st.a.max_minutes > 0 else None
    with _StopFlag() as flag:
        limits = Limits(flag, stop_after, st.a.budget, deadline)
        stop = _loop(st, s, optimizer, out, emit, limits)
    return _finish(st, s, optimizer, out, stop, time.monotonic() - start)


def _finish(st: Setup, s: State, optimizer: torch.optim.Optimizer, out: Path, stop: str,
            seconds: float) -> dict[str, Any]:
    """Final weights and scores (unless stopped to be resumed), summary.json."""
    s.seconds = seconds
    final = None
    resumable = stop in ("stopped", "interrupted")
    if not resumable:
        if s.epoch_step or not s.history or "metrics" not in s.history[-1]:
            s.history.append({"epoch": s.epoch, "units": s.units, "metrics": score(st)})
        if st.a.adabn:
            _adabn(st, s)
        final = str(save_weights(st, out / "final_state.pth"))
    _save_checkpoint(st, s, optimizer, out / "checkpoint.pth")
    metrics = next((h["metrics"] for h in reversed(s.history) if "metrics" in h), None)
    summary = {"method": st.a.method, "stop_reason": stop, "epoch": s.epoch, "iteration": s.iteration,
               "units": s.units, "history": s.history, "rounds": s.rounds, "metrics": metrics,
               "seconds": seconds, "checkpoint": str(out / "checkpoint.pth"), "final_weights": final,
               "pseudo_file": s.pseudo_file}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary
