"""Training loop: exact resume, Ctrl-C / MAX_ITERS checkpoints, NaN stop, validation, sampler, checkpoint files."""

from __future__ import annotations

import json
import os
import random
import signal

import numpy as np
import pytest
import torch

from posekit.engine import checkpoint as ckpt
from posekit.engine import train as train_mod
from posekit.engine.train import ResumableSampler, TrainingError, _StopFlag, fit
from posekit.errors import CheckpointError, ConfigError


def _weights(path) -> dict[str, torch.Tensor]:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    assert obj["format"] == "posekit-weights-v1" and obj["spec"]["task"] == "topdown"  # weights carry their spec
    return obj["state_dict"]


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"


@pytest.mark.slow
def test_resume_from_mid_epoch_checkpoint_is_bit_exact(micro_cfg, tmp_path):
    # 8 images, batch 4 -> 2 steps per epoch, 2 epochs; LR drops after epoch 0; stop inside epoch 1.
    full = fit(micro_cfg(), tmp_path / "full")
    assert full["stop_reason"] == "completed" and full["iteration"] == 4

    part = fit(micro_cfg(TRAIN={"MAX_ITERS": 3}), tmp_path / "split")
    assert part["stop_reason"] == "max_iters" and part["iteration"] == 3
    state = ckpt.load_training_checkpoint(tmp_path / "split" / "checkpoint.pth")
    assert (state["epoch"], state["epoch_iteration"], state["iteration"]) == (1, 1, 3)
    assert not (tmp_path / "split" / "final_state.pth").exists()

    done = fit(micro_cfg(), tmp_path / "split", resume=True)
    assert done["stop_reason"] == "completed" and done["iteration"] == 4
    _assert_same_state(_weights(tmp_path / "full" / "final_state.pth"),
                       _weights(tmp_path / "split" / "final_state.pth"))
    a = ckpt.load_training_checkpoint(tmp_path / "full" / "checkpoint.pth")
    b = ckpt.load_training_checkpoint(tmp_path / "split" / "checkpoint.pth")
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        _assert_same_state(sa, sb)
    assert a["scheduler"] == b["scheduler"] and a["scheduler"]["last_epoch"] == 2
    # the logged losses of the resumed steps equal the uninterrupted run's
    log = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    log2 = [json.loads(x) for x in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    loss = {e["iteration"]: e["loss"] for e in log if "loss" in e}
    loss2 = {e["iteration"]: e["loss"] for e in log2 if "loss" in e}
    assert loss == loss2 and len(loss) == 4


@pytest.mark.slow
def test_ctrl_c_saves_a_resumable_checkpoint(micro_cfg, tmp_path):
    class Bar:  # a progress bar that presses Ctrl-C after the first step
        def __init__(self, **kw):
            self.n = kw.get("initial", 0)

        def update(self, k):
            self.n += k
            if self.n == 1:
                os.kill(os.getpid(), signal.SIGINT)

        def set_postfix(self, **kw):
            pass

        def close(self):
            pass

    cfg = micro_cfg(TRAIN={"END_EPOCH": 1})
    res = fit(cfg, tmp_path / "run", progress=Bar)
    assert res["stop_reason"] == "interrupted" and res["iteration"] == 1
    state = ckpt.load_training_checkpoint(tmp_path / "run" / "checkpoint.pth")
    assert (state["epoch"], state["epoch_iteration"]) == (0, 1)
    res = fit(cfg, tmp_path / "run", resume=True)
    assert res["stop_reason"] == "completed" and res["iteration"] == 2


def test_stop_flag_first_ctrl_c_sets_flag_second_interrupts():
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs as a background job
    with _StopFlag() as flag:
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is back


def test_nan_loss_stops_with_clear_error_and_keeps_last_checkpoint(micro_cfg, tmp_path, monkeypatch):
    from posekit.engine.tasks.topdown import TopDownTask

    real = TopDownTask.criterion

    def poisoned(self, cfg, built):
        crit = real(self, cfg, built)
        calls = {"n": 0}

        def loss(outputs, targets):
            calls["n"] += 1
            value, logs = crit(outputs, targets)
            return (value * float("nan") if calls["n"] == 3 else value), logs

        return loss

    monkeypatch.setattr(TopDownTask, "criterion", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite loss .* epoch 1 step 0 .*last good checkpoint is .*run/"):
        fit(micro_cfg(), tmp_path / "run")
    state = ckpt.load_training_checkpoint(tmp_path / "run" / "checkpoint.pth")
    assert (state["epoch"], state["epoch_iteration"], state["iteration"]) == (1, 0, 2)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_nan_loss_at_the_first_step_names_no_checkpoint_that_does_not_exist(micro_cfg, tmp_path, monkeypatch):
    """A NaN label stops the first step: the message must not point at a checkpoint that was never written."""
    from posekit.engine.tasks.topdown import TopDownTask

    real = TopDownTask.criterion

    def poisoned(self, cfg, built):
        crit = real(self, cfg, built)
        return lambda outputs, targets: (crit(outputs, targets)[0] * float("nan"), {})

    monkeypatch.setattr(TopDownTask, "criterion", poisoned)
    with pytest.raises(TrainingError, match=r"iteration 1\); no checkpoint was written before it") as e:
        fit(micro_cfg(), tmp_path / "run")
    assert "last good checkpoint" not in str(e.value) and not (tmp_path / "run" / "checkpoint.pth").exists()


@pytest.mark.slow
def test_validation_tracks_best_metric_and_writes_files(micro_cfg, tmp_path):
    res = fit(micro_cfg(TRAIN={"END_EPOCH": 1, "VAL_EVERY": 1, "MAX_ITERS": 0},
                        DEBUG={"DEBUG": True, "SAVE_BATCH_IMAGES_GT": True, "SAVE_BATCH_IMAGES_PRED": True,
                               "SAVE_HEATMAPS_GT": True, "SAVE_HEATMAPS_PRED": True}), tmp_path / "run")
    metrics = res["history"][0]["metrics"]
    assert set(metrics) >= {"AP", "AP .5", "AR"} and res["metric"] == "AP"
    assert res["best_metric"] == metrics["AP"] and res["best_weights"]
    assert {"checkpoint.pth", "model_best.pth", "final_state.pth", "config.yaml", "log.jsonl"} <= {
        p.name for p in (tmp_path / "run").iterdir()}
    if train_mod._tensorboard(tmp_path / "probe") is not None:
        assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    pngs = sorted(p.name for p in (tmp_path / "run" / "debug").glob("*.png"))
    assert any(n.endswith("_gt.png") for n in pngs) and any(n.endswith("_hm_pred.png") for n in pngs)
    steps = [e for e in map(json.loads, (tmp_path / "run" / "log.jsonl").read_text().splitlines()) if "loss" in e]
    assert steps and all(0.0 <= e["acc"] <= 1.0 for e in steps)  # the task's official heatmap accuracy
    # resuming a finished run is a no-op that keeps the best metric
    again = fit(micro_cfg(TRAIN={"END_EPOCH": 1, "VAL_EVERY": 1}), tmp_path / "run", resume=True)
    assert again["iteration"] == res["iteration"] and again["best_metric"] == res["best_metric"]


def test_max_minutes_stops_after_the_current_step(micro_cfg, tmp_path):
    res = fit(micro_cfg(TRAIN={"MAX_MINUTES": 1e-9}), tmp_path / "run")
    assert res["stop_reason"] == "max_minutes" and res["iteration"] == 1
    assert ckpt.load_training_checkpoint(tmp_path / "run" / "checkpoint.pth")["epoch_iteration"] == 1


def test_resume_refuses_another_model(micro_cfg, tmp_path):
    fit(micro_cfg(TRAIN={"END_EPOCH": 1, "MAX_ITERS": 1}), tmp_path / "run")
    other = micro_cfg(MODEL={"HEATMAP_SIZE": [32, 32], "IMAGE_SIZE": [128, 128]})
    with pytest.raises(CheckpointError, match="other settings .*MODEL.IMAGE_SIZE"):
        fit(other, tmp_path / "run", resume=True)
    with pytest.raises(CheckpointError, match="not found"):
        fit(micro_cfg(), tmp_path / "empty", resume=True)


def test_sampler_skip_and_rank_shards_cover_the_single_process_order():
    data = list(range(10))
    one = ResumableSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3)
    one.set_epoch(2)
    order = list(one)
    assert sorted(order) == data and order != data
    one.start = 4
    assert list(one) == order[4:] and len(one) == 6
    ranks = [ResumableSampler(data, num_replicas=2, rank=r, shuffle=True, seed=3) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(2)
    r0, r1 = list(ranks[0]), list(ranks[1])
    # step k of the 2-process run (batch b each) sees the samples of step k of a 1-process run with batch 2b
    b = 2
    for k in range(2):
        assert sorted(r0[k * b:(k + 1) * b] + r1[k * b:(k + 1) * b]) == sorted(order[2 * b * k:2 * b * (k + 1)])


def test_checkpoint_is_atomic_and_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [1, 2], 0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched.step()
    path = tmp_path / "c.pth"
    ckpt.save_training_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=1, iteration=5,
                                  epoch_iteration=0, best_metric=0.5, config_yaml="MODEL: {}\n")
    state = ckpt.load_training_checkpoint(path)  # weights_only=True inside
    assert state["iteration"] == 5 and state["best_metric"] == 0.5 and state["config"] == "MODEL: {}\n"
    sched2 = torch.optim.lr_scheduler.MultiStepLR(torch.optim.Adam(model.parameters(), lr=0.1), [7], 0.5)
    ckpt.restore_scheduler(sched2, state["scheduler"])
    assert sched2.milestones == sched.milestones and sched2.last_epoch == 1
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - any pickling error
        ckpt.save_training_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=2, iteration=6,
                                      epoch_iteration=0, best_metric=None, config_yaml="",
                                      extra={"bad": lambda: 0})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["c.pth"]
    torch.save({"model": model.state_dict()}, tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match="not a posekit training checkpoint"):
        ckpt.load_training_checkpoint(tmp_path / "plain.pth")


