"""The field's other benchmarks, each read from its release's own files (synthetic copies here):
HarMeme (Harm-C, Harm-P), MultiOFF, MAMI (both test-label variants), PrideMM and Hateful Memes
as MMF ships it; their tasks of 3 and 4 classes learn, and each runs through the real `dvc`."""
import json
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from scripts import synthetic
from stages.common.errors import InputError
from stages.data import dataset, harmeme


def read(root: Path, layout: str, task: str | None = None, **kw):
    return dataset.read(root, layout, task=task, **kw)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """One small synthetic set of every new format, with the generator's memes."""
    root = tmp_path_factory.mktemp("formats")
    return {layout: (root / layout, synthetic.generate(root / layout, 120, layout, seed=3))
            for layout in ("harmeme", "harmp", "mmf", "multioff", "mami", "mami_inline", "pridemm")}


def test_harmeme_reads_its_three_tasks_with_the_releases_counts(sets):
    root, memes = sets["harmeme"]
    intensities = {s: Counter(synthetic.harm_labels(m)[0] for m in ms) for s, ms in memes.items()}
    harmful = read(root, "harmeme")
    assert harmful.task.labels == ("harmful",) and harmful.task.metric == "auroc"
    assert harmful.task.auxiliary[:1] == ("intensity=not harmful",)
    for split, counts in intensities.items():
        got = Counter(m.labels[0] for m in harmful.splits[split])
        assert got[0] == counts["not harmful"] and got[1] == len(memes[split]) - counts["not harmful"]
    intensity = read(root, "harmeme", "intensity")
    assert intensity.task.is_categorical and intensity.task.metric == "macro_f1"
    for split, counts in intensities.items():
        got = Counter(intensity.task.classes[m.labels.index(1)] for m in intensity.splits[split])
        assert got == counts
    target = read(root, "harmeme", "target")  # harmful memes only
    for split, ms in memes.items():
        expected = Counter(t for m in ms for t in synthetic.harm_labels(m)[1:])
        assert Counter(target.task.classes[m.labels[:4].index(1)] for m in target.splits[split]) == expected
    not_harmful = [m for m in intensity.splits["train"] if m.labels[0] == 1]
    assert all(set(m.labels[4:]) == {-1} for m in not_harmful)  # intensity, harmful, target: unknown


def test_harm_p_reads_v1_with_the_releases_quirks_as_momentas_code_does(sets):
    root, memes = sets["harmp"]
    data = read(root, "harmeme", "intensity")  # train.jsonl (V0) lies beside: V1 wins
    lines = [json.loads(line) for line in (root / "train_v1.jsonl").read_text().splitlines()]
    by_id = {m.id: m for m in data.splits["train"]}
    empty = [r for r in lines if r["labels"][0] == ""]
    double = [r for r in lines if len(r["labels"]) > 2]
    stray = [r for r in lines if r["labels"][0] == "not harmful" and len(r["labels"]) > 1]
    assert empty and double and stray
    assert by_id[empty[0]["id"]].labels[:3] == (0, 0, 1)  # empty intensity: very harmful
    first = harmeme.TARGETS.index(double[0]["labels"][1])
    assert by_id[double[0]["id"]].labels[4:] == tuple(int(k == first) for k in range(4))
    assert by_id[stray[0]["id"]].labels[4:] == (-1,) * 4  # not harmful: no target


def test_the_mmf_shape_of_hateful_memes_reads_as_the_kaggle_one(sets):
    root, memes = sets["mmf"]
    data = read(root, "hateful_memes")
    assert set(data.splits) == {"train", "dev", "test"}
    assert [m.label for m in data.splits["train"]] == [m.label for m in memes["train"]]
    assert all((root / m.img).is_file() and m.img.startswith("images/img/")
               for ms in data.splits.values() for m in ms)
    assert not data.is_labeled("test")


def test_multioff_reads_the_releases_spelling(sets):
    root, memes = sets["multioff"]
    data = read(root, "multioff")
    assert data.task.metric == "macro_f1" and set(data.splits) == {"train", "val", "test"}
    for split, ms in memes.items():
        assert [m.labels for m in data.splits[split]] == [(m.label,) for m in ms]
    assert "Non-offensiv" in (root / "Split Dataset/Training_meme_dataset.csv").read_text()


def test_mami_reads_the_same_memes_from_either_test_label_file(sets):
    (gold_root, memes), (inline_root, _) = sets["mami"], sets["mami_inline"]
    for task, metric in (("misogynous", "macro_f1"), ("types", "weighted_f1")):
        gold, inline = read(gold_root, "mami", task), read(inline_root, "mami", task)
        assert gold.task.metric == metric and gold.is_labeled("test")
        assert [m.labels for m in gold.splits["test"]] == [m.labels for m in inline.splits["test"]]
    types = read(gold_root, "mami", "types")
    assert types.task.labels == ("shaming", "stereotype", "objectification", "violence")
    assert [m.labels[:4] for m in types.splits["test"]] == [tuple(synthetic.mami_types(m)) for m in memes["test"]]


def test_mami_with_only_sub_task_a_gold_leaves_the_types_unknown(sets, tmp_path):
    short = tmp_path / "copy"
    shutil.copytree(sets["mami"][0], short)
    gold = (short / "test_labels.txt").read_text().splitlines()
    (short / "test_labels.txt").write_text("".join("\t".join(line.split("\t")[:2]) + "\n" for line in gold))
    assert read(short, "mami").is_labeled("test")
    assert not read(short, "mami", "types").is_labeled("test")


def test_pridemm_reads_four_tasks_from_one_csv(sets):
    root, memes = sets["pridemm"]
    table = pd.read_csv(root / "PrideMM.csv")
    for task, classes in (("hate", 0), ("target", 4), ("stance", 3), ("humour", 0)):
        data = read(root, "pridemm", task)
        train = table[table["split"] == "train"]
        if classes:
            assert data.task.is_categorical and len(data.task.labels) == classes
            got = [m.labels[:classes].index(1) for m in data.splits["train"]]
        else:
            got = [m.labels[0] for m in data.splits["train"]]
        assert got == train[task].tolist()


@pytest.mark.parametrize("layout, damage, message", [
    ("harmeme", lambda r: edit(r / "annotations/val.jsonl", '"not harmful"', '"mildly harmful"'),
     "annotations/val.jsonl:"),
    ("multioff", lambda r: edit(r / "Split Dataset/Testing_meme_dataset.csv", "Non-offensiv", "meh"),
     "Testing_meme_dataset.csv:"),
    ("mami", lambda r: edit(r / "test_labels.txt", "\n", "\n", drop_first=True), "has no row in the test labels"),
    ("pridemm", lambda r: edit(r / "PrideMM.csv", ",val,", ",validation,"), "'split' must be one of"),
    ("harmp", lambda r: (r / "test_v1.jsonl").unlink(), "no test.jsonl or test_v1.jsonl"),
])
def test_bad_input_of_each_format_is_one_line_naming_the_file(sets, tmp_path, layout, damage, message):
    root = tmp_path / layout
    shutil.copytree(sets[layout][0], root)
    damage(root)
    reader = {"harmp": "harmeme", "mami": "mami"}.get(layout, layout)
    with pytest.raises(InputError) as err:
        read(root, reader)
    assert message in str(err.value) and "\n" not in str(err.value)


def edit(path: Path, old: str, new: str, drop_first: bool = False) -> None:
    text = path.read_text()
    if drop_first:
        text = text.split("\n", 1)[1]
    path.write_text(text.replace(old, new, 1))
