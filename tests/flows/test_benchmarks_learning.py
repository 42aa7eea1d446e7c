"""Tasks of 3 and 4 classes learn: HarMeme's intensity and target on a synthetic Harm-P (V1,
with its quirks) whose classes need picture and caption together, through every stage with the
committed defaults. (That data.task reruns extract under `dvc exp run -S data.task=...` is
test_dvc_pipeline.py's.)"""
import json

import numpy as np
import pandas as pd
import pytest

from scripts import synthetic
from stages import evaluate, extract, interpret, train
from tests.helpers import format_overrides, run_stages, write_params


def harm_p_run(work, root, **overrides) -> str:
    """Every stage on the synthetic Harm-P in `work`, with the committed defaults but for a
    learning rate at which the head learns: their stdout."""
    write_params(work, root, **format_overrides("harmp"), train__lr=0.003, interpret__pictures=False, **overrides)
    return run_stages(work, extract, train, evaluate, interpret)


@pytest.fixture(scope="module")
def harm_p(tmp_path_factory):
    root = tmp_path_factory.mktemp("harmp") / "memes"
    synthetic.generate(root, n=600, layout="harmp", seed=0)
    return root


def test_the_harmful_task_scores_auroc_first_and_learns(harm_p, tmp_path):
    out = harm_p_run(tmp_path, harm_p)  # the layout's first task: harmful
    test = json.loads((tmp_path / "reports/metrics.json").read_text())["test"]
    assert f"test         n={test['n']:5d}  auroc " in out
    assert test["auroc"] > 0.8 and set(test["baselines"]) == {"all_negative", "all_positive", "majority", "uniform"}
    assert "interpret:" in out  # every stage ran on it


@pytest.mark.parametrize("task, classes", [("intensity", 3), ("target", 4)])
def test_tasks_of_three_and_four_classes_learn_well_above_the_majority(harm_p, tmp_path, task, classes):
    out = harm_p_run(tmp_path, harm_p, data__task=task)
    assert "macro_f1" in out
    test = json.loads((tmp_path / "reports/metrics.json").read_text())["test"]
    assert json.loads((tmp_path / "reports/metrics_detail.json").read_text())["test"]["labels"] == classes
    assert test["macro_f1"] > test["baselines"]["majority"]["macro_f1"] + 0.3
    assert test["macro_f1"] > test["baselines"]["uniform"]["macro_f1"] + 0.2
    per_class = pd.read_csv(tmp_path / "reports/per_label/test.csv")
    primary = per_class[~per_class["auxiliary"]]
    assert primary["label"].str.startswith(f"{task}=").all() and len(primary) == classes
    predictions = pd.read_csv(tmp_path / "reports/predictions/test.csv")
    assert {"pred_label", "pred_class"} <= set(predictions.columns)
    probs = predictions.filter(like=f"prob_{task}=")
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)  # one softmax over the classes
    assert (predictions["pred_label"] == probs.to_numpy().argmax(axis=1)).all()
