"""stages/report/paired.py: DeLong against a direct computation, the permutation and bootstrap
on cases with a known answer, and calibration over pairs of seeds (scripts.compare through
the real `dvc`: tests/flows/test_compare_experiments.py)."""
import numpy as np
import pytest
from sklearn import metrics

from stages.data.task import HATEFUL, Label, Task
from stages.report import paired, scoring
from tests.helpers import direct_delong, pairwise_auroc


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


def positive_f1(y, p):
    """The positive class's F1 from its counts: 2 TP / (predicted + actual positives)."""
    predicted = p >= 0.5
    return 2 * (predicted & (y == 1)).sum() / (predicted.sum() + (y == 1).sum())


@pytest.mark.parametrize("metric, level", [("auroc", None), ("micro_f1", 0.9)])
def test_the_paired_interval_is_the_percentile_bootstrap_at_its_level(metric, level):
    """Each draw of memes scores both sides' runs (counted directly here); the interval is the
    (1 - level) / 2 and (1 + level) / 2 percentiles of the differences, 95% unless asked: a
    90% interval reported as the 95% one fails."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, (60, 1))
    a, b = rng.random((2, 60, 1)) * 0.7 + labels * 0.3, rng.random((3, 60, 1))
    direct = pairwise_auroc if metric == "auroc" else positive_f1  # one label: its positive class's F1

    def score(y, p):
        return direct(y[:, 0], p[:, 0])

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
    from tests.helpers import write_params

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