def test_rng_state_round_trip():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = ckpt.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_pretrained_backbone_loads_only_the_named_layers(micro_cfg, tmp_path):
    from posekit.engine.build import build_model_from_config

    torch.manual_seed(5)
    donor, _, _ = build_model_from_config(micro_cfg())
    state = {k: v for k, v in donor.state_dict().items() if not k.startswith("final_layer")}
    state["classifier.weight"] = torch.zeros(10, 4)  # an ImageNet head that must be ignored
    torch.save(state, tmp_path / "imagenet.pth")
    layers = ["conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2", "stage3",
              "transition3", "stage4"]
    cfg = micro_cfg(MODEL={"PRETRAINED": str(tmp_path / "imagenet.pth")})
    cfg.MODEL.EXTRA["PRETRAINED_LAYERS"] = layers
    torch.manual_seed(6)
    model, _, _ = build_model_from_config(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_mod.load_pretrained(cfg, model)
    after = model.state_dict()
    for k, v in after.items():
        if k.split(".")[0] in layers:
            assert torch.equal(v, donor.state_dict()[k]), k
        else:
            assert torch.equal(v, before[k]), k


def test_missing_pretrained_file_names_the_key(reference_dir, tmp_path):
    from posekit.config import load_config

    cfg = load_config(reference_dir / "configs/hrnet_repo/coco/resnet/res50_256x192_d256x3_adam_lr1e-3.yaml",
                      warn=False)
    with pytest.raises(ConfigError, match=r"MODEL.PRETRAINED .*resnet50-19c8e357.pth not found.*MODEL.PRETRAINED=''"):
        fit(cfg, tmp_path / "run")


@pytest.mark.slow
def test_channels_last_training_resumes_bit_exact(micro_cfg, tmp_path):
    nhwc = {"CHANNELS_LAST": True}
    full = fit(micro_cfg(TRAIN=nhwc), tmp_path / "full")
    assert full["stop_reason"] == "completed"
    fit(micro_cfg(TRAIN={**nhwc, "MAX_ITERS": 3}), tmp_path / "split")
    fit(micro_cfg(TRAIN=nhwc), tmp_path / "split", resume=True)
    _assert_same_state(_weights(tmp_path / "full" / "final_state.pth"),
                       _weights(tmp_path / "split" / "final_state.pth"))
    plain = _weights(tmp_path / "full" / "final_state.pth")
    assert all(v.is_contiguous() for v in plain.values())  # weights files are plain NCHW tensors


def test_image_cache_keeps_decoded_training_images_without_changing_samples(micro_cfg):
    from posekit.engine.tasks import task_for

    samples = {}
    for size in (0, 1000):
        cfg = micro_cfg(DATASET={"IMAGE_CACHE": size})
        task = task_for(cfg)
        ds = task.train_dataset(cfg, task.build(cfg))
        ds.set_epoch(1)
        samples[size] = [ds[i][:3] for i in (*range(len(ds)), *range(len(ds)))]  # every image read twice
        assert ds.reader.cache_size == size
        if size:
            assert ds.reader.hits >= len(ds)  # the second pass is served from memory
        else:
            assert ds.reader.hits == 0
    for a, b in zip(samples[0], samples[1000]):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_cpu_amp_trains_in_bfloat16_only_where_the_cpu_has_it(micro_cfg, tmp_path, monkeypatch):
    plain = fit(micro_cfg(), tmp_path / "fp32")
    assert plain["autocast"] is None
    monkeypatch.setattr(train_mod, "cpu_has_native_bf16", lambda: False)
    no_bf16 = fit(micro_cfg(TRAIN={"CPU_AMP": True}), tmp_path / "no_bf16")
    assert no_bf16["autocast"] is None  # a CPU without native bf16 trains in float32: the same weights
    _assert_same_state(_weights(tmp_path / "fp32" / "final_state.pth"),
                       _weights(tmp_path / "no_bf16" / "final_state.pth"))
    monkeypatch.setattr(train_mod, "cpu_has_native_bf16", lambda: True)
    bf16 = fit(micro_cfg(TRAIN={"CPU_AMP": True}), tmp_path / "bf16")
    assert bf16["autocast"] == "bfloat16" and bf16["stop_reason"] == "completed"
    a, b = _weights(tmp_path / "fp32" / "final_state.pth"), _weights(tmp_path / "bf16" / "final_state.pth")
    assert all(v.dtype == a[k].dtype for k, v in b.items())  # weights stay float32
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the forward really ran in bfloat16
    losses = [h["loss"] for h in bf16["history"]]
    assert all(np.isfinite(losses))


def test_float32_outputs_casts_nested_low_precision_tensors():
    out = train_mod.float32_outputs({"a": [torch.ones(2, dtype=torch.bfloat16), torch.arange(3)],
                                     "b": (torch.zeros(1, dtype=torch.float16),), "c": "name"})
    assert out["a"][0].dtype == torch.float32 and out["a"][1].dtype == torch.int64
    assert out["b"][0].dtype == torch.float32 and isinstance(out["b"], tuple) and out["c"] == "name"


def test_a_fresh_run_in_a_used_folder_starts_a_new_log(micro_cfg, tmp_path):
    def first_iterations() -> list[int]:
        lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
        return [e["iteration"] for e in map(json.loads, lines) if e.get("iteration") == 1]

    fit(micro_cfg(TRAIN={"MAX_ITERS": 3}), tmp_path / "run")
    fit(micro_cfg(TRAIN={"MAX_ITERS": 3}), tmp_path / "run")  # not resumed: trains from scratch again
    assert first_iterations() == [1]  # one run's log, not two interleaved (the demo's curve is drawn from it)
    fit(micro_cfg(TRAIN={"MAX_ITERS": 5}), tmp_path / "run", resume=True)
    assert first_iterations() == [1]  # a resumed run appends
    its = [e["iteration"] for e in map(json.loads, (tmp_path / "run" / "log.jsonl").read_text().splitlines())
           if "loss" in e]
    assert its == sorted(its) and its[-1] > 3  # the resumed steps follow the first run's


def test_prefetch_thread_trains_the_same_weights_and_resumes(micro_cfg, tmp_path):
    plain = fit(micro_cfg(), tmp_path / "plain")
    ahead = fit(micro_cfg(TRAIN={"PREFETCH": 2}), tmp_path / "ahead")
    assert plain["iteration"] == ahead["iteration"] == 4
    _assert_same_state(_weights(tmp_path / "plain" / "final_state.pth"),
                       _weights(tmp_path / "ahead" / "final_state.pth"))
    fit(micro_cfg(TRAIN={"PREFETCH": 2, "MAX_ITERS": 3}), tmp_path / "split")  # batches made ahead are not lost
    fit(micro_cfg(TRAIN={"PREFETCH": 2}), tmp_path / "split", resume=True)
    _assert_same_state(_weights(tmp_path / "plain" / "final_state.pth"),
                       _weights(tmp_path / "split" / "final_state.pth"))


def test_pretrained_load_report_goes_to_the_run_log_and_the_caller(micro_cfg, tmp_path):
    """fit with MODEL.PRETRAINED = another run's weights: 'pretrained' event + a log.jsonl line with the report."""
    from posekit.engine.build import build_model_from_config

    torch.manual_seed(7)
    donor, _, _ = build_model_from_config(micro_cfg())
    state = dict(donor.state_dict())
    state["final_layer.weight"] = torch.zeros(3, 3, 1, 1)  # another head: skipped with its shape
    torch.save({"state_dict": state}, tmp_path / "donor.pth")
    events = []
    fit(micro_cfg(MODEL={"PRETRAINED": str(tmp_path / "donor.pth")}, TRAIN={"MAX_ITERS": 1}), tmp_path / "run",
        on_event=lambda kind, info: events.append((kind, info)))
    report = next(info["report"] for kind, info in events if kind == "pretrained")
    assert ("final_layer.weight", f"shape: (3, 3, 1, 1) vs model {tuple(donor.final_layer.weight.shape)}") \
        in report.skipped
    assert len(report.loaded) == len(state) - 1
    logged = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    entry = next(e["pretrained"] for e in logged if "pretrained" in e)
    assert entry["loaded"] == len(state) - 1 and entry["skipped"][0]["key"] == "final_layer.weight"
