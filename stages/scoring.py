"""AUROC, its interval over runs and memes, and the dev threshold (numpy only, quick to import)."""
from __future__ import annotations

import numpy as np

THRESHOLD = 0.5  # pred_label = prob_hate >= THRESHOLD, as in the seed's predictions
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0  # the interval is reproducible: same predictions, same interval


def std_over_runs(values: np.ndarray) -> float:
    """The sample standard deviation over runs (ddof 1); 0 for a single run."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    """AUROC, or NaN where a split holds one class only (AUROC is undefined there)."""
    return float(auroc_rows(np.asarray(labels)[None], np.asarray(probs)[None])[0])


def auroc_rows(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """AUROC of each row of (B, N) labels and probabilities, NaN for a one-class row.

    The Mann-Whitney form (mean rank of the positives, ties averaged) gives the same number
    as sklearn's roc_auc_score; rows are ranked together, so a bootstrap is one call.
    """
    labels = labels.astype(bool)
    n = labels.shape[1]
    order = np.argsort(probs, axis=1, kind="stable")
    ordered = np.take_along_axis(probs, order, axis=1)
    position = np.broadcast_to(np.arange(n), ordered.shape)
    starts = np.ones(ordered.shape, dtype=bool)  # each tie group's first and last place
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(ordered.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, n - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(ordered.shape)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=1)  # ties share their mean rank
    n_pos = labels.sum(axis=1)
    n_neg = n - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.where(labels, ranks, 0).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def auroc_interval(labels: np.ndarray, run_probs: np.ndarray, level: float = 0.95
                   ) -> tuple[float, float]:
    """Percentile bootstrap interval over the split's memes of the mean-over-runs AUROC.

    Each resample draws memes with replacement and scores every run on the same draw, so the
    interval is the uncertainty a split of this size leaves, for this set of runs.
    """
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, len(labels), size=(BOOTSTRAP_SAMPLES, len(labels)))
    resampled_labels = labels[draws]
    mean_auroc = np.mean([auroc_rows(resampled_labels, probs[draws]) for probs in run_probs], axis=0)
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(mean_auroc, [tail, 100 - tail])
    return float(low), float(high)


def best_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The decision threshold with the highest accuracy (chosen on the dev split)."""
    candidates = np.unique(np.concatenate([probs, [THRESHOLD]]))
    accuracies = [np.mean((probs >= t) == labels) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])
