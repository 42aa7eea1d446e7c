"""Every other release format, synthetic, through every stage with the committed defaults: the
benchmark's metric printed first, and the constant baselines exactly those of the split's
labels. The stages run through their entry points, as `python -m stages.X` runs them; the real
`dvc repro` and `dvc exp run` run on the challenge and MMHS150K layouts (test_dvc_pipeline.py,
test_dvc_streams.py), where what DVC reruns is decided and checked."""
import json

import numpy as np
import pytest

from scripts import synthetic
from stages import evaluate, extract, interpret, train
from stages.data import dataset
from stages.report import scoring
from tests.helpers import format_overrides, run_stages, write_params


# (Harm-P runs in tests/flows/test_benchmarks_learning.py, where its head learns)
@pytest.mark.parametrize("layout", ["multioff", "mami", "mami_inline", "pridemm"])
def test_each_format_runs_every_stage_with_its_metric_and_baselines(tmp_path, layout):
    root = tmp_path / "memes"
    synthetic.generate(root, n=120, layout=layout, seed=0)
    settings = format_overrides(layout)
    write_params(tmp_path, root, **settings, train__epochs=2, interpret__pictures=False)
    out = run_stages(tmp_path, extract, train, evaluate, interpret)
    data = dataset.read(root, settings["data__layout"], dev_fraction=settings.get("data__dev_fraction", 0.0))
    metric = data.task.metric
    constant = "accuracy" if metric == "auroc" else metric  # a constant's AUROC is 0.5
    metrics = json.loads((tmp_path / "reports/metrics.json").read_text())
    for split, m in metrics.items():
        assert f"{split:12s} n={m['n']:5d}  {metric} " in out  # the benchmark's metric first
        assert m[f"{metric}_ci_low"] <= m[metric] <= m[f"{metric}_ci_high"]
        labels = np.array([x.labels for x in data.splits[split]])[:, data.task.primary]
        train_labels = np.array([x.labels for x in data.splits["train"]])[:, data.task.primary]
        majority = (train_labels.mean(axis=0) > 0.5).astype(float)
        assert m["baselines"]["majority"][constant] == pytest.approx(scoring.metric_function(
            constant, False)(labels, np.broadcast_to(majority, labels.shape)))
