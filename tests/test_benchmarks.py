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
    """A blank cell is an unknown label: `target` leaves its memes out, `hate` keeps them with
    the target's columns unknown."""
    root, memes = sets["pridemm"]
    table = pd.read_csv(root / "PrideMM.csv")
    train = table[table["split"] == "train"]
    assert train["target"].isna().any() and train["target"].notna().any()
    for task, classes in (("hate", 0), ("target", 4), ("stance", 3), ("humour", 0)):
        data = read(root, "pridemm", task)
        if classes:
            assert data.task.is_categorical and len(data.task.labels) == classes
            got = [m.labels[:classes].index(1) for m in data.splits["train"]]
        else:
            got = [m.labels[0] for m in data.splits["train"]]
        assert got == train[task].dropna().astype(int).tolist()
    hate = read(root, "pridemm", "hate")
    target = [k for k, name in enumerate(hate.task.names) if name.startswith("target=")]
    blank = train["target"].isna().tolist()
    assert [all(m.labels[k] == -1 for k in target) for m in hate.splits["train"]] == blank


def test_a_mami_copy_without_test_labels_reads_its_test_split_as_unlabeled(sets, tmp_path):
    bare = tmp_path / "copy"
    shutil.copytree(sets["mami"][0], bare)
    (bare / "test_labels.txt").unlink()
    for task in ("misogynous", "types"):
        data = read(bare, "mami", task)
        assert data.is_labeled("train") and not data.is_labeled("test")
        assert {label for m in data.splits["test"] for label in m.labels} == {-1}
        assert len(data.splits["test"]) == len(sets["mami"][1]["test"])


# Each CSV release's annotation file and its image-name column: two memes whose file names
# differ only in extension would both get the stem as their id.
IMAGE_COLUMNS = {"multioff": ("Split Dataset/Training_meme_dataset.csv", "image_name", ","),
                 "mami": ("TRAINING/training.csv", "file_name", "\t"),
                 "pridemm": ("PrideMM.csv", "name", ",")}


@pytest.mark.parametrize("layout", list(IMAGE_COLUMNS))
def test_two_memes_whose_image_names_share_a_stem_are_refused_naming_both_rows(sets, tmp_path, layout):
    root = tmp_path / layout
    shutil.copytree(sets[layout][0], root)
    name, column, sep = IMAGE_COLUMNS[layout]
    table = pd.read_csv(root / name, sep=sep, dtype=str, keep_default_na=False)
    twin = table.iloc[[0]].copy()
    twin[column] = str(Path(table[column].iloc[0]).with_suffix(".png"))
    pd.concat([table, twin]).to_csv(root / name, sep=sep, index=False)
    with pytest.raises(InputError) as err:
        read(root, layout)
    stem = Path(table[column].iloc[0]).stem
    assert str(err.value).startswith(f"{root / name}:{len(table) + 2}: duplicate id {stem} (first seen on line 2)")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("conflicting", [False, True])
def test_a_mami_test_label_given_twice_must_agree(sets, tmp_path, conflicting):
    root = tmp_path / "copy"
    shutil.copytree(sets["mami"][0], root)
    lines = (root / "test_labels.txt").read_text().splitlines()
    name, label, *types = lines[0].split("\t")
    again = "\t".join([name, str(1 - int(label)) if conflicting else label, *types])
    (root / "test_labels.txt").write_text("\n".join([*lines, again]) + "\n")
    if not conflicting:
        assert read(root, "mami").splits == read(sets["mami"][0], "mami").splits
        return
    with pytest.raises(InputError, match=rf"test_labels.txt:{len(lines) + 1}: '{name}' is labeled .* on .*test_labels.txt:1$"):
        read(root, "mami")


@pytest.mark.parametrize("cell", ["nan", "inf", "1.5"])
def test_a_pridemm_class_cell_that_is_no_class_index_is_one_line(sets, tmp_path, cell):
    root = tmp_path / "copy"
    shutil.copytree(sets["pridemm"][0], root)
    table = pd.read_csv(root / "PrideMM.csv", dtype=str, keep_default_na=False)
    table.loc[3, "stance"] = cell
    table.to_csv(root / "PrideMM.csv", index=False)
    with pytest.raises(InputError, match=rf"PrideMM.csv:5: 'stance' must be a class index 0 to 2, got '{cell}'"):
        read(root, "pridemm")


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
