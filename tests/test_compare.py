"""Paired comparisons: DeLong against a direct computation, the permutation and bootstrap on
cases with a known answer, calibration over pairs of seeds, and `scripts.compare` through the
real `dvc` on two experiments."""
import csv
import io
import json
import math
import sys

import numpy as np
import pytest
from sklearn import metrics

from stages.common.errors import InputError
from stages.data.task import HATEFUL, Label, Task
from stages.report import paired, scoring
from tests.test_dvc_pipeline import sh, workspace


def direct_delong(labels, a, b):
    """DeLong et al. (1988) as written: the structural components from every
    (positive, negative) pair, their covariances, z and its two-sided p."""
    def psi(x, y):
        return 1.0 if x > y else 0.5 if x == y else 0.0

    pos, neg = labels == 1, labels == 0
    v10, v01, aucs = [], [], []
    for s in (a, b):
        grid = np.array([[psi(x, y) for y in s[neg]] for x in s[pos]])
        aucs.append(grid.mean())
        v10.append(grid.mean(axis=1))
        v01.append(grid.mean(axis=0))
    s = np.cov(v10) / pos.sum() + np.cov(v01) / neg.sum()
    z = (aucs[0] - aucs[1]) / math.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    return aucs[0], aucs[1], math.erfc(abs(z) / math.sqrt(2))


@pytest.mark.parametrize("seed, ties", [(0, False), (1, True), (2, True)])
def test_delong_equals_the_direct_computation(seed, ties):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 40)
    a = labels * 0.6 + rng.random(40)
    b = labels * 0.3 + rng.random(40)
    if ties:  # scores rounded, as probabilities often tie
        a, b = np.round(a, 1), np.round(b, 1)
    fast = paired.delong(labels, a, b)
    slow = direct_delong(labels, a, b)
    np.testing.assert_allclose(fast, slow, rtol=1e-10)
    assert fast[0] == pytest.approx(metrics.roc_auc_score(labels, a))


@pytest.mark.parametrize("metric, level", [("auroc", None), ("micro_f1", 0.9)])
def test_the_paired_interval_is_the_percentile_bootstrap_at_its_level(metric, level):
    """Each draw of memes scores both sides' runs (scikit-learn here); the interval is the
    (1 - level) / 2 and (1 + level) / 2 percentiles of the differences, 95% unless asked: a
    90% interval reported as the 95% one fails."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, (60, 1))
    a, b = rng.random((2, 60, 1)) * 0.7 + labels * 0.3, rng.random((3, 60, 1))
    score = (lambda y, p: metrics.roc_auc_score(y[:, 0], p[:, 0])) if metric == "auroc" else (
        lambda y, p: metrics.f1_score(y[:, 0], p[:, 0] >= 0.5))  # one label: its positive class's F1
    deltas = [np.mean([score(labels[d], run[d]) for run in a])
              - np.mean([score(labels[d], run[d]) for run in b]) for d in scoring.bootstrap_draws(60)]
    tail = 50 * (1 - (level or 0.95))
    asked = {"level": level} if level else {}
    assert paired.bootstrap_interval(metric, HATEFUL, labels, a, b, **asked) == pytest.approx(
        tuple(np.percentile(deltas, [tail, 100 - tail])), abs=1e-12)


def test_identical_sides_differ_by_nothing():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (50, 1))
    probs = rng.random((3, 50, 1))
    c = paired.compare(HATEFUL, labels, probs, probs, permutations=200)
    assert c.delta == 0 == c.ci_low == c.ci_high and c.p_value == 1.0
    assert c.delong_p == 1.0 and c.verdict(0.05) == "no difference detected"


def test_a_clearly_better_side_is_found_and_the_interval_holds_the_difference():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, (120, 1))
    good = np.clip(labels * 0.5 + rng.random((2, 120, 1)) * 0.6, 0, 1)
    poor = rng.random((2, 120, 1))
    c = paired.compare(HATEFUL, labels, good, poor)
    assert c.ci_low <= c.delta <= c.ci_high and c.ci_low > 0
    assert c.p_value < 0.01 and c.delong_p < 0.01 and c.verdict(0.05) == "A better"
    assert paired.compare(HATEFUL, labels, poor, good).verdict(0.05) == "B better"


def test_a_class_task_is_compared_by_its_own_metric():
    task = Task.of((Label("intensity", ("a", "b", "c")),), metric="macro_f1")
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 90)
    labels = np.eye(3, dtype=np.int8)[y]
    right = np.eye(3)[np.where(rng.random(90) < 0.8, y, (y + 1) % 3)][None]
    guess = rng.dirichlet(np.ones(3), (1, 90))
    c = paired.compare(task, labels, right, guess, permutations=300)
    assert c.metric == "macro_f1" and c.delong_p is None
    assert c.a == pytest.approx(metrics.f1_score(y, right[0].argmax(1), average="macro"))
    assert c.verdict(0.05) == "A better"


def test_runs_of_one_configuration_are_not_told_apart(kaggle_set, tmp_path, monkeypatch):
    """Calibration: 80 runs of one head that differ only in seed (train.runs: 80, one batched
    loop), compared in 40 pairs on dev: at alpha 0.05 at least 90% say no difference, by the
    permutation p, by DeLong's p and by the bootstrap interval holding 0."""
    from stages import extract, train
    from stages.cache import features
    from stages.head import hateclipper, inputs
    from tests.conftest import write_params

    root, _ = kaggle_set
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, root, train__runs=80, train__epochs=6, train__lr=0.003)
    extract.main([])
    train.main([])
    head, _ = hateclipper.load(hateclipper.CHECKPOINT)
    dev = inputs.read(features.CACHE, ["dev"])[0]["dev"]
    probs = hateclipper.predict_probs(head, dev.image, dev.text)
    pairs = [paired.compare(HATEFUL, dev.labels, probs[2 * k:2 * k + 1], probs[2 * k + 1:2 * k + 2],
                            permutations=500) for k in range(40)]
    verdicts = [c.verdict(0.05) for c in pairs]
    assert verdicts.count("no difference detected") >= 36, verdicts
    assert sum(c.delong_p >= 0.05 for c in pairs) >= 36, [c.delong_p for c in pairs]
    assert sum(c.ci_low <= 0 <= c.ci_high for c in pairs) >= 36, [(c.ci_low, c.ci_high) for c in pairs]


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


