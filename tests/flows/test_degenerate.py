"""Degenerate input a real user meets, through the real stages: correct outputs or one clear
line, never a traceback, never a half-written output.

A first run on a small set is exactly this: a head that barely learns, duplicate memes, splits
of one meme, more clusters or runs or neighbours than there are memes.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from scripts import synthetic
from stages import evaluate, extract, interpret, train
from stages.head import hateclipper
from tests.helpers import leftovers, run_entry, run_stages, sh, workspace, write_params

HEAD_STAGES = (train, evaluate, interpret)


def rewrite(root: Path, edit) -> None:
    """Apply `edit` to every line of every split file."""
    for path in root.glob("*.jsonl"):
        lines = [edit(json.loads(line)) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def one_meme_splits(root: Path) -> None:
    """A labeled split and an unlabeled split of one meme each, beside the others."""
    first = json.loads((root / "train.jsonl").read_text().splitlines()[0])
    (root / "single.jsonl").write_text(json.dumps(first) + "\n")
    (root / "lonely.jsonl").write_text(json.dumps({k: v for k, v in first.items() if k != "label"}) + "\n")


def summary(work: Path) -> dict:
    return json.loads((work / interpret.REPORT / "summary.json").read_text())


def test_identical_memes_and_one_meme_splits_through_every_stage(tmp_path):
    """Every meme the same picture and caption (every feature row equal), a labeled and an
    unlabeled split of one meme: the committed defaults run to the end, interpret included,
    in a workspace whose `dvc metrics show` reads the result."""
    root = tmp_path / "flat"
    synthetic.generate(root, n=60, seed=3)
    first, *others = sorted((root / "img").iterdir())
    for path in others:
        shutil.copy(first, path)
    rewrite(root, lambda line: {**line, "text": "the same caption"})
    one_meme_splits(root)
    ws = workspace(tmp_path / "ws", f"--data {root}", "--set clip.model=tiny", "--set clip.pretrained=none")
    out = run_stages(ws, extract, *HEAD_STAGES)
    assert "note: 1 clusters, not the 15 asked" in out
    metrics = json.loads((ws / "reports/metrics.json").read_text())
    assert metrics["single"]["n"] == 1 and np.isnan(metrics["single"]["auroc"])
    assert metrics["dev"]["auroc"] == 0.5  # one score for every meme: all tied
    assert len(pd.read_csv(ws / "reports/predictions/lonely.csv")) == 1
    report = summary(ws)
    assert report["clusters"] == 1 and report["clusters_asked"] == 15
    assert "only 1 distinct trigger vectors" in report["note"]
    clusters = pd.read_csv(ws / interpret.REPORT / "clusters.csv")
    assert (clusters["cluster"] == 0).all() and len(clusters) == report["hateful_memes"]
    assert "single" in sh("dvc metrics show", ws).stdout


@pytest.fixture(scope="module")
def empty_captions(tmp_path_factory):
    """A small set whose captions are all empty, extracted once."""
    work = tmp_path_factory.mktemp("empty")
    synthetic.generate(work / "memes", n=80, seed=5)
    rewrite(work / "memes", lambda line: {**line, "text": ""})
    write_params(work, work / "memes")
    run_stages(work, extract)
    return work


@pytest.fixture
def at(empty_captions):
    """params.yaml of the empty-captions workspace with these overrides; the workspace."""
    def with_params(**overrides) -> Path:
        write_params(empty_captions, empty_captions / "memes", **overrides)
        return empty_captions
    return with_params


def test_a_head_that_barely_learns_on_empty_captions(at):
    work = at(train__lr=1e-9)
    run_stages(work, *HEAD_STAGES)
    probs = pd.read_csv(work / "reports/predictions/dev.csv")["prob_hate"]
    assert probs.max() - probs.min() < 0.05  # nearly constant
    metrics = json.loads((work / "reports/metrics.json").read_text())["dev"]
    assert 0 <= metrics["auroc"] <= 1 and metrics["baselines"]["all_negative"]["f1"] == 0
    report = summary(work)
    assert report["applies"] and 1 <= report["clusters"] <= 15
    assert len(report["per_cluster"]) == report["clusters"]


def test_more_clusters_than_hateful_memes_gives_as_many_as_there_are(at):
    work = at(interpret__clusters=500, train__epochs=2)
    out = run_stages(work, *HEAD_STAGES)
    report = summary(work)
    assert report["clusters_asked"] == 500 and report["clusters"] <= report["hateful_memes"] < 500
    assert f"{report['clusters']} clusters, not the 500 asked" in report["note"]
    assert f"note: {report['note']}" in out
    sizes = [c["size"] for c in report["per_cluster"]]
    assert sum(sizes) == report["hateful_memes"] and len(sizes) == report["clusters"]


def test_more_runs_than_dev_memes_and_more_neighbours_than_training_memes(at):
    dev = len((at() / "memes/dev.jsonl").read_text().splitlines())
    work = at(train__runs=dev + 3, train__epochs=2, classifier="retrieval", retrieval__k=10_000)
    run_stages(work, *HEAD_STAGES)
    metrics = json.loads((work / "reports/metrics.json").read_text())["dev"]
    assert json.loads((work / "reports/metrics_detail.json").read_text())["dev"]["runs"] == dev + 3
    assert metrics["n"] == dev
    # k beyond the index: every training meme votes, so each run's probabilities are finite
    probs = pd.read_csv(work / "reports/predictions/test.csv")["prob_hate"]
    assert probs.between(0, 1).all()


def test_no_triggered_position_gives_a_summary_that_says_so(at):
    """A head whose every weight is 0: its direction D and every meme's FIM are 0 everywhere,
    so no position is both positive (or both negative) in D and in the meme's FIM."""
    work = at(train__epochs=1)
    run_stages(work, train)
    head, meta = hateclipper.load(work / hateclipper.CHECKPOINT)
    with torch.no_grad():
        head.weights.zero_()
    hateclipper.save(work / hateclipper.CHECKPOINT, head, meta)
    out = run_stages(work, interpret)
    report = summary(work)
    assert report["clusters"] == 0 and report["per_cluster"] == []
    assert "no FIM position triggered" in report["note"] and "no FIM position triggered" in out
    clusters = pd.read_csv(work / interpret.REPORT / "clusters.csv")
    assert len(clusters) == report["hateful_memes"] > 0
    assert (clusters["cluster"] == -1).all() and (clusters["triggered"] == 0).all()


