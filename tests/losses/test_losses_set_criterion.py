"""PRTR Hungarian matcher and set criterion against the official fixture (prtr_tiny.npz), plus closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posekit.errors import DataError
from posekit.losses import HungarianMatcher, SetCriterion


def _fixture(reference_dir):
    io = np.load(reference_dir / "models/prtr_tiny.npz")

    def t(k):
        return torch.from_numpy(io[k])

    out = {"pred_logits": t("pred_logits"), "pred_coords": t("pred_coords"),
           "aux_outputs": [{"pred_logits": t("aux0_pred_logits"), "pred_coords": t("aux0_pred_coords")}]}
    return io, out, t("target"), t("target_weight")


def test_matcher_indices_equal_official(reference_dir):
    io, out, target, _ = _fixture(reference_dir)
    for b, (joints, queries) in enumerate(HungarianMatcher()(out, target)):
        np.testing.assert_array_equal(joints, io[f"match_b{b}_joint_idx"])
        np.testing.assert_array_equal(queries, io[f"match_b{b}_query_idx"])


def test_every_loss_term_equals_official(reference_dir):
    io, out, target, weight = _fixture(reference_dir)
    terms = SetCriterion(17, eos_coef=0.1, kpt_loss_coef=5.0)(out, target, weight)
    names = {"loss_ce": "loss_ce", "loss_class_error": "class_error", "loss_kpts": "loss_kpts",
             "loss_cardinality_error": "cardinality_error", "loss_ce_0": "loss_ce_0", "loss_kpts_0": "loss_kpts_0",
             "loss_cardinality_error_0": "cardinality_error_0", "weighted_total_loss": "loss"}
    for ref_key, key in names.items():
        assert float(terms[key]) == pytest.approx(float(io[ref_key]), abs=1e-5), key
    assert "class_error_0" not in terms  # class error is logged for the last layer only
    np.testing.assert_allclose(terms["pred"].numpy(), io["criterion_pred"], atol=1e-6)


def test_gradients_flow_only_through_loss_terms(reference_dir):
    _, out, target, weight = _fixture(reference_dir)
    out = {"pred_logits": out["pred_logits"].clone().requires_grad_(),
           "pred_coords": out["pred_coords"].clone().requires_grad_()}
    terms = SetCriterion(17)(out, target, weight)
    terms["loss"].backward()
    assert out["pred_logits"].grad.abs().sum() > 0 and out["pred_coords"].grad.abs().sum() > 0
    assert not terms["cardinality_error"].requires_grad and not terms["class_error"].requires_grad


def test_closed_form_perfect_prediction():
    # 3 joints, 5 queries: queries 4, 0, 2 sit exactly on joints 0, 1, 2 with confident logits
    j, q = 3, 5
    target = torch.tensor([[[0.1, 0.2], [0.5, 0.5], [0.9, 0.3]]])
    coords = torch.full((1, q, 2), 0.7)
    logits = torch.full((1, q, j + 1), -20.0)
    logits[0, :, j] = 20.0  # every query "no-object" ...
    for joint, query in ((0, 4), (1, 0), (2, 2)):
        coords[0, query] = target[0, joint]
        logits[0, query, j], logits[0, query, joint] = -20.0, 20.0  # ... except the matched ones
    out = {"pred_logits": logits, "pred_coords": coords}
    (joints, queries), = HungarianMatcher()(out, target)
    assert joints.tolist() == [0, 1, 2] and queries.tolist() == [4, 0, 2]
    terms = SetCriterion(j)(out, target, torch.ones(1, j, 1))
    assert float(terms["loss_kpts"]) == 0 and float(terms["loss_ce"]) < 1e-6
    assert float(terms["class_error"]) == 0 and float(terms["cardinality_error"]) == 0
    # weighted-mean CE: one wrong no-object query costs its CE times 0.1 / (3 * 1 + 2 * 0.1)
    logits2 = logits.clone()
    logits2[0, 1, j], logits2[0, 1, 0] = -20.0, 20.0
    ce = float(SetCriterion(j)({"pred_logits": logits2, "pred_coords": coords}, target,
                                torch.ones(1, j, 1))["loss_ce"])
    assert ce == pytest.approx(0.1 * 40.0 / 3.2, rel=1e-5)


def test_shape_errors_name_the_tensor():
    with pytest.raises(DataError, match="target"):
        SetCriterion(17)({"pred_logits": torch.zeros(1, 20, 18), "pred_coords": torch.zeros(1, 20, 2)},
                         torch.zeros(1, 16, 2), torch.ones(1, 16, 1))