def side(ids, labels, probs, where="x"):
    return {"task": HATEFUL, "where": where,
            "splits": {"dev": (list(ids), np.array(labels, np.int8)[:, None], np.array(probs)[None, :, None])}}


def test_sides_of_different_caches_are_compared_on_the_memes_they_share():
    from scripts import compare

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 30)
    a = side([f"m{k}" for k in range(30)], labels, rng.random(30), "a")
    b = side([f"m{k}" for k in range(10, 40)], np.concatenate([labels[10:], [0] * 10]), rng.random(30), "b")
    results, notes = compare.compare_sides(a, b, None)
    assert results["dev"].n == 20 and notes == ["split 'dev': compared on the 20 memes both sides scored (A 30, B 30)"]
    alone = side(["z1", "z2"], [0, 1], [0.1, 0.9])
    with pytest.raises(InputError, match="share no meme"):
        compare.compare_sides(a, alone, None)
    with pytest.raises(InputError, match="not a labeled split of both"):
        compare.compare_sides(a, b, ["test"])


@pytest.mark.parametrize("missing", [0, 7])
def test_b_listing_the_memes_in_another_order_is_realigned_to_a(missing):
    """B's file lists the same memes shuffled (and, in the second case, lacks some): each B
    probability must meet its own meme's label and A's probability, as in the aligned case."""
    from scripts import compare

    rng = np.random.default_rng(5)
    ids = [f"m{k}" for k in range(40)]
    labels = rng.integers(0, 2, 40)
    probs_a = np.clip(labels * 0.5 + rng.random(40) * 0.7, 0, 1)
    probs_b = np.clip(labels * 0.2 + rng.random(40) * 0.9, 0, 1)
    kept = np.arange(missing, 40)
    aligned = compare.compare_sides(side(ids, labels, probs_a), side([ids[k] for k in kept], labels[kept],
                                                                     probs_b[kept]), None)[0]["dev"]
    order = rng.permutation(kept)
    shuffled = compare.compare_sides(side(ids, labels, probs_a), side([ids[k] for k in order], labels[order],
                                                                      probs_b[order]), None)[0]["dev"]
    assert shuffled == aligned
    assert aligned.n == 40 - missing
    assert aligned.b == pytest.approx(metrics.roc_auc_score(labels[kept], probs_b[kept]))
    assert aligned.delong_p == pytest.approx(direct_delong(labels[kept], probs_a[kept], probs_b[kept])[2])


def test_the_probabilities_file_holds_every_run_as_evaluate_computed_it(two_experiments):
    from scripts import compare

    saved = compare.unpack((two_experiments / "reports/probabilities.npz").read_bytes(), "workspace")
    metrics_file = json.loads((two_experiments / "reports/metrics.json").read_text())
    assert set(saved["splits"]) == set(metrics_file)
    ids, labels, probs = saved["splits"]["dev_seen"]
    assert probs.shape == (1, metrics_file["dev_seen"]["n"], 1) and labels.dtype == np.int8
    assert metrics.roc_auc_score(labels[:, 0], probs[0, :, 0]) == pytest.approx(metrics_file["dev_seen"]["auroc"])
