"""Classification metrics and curves for hate probabilities."""
from __future__ import annotations

import numpy as np
from sklearn import metrics


def auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    """AUROC, or NaN where a split holds one class only (AUROC is undefined there)."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(metrics.roc_auc_score(labels, probs))


def best_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The decision threshold with the highest accuracy (chosen on the dev split)."""
    candidates = np.unique(np.concatenate([probs, [0.5]]))
    accuracies = [np.mean((probs >= t) == labels) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def summary(labels: np.ndarray, probs: np.ndarray, dev_threshold: float) -> dict:
    predicted = (probs >= 0.5).astype(int)
    return {
        "n": int(len(labels)),
        "auroc": auroc(labels, probs),
        "average_precision": float(metrics.average_precision_score(labels, probs)),
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "f1": float(metrics.f1_score(labels, predicted, zero_division=0)),
        "precision": float(metrics.precision_score(labels, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(labels, predicted, zero_division=0)),
        "accuracy_at_dev_threshold": float(np.mean((probs >= dev_threshold) == labels)),
    }


def roc_points(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    fpr, tpr, thresholds = metrics.roc_curve(labels, probs)
    return {"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thresholds, 1.0)}


def pr_points(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    precision, recall, _ = metrics.precision_recall_curve(labels, probs)
    return {"recall": recall, "precision": precision}
