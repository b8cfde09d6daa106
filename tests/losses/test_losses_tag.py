"""AE losses against the official C extension forward and HeatmapLoss (ae_losses.npz); gradients by gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import posekit.codecs
from posekit.losses import AELoss, heatmap_loss, tag_loss
from posekit.losses.tag import flatten_tags


@pytest.fixture(scope="module")
def losses(reference_dir):
    return np.load(reference_dir / "codecs/ae_losses.npz")


@pytest.mark.parametrize("case", range(15))
def test_push_pull_match_official(losses, case):
    tags = torch.from_numpy(losses[f"case{case}_tags"])
    refs = torch.from_numpy(losses[f"case{case}_keypoints"])
    push, pull = tag_loss(tags, refs)
    ref = losses[f"case{case}_push_pull"]
    np.testing.assert_allclose(push.numpy(), ref[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pull.numpy(), ref[:, 1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", range(4))
def test_heatmap_loss_matches_official(losses, case):
    pred, gt, mask = (torch.from_numpy(losses[f"hmloss{case}_{k}"]) for k in ("pred", "gt", "mask"))
    np.testing.assert_allclose(heatmap_loss(pred, gt, mask).numpy(), losses[f"hmloss{case}_value"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", [9, 14])  # D = 1 and D = 2, several people, unused slots
def test_tag_loss_gradients_match_finite_differences(losses, case):
    tags = torch.from_numpy(losses[f"case{case}_tags"][:1]).double()  # first image: several people, pushes > 0
    refs = torch.from_numpy(losses[f"case{case}_keypoints"][:1])
    used = torch.unique(refs[..., 0][refs[..., 1] > 0])  # gradcheck on the referenced entries only (fast)
    base = tags.detach().clone()

    def f(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = base.clone()
        t[:, used] = values
        return tag_loss(t, refs)

    x = base[:, used].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-6)


def test_ae_loss_stacks_weights_and_backward():
    codec = posekit.codecs.build("ae", input_size=(64, 64), heatmap_size=(16, 16), num_keypoints=17)
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(0, 64, (3, 17, 2)), np.ones((3, 17, 1))], axis=2)
    kp[:, :, 0] = kp[:, :, 0] / 4 + np.arange(3)[:, None] * 21 + 2  # people in separate columns: no shared blobs
    enc = codec.encode(kp)
    targets = {"heatmaps": torch.from_numpy(enc["heatmaps"])[None].repeat(2, 1, 1, 1),
               "masks": torch.ones(2, 16, 16), "refs": torch.from_numpy(enc["refs"])[None].repeat(2, 1, 1, 1)}
    out = torch.randn(2, 3, 68, 16, 16, requires_grad=True)  # 3 stacks, official 68 channels (34:68 unused)
    crit = AELoss(17, 1)
    loss, logs = crit(out, targets)
    push, pull, det = crit.per_stack(out, targets)
    assert push.shape == (2, 3)
    expected = 1e-3 * push.mean() + 1e-3 * pull.mean() + det.mean()
    torch.testing.assert_close(loss, expected)
    assert set(logs) == {"push", "pull", "detection"}
    loss.backward()
    assert out.grad[:, :, 34:].abs().sum() == 0 and out.grad[:, :, :34].abs().sum() > 0
    # a perfect output has zero detection loss and zero pull
    perfect = torch.from_numpy(codec.perfect_outputs(kp))[None, None].repeat(2, 1, 1, 1, 1)
    push, pull, det = crit.per_stack(perfect, targets)
    assert det.abs().max() == 0 and pull.abs().max() == 0 and push.max() < 0.01  # 0.5*mean(e^-4, e^-16, e^-4)


def test_flatten_tags_uses_the_ref_index_layout():
    maps = torch.arange(2 * 17 * 2 * 4 * 5, dtype=torch.float32).reshape(2, 34, 4, 5)  # K=17, D=2
    flat = flatten_tags(maps, 17)
    j, y, x = 3, 2, 1
    assert flat.shape == (2, 17 * 20, 2)
    assert flat[1, j * 20 + y * 5 + x, 1] == maps[1, j * 2 + 1, y, x]
