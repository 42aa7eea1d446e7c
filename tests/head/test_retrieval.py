"""stages/head/retrieval.py: RGCL's mining and kNN classifier against direct computations."""
import numpy as np
import pytest
import torch

from stages.head import retrieval
from tests.helpers import unit


def test_mining_finds_the_nearest_same_and_other_label_memes_never_itself(pool):
    queries, labels, positions, index = pool
    positive, negative, has_negative = retrieval.mine(queries, labels[positions], positions, index, labels)
    assert has_negative.all()
    q, x = unit(queries.numpy()), unit(index.numpy())
    for run in range(2):
        for i, own in enumerate(positions[run].tolist()):
            sims = x[run] @ q[run, i]
            same = [j for j in range(30) if labels[j] == labels[own] and j != own]
            other = [j for j in range(30) if labels[j] != labels[own]]
            assert positive[run, i] == max(same, key=lambda j: sims[j])
            assert negative[run, i] == max(other, key=lambda j: sims[j])
            assert sims[own] > sims[positive[run, i]]  # itself would have been nearest


def direct_vote(queries, index, labels, k):
    """The documented vote written out, meme by meme and label by label: (runs, Q, L)."""
    q, x = unit(queries.numpy()), unit(index.numpy())
    weights = np.arange(k, 0, -1)  # k + 1 - rank
    expected = np.zeros((q.shape[0], q.shape[1], labels.shape[1]))
    for run in range(q.shape[0]):
        for i in range(q.shape[1]):
            sims = x[run] @ q[run, i]
            ranked = np.argsort(-sims)[:k]
            for label in range(labels.shape[1]):
                votes = 2 * labels[ranked, label] - 1
                score = np.sum(weights * sims[ranked] * votes) / weights.sum()
                expected[run, i, label] = (1 + score) / 2
    return expected


def test_knn_probs_are_the_documented_vote(pool):
    _, labels, _, index = pool
    queries = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(1))
    probs = retrieval.knn_probs(queries, retrieval.Index(index, labels[:, None], [str(i) for i in range(30)]), 7)
    assert probs.shape == (2, 4, 1)
    np.testing.assert_allclose(probs, direct_vote(queries, index, labels[:, None].numpy(), 7), atol=1e-6)


def test_each_label_of_a_multi_label_task_is_voted_apart(pool):
    """Every neighbour votes its label vector with the same weights (Propaganda Memes' 22)."""
    _, _, _, index = pool
    labels = torch.randint(0, 2, (30, 5), generator=torch.Generator().manual_seed(3))
    queries = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(4))
    probs = retrieval.knn_probs(queries, retrieval.Index(index, labels, [str(i) for i in range(30)]), 7)
    assert probs.shape == (2, 4, 5)
    np.testing.assert_allclose(probs, direct_vote(queries, index, labels.numpy(), 7), atol=1e-6)
    single = retrieval.knn_probs(queries, retrieval.Index(index, labels[:, 2:3], [str(i) for i in range(30)]), 7)
    np.testing.assert_allclose(probs[..., 2:3], single, atol=1e-7)  # a label's vote is its own


def test_k_beyond_the_index_votes_over_every_indexed_meme(pool):
    _, labels, _, index = pool
    queries = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(5))
    everything = retrieval.Index(index, labels[:, None], [str(i) for i in range(30)])
    np.testing.assert_allclose(retrieval.knn_probs(queries, everything, 500),
                               direct_vote(queries, index, labels[:, None].numpy(), 30), atol=1e-6)


def test_a_meme_added_to_the_index_changes_its_neighbours_scores(pool):
    _, labels, _, index = pool
    base = retrieval.Index(index, labels[:, None], [str(i) for i in range(30)])
    query = torch.randn(2, 1, 6, generator=torch.Generator().manual_seed(2))
    before = retrieval.knn_probs(query, base, 5)
    hateful_twin = retrieval.Index(query.clone(), torch.tensor([[1]]), ["new"])
    after = retrieval.knn_probs(query, base.extended(hateful_twin), 5)
    assert (after > before).all()  # its new nearest neighbour is hateful, at similarity 1


def direct_mining(q, x, labels, own, label, self_positive, pool):
    """RGCL's code, written out for one anchor: the first same-label hit among its neighbours
    over every training meme (itself included when self_positive), and the first other-label
    hit among its `pool` nearest (anywhere when pool is 0; None where there is none)."""
    sims = x @ q
    ranked = [int(j) for j in np.argsort(-sims, kind="stable")]
    positive = next(j for j in ranked if labels[j] == label and (self_positive or j != own))
    window = ranked[:pool] if pool else ranked
    negative = next((j for j in window if labels[j] != label), None)
    return positive, negative


@pytest.mark.parametrize("self_positive", [False, True])
@pytest.mark.parametrize("pool_size", [0, 3, 12])
def test_mining_options_follow_rgcls_code(pool, self_positive, pool_size):
    queries, labels, positions, index = pool
    positive, negative, has_negative = retrieval.mine(queries, labels[positions], positions, index,
                                                      labels, self_positive, pool_size)
    q, x = unit(queries.numpy()), unit(index.numpy())
    for run in range(2):
        for i, own in enumerate(positions[run].tolist()):
            expected_positive, expected_negative = direct_mining(
                q[run, i], x[run], labels.numpy(), own, int(labels[own]), self_positive, pool_size)
            assert positive[run, i] == expected_positive
            assert bool(has_negative[run, i]) == (expected_negative is not None)
            if expected_negative is not None:
                assert negative[run, i] == expected_negative
    if self_positive:  # the anchor's own row is nearest: the code takes itself
        assert (positive == positions).all()


def test_an_anchor_whose_pool_holds_no_other_label_has_no_hard_negative():
    index = torch.tensor([[[1.0, 0.0], [0.99, 0.1], [0.98, 0.2], [-1.0, 0.0]]])
    labels = torch.tensor([1, 1, 1, 0])
    positions = torch.tensor([[0]])
    _, negative, has = retrieval.mine(index[:, :1], labels[positions], positions, index, labels, False, 3)
    assert not has[0, 0]  # its 3 nearest are all hateful
    _, negative, has = retrieval.mine(index[:, :1], labels[positions], positions, index, labels, False, 0)
    assert has[0, 0] and negative[0, 0] == 3  # anywhere: the one benign meme
