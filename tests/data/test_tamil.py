"""stages/data/tamil.py: TamilMemes as it ships: labels from file names and the gold file."""
import pytest

from stages.common.errors import InputError
from stages.data import dataset


def test_tamil_labels_come_from_file_names_and_the_gold_file(tamil_set):
    root, splits = tamil_set
    data = dataset.read(root, "tamil")
    assert list(data.splits) == ["train", "test"] and data.task.labels == ("troll",)
    for name, memes in splits.items():
        assert [m.label for m in data.splits[name]] == [m.label for m in memes]
        assert [m.text for m in data.splits[name]] == [m.text for m in memes]
        assert all((root / m.img).is_file() for m in data.splits[name])
    first = (root / "train_captions.csv").read_text().splitlines()[0]
    assert first.startswith(",imagename,captions")  # the release's unnamed index column


@pytest.mark.parametrize("edit, message", [
    (lambda root: (root / "train_captions.csv").write_text(
        ",imagename,captions\n0,troll_1.jpg,a\n1,meme_2.jpg,b\n"),
     "train_captions.csv:3: image name 'meme_2.jpg' starts with neither troll_ nor Not_troll_"),
    (lambda root: (root / "gold_labels_for_test.csv").write_text("ref_caption,label\n"),
     "test_captions.csv:2: image '.*' has no row in .*gold_labels_for_test.csv"),
    (lambda root: (root / "test_captions.csv").write_text(",imagename,text\n0,troll_1.jpg,a\n"),
     "test_captions.csv:1: missing column 'captions'"),
    (lambda root: (root / "gold_labels_for_test.csv").unlink(),
     "gold_labels_for_test.csv: not found"),
    (lambda root: (root / "train_captions.csv").write_text(
        ",imagename,captions\n0,troll_1.jpg,a\n1,troll_2.jpg,b\n2,troll_1.png,c\n"),
     r"train_captions.csv:4: duplicate id troll_1 \(first seen on line 2\): two memes "
     r"\(uploaded_tamil_memes/troll_1.jpg, uploaded_tamil_memes/troll_1.png\) cannot share one id"),
    (lambda root: append(root / "gold_labels_for_test.csv", flipped_gold_row(root)),
     r"gold_labels_for_test.csv:\d+: '.*' is labeled \d, but \d on .*gold_labels_for_test.csv:2$"),
])
def test_tamil_bad_input_names_file_and_line(tamil_set, copy_of, edit, message):
    root = copy_of(tamil_set[0])
    edit(root)
    with pytest.raises(InputError, match=message):
        dataset.read(root, "tamil")


def append(path, line):
    path.write_text(path.read_text().rstrip("\n") + "\n" + line + "\n")


def flipped_gold_row(root):
    """The gold file's first row again, with the other label."""
    name, label = (root / "gold_labels_for_test.csv").read_text().splitlines()[1].rsplit(",", 1)
    return f"{name},{'not_troll' if label.strip().lower() == 'troll' else 'troll'}"


def test_a_tamil_gold_row_given_twice_alike_is_read_once(tamil_set, copy_of):
    root = copy_of(tamil_set[0])
    append(root / "gold_labels_for_test.csv", (root / "gold_labels_for_test.csv").read_text().splitlines()[1])
    assert dataset.read(root, "tamil").splits == dataset.read(tamil_set[0], "tamil").splits
