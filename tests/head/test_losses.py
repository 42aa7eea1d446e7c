"""stages/head/losses.py: the BCE and cross-entropy losses over known cells, and RGCL's
contrastive and triplet losses, against direct computations."""
import math

import numpy as np
import pytest
import torch

from stages.head import losses
from tests.helpers import unit


def test_the_multi_label_loss_is_the_mean_bce_and_unknown_cells_never_count():
    logits = torch.randn(2, 5, 3)
    labels = torch.randint(0, 2, (2, 5, 3)).float()
    expected = torch.nn.BCEWithLogitsLoss()(logits[1], labels[1])  # the official loss, one run
    torch.testing.assert_close(losses.bce(logits, labels)[1], expected)
    partly = labels.clone()
    partly[:, :2] = -1  # the first two memes lack these labels
    torch.testing.assert_close(losses.masked_bce(logits, partly)[0],
                               torch.nn.BCEWithLogitsLoss()(logits[0, 2:], labels[0, 2:]))
    assert losses.masked_bce(logits, torch.full_like(labels, -1)).tolist() == [0.0, 0.0]


def test_the_class_loss_is_cross_entropy_over_the_memes_that_know_their_class():
    logits = torch.randn(2, 6, 3)
    classes = torch.randint(0, 3, (2, 6))
    onehot = torch.nn.functional.one_hot(classes, 3).float()
    torch.testing.assert_close(losses.masked_cross_entropy(logits, onehot)[1],
                               torch.nn.CrossEntropyLoss()(logits[1], classes[1]))
    onehot[:, :2] = -1  # two memes without a class (HarMeme's target of a harmless meme)
    torch.testing.assert_close(losses.masked_cross_entropy(logits, onehot)[0],
                               torch.nn.CrossEntropyLoss()(logits[0, 2:], classes[0, 2:]))


def test_rgcl_contrastive_loss_is_the_papers_formula(pool):
    queries, labels, positions, index = pool
    batch_labels = labels[positions]
    positive, negative = index[:, :5] * 0.5, index[:, 5:10] + 1
    loss = losses.rgcl_contrastive(queries, batch_labels, positive, negative,
                                   torch.ones(2, 5, dtype=torch.bool))
    q, p, n = unit(queries.numpy()), unit(positive.numpy()), unit(negative.numpy())
    for run in range(2):
        terms = []
        for i in range(5):
            denominator = math.exp(q[run, i] @ p[run, i]) + math.exp(q[run, i] @ n[run, i])
            denominator += sum(math.exp(q[run, i] @ q[run, j]) for j in range(5)
                               if batch_labels[run, j] != batch_labels[run, i])
            terms.append(-math.log(math.exp(q[run, i] @ p[run, i]) / denominator))
        assert loss[run].item() == pytest.approx(np.mean(terms), rel=1e-5)


def test_rgcl_triplet_loss_is_the_codes_formula(pool):
    """relu(mean in-batch other-label similarity + hard-negative similarity - pseudo-gold
    similarity + margin), batch mean; a missing hard negative contributes 0."""
    queries, labels, positions, index = pool
    batch_labels = labels[positions]
    positive, negative = index[:, :5] * 0.5, index[:, 5:10] + 1
    has = torch.tensor([[True, False, True, True, True], [True, True, True, False, True]])
    loss = losses.rgcl_triplet(queries, batch_labels, positive, negative, has, margin=0.1)
    q, p, n = unit(queries.numpy()), unit(positive.numpy()), unit(negative.numpy())
    for run in range(2):
        terms = []
        for i in range(5):
            others = [q[run, i] @ q[run, j] for j in range(5) if batch_labels[run, j] != batch_labels[run, i]]
            in_batch = np.mean(others) if others else 0.0
            hard = q[run, i] @ n[run, i] if has[run, i] else 0.0
            terms.append(max(0.0, in_batch + hard - q[run, i] @ p[run, i] + 0.1))
        assert loss[run].item() == pytest.approx(np.mean(terms), rel=1e-5, abs=1e-7)


def test_the_nll_form_drops_a_missing_hard_negative(pool):
    queries, labels, positions, index = pool
    batch_labels = labels[positions]
    positive, negative = index[:, :5] * 0.5, index[:, 5:10] + 1
    has = torch.ones(2, 5, dtype=torch.bool)
    has[0, 2] = False
    loss = losses.rgcl_contrastive(queries, batch_labels, positive, negative, has)
    q, p, n = unit(queries.numpy()), unit(positive.numpy()), unit(negative.numpy())
    terms = []
    for i in range(5):
        denominator = math.exp(q[0, i] @ p[0, i]) + (math.exp(q[0, i] @ n[0, i]) if has[0, i] else 0)
        denominator += sum(math.exp(q[0, i] @ q[0, j]) for j in range(5)
                           if batch_labels[0, j] != batch_labels[0, i])
        terms.append(-math.log(math.exp(q[0, i] @ p[0, i]) / denominator))
    assert loss[0].item() == pytest.approx(np.mean(terms), rel=1e-5)
