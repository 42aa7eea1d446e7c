"""stages/data/mami.py: MAMI with either test-label file, or none."""
import shutil

import pytest

from scripts import synthetic
from stages.common.errors import InputError
from tests.helpers import read_release as read


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


def test_a_mami_copy_without_test_labels_reads_its_test_split_as_unlabeled(sets, tmp_path):
    bare = tmp_path / "copy"
    shutil.copytree(sets["mami"][0], bare)
    (bare / "test_labels.txt").unlink()
    for task in ("misogynous", "types"):
        data = read(bare, "mami", task)
        assert data.is_labeled("train") and not data.is_labeled("test")
        assert {label for m in data.splits["test"] for label in m.labels} == {-1}
        assert len(data.splits["test"]) == len(sets["mami"][1]["test"])


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