def test_a_dev_split_of_one_class_is_one_line_and_leaves_no_head(tmp_path, monkeypatch, capsys):
    root = tmp_path / "memes"
    synthetic.generate(root, n=60, seed=6)
    rewrite(root, lambda line: {**line, "label": 0} if "label" in line else line)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    write_params(work, root, train__epochs=1)
    run_stages(work, extract)
    code, err, _ = run_entry(train, monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1
    assert "dev auroc was never defined: the dev split needs memes of both labels" in err
    assert sorted(leftovers(work)) == ["features/clip_features.h5", "reports/bad_images.csv",
                                     "reports/extract.json"]  # extract's alone



def blank_test_targets(root: Path) -> None:
    """PrideMM's test split with every target cell blank: labeled for hate, not for target."""
    table = pd.read_csv(root / "PrideMM.csv", dtype=str, keep_default_na=False)
    table.loc[table["split"] == "test", "target"] = ""
    table.to_csv(root / "PrideMM.csv", index=False)


@pytest.mark.parametrize("layout, task, dev_split, edit", [
    ("pridemm", "target", "val", blank_test_targets),  # one label of 4 classes, blank cells
    ("propaganda", None, "val", None),  # 22 labels, several of which no meme has
])
def test_other_kinds_of_task_run_on_a_head_that_barely_learns(tmp_path, layout, task, dev_split, edit):
    """A C-class task with blank cells and a multi-label one, as a first run meets them: every
    stage ends without a traceback, every scored figure is a number, and a split that knows
    no label of the task is said not to be scored, in the output and in metrics.json."""
    root = tmp_path / "memes"
    synthetic.generate(root, n=60, layout=layout, seed=8)
    if edit:
        edit(root)
    work = tmp_path / "work"
    work.mkdir()
    write_params(work, root, dev_split, data__layout=layout, data__task=task, train__epochs=2,
                 train__lr=1e-9, interpret__pictures=False)
    out = run_stages(work, extract, *HEAD_STAGES)
    metrics = json.loads((work / "reports/metrics.json").read_text())
    scored = {name: m for name, m in metrics.items() if name != "not_scored"}
    assert dev_split in scored and all(np.isfinite(m["n"]) and 0 <= m["macro_f1"] <= 1 for m in scored.values())
    if edit:
        why = "no meme has a known label of this task; the release labels it for another (data.task)"
        assert "test" not in scored and metrics["not_scored"] == {"test": why}
        assert f"test         not scored ({why}): predictions only" in out
        test = pd.read_csv(root / "PrideMM.csv").query("split == 'test'")
        assert len(pd.read_csv(work / "reports/predictions/test.csv")) == len(test)  # every meme predicted
    else:
        assert "not_scored" not in metrics and "test" in scored
