"""AUROC, its interval over runs and memes, and the dev threshold (numpy only, quick to import)."""
from __future__ import annotations

import warnings

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


def bootstrap_draws(n: int) -> np.ndarray:
    """(BOOTSTRAP_SAMPLES, n) meme indices drawn with replacement, the same for the same n:
    every interval of a split resamples the same memes."""
    return np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(BOOTSTRAP_SAMPLES, n))


def auroc_interval(labels: np.ndarray, run_probs: np.ndarray, level: float = 0.95
                   ) -> tuple[float, float]:
    """Percentile bootstrap interval over the split's memes of the mean-over-runs AUROC (for
    labels (N, L), the AUROC averaged over labels).

    Each resample draws memes with replacement and scores every run on the same draw, so the
    interval is the uncertainty a split of this size leaves, for this set of runs.
    """
    draws = bootstrap_draws(len(labels))
    labels, run_probs = labels.reshape(len(labels), -1), run_probs.reshape(*run_probs.shape[:2], -1)
    per_label = [[auroc_rows(labels[draws, k], probs[draws, k]) for k in range(labels.shape[1])]
                 for probs in run_probs]  # (runs, labels, B)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw with one class has no AUROC
        mean_auroc = np.nanmean(np.nanmean(np.array(per_label), axis=1), axis=0)
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(mean_auroc, [tail, 100 - tail])
    return float(low), float(high)


def best_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The decision threshold with the highest accuracy (chosen on the dev split)."""
    candidates = np.unique(np.concatenate([probs, [THRESHOLD]]))
    accuracies = [np.mean((probs >= t) == labels) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


# Scores of a task's labels at THRESHOLD: labels and predictions (N, L), 0/1.

def micro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """The standard micro-F1 (scikit-learn's average="micro"): F1 of the positive class pooled
    over every meme x label cell; 0 where there is no positive at all."""
    tp = np.sum((predicted == 1) & (labels == 1))
    wrong = np.sum(predicted != labels)
    return float(2 * tp / (2 * tp + wrong)) if tp or wrong else 0.0


def paper_micro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """What the official code reports as micro-F1: TorchMetrics 0.7-0.10's
    F1Score(mdmc_average="global") on integer (N, L) predictions reads them as multi-class
    (classes 0 and 1) and pools both, which is the accuracy over every meme x label cell,
    negatives included (for one label: plain accuracy)."""
    return float(np.mean(predicted == labels))


def macro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """The mean over labels of each label's F1 (0 for a label with no positive at all)."""
    return float(np.mean([micro_f1(labels[:, k], predicted[:, k]) for k in range(labels.shape[1])]))


def exact_match(labels: np.ndarray, predicted: np.ndarray) -> float:
    """The share of memes whose every label is right."""
    return float(np.mean((predicted == labels).all(axis=1)))


TASK_METRICS = {"micro_f1": micro_f1, "paper_micro_f1": paper_micro_f1, "macro_f1": macro_f1,
                "exact_match": exact_match}


def mean_auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    """AUROC (N, L) averaged over the labels where it is defined (both classes present); NaN
    if none."""
    values = auroc_rows(labels.T, probs.T)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def dev_score(select: str, labels: np.ndarray, probs: np.ndarray) -> float:
    """The train.select metric of one run's probabilities (N, L) on the dev split; `accuracy`
    is RGCL's selection, the logistic head's accuracy at 0.5 (over every cell)."""
    if select == "auroc":
        return mean_auroc(labels, probs)
    metric = paper_micro_f1 if select == "accuracy" else TASK_METRICS[select]
    return metric(labels, (probs >= THRESHOLD).astype(labels.dtype))


def baselines(labels: np.ndarray, train_labels: np.ndarray) -> dict:
    """What constant predictions score: none of the labels, all of them, and each label's
    majority value on the training split."""
    majority = (train_labels.mean(axis=0) > 0.5).astype(labels.dtype)
    constants = {"all_negative": np.zeros_like(labels), "all_positive": np.ones_like(labels),
                 "majority": np.broadcast_to(majority, labels.shape)}
    return {name: {"micro_f1": micro_f1(labels, predicted),
                   "paper_micro_f1": paper_micro_f1(labels, predicted)}
            for name, predicted in constants.items()}


def f1_intervals(labels: np.ndarray, run_predicted: np.ndarray, level: float = 0.95
                 ) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals over the split's memes of the mean-over-runs micro-F1 and
    paper micro-F1, every run scored on the same draws (as auroc_interval)."""
    draws = bootstrap_draws(len(labels))
    drawn = labels[draws]  # (B, N, L)
    micro, paper = [], []
    for predicted in run_predicted:
        p = predicted[draws]
        tp = ((p == 1) & (drawn == 1)).sum(axis=(1, 2))
        wrong = (p != drawn).sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            micro.append(np.where(tp + wrong > 0, 2 * tp / (2 * tp + wrong), 0.0))
        paper.append(1 - wrong / drawn[0].size)
    tail = 100 * (1 - level) / 2
    return {name: tuple(float(v) for v in np.percentile(np.mean(scores, axis=0), [tail, 100 - tail]))
            for name, scores in (("micro_f1", micro), ("paper_micro_f1", paper))}
