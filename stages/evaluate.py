"""Stage 3, evaluate: metrics and curves of the trained head on every labeled split but train.

    python -m stages.evaluate

Writes reports/metrics.json (DVC metrics) and, per split, ROC, precision-recall and confusion
data under reports/plots/ (DVC plots). The threshold with the best dev accuracy is reported
in every split's entry (`dev_threshold`), with `accuracy_at_dev_threshold` beside the
0.5-threshold metrics.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics

from stages import features, head as head_module, params as params_module, scoring
from stages.dataset import TRAIN_SPLIT
from stages.outputs import InputError, atomic_dir, run_stage, write_csv, write_json

METRICS = Path("reports/metrics.json")
PLOTS = Path("reports/plots")


def summary(labels: np.ndarray, probs: np.ndarray, dev_threshold: float) -> dict:
    predicted = (probs >= scoring.THRESHOLD).astype(int)
    return {
        "n": int(len(labels)),
        "auroc": scoring.auroc(labels, probs),
        "average_precision": float(metrics.average_precision_score(labels, probs)),
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "f1": float(metrics.f1_score(labels, predicted, zero_division=0)),
        "precision": float(metrics.precision_score(labels, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(labels, predicted, zero_division=0)),
        "dev_threshold": dev_threshold,
        "accuracy_at_dev_threshold": float(np.mean((probs >= dev_threshold) == labels)),
    }


def roc_points(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    fpr, tpr, thresholds = metrics.roc_curve(labels, probs)
    return {"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thresholds, 1.0)}


def pr_points(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    precision, recall, _ = metrics.precision_recall_curve(labels, probs)
    return {"recall": recall, "precision": precision}


def write_curves(plots: Path, name: str, labels: np.ndarray, probs: np.ndarray) -> None:
    write_csv(plots / "roc" / f"{name}.csv", pd.DataFrame(roc_points(labels, probs)))
    write_csv(plots / "precision_recall" / f"{name}.csv",
              pd.DataFrame(pr_points(labels, probs)))
    write_csv(plots / "confusion" / f"{name}.csv",
              pd.DataFrame({"actual": labels, "predicted": (probs >= scoring.THRESHOLD).astype(int)}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Evaluate the trained head.")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    p = params_module.load(args.params)
    head, _, splits = head_module.load_checked(p)
    labeled = {name: s for name, s in splits.items()
               if name != TRAIN_SPLIT and (s.labels >= 0).all()}
    if p.data.dev_split not in labeled:
        raise InputError(f"data.dev_split '{p.data.dev_split}' is not a labeled split of "
                         f"{features.CACHE} (it has: {', '.join(splits)})")
    probs = {name: head_module.predict_probs(head, s.image, s.text) for name, s in labeled.items()}
    dev = labeled[p.data.dev_split]
    threshold = scoring.best_threshold(dev.labels, probs[p.data.dev_split])
    results = {name: summary(s.labels, probs[name], threshold) for name, s in labeled.items()}
    with atomic_dir(PLOTS) as plots:
        for name, split in labeled.items():
            write_curves(plots, name, split.labels, probs[name])
    for name, m in results.items():
        print(f"{name:12s} n={m['n']:5d}  AUROC {m['auroc']:.4f}  acc {m['accuracy']:.4f}  "
              f"F1 {m['f1']:.4f}  AP {m['average_precision']:.4f}")
    write_json(METRICS, results)  # one entry per split, nothing else, for dvc and scripts alike
    print(f"wrote {METRICS} (dev threshold {threshold:.3f}) and curves under {PLOTS}/")


if __name__ == "__main__":
    run_stage(main)
