"""stages/evaluate.py: its binary metrics against scikit-learn, and over K runs the mean,
spread, interval and ensemble, through the stages."""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics
from sklearn import metrics as sklearn_metrics

from stages import evaluate, train
from stages.cache import features
from stages.head import hateclipper, inputs, retrieval
from stages.report import scoring
from tests.helpers import curve_cases


def test_evaluates_binary_metrics_are_sklearns():
    for labels, probs in curve_cases():
        predicted = (probs >= 0.5).astype(int)
        ours = evaluate.binary_summary(labels, probs, 0.5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.testing.assert_equal(ours["average_precision"], metrics.average_precision_score(labels, probs))
        assert ours["accuracy"] == metrics.accuracy_score(labels, predicted)
        for name, score in [("f1", metrics.f1_score), ("precision", metrics.precision_score),
                            ("recall", metrics.recall_score)]:
            assert ours[name] == pytest.approx(score(labels, predicted, zero_division=0), abs=1e-15), name
        np.testing.assert_array_equal(evaluate.confusion_matrix(labels, predicted),
                                      metrics.confusion_matrix(labels, predicted, labels=[0, 1]))


def test_metrics_report_mean_spread_interval_and_ensemble(five_runs):
    """metrics.json holds each figure once, what readers of a binary task compare, with
    constant predictions' scores beside; the detail file every run's figures and spreads."""
    metrics = json.loads((five_runs / evaluate.METRICS).read_text())
    assert set(metrics) == {"dev"}  # the labeled splits but train (test is unlabeled)
    m = metrics["dev"]
    assert set(m) == {"n", "auroc", "auroc_ci_low", "auroc_ci_high", "ensemble_auroc", "accuracy", "f1",
                      "average_precision", "baselines"}
    assert all(set(score) == {"auroc", "accuracy", "f1", "average_precision"} for score in m["baselines"].values())
    detail = json.loads((five_runs / evaluate.DETAIL).read_text())["dev"]
    assert detail["runs"] == 5 and detail["std"]["auroc"] > 0 and len(detail["per_run"]["auroc"]) == 5
    assert m["auroc_ci_low"] < m["auroc"] < m["auroc_ci_high"]
    head, _ = hateclipper.load(five_runs / hateclipper.CHECKPOINT)
    dev = inputs.read(five_runs / features.CACHE, ["dev"])[0]["dev"]
    labels = dev.labels[:, 0]
    probs = hateclipper.predict_probs(head, dev.image, dev.text)[..., 0]
    aurocs = [scoring.auroc(labels, p) for p in probs]
    assert m["auroc"] == pytest.approx(np.mean(aurocs))
    assert detail["std"]["auroc"] == pytest.approx(np.std(aurocs, ddof=1))
    assert detail["per_run"]["auroc"] == pytest.approx(aurocs)
    assert m["ensemble_auroc"] == pytest.approx(scoring.auroc(labels, probs.mean(0)))
    accuracies = [np.mean((p >= 0.5) == labels) for p in probs]
    assert m["accuracy"] == pytest.approx(np.mean(accuracies))
    # one label: the paper's micro-F1 is plain accuracy and micro-F1 its F1, so neither is shown again
    assert detail["mean"]["paper_micro_f1"] == pytest.approx(m["accuracy"])
    assert detail["mean"]["micro_f1"] == pytest.approx(m["f1"])
    f1s = [sklearn_metrics.f1_score(labels, p >= 0.5) for p in probs]
    assert m["f1"] == pytest.approx(np.mean(f1s))
    assert m["average_precision"] == pytest.approx(np.mean(
        [sklearn_metrics.average_precision_score(labels, p) for p in probs]))
    # beside each figure, what constant predictions score
    share = labels.mean()
    assert m["baselines"]["all_negative"] == pytest.approx(
        {"auroc": 0.5, "accuracy": 1 - share, "f1": 0.0, "average_precision": share})
    assert m["baselines"]["all_positive"]["f1"] == pytest.approx(2 * share / (1 + share))
    low, high = detail["intervals"]["micro_f1"]
    assert low <= detail["mean"]["micro_f1"] <= high
    assert pd.read_csv(five_runs / evaluate.PER_LABEL / "dev.csv")["label"].tolist() == ["hateful"]


def test_predictions_and_submission_are_the_runs_ensemble(five_runs, kaggle_set):
    root, _ = kaggle_set
    head, meta = hateclipper.load(five_runs / hateclipper.CHECKPOINT)
    raw = torch.load(five_runs / hateclipper.CHECKPOINT, weights_only=True)
    assert len(raw["best_epochs"]) == 5 == head.config.runs == len(meta["best_epochs"])
    test = inputs.read(five_runs / features.CACHE, ["test"])[0]["test"]
    table = pd.read_csv(five_runs / "reports/predictions/test.csv", dtype={"id": str})
    ids = [str(json.loads(line)["id"]) for line in (root / "test.jsonl").read_text().splitlines()]
    assert table["id"].tolist() == ids == test.ids
    ensemble = hateclipper.predict_probs(head, test.image, test.text).mean(0)[:, 0]
    np.testing.assert_allclose(table["prob_hate"], ensemble, rtol=1e-6)
    submission = pd.read_csv(five_runs / "reports/submission/test.csv", dtype={"id": str})
    assert list(submission.columns) == ["id", "proba", "label"]
    assert submission["id"].tolist() == ids
    np.testing.assert_allclose(submission["proba"], table["prob_hate"])
    assert (submission["label"] == (submission["proba"] >= 0.5)).all()
    assert sorted(p.name for p in Path(five_runs / "reports/submission").iterdir()) == [
        "dev.csv", "test.csv", "train.csv"]


def test_training_curves_hold_mean_and_spread(five_runs):
    curves = pd.read_csv(five_runs / train.CURVES)
    assert list(curves.columns) == ["epoch", "train_loss", "train_loss_std", "dev_auroc", "dev_auroc_std"]
    assert len(curves) == 3 and (curves["dev_auroc_std"] > 0).any()
    summary = json.loads((five_runs / train.TRAIN_SUMMARY).read_text())
    assert summary["runs"] == 5 and summary["best_dev_auroc_std"] > 0


def test_retrieval_classifier_is_the_documented_vote_over_the_saved_index(retrieval_workspace):
    evaluate.main([])
    metrics = json.loads(evaluate.METRICS.read_text())["dev"]
    head, _ = hateclipper.load(hateclipper.CHECKPOINT)
    saved = torch.load(retrieval.INDEX, weights_only=True)
    train_split, dev = (inputs.read(features.CACHE, [name])[0][name] for name in ("train", "dev"))
    assert saved["ids"] == train_split.ids and saved["embeddings"].shape[:2] == (5, len(train_split))
    embeddings = hateclipper.outputs(head, dev.image, dev.text)[0].numpy()
    index = saved["embeddings"].numpy()
    aurocs = []
    for run in range(5):  # RGCL's vote, written out in numpy: k = 5, weights 5..1
        q = embeddings[run] / np.linalg.norm(embeddings[run], axis=1, keepdims=True)
        x = index[run] / np.linalg.norm(index[run], axis=1, keepdims=True)
        sims = q @ x.T
        nearest = np.argsort(-sims, axis=1)[:, :5]
        votes = 2 * train_split.labels[nearest, 0] - 1
        score = (np.arange(5, 0, -1) * np.take_along_axis(sims, nearest, 1) * votes).sum(1) / 15
        aurocs.append(scoring.auroc(dev.labels[:, 0], (1 + score) / 2))
    assert metrics["auroc"] == pytest.approx(np.mean(aurocs), abs=1e-6)
