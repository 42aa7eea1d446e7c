"""scripts/paper_table/collect.py: each cell's result from `dvc exp show --json`, ranks, and
the paired marks against the table's reference cell."""
import numpy as np
import pytest

from scripts.paper_table import collect
from stages.data.task import HATEFUL
from tests.helpers import auroc_metrics


def test_results_are_collected_from_dvc_exp_show(table_1):
    spec, cells, found, _ = table_1
    assert collect.result_of(cells[10], found)["name"] == "new-align"  # the newest match
    assert collect.result_of(cells[0], found) is None
    table = collect.rows(spec, cells, found)
    row = table[10]
    assert row["dev_seen"]["value"] == pytest.approx(81.2) and row["status"] == "run"
    assert row["trainable_params"] == 58_689 and row["experiment"] == "new-align"
    assert [r["rank_dev_seen"] for r in table[10:12]] == [1, 2]  # [79, 83] lies above [70, 78]
    assert table[0]["status"] == "no result" and table[0]["dev_seen"] is None


def test_overlapping_intervals_are_not_ranked():
    a, b, c = (auroc_metrics(0.80, 0, 0.78, 0.82, 0.8), auroc_metrics(0.81, 0, 0.79, 0.83, 0.81),
               auroc_metrics(0.86, 0, 0.825, 0.87, 0.86))
    scaled = [collect.summary({"s": m}, {}, "s", "auroc") for m in (a, b, c)]
    assert collect.ranks(scaled + [None]) == [2, 1, 1, None]


def sides():
    """Probabilities of three experiments on one split: `none`, `same` (none's own
    probabilities: never told apart from it) and `sharp` (near perfect: told apart)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    noisy = np.clip(0.3 * labels + 0.7 * rng.random(200), 0, 1)
    sharp = np.clip(0.9 * labels + 0.1 * rng.random(200), 0, 1)
    ids = [f"m{k}" for k in range(200)]
    return {name: {"task": HATEFUL, "where": name,
                   "splits": {"dev": (ids, labels.astype(np.int8)[:, None], probs[None, :, None])}}
            for name, probs in (("none", noisy), ("same", noisy), ("sharp", sharp))}


@pytest.mark.parametrize("against, marks", [
    (None, {"none": "", "same": "", "sharp": "best"}),
    ({"head.caption_mode": "none"}, {"none": "reference", "same": "≈ reference", "sharp": ""}),
])
def test_each_cell_is_marked_against_the_best_or_the_cell_the_table_names(against, marks):
    """Without `against` the best mean is the reference; with it, the cell it names, however
    it scores. A cell without a result is left unmarked."""
    spec = {"splits": ["dev"], "metric": "auroc", **({"against": against} if against else {})}
    values = {"none": 70.0, "same": 70.0, "sharp": 95.0}
    table = [{"params": {"head.caption_mode": name}, "experiment": name, "dev": {"value": value}}
             for name, value in values.items()]
    table.append({"params": {"head.caption_mode": "append"}, "experiment": "", "dev": None})
    collect.mark_paired(spec, table, sides().__getitem__)
    assert {row["experiment"]: row["mark_dev"] for row in table[:3]} == marks
    reference = next(row for row in table if row["mark_dev"] == collect.reference_word(spec))
    assert reference["p_dev"] is None
    assert all(0 <= row["p_dev"] <= 1 for row in table[:3] if row is not reference)
    assert "mark_dev" not in table[3]
