"""Experiments as `dvc exp show --json` lists them, each with the detail file that
collect.read_detail would read through DVC at its revision."""
import pytest

from scripts.paper_table import collect, queue
from tests.helpers import auroc_metrics, nested


@pytest.fixture
def record(monkeypatch):
    """record(name, params, split_metrics, ...): one rev as `dvc exp show --json` writes it
    (DVC 3); each split's spread and runs go to its detail file, as evaluate writes them."""
    details = {}  # rev -> its detail file
    monkeypatch.setattr(collect, "read_detail", lambda rev: details.get(rev, {}))

    def make(name, params, split_metrics, timestamp="2026-11-28T10:00:00", trainable=None):
        shown, details[name] = {}, {}
        for split, m in split_metrics.items():
            metric = "auroc" if "auroc" in m else "paper_micro_f1"
            shown[split] = {k: v for k, v in m.items() if k not in ("runs", f"{metric}_std")}
            details[name][split] = {"runs": m["runs"], "std": {metric: m[f"{metric}_std"]}}
        return {"rev": name, "name": name, "data": {
            "rev": name, "timestamp": timestamp,
            "params": {"params.yaml": {"data": params}},
            "metrics": {"reports/metrics.json": {"data": shown},
                        "reports/train.json": {"data": {"trainable_params": trainable}}}}}
    return make


OVERRIDES = {"head.map_dim": 32, "train.runs": 2}


@pytest.fixture
def table_1(record):
    """Table 1 with OVERRIDES, and what `dvc exp show` lists: a baseline of other params, two
    runs of align with one pre-output layer (the newer with both splits), one of align with
    three. Returns (spec, cells, found, overrides)."""
    spec, cells = queue.load_table("1")
    cells = [queue.with_overrides(c, OVERRIDES) for c in cells]
    align1, align3 = cells[10], cells[11]
    shown = [
        record("workspace", {}, {}),
        {**record("main", nested({**align1["params"], "train.runs": 1}),
                  {"dev_seen": auroc_metrics(0.5, 0, 0.4, 0.6, 0.5)}),  # other params: no match
         "experiments": [
             {"name": "old-align", "revs": [record("old-align", nested(align1["params"]), {
                 "dev_seen": auroc_metrics(0.70, 0.01, 0.60, 0.80, 0.71)}, "2026-11-28T09:00:00")]},
             {"name": "new-align", "revs": [record("new-align", nested(align1["params"]), {
                 "dev_seen": auroc_metrics(0.812, 0.0123, 0.79, 0.83, 0.8199),
                 "test_seen": auroc_metrics(0.85, 0.02, 0.84, 0.86, 0.855)}, trainable=58_689)]},
             {"name": "align-3", "revs": [record("align-3", nested(align3["params"]), {
                 "dev_seen": auroc_metrics(0.75, 0.01, 0.70, 0.78, 0.76)})]},
         ]},
    ]
    return spec, cells, collect.experiments(shown), OVERRIDES
