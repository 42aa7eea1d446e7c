"""AUROC and the dev threshold: the scores train and evaluate share (numpy only, quick to import)."""
from __future__ import annotations

import numpy as np

THRESHOLD = 0.5  # pred_label = prob_hate >= THRESHOLD, as in the seed's predictions


def auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    """AUROC, or NaN where a split holds one class only (AUROC is undefined there).

    The Mann-Whitney form (mean rank of the positives, ties averaged) gives the same number
    as sklearn's roc_auc_score.
    """
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(probs, kind="stable")
    sorted_probs = np.asarray(probs)[order]
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    # ties share the average of their ranks
    _, first, counts = np.unique(sorted_probs, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The decision threshold with the highest accuracy (chosen on the dev split)."""
    candidates = np.unique(np.concatenate([probs, [THRESHOLD]]))
    accuracies = [np.mean((probs >= t) == labels) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])
