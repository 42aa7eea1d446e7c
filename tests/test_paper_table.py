"""The paper-table command's collection from `dvc exp show --json` and its rendering."""
import csv
import io

import pytest

from scripts import paper_table
from tests.conftest import ROOT

REFERENCE = ROOT.parent / "shared/reference/hateclipper_table1.csv"


def metrics(auroc, std, low, high, ensemble, runs=2):
    return {"auroc": auroc, "auroc_std": std, "auroc_ci_low": low, "auroc_ci_high": high,
            "ensemble_auroc": ensemble, "runs": runs}


def exp_record(name, params, split_metrics, timestamp="2026-11-28T10:00:00"):
    """One rev as `dvc exp show --json` writes it (DVC 3)."""
    return {"rev": name, "name": name, "data": {
        "rev": name, "timestamp": timestamp,
        "params": {"params.yaml": {"data": params}},
        "metrics": {"reports/metrics.json": {"data": split_metrics}}}}


def nested(flat):
    tree = {}
    for key, value in flat.items():
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def test_every_cell_of_the_papers_table_is_described():
    if not REFERENCE.is_file():  # shared/ lies beside the checkout in CI and in the sessions
        pytest.skip(f"{REFERENCE} (the published figures) is not beside this checkout")
    cells = paper_table.load_cells()
    with open(REFERENCE) as f:
        reference = list(csv.DictReader(line for line in f if not line.startswith("#")))
    assert [(c["params"]["fusion"], c["params"]["head.num_pre_output_layers"]) for c in cells] == \
        [(r["fusion"], int(r["pre_output_layers"])) for r in reference]
    for cell, row in zip(cells, reference):
        assert cell["paper"]["dev_seen"] == pytest.approx(float(row["dev_seen_auroc"]))
        assert cell["paper"]["test_seen"] == pytest.approx(float(row["test_seen_auroc"]))
        assert cell["run"] == (row["fusion"] != "cmaf")
        assert cell["params"]["head.map_dim"] == 1024 and cell["params"]["train.batch_size"] == 64
    # the paper's parameter counts confirm map_dim 1024 (2.9M for align, 1.1B for cross)
    align, cross = cells[10]["params"], cells[8]["params"]
    assert paper_table.head_parameters(align) == pytest.approx(2.9e6, rel=0.05)
    assert paper_table.head_parameters(cross) == pytest.approx(1.1e9, rel=0.05)
    assert paper_table.memory_needed({**cross, "train.runs": 1}) > 16e9  # the 17 GB of the issue


def test_results_are_collected_from_dvc_exp_show_and_rendered(tmp_path, monkeypatch):
    overrides = {"head.map_dim": 32, "train.runs": 2}
    cells = [paper_table.with_overrides(c, overrides) for c in paper_table.load_cells()]
    align1, align3 = cells[10], cells[11]
    shown = [
        exp_record("workspace", {}, {}),
        {**exp_record("main", nested({**align1["params"], "train.runs": 1}),
                      {"dev_seen": metrics(0.5, 0, 0.4, 0.6, 0.5)}),  # other params: no match
         "experiments": [
             {"name": "old-align", "revs": [exp_record("old-align", nested(align1["params"]), {
                 "dev_seen": metrics(0.70, 0.01, 0.60, 0.80, 0.71)}, "2026-11-28T09:00:00")]},
             {"name": "new-align", "revs": [exp_record("new-align", nested(align1["params"]), {
                 "dev_seen": metrics(0.812, 0.0123, 0.79, 0.83, 0.8199),
                 "test_seen": metrics(0.85, 0.02, 0.84, 0.86, 0.855)})]},
             {"name": "align-3", "revs": [exp_record("align-3", nested(align3["params"]), {
                 "dev_seen": metrics(0.75, 0.01, 0.70, 0.78, 0.76)})]},
         ]},
    ]
    found = paper_table.experiments(shown)
    assert paper_table.result_of(align1, found)["name"] == "new-align"  # the newest match
    assert paper_table.result_of(cells[0], found) is None
    table = paper_table.rows(cells, found)
    row = table[10]
    assert row["dev_seen"]["auroc"] == pytest.approx(81.2) and row["status"] == "run"
    assert [r["rank_dev_seen"] for r in table[10:12]] == [1, 2]  # [79, 83] lies above [70, 78]
    text = paper_table.markdown(table, overrides)
    line = next(l for l in text.splitlines() if l.startswith("| align | 1 |"))
    assert "81.20 ± 1.23 [79.00, 83.00] (ens. 81.99) ✓ | 81.18 | 1" in line  # 81.18 is inside
    assert "85.00 ± 2.00 [84.00, 86.00] (ens. 85.50) ✓ | 85.46 | 1" in line  # 85.46 is inside too
    outside = next(l for l in text.splitlines() if l.startswith("| align | 3 |"))
    assert "75.00 ± 1.00 [70.00, 78.00] (ens. 76.00) | 81.55 | 2" in outside  # no ✓: 81.55 > 78
    assert "| cmaf | 1 | 32 | — | 77.36 | — | — | 80.15 | — | not run |" in text
    assert "`head.map_dim=32`, `train.runs=2`" in text
    assert len([l for l in text.splitlines() if l.startswith("| ") and "---" not in l]) == 15
    rows = list(csv.DictReader(io.StringIO(paper_table.csv_text(table))))
    assert rows[10]["dev_seen_auroc"] == "81.2000" and rows[10]["paper_dev_seen"] == "81.18"
    picture = paper_table.svg(table)
    assert picture.startswith("<svg") and picture.count("<circle") == 2
    assert picture.count('stroke="crimson"') == 14


def test_overlapping_intervals_are_not_ranked():
    a, b, c = (metrics(0.80, 0, 0.78, 0.82, 0.8), metrics(0.81, 0, 0.79, 0.83, 0.81),
               metrics(0.86, 0, 0.825, 0.87, 0.86))
    scaled = [paper_table.summary({"s": m}, "s") for m in (a, b, c)]
    assert paper_table.ranks(scaled + [None]) == [2, 1, 1, None]
