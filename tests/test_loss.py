import numpy as np
import torch

from kagglebert.core.tasks import bce_loss, positive_weights


def test_positive_weights_follow_prevalence():
    labels = np.zeros((400, 2), dtype=np.float32)
    labels[:100, 0] = 1  # 25% positive
    labels[:4, 1] = 1  # 1% positive
    weights = positive_weights(labels, 0.5)
    np.testing.assert_allclose(weights, [np.sqrt(3.0), np.sqrt(99.0)], rtol=1e-5)
    assert positive_weights(labels, 0.0) is None


def test_weighted_bce_matches_the_formula():
    logits = torch.tensor([[2.0, -1.0], [-0.5, 0.3]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos_weight = torch.tensor([3.0, 5.0])
    p = torch.sigmoid(logits)
    expected = -(pos_weight * targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean()
    torch.testing.assert_close(bce_loss(logits, targets, pos_weight), expected)
    assert bce_loss(logits, targets) < bce_loss(logits, targets, pos_weight)
