"""stages/data/memes.py: new memes (predict --jsonl, --add-to-index) with their labels by name."""
import pytest

from stages.common.errors import InputError
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
