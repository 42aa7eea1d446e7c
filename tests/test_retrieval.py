"""RGCL's mining, contrastive loss and kNN classifier against direct computations."""
import math

import numpy as np
import pytest
import torch

from stages import losses, retrieval


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def pool():
    """Two runs' embeddings of 30 indexed memes, 5 of which are also the batch."""
    g = torch.Generator().manual_seed(0)
    index = torch.randn(2, 30, 6, generator=g)
    labels = torch.randint(0, 2, (30,), generator=g)
    positions = torch.tensor([[3, 7, 11, 20, 29], [0, 7, 12, 13, 28]])
    queries = index.gather(1, positions[..., None].expand(-1, -1, 6)) + 0.01 * torch.randn(2, 5, 6, generator=g)
    return queries, labels, positions, index


def test_mining_finds_the_nearest_same_and_other_label_memes_never_itself(pool):
    queries, labels, positions, index = pool
    positive, negative = retrieval.mine(queries, labels[positions], positions, index, labels)
    q, x = unit(queries.numpy()), unit(index.numpy())
    for run in range(2):
        for i, own in enumerate(positions[run].tolist()):
            sims = x[run] @ q[run, i]
            same = [j for j in range(30) if labels[j] == labels[own] and j != own]
            other = [j for j in range(30) if labels[j] != labels[own]]
            assert positive[run, i] == max(same, key=lambda j: sims[j])
            assert negative[run, i] == max(other, key=lambda j: sims[j])
            assert sims[own] > sims[positive[run, i]]  # itself would have been nearest


def test_rgcl_contrastive_loss_is_the_papers_formula(pool):
    queries, labels, positions, index = pool
    batch_labels = labels[positions]
    positive, negative = index[:, :5] * 0.5, index[:, 5:10] + 1
    loss = losses.rgcl_contrastive(queries, batch_labels, positive, negative)
    q, p, n = unit(queries.numpy()), unit(positive.numpy()), unit(negative.numpy())
    for run in range(2):
        terms = []
        for i in range(5):
            denominator = math.exp(q[run, i] @ p[run, i]) + math.exp(q[run, i] @ n[run, i])
            denominator += sum(math.exp(q[run, i] @ q[run, j]) for j in range(5)
                               if batch_labels[run, j] != batch_labels[run, i])
            terms.append(-math.log(math.exp(q[run, i] @ p[run, i]) / denominator))
        assert loss[run].item() == pytest.approx(np.mean(terms), rel=1e-5)


def test_knn_probs_are_the_documented_vote(pool):
    _, labels, _, index = pool
    g = torch.Generator().manual_seed(1)
    queries = torch.randn(2, 4, 6, generator=g)
    k = 7
    probs = retrieval.knn_probs(queries, retrieval.Index(index, labels, [str(i) for i in range(30)]), k)
    q, x = unit(queries.numpy()), unit(index.numpy())
    for run in range(2):
        for i in range(4):
            sims = x[run] @ q[run, i]
            ranked = np.argsort(-sims)[:k]
            weights = np.arange(k, 0, -1)  # k + 1 - rank
            score = np.sum(weights * sims[ranked] * (2 * labels.numpy()[ranked] - 1)) / weights.sum()
            assert probs[run, i] == pytest.approx((1 + score) / 2, abs=1e-6)


def test_a_meme_added_to_the_index_changes_its_neighbours_scores(pool):
    _, labels, _, index = pool
    base = retrieval.Index(index, labels, [str(i) for i in range(30)])
    query = torch.randn(2, 1, 6, generator=torch.Generator().manual_seed(2))
    before = retrieval.knn_probs(query, base, 5)
    hateful_twin = retrieval.Index(query.clone(), torch.tensor([1]), ["new"])
    after = retrieval.knn_probs(query, base.extended(hateful_twin), 5)
    assert (after > before).all()  # its new nearest neighbour is hateful, at similarity 1
