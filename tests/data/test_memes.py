"""stages/data/memes.py: new memes (predict --jsonl, --add-to-index) with their labels by name;
every meme has one id, and two memes never share one (check_ids)."""
import json

import pytest

from stages.common.errors import InputError
from stages.data import dataset
from stages.data.memes import read_new_memes
from stages.data.task import HATEFUL, Task

NEW_TASK = Task(("Smears", "Transfer", "Doubt"), ("aux",))


def test_new_memes_take_labels_by_name_or_as_the_hateful_memes_label(tmp_path):
    path = tmp_path / "new.jsonl"
    path.write_text('{"id": 1, "img": "a.png", "text": "A  Caption\\n", "labels": ["Doubt", "Smears"]}\n'
                    '{"id": "b", "img": "b.png", "text": "x", "labels": []}\n'
                    '{"id": 3, "img": "c.png", "text": "y"}\n')
    memes = [m for _, m in read_new_memes(path, NEW_TASK, str.lower)]
    assert [m.labels for m in memes] == [(1, 0, 1, -1), (0, 0, 0, -1), (-1, -1, -1, -1)]
    assert [m.id for m in memes] == ["1", "b", "3"] and memes[0].text == "a  caption\n"
    path.write_text('{"id": 1, "img": "img/01.png", "text": "t", "label": 1}\n')
    assert read_new_memes(path, HATEFUL)[0][1].labels == (1,)


@pytest.mark.parametrize("line, message", [
    ('{"id": 1, "img": "a.png", "text": "t", "labels": ["Smear"]}', "new.jsonl:2: unknown label 'Smear' (this task's: Smears, Transfer, Doubt)"),
    ('{"id": 1, "img": "a.png", "text": "t", "label": 1}', "new.jsonl:2: this task has 3 labels: give them by name"),
    ('{"id": 1, "img": "a.png", "text": "t", "label": 1, "labels": []}', "new.jsonl:2: give 'labels' (names) or 'label'"),
    ('{"id": 1, "img": "a.png", "text": "t", "labels": "Smears"}', "new.jsonl:2: 'labels' must be a list of label names"),
    ('{"id": 1, "img": "/etc/a.png", "text": "t"}', "new.jsonl:2: 'img' must be a path inside"),
    ('{"id": 1, "text": "t"}', "new.jsonl:2: missing 'img'"),
])
def test_bad_new_memes_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "new.jsonl"
    path.write_text('{"id": 0, "img": "z.png", "text": "ok"}\n' + line + "\n")
    with pytest.raises(InputError) as err:
        read_new_memes(path, NEW_TASK)
    assert message in str(err.value)


def write(folder, split, lines):
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_one_id_naming_other_images_in_two_splits_is_refused_naming_both_rows(tmp_path):
    write(tmp_path, "train", [{"id": 1, "img": "img/1.png", "label": 0, "text": "a"}])
    write(tmp_path, "dev", [{"id": 2, "img": "img/2.png", "label": 1, "text": "b"},
                            {"id": 1, "img": "img/1.jpg", "label": 1, "text": "c"}])
    with pytest.raises(InputError) as err:
        dataset.read(tmp_path)
    message = str(err.value)  # the splits are read in file-name order: dev, then train
    assert message == (f"{tmp_path / 'train.jsonl'}:1: duplicate id 1 (first seen at "
                       f"{tmp_path / 'dev.jsonl'}:2): two memes (img/1.jpg, img/1.png) cannot share one id")


def test_one_meme_in_two_splits_is_the_same_meme(tmp_path):
    """Hateful Memes' dev_unseen repeats dev_seen's memes: the same id and image, read once each."""
    line = {"id": 1, "img": "img/1.png", "label": 0, "text": "a"}
    write(tmp_path, "dev_seen", [line])
    write(tmp_path, "dev_unseen", [line])
    data = dataset.read(tmp_path)
    assert [m.id for m in data.splits["dev_seen"]] == [m.id for m in data.splits["dev_unseen"]] == ["1"]
