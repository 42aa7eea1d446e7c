"""MMHS150K as it ships (stages/data/mmhs150k.py): the three annotators' majority as the label,
the tweets in their split files' order, bad input in one line, and a run through the stages."""
import json

import pytest

from scripts import synthetic
from stages import evaluate, extract, train
from stages.common.errors import InputError
from stages.data import dataset
from tests.helpers import write_params


@pytest.fixture(scope="module")
def mmhs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmhs") / "MMHS150K"
    return root, synthetic.generate(root, n=120, layout="mmhs150k", seed=9)


def test_the_label_is_the_majority_of_three_annotators_and_the_text_is_the_tweet_as_released(mmhs):
    root, memes = mmhs
    data = dataset.read(root, "mmhs150k")
    truth = json.loads((root / "MMHS150K_GT.json").read_text())
    assert list(data.splits) == ["train", "val", "test"] and data.task.labels == ("hate",)
    for split, read in data.splits.items():
        ids = (root / "splits" / f"{split}_ids.txt").read_text().split()
        assert [m.id for m in read] == ids
        for meme in read:
            codes = truth[meme.id]["labels"]
            assert meme.label == int(sum(code > 0 for code in codes) >= 2)
            assert meme.text == truth[meme.id]["tweet_text"] and (root / meme.img).is_file()
    labels = [m.label for memes in data.splits.values() for m in memes]
    assert 0 < sum(labels) < len(labels)
    assert any("https://t.co/" in m.text for m in data.splits["train"])  # links kept as released
    assert [m.label for m in data.splits["train"]] == [m.label for m in memes["train"]]


@pytest.mark.parametrize("damage, message", [
    (lambda root, truth: (root / "splits" / "val_ids.txt").write_text("1\n"),
     "splits/val_ids.txt:1: tweet 1 has no entry in MMHS150K_GT.json"),
    (lambda root, truth: truth[next(iter(truth))].update(labels=[0, 1]),
     "'labels' in MMHS150K_GT.json must be three annotators' codes 0-5, got [0, 1]"),
    (lambda root, truth: truth[next(iter(truth))].update(labels=[0, 6, 1]),
     "must be three annotators' codes 0-5, got [0, 6, 1]"),
    (lambda root, truth: (root / "splits" / "test_ids.txt").unlink(), "splits/test_ids.txt: not found"),
])
def test_bad_input_is_one_line_naming_the_file(mmhs, copy_of, damage, message):
    root = copy_of(mmhs[0])
    truth = json.loads((root / "MMHS150K_GT.json").read_text())
    damage(root, truth)
    (root / "MMHS150K_GT.json").write_text(json.dumps(truth))
    with pytest.raises(InputError) as err:
        dataset.read(root, "mmhs150k")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_mmhs150k_runs_through_the_stages_scored_by_auroc_beside_constants(mmhs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, mmhs[0], "val", data__layout="mmhs150k", train__epochs=2)
    for stage in (extract, train, evaluate):
        stage.main([])
    metrics = json.loads(evaluate.METRICS.read_text())
    assert set(metrics) == {"val", "test"}
    for m in metrics.values():
        assert 0 <= m["auroc"] <= 1 and m["baselines"]["all_negative"]["auroc"] == 0.5
    assert "val          n=" in capsys.readouterr().out
