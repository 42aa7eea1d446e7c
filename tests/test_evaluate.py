"""evaluate and predict over K runs: mean, spread, interval and ensemble, through the stages."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from stages import evaluate, extract, feature_reader, features, head as head_module, predict, scoring, train
from tests.conftest import write_params


@pytest.fixture(scope="module")
def five_runs(kaggle_set, tmp_path_factory):
    """The kaggle-layout synthetic set through extract, train (runs: 5), evaluate and predict."""
    root, _ = kaggle_set
    work = tmp_path_factory.mktemp("five-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        write_params(work, root, train__runs=5, train__epochs=3, train__lr=1e-4)
        for stage in (extract, train, evaluate, predict):
            stage.main([])
    return work


def test_metrics_report_mean_spread_interval_and_ensemble(five_runs):
    metrics = json.loads((five_runs / evaluate.METRICS).read_text())
    assert set(metrics) == {"dev"}  # the labeled splits but train (test is unlabeled)
    m = metrics["dev"]
    assert m["runs"] == 5 and m["auroc_std"] > 0
    assert m["auroc_ci_low"] < m["auroc"] < m["auroc_ci_high"]
    head, _ = head_module.load(five_runs / head_module.CHECKPOINT)
    dev = feature_reader.read(five_runs / features.CACHE, ["dev"])[0]["dev"]
    probs = head_module.predict_probs(head, dev.image, dev.text)
    aurocs = [scoring.auroc(dev.labels, p) for p in probs]
    assert m["auroc"] == pytest.approx(np.mean(aurocs))
    assert m["auroc_std"] == pytest.approx(np.std(aurocs, ddof=1))
    assert m["ensemble_auroc"] == pytest.approx(scoring.auroc(dev.labels, probs.mean(0)))
    accuracies = [np.mean((p >= 0.5) == dev.labels) for p in probs]
    assert m["accuracy"] == pytest.approx(np.mean(accuracies))


def test_predictions_and_submission_are_the_runs_ensemble(five_runs, kaggle_set):
    root, _ = kaggle_set
    head, meta = head_module.load(five_runs / head_module.CHECKPOINT)
    raw = torch.load(five_runs / head_module.CHECKPOINT, weights_only=True)
    assert len(raw["best_epochs"]) == 5 == head.config.runs == len(meta["best_epochs"])
    test = feature_reader.read(five_runs / features.CACHE, ["test"])[0]["test"]
    table = pd.read_csv(five_runs / "reports/predictions/test.csv", dtype={"id": str})
    ids = [str(json.loads(line)["id"]) for line in (root / "test.jsonl").read_text().splitlines()]
    assert table["id"].tolist() == ids == test.ids
    ensemble = head_module.predict_probs(head, test.image, test.text).mean(0)
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
