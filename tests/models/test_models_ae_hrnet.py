"""AE on an HRNet trunk: detection maps = the pose HRNet's heatmaps with the same weights; tags see coordinates."""

from __future__ import annotations

import torch

import posekit.models
from posekit.models.ae_hrnet import coordinate_maps


def test_detection_channels_are_the_pose_hrnets_heatmaps_and_tags_follow():
    torch.manual_seed(0)
    ae = posekit.models.build("ae_hrnet_w16_tiny_128").eval()
    pose = posekit.models.build("hrnet_w16_tiny_128x96").eval()
    missing, unexpected = pose.load_state_dict(ae.state_dict(), strict=False)
    assert not missing and all(k.startswith("tag_layers.") for k in unexpected)
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        out = ae(x)
        assert out.shape == (2, 1, 34, 32, 24)
        assert torch.equal(out[:, 0, :17], pose(x))


def test_tags_can_differ_between_identical_patches_at_different_places():
    """A uniform image gives the same features everywhere (away from borders) but different coordinates."""
    ae = posekit.models.build("ae_hrnet_w16_tiny_128").eval()
    with torch.no_grad():
        tags = ae(torch.zeros(1, 3, 128, 128))[0, 0, 17:]
    assert not torch.allclose(tags[:, 16, 12], tags[:, 16, 20])


def test_coordinate_maps_are_pixel_centres_in_minus_one_one():
    grid = coordinate_maps(torch.zeros(3, 5, 2, 4))
    assert grid.shape == (3, 2, 2, 4)
    assert torch.allclose(grid[0, 0, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert torch.allclose(grid[0, 1, :, 0], torch.tensor([-0.5, 0.5]))
