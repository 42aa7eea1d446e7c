"""Tasks of 3 and 4 classes learn: HarMeme's intensity and target on a synthetic Harm-C whose
classes need picture and caption together, through `dvc exp run -S data.task=...`."""
import json

import numpy as np
import pandas as pd
import pytest

from tests.test_dvc_pipeline import sh, workspace


@pytest.fixture(scope="module")
def harm_c(tmp_path_factory):
    """A synthetic Harm-C of 600 memes whose classes need picture and caption together."""
    ws = workspace(tmp_path_factory.mktemp("harmc") / "ws", "--n 600 --layout harmeme",
                   "--set train.lr=0.003", "--set interpret.pictures=false")
    sh("dvc repro", ws)
    sh("git add -A && git commit -qm 'harmful'", ws)
    return ws


def test_the_harmful_task_scores_auroc_and_learns(harm_c):
    test = json.loads((harm_c / "reports/metrics.json").read_text())["test"]
    assert test["auroc"] > 0.8 and set(test["baselines"]) == {"all_negative", "all_positive", "majority", "uniform"}


@pytest.mark.parametrize("task, classes", [("intensity", 3), ("target", 4)])
def test_tasks_of_three_and_four_classes_learn_well_above_the_majority(harm_c, task, classes):
    run = sh(f"dvc exp run -S data.task={task}", harm_c)
    assert "macro_f1" in run.stdout
    test = json.loads((harm_c / "reports/metrics.json").read_text())["test"]
    assert test["labels"] == classes
    assert test["macro_f1"] > test["baselines"]["majority"]["macro_f1"] + 0.3
    assert test["macro_f1"] > test["baselines"]["uniform"]["macro_f1"] + 0.2
    per_class = pd.read_csv(harm_c / "reports/per_label/test.csv")
    primary = per_class[~per_class["auxiliary"]]
    assert primary["label"].str.startswith(f"{task}=").all() and len(primary) == classes
    predictions = pd.read_csv(harm_c / "reports/predictions/test.csv")
    assert {"pred_label", "pred_class"} <= set(predictions.columns)
    probs = predictions.filter(like=f"prob_{task}=")
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)  # one softmax over the classes
    assert (predictions["pred_label"] == probs.to_numpy().argmax(axis=1)).all()
