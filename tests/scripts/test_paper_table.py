"""The paper-table command's collection from `dvc exp show --json` and its rendering."""
import csv
import io

import pytest

from scripts import paper_table
from tests.helpers import ROOT

REFERENCE = ROOT.parent / "shared/reference"


def metrics(auroc, std, low, high, ensemble, runs=2):
    return {"auroc": auroc, "auroc_std": std, "auroc_ci_low": low, "auroc_ci_high": high,
            "ensemble_auroc": ensemble, "runs": runs}


def f1_metrics(paper, std, low, high, ensemble, micro, runs=2):
    return {"paper_micro_f1": paper, "paper_micro_f1_std": std, "paper_micro_f1_ci_low": low,
            "paper_micro_f1_ci_high": high, "ensemble_paper_micro_f1": ensemble,
            "micro_f1": micro, "runs": runs,
            "baselines": {"all_negative": {"micro_f1": 0.0, "paper_micro_f1": 0.8811},
                          "majority": {"micro_f1": 0.0, "paper_micro_f1": 0.8811},
                          "all_positive": {"micro_f1": 0.21, "paper_micro_f1": 0.1189}}}


def published(name: str) -> list[dict]:
    path = REFERENCE / name
    if not path.is_file():  # shared/ lies beside the checkout in CI and in the sessions
        pytest.skip(f"{path} (the published figures) is not beside this checkout")
    with open(path) as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


DETAILS = {}  # rev -> its detail file, as read_detail would read it through DVC


@pytest.fixture(autouse=True)
def details_by_rev(monkeypatch):
    monkeypatch.setattr(paper_table, "read_detail", lambda rev: DETAILS.get(rev, {}))


def exp_record(name, params, split_metrics, timestamp="2026-11-28T10:00:00", trainable=None):
    """One rev as `dvc exp show --json` writes it (DVC 3); each split's spread and runs go to
    its detail file, as evaluate writes them."""
    shown, DETAILS[name] = {}, {}
    for split, m in split_metrics.items():
        metric = "auroc" if "auroc" in m else "paper_micro_f1"
        shown[split] = {k: v for k, v in m.items() if k not in ("runs", f"{metric}_std")}
        DETAILS[name][split] = {"runs": m["runs"], "std": {metric: m[f"{metric}_std"]}}
    return {"rev": name, "name": name, "data": {
        "rev": name, "timestamp": timestamp,
        "params": {"params.yaml": {"data": params}},
        "metrics": {"reports/metrics.json": {"data": shown},
                    "reports/train.json": {"data": {"trainable_params": trainable}}}}}


def nested(flat):
    tree = {}
    for key, value in flat.items():
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def test_every_cell_of_the_papers_tables_is_described():
    for table, name, splits in (("1", "hateclipper_table1.csv", ("dev_seen", "test_seen")),
                                ("2", "hateclipper_table2.csv", ("val", "test"))):
        spec, cells = paper_table.load_table(table)
        reference = published(name)
        assert [(c["params"]["fusion"], c["params"]["head.num_pre_output_layers"]) for c in cells] == \
            [(r["fusion"].replace("cmaf", "attention_m"), int(r["pre_output_layers"])) for r in reference]
        for cell, row in zip(cells, reference):
            columns = [k for k in row if k.endswith(("_auroc", "_micro_f1"))]
            assert [cell["paper"][s] for s in splits] == pytest.approx([float(row[c]) for c in columns])
            assert cell["paper"]["trainable_params"] == row["trainable_params"]
            assert cell["params"]["head.map_dim"] == 1024 and cell["params"]["train.batch_size"] == 64
    spec, cells = paper_table.load_table("1")
    # the paper's parameter counts confirm map_dim 1024 (2.9M for align, 1.1B for cross)
    align, cross, cmaf = cells[10]["params"], cells[8]["params"], cells[4]["params"]
    assert paper_table.head_parameters(align) == 2_887_681
    assert paper_table.head_parameters(cross) == 1_075_580_929
    assert paper_table.head_parameters(cmaf) == 4_461_057  # the paper's 4.5M
    assert paper_table.head_parameters(align, outputs=22) == 2_887_681 + 21 * 1_025
    assert paper_table.memory_needed({**cross, "train.runs": 1}) > 16e9  # the 17 GB of the issue
    tamil_spec, tamil = paper_table.load_table("tamil")
    assert tamil_spec["metric"] == "paper_micro_f1" and {c["paper"]["test"] for c in tamil} == {59}


