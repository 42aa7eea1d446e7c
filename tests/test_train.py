"""The head learns the image-caption interaction; single modalities cannot."""
import numpy as np
import pytest
import torch

from stages import features, params, train
from tests.conftest import params_dict

DEVICE = torch.device("cpu")


def interaction_features(n, seed):
    """Features whose label is (image bit) XOR (text bit): only a fused head can predict it."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    u, v = np.eye(24)[0], np.eye(16)[0]
    image = rng.normal(size=(n, 24)) + 2.5 * np.outer(2 * a - 1, u)
    text = rng.normal(size=(n, 16)) + 2.5 * np.outer(2 * b - 1, v)
    return features.SplitFeatures(ids=[str(i) for i in range(n)],
                                  labels=(a ^ b).astype(np.int8),
                                  image=image.astype(np.float32), text=text.astype(np.float32))


@pytest.fixture(scope="module")
def splits():
    return {"train": interaction_features(800, 0), "dev": interaction_features(300, 1)}


def run(splits, fusion, **overrides):
    settings = dict(fusion=fusion, train__epochs=12, train__patience=12, train__lr=3e-3,
                    train__batch_size=32)
    p = params.parse(params_dict("d", **{**settings, **overrides}))
    return train.train(p, splits, DEVICE, log=lambda _: None)


@pytest.mark.parametrize("fusion", ["cross", "align", "cross_nd", "align_concat", "concat"])
def test_fused_heads_learn_the_interaction(splits, fusion):
    _, history = run(splits, fusion)
    best = max(h["dev_auroc"] for h in history)
    if fusion == "concat":  # no multiplicative term, but the MLP on top can still fit XOR
        assert best > 0.6
    else:
        assert best >= 0.9, fusion
    assert history[-1]["train_loss"] < history[0]["train_loss"]


@pytest.mark.parametrize("fusion", ["image", "text"])
def test_single_modalities_stay_near_chance(splits, fusion):
    _, history = run(splits, fusion)
    assert 0.4 < max(h["dev_auroc"] for h in history) < 0.62


def test_same_seed_same_run_other_seed_other_run(splits):
    head_a, history_a = run(splits, "align")
    head_b, history_b = run(splits, "align")
    _, history_c = run(splits, "align", train__seed=7)
    assert history_a == history_b
    assert all((x == y).all() for x, y in zip(head_a.state_dict().values(), head_b.state_dict().values()))
    assert history_a != history_c


def test_early_stopping_keeps_the_best_epoch(splits):
    head, history = run(splits, "align", train__patience=2, train__epochs=40)
    best = max(history, key=lambda h: h["dev_auroc"])
    assert len(history) == best["epoch"] + 2 < 40
    dev = splits["dev"]
    probs = train.predict_probs(head, dev.image, dev.text)
    assert train.scoring.auroc(dev.labels, probs) == pytest.approx(best["dev_auroc"])


def test_auroc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    probs = np.round(rng.random(500) * 0.5 + labels * 0.2, 2)  # many ties
    assert train.scoring.auroc(labels, probs) == pytest.approx(roc_auc_score(labels, probs), abs=1e-12)
    assert np.isnan(train.scoring.auroc(np.ones(4), probs[:4]))
