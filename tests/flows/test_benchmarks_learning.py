"""Tasks of 3 and 4 classes learn: HarMeme's intensity and target on a synthetic Harm-P (V1,
with its quirks) whose classes need picture and caption together, through `dvc repro` and
`dvc exp run -S data.task=...`."""
import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import sh, workspace

pytestmark = pytest.mark.slow  # `dvc repro` and `dvc exp run` on 600 memes


@pytest.fixture(scope="module")
def harm_p(tmp_path_factory):
    """A synthetic Harm-P of 600 memes, `dvc repro` with the committed defaults (the harmful
    task) but for a learning rate at which the head learns."""
    ws = workspace(tmp_path_factory.mktemp("harmp") / "ws", "--n 600 --layout harmp",
                   "--set train.lr=0.003", "--set interpret.pictures=false")
    out = sh("dvc repro", ws).stdout
    sh("git add -A && git commit -qm 'harmful'", ws)
    return ws, out


def test_the_harmful_task_scores_auroc_first_and_learns(harm_p):
    ws, out = harm_p
    test = json.loads((ws / "reports/metrics.json").read_text())["test"]
    assert f"test         n={test['n']:5d}  auroc " in out
    assert test["auroc"] > 0.8 and set(test["baselines"]) == {"all_negative", "all_positive", "majority", "uniform"}
    assert "interpret:" in out  # every stage ran on it


@pytest.mark.parametrize("task, classes", [("intensity", 3), ("target", 4)])
def test_tasks_of_three_and_four_classes_learn_well_above_the_majority(harm_p, task, classes):
    ws = harm_p[0]
    run = sh(f"dvc exp run -S data.task={task}", ws)
    assert "macro_f1" in run.stdout
    test = json.loads((ws / "reports/metrics.json").read_text())["test"]
    assert json.loads((ws / "reports/metrics_detail.json").read_text())["test"]["labels"] == classes
    assert test["macro_f1"] > test["baselines"]["majority"]["macro_f1"] + 0.3
    assert test["macro_f1"] > test["baselines"]["uniform"]["macro_f1"] + 0.2
    per_class = pd.read_csv(ws / "reports/per_label/test.csv")
    primary = per_class[~per_class["auxiliary"]]
    assert primary["label"].str.startswith(f"{task}=").all() and len(primary) == classes
    predictions = pd.read_csv(ws / "reports/predictions/test.csv")
    assert {"pred_label", "pred_class"} <= set(predictions.columns)
    probs = predictions.filter(like=f"prob_{task}=")
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)  # one softmax over the classes
    assert (predictions["pred_label"] == probs.to_numpy().argmax(axis=1)).all()
