"""scripts/compare.py: two sides' predictions aligned meme by meme before they are compared."""
import numpy as np
import pytest
from sklearn import metrics

from stages.common.errors import InputError
from stages.data.task import HATEFUL
from tests.helpers import direct_delong


def side(ids, labels, probs, where="x"):
    return {"task": HATEFUL, "where": where,
            "splits": {"dev": (list(ids), np.array(labels, np.int8)[:, None], np.array(probs)[None, :, None])}}


def test_sides_of_different_caches_are_compared_on_the_memes_they_share():
    from scripts import compare

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 30)
    a = side([f"m{k}" for k in range(30)], labels, rng.random(30), "a")
    b = side([f"m{k}" for k in range(10, 40)], np.concatenate([labels[10:], [0] * 10]), rng.random(30), "b")
    results, notes = compare.compare_sides(a, b, None)
    assert results["dev"].n == 20 and notes == ["split 'dev': compared on the 20 memes both sides scored (A 30, B 30)"]
    alone = side(["z1", "z2"], [0, 1], [0.1, 0.9])
    with pytest.raises(InputError, match="share no meme"):
        compare.compare_sides(a, alone, None)
    with pytest.raises(InputError, match="not a labeled split of both"):
        compare.compare_sides(a, b, ["test"])


@pytest.mark.parametrize("missing", [0, 7])
def test_b_listing_the_memes_in_another_order_is_realigned_to_a(missing):
    """B's file lists the same memes shuffled (and, in the second case, lacks some): each B
    probability must meet its own meme's label and A's probability, as in the aligned case."""
    from scripts import compare

    rng = np.random.default_rng(5)
    ids = [f"m{k}" for k in range(40)]
    labels = rng.integers(0, 2, 40)
    probs_a = np.clip(labels * 0.5 + rng.random(40) * 0.7, 0, 1)
    probs_b = np.clip(labels * 0.2 + rng.random(40) * 0.9, 0, 1)
    kept = np.arange(missing, 40)
    aligned = compare.compare_sides(side(ids, labels, probs_a), side([ids[k] for k in kept], labels[kept],
                                                                     probs_b[kept]), None)[0]["dev"]
    order = rng.permutation(kept)
    shuffled = compare.compare_sides(side(ids, labels, probs_a), side([ids[k] for k in order], labels[order],
                                                                      probs_b[order]), None)[0]["dev"]
    assert shuffled == aligned
    assert aligned.n == 40 - missing
    assert aligned.b == pytest.approx(metrics.roc_auc_score(labels[kept], probs_b[kept]))
    assert aligned.delong_p == pytest.approx(direct_delong(labels[kept], probs_a[kept], probs_b[kept])[2])
