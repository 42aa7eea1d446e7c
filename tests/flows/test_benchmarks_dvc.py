"""Every new release format, synthetic, through the real `dvc repro` with the committed
defaults: the benchmark's metric printed first, and the constant baselines exactly those of
the split's labels."""
import json

import numpy as np
import pytest

from stages.data import dataset
from stages.report import scoring
from tests.helpers import sh, workspace

pytestmark = pytest.mark.slow  # a full `dvc repro` for each format


# (Harm-P runs in tests/flows/test_benchmarks_learning.py, where its head learns)
@pytest.mark.parametrize("layout", ["multioff", "mami", "mami_inline", "pridemm"])
def test_each_format_runs_through_dvc_repro_with_its_metric_and_baselines(tmp_path, layout):
    ws = workspace(tmp_path / "ws", f"--n 120 --layout {layout}", "--set train.epochs=2",
                   "--set interpret.pictures=false")
    out = sh("dvc repro", ws).stdout
    data = dataset.read(ws / "data/synthetic", {"mami_inline": "mami"}.get(layout, layout),
                        dev_fraction=0.1 if layout.startswith("mami") else 0.0)
    metric = data.task.metric
    constant = "accuracy" if metric == "auroc" else metric  # a constant's AUROC is 0.5
    metrics = json.loads((ws / "reports/metrics.json").read_text())
    for split, m in metrics.items():
        assert f"{split:12s} n={m['n']:5d}  {metric} " in out  # the benchmark's metric first
        assert m[f"{metric}_ci_low"] <= m[metric] <= m[f"{metric}_ci_high"]
        labels = np.array([x.labels for x in data.splits[split]])[:, data.task.primary]
        train = np.array([x.labels for x in data.splits["train"]])[:, data.task.primary]
        majority = (train.mean(axis=0) > 0.5).astype(float)
        assert m["baselines"]["majority"][constant] == pytest.approx(scoring.metric_function(
            constant, False)(labels, np.broadcast_to(majority, labels.shape)))
