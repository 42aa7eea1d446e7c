"""stages/data/hateful_memes.py: the Hateful Memes release's jsonl splits (Kaggle's, the full
challenge's and MMF's layouts) and their bad lines."""
import json

import pytest
from PIL import Image

from stages.common.errors import InputError
from stages.data import dataset
from stages.data.memes import UNLABELED
from tests.helpers import read_release as read


def test_reads_the_kaggle_layout(kaggle_set):
    root, splits = kaggle_set
    data = dataset.read(root)
    assert list(data.splits) == ["dev", "test", "train"]
    for name, memes in splits.items():
        assert [m.id for m in data.splits[name]] == [str(m.id) for m in memes]
        assert [m.img for m in data.splits[name]] == [m.img for m in memes]
    assert data.is_labeled("train") and not data.is_labeled("test")
    assert all(m.label == UNLABELED for m in data.splits["test"])


def test_reads_the_challenge_layout(challenge_set):
    root, splits = challenge_set
    data = dataset.read(root)
    assert set(data.splits) == {"train", "dev_seen", "dev_unseen", "test_seen", "test_unseen"}
    assert [m.label for m in data.splits["dev_unseen"]] == [m.label for m in splits["dev_unseen"]]
    # the same meme in two splits is normal; its image is still listed once
    assert len(dataset.unique_images(data)) == len({m.img for s in splits.values() for m in s})


def test_images_are_found_through_img_not_the_id(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "img" / "01235.png")
    (tmp_path / "train.jsonl").write_text('{"id": 1235, "img": "img/01235.png", "label": 1, "text": "x"}\n')
    data = dataset.read(tmp_path)
    meme = data.splits["train"][0]
    assert meme.id == "1235" and data.image_path(meme).is_file()


def write_split(tmp_path, lines, name="train"):
    (tmp_path / f"{name}.jsonl").write_text("".join(line + "\n" for line in lines))
    return tmp_path / f"{name}.jsonl"


GOOD = '{"id": 1, "img": "img/00001.png", "label": 0, "text": "a"}'


@pytest.mark.parametrize("bad_line, message", [
    ('{"id": 2, "img": "img/2.png", "label": 0, "text": "b"', "train.jsonl:2: not valid JSON"),
    ('{"img": "img/2.png", "label": 0, "text": "b"}', "train.jsonl:2: missing 'id'"),
    ('{"id": 2, "label": 0, "text": "b"}', "train.jsonl:2: missing 'img'"),
    ('{"id": 2, "img": "img/2.png", "label": 0}', "train.jsonl:2: missing 'text'"),
    ('{"id": 2, "img": "img/2.png", "label": 2, "text": "b"}', "train.jsonl:2: 'label' must be 0 or 1, got 2"),
    ('{"id": 2, "img": "img/2.png", "label": "1", "text": "b"}', "train.jsonl:2: 'label' must be 0 or 1"),
    ('{"id": 2, "img": "img/2.png", "text": "b"}', "train.jsonl:2: missing 'label' in a labeled split"),
    ('{"id": 1, "img": "img/2.png", "label": 0, "text": "b"}', "train.jsonl:2: duplicate id 1 (first seen on line 1)"),
    ('{"id": 2, "img": "../../etc/passwd", "label": 0, "text": "b"}', "train.jsonl:2: 'img' must be a path inside"),
    ('[1, 2]', "train.jsonl:2: expected a JSON object"),
])
def test_bad_lines_name_file_and_line(tmp_path, bad_line, message):
    write_split(tmp_path, [GOOD, bad_line])
    with pytest.raises(InputError) as err:
        dataset.read(tmp_path)
    assert message in str(err.value)


def test_same_id_in_two_splits_is_fine(tmp_path):
    write_split(tmp_path, [GOOD], "dev_seen")
    write_split(tmp_path, [GOOD], "dev_unseen")
    assert len(dataset.read(tmp_path).splits) == 2


def test_empty_caption_unicode_and_blank_lines_are_accepted(tmp_path):
    write_split(tmp_path, ['{"id": 1, "img": "a.png", "text": ""}', "",
                           json.dumps({"id": "x7", "img": "b.png", "text": "🙂 ünïcode"}, ensure_ascii=False)])
    memes = dataset.read(tmp_path).splits["train"]
    assert [m.text for m in memes] == ["", "🙂 ünïcode"] and memes[1].id == "x7"


def test_missing_folder_and_missing_jsonl_point_to_the_demo(tmp_path):
    with pytest.raises(InputError, match="does not exist.*make demo"):
        dataset.read(tmp_path / "nowhere")
    with pytest.raises(InputError, match="no \\*.jsonl split files.*make demo"):
        dataset.read(tmp_path)


def test_windows_line_endings_and_a_byte_order_mark(tmp_path):
    (tmp_path / "train.jsonl").write_bytes(
        b'\xef\xbb\xbf{"id": 1, "img": "a.png", "label": 1, "text": "x"}\r\n'
        b'{"id": 2, "img": "b.png", "label": 0, "text": "y"}\r\n')
    assert [m.id for m in dataset.read(tmp_path).splits["train"]] == ["1", "2"]


def test_the_mmf_shape_of_hateful_memes_reads_as_the_kaggle_one(sets):
    root, memes = sets["mmf"]
    data = read(root, "hateful_memes")
    assert set(data.splits) == {"train", "dev", "test"}
    assert [m.label for m in data.splits["train"]] == [m.label for m in memes["train"]]
    assert all((root / m.img).is_file() and m.img.startswith("images/img/")
               for ms in data.splits.values() for m in ms)
    assert not data.is_labeled("test")