def test_results_are_collected_from_dvc_exp_show_and_rendered(tmp_path, monkeypatch):
    overrides = {"head.map_dim": 32, "train.runs": 2}
    spec, cells = paper_table.load_table("1")
    cells = [paper_table.with_overrides(c, overrides) for c in cells]
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
                 "test_seen": metrics(0.85, 0.02, 0.84, 0.86, 0.855)}, trainable=58_689)]},
             {"name": "align-3", "revs": [exp_record("align-3", nested(align3["params"]), {
                 "dev_seen": metrics(0.75, 0.01, 0.70, 0.78, 0.76)})]},
         ]},
    ]
    found = paper_table.experiments(shown)
    assert paper_table.result_of(align1, found)["name"] == "new-align"  # the newest match
    assert paper_table.result_of(cells[0], found) is None
    table = paper_table.rows(spec, cells, found)
    row = table[10]
    assert row["dev_seen"]["value"] == pytest.approx(81.2) and row["status"] == "run"
    assert [r["rank_dev_seen"] for r in table[10:12]] == [1, 2]  # [79, 83] lies above [70, 78]
    text = paper_table.markdown(spec, table, overrides)
    line = next(l for l in text.splitlines() if l.startswith("| align | 1 |"))
    assert "| 58,689 / 2.9M |" in line  # one run's parameters beside the paper's count
    assert "81.20 ± 1.23 [79.00, 83.00] (ens. 81.99) ✓ | 81.18 | 50 | 1" in line  # 81.18 is inside
    assert "85.00 ± 2.00 [84.00, 86.00] (ens. 85.50) ✓ | 85.46 | 50 | 1" in line  # 85.46 is inside too
    outside = next(l for l in text.splitlines() if l.startswith("| align | 3 |"))
    assert "75.00 ± 1.00 [70.00, 78.00] (ens. 76.00) | 81.55 | 50 | 2" in outside  # no ✓: 81.55 > 78
    assert "| attention_m | 1 | 32 | — / 4.5M | — | 77.36 | — | — | — | 80.15 | — | — | no result |" in text
    assert "`head.map_dim=32`, `train.runs=2`" in text
    assert len([l for l in text.splitlines() if l.startswith("| ") and "---" not in l]) == 15
    rows = list(csv.DictReader(io.StringIO(paper_table.csv_text(spec, table))))
    assert rows[10]["dev_seen_auroc_value"] == "81.2000" and rows[10]["paper_dev_seen"] == "81.18"
    picture = paper_table.svg(spec, table)
    assert picture.startswith("<svg") and picture.count("<circle") == 2
    assert picture.count('stroke="crimson"') == 14


def test_table_2_shows_the_papers_micro_f1_beside_the_standard_one_and_no_label():
    spec, cells = paper_table.load_table("2")
    cross = cells[8]
    shown = [{**exp_record("main", {}, {}), "experiments": [
        {"name": "cross", "revs": [exp_record("cross", nested(cross["params"]), {
            "val": f1_metrics(0.91, 0.004, 0.90, 0.92, 0.912, 0.43),
            "test": f1_metrics(0.90, 0.003, 0.895, 0.91, 0.90, 0.40)}, trainable=1_075_602_454)]}]}]
    table = paper_table.rows(spec, cells, paper_table.experiments(shown))
    text = paper_table.markdown(spec, table, {})
    line = next(l for l in text.splitlines() if l.startswith("| cross | 1 |"))
    assert "91.00 ± 0.40 [90.00, 92.00] (ens. 91.20) ✓ | 90.98 |" in line
    assert "88.11 (majority 88.11); standard micro-F1 43.00, no label 0.00" in line
    assert "the paper's micro-F1 (TorchMetrics" in text


def test_a_table_runs_only_on_a_workspace_of_its_dataset(tmp_path, monkeypatch):
    specs = {table: paper_table.load_table(table)[0] for table in ("1", "2")}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    with pytest.raises(SystemExit, match="--table 2 runs on a workspace with data.layout: propaganda"):
        paper_table.check_layout(specs["2"], "2")
    paper_table.check_layout(specs["1"], "1")


def test_overlapping_intervals_are_not_ranked():
    a, b, c = (metrics(0.80, 0, 0.78, 0.82, 0.8), metrics(0.81, 0, 0.79, 0.83, 0.81),
               metrics(0.86, 0, 0.825, 0.87, 0.86))
    scaled = [paper_table.summary({"s": m}, {}, "s", "auroc") for m in (a, b, c)]
    assert paper_table.ranks(scaled + [None]) == [2, 1, 1, None]
