"""scripts.compare and the paper table's marks through the real `dvc` on two experiments."""
import csv
import io
import json
import sys

import numpy as np
import pytest
from sklearn import metrics

from tests.helpers import sh, workspace

pytestmark = pytest.mark.slow  # two experiments through the real `dvc`


@pytest.fixture(scope="module")
def two_experiments(tmp_path_factory):
    """cross (committed) and fusion=text (an experiment named `text`) on a set whose labels
    need both modalities, each run to evaluate (what a comparison reads)."""
    ws = workspace(tmp_path_factory.mktemp("compare") / "ws", "--n 500 --layout challenge",
                   "--set train.lr=0.003")
    sh("dvc repro evaluate", ws)
    sh("git add -A && git commit -qm cross", ws)
    sh("dvc exp run evaluate -n text -S fusion=text", ws)
    return ws


def test_cross_beats_text_only_on_dev_with_p_below_001(two_experiments):
    out = sh(f"{sys.executable} -m scripts.compare HEAD text --json", two_experiments).stdout
    result = json.loads(out)
    assert set(result["splits"]) == {"dev_seen", "dev_unseen", "test_seen"}  # the labeled ones
    dev = result["splits"]["dev_seen"]
    assert dev["metric"] == "auroc" and dev["delta"] > 0 and dev["p_value"] < 0.01
    assert dev["delong_p"] < 0.01 and dev["verdict"] == "A better"
    assert dev["ci_low"] <= dev["delta"] <= dev["ci_high"]
    for key in ("a", "b", "ci_low", "ci_high", "p_value"):
        assert key in dev
    table = sh(f"{sys.executable} -m scripts.compare text HEAD --md", two_experiments).stdout
    assert "| dev_seen | auroc |" in table and "B better" in table
    assert "3 comparisons at alpha 0.05" in table  # the reminder of how many tests were made


def test_compare_errors_are_one_line(two_experiments):
    unknown = sh(f"{sys.executable} -m scripts.compare nosuchrev HEAD", two_experiments, ok=False)
    assert unknown.returncode == 2 and "unknown revision 'nosuchrev'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    first = sh("git rev-list --max-parents=0 HEAD", two_experiments).stdout.strip()
    old = sh(f"{sys.executable} -m scripts.compare HEAD {first}", two_experiments, ok=False)
    assert old.returncode == 2 and "rerun it with this version" in old.stderr


def test_the_paper_table_marks_cells_not_told_apart_from_the_best_and_draws_a_forest(two_experiments):
    ws = two_experiments
    sh(f"{sys.executable} -m scripts.paper_table --table 1 --fusion cross --set head.map_dim=16 "
       "--set train.epochs=3", ws)
    text = (ws / "reports/paper_table_1.md").read_text()
    assert text.count("**best** |") == 2  # one cell per split
    rows = list(csv.DictReader(io.StringIO((ws / "reports/paper_table_1.csv").read_text())))
    marks = [row["p_vs_best_dev_seen"] for row in rows if row["status"] == "run"]
    assert sorted(marks)[-1] == "best" and 0 < float(sorted(marks)[0]) <= 1
    assert (float(sorted(marks)[0]) >= 0.05) == ("≈ best" in text)
    forest = ws / "reports/paper_table_1_forest.png"
    assert forest.read_bytes()[:4] == b"\x89PNG"


def test_the_probabilities_file_holds_every_run_as_evaluate_computed_it(two_experiments):
    from scripts import compare

    saved = compare.unpack((two_experiments / "reports/probabilities.npz").read_bytes(), "workspace")
    metrics_file = json.loads((two_experiments / "reports/metrics.json").read_text())
    assert set(saved["splits"]) == set(metrics_file)
    ids, labels, probs = saved["splits"]["dev_seen"]
    assert probs.shape == (1, metrics_file["dev_seen"]["n"], 1) and labels.dtype == np.int8
    assert metrics.roc_auc_score(labels[:, 0], probs[0, :, 0]) == pytest.approx(metrics_file["dev_seen"]["auroc"])
