import json

import pytest
from PIL import Image

from stages.common.errors import InputError
from stages.data import dataset
from stages.data.memes import UNLABELED, read_new_memes
from stages.data.task import HATEFUL, Task


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


def test_fingerprint_follows_the_data(tmp_path, kaggle_set, copy_of):
    root = copy_of(kaggle_set[0])
    before = dataset.fingerprint(dataset.read(root))
    assert dataset.fingerprint(dataset.read(root)) == before
    train = root / "train.jsonl"
    train.write_text(train.read_text().replace('"label": 0', '"label": 1', 1))
    assert dataset.fingerprint(dataset.read(root)) != before


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "CMYK", "LA", "I;16"])
def test_image_modes_convert_to_rgb(tmp_path, mode):
    path = tmp_path / "m.png"
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    Image.new(mode, (20, 10)).save(path, format=fmt)  # CMYK lives in JPEGs
    image = dataset.load_image(path)
    assert image.mode == "RGB" and image.size == (20, 10)


def test_jpeg_bytes_behind_a_png_name(tmp_path):
    path = tmp_path / "looks.png"
    Image.new("RGB", (9, 9), "red").save(path, format="JPEG")
    assert dataset.load_image(path).getpixel((4, 4))[0] > 200


def make_truncated(path):
    Image.new("RGB", (64, 64), "blue").save(path, format="PNG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "image file not found"),
    (lambda p: p.write_bytes(b""), "image file is empty"),
    (make_truncated, "unreadable image"),
    (lambda p: p.write_bytes(b"this is not an image at all"), "not an image Pillow can read"),
])
def test_bad_images_name_the_file(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(InputError) as err:
        dataset.load_image(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)  # a 4x-over-limit image
    with pytest.raises(InputError, match="decompression-bomb limit"):
        dataset.load_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150 * 150)  # between 1x and 2x: warning level
    with pytest.raises(InputError, match="decompression-bomb limit"):
        dataset.load_image(path)


def test_windows_line_endings_and_a_byte_order_mark(tmp_path):
    (tmp_path / "train.jsonl").write_bytes(
        b'\xef\xbb\xbf{"id": 1, "img": "a.png", "label": 1, "text": "x"}\r\n'
        b'{"id": 2, "img": "b.png", "label": 0, "text": "y"}\r\n')
    assert [m.id for m in dataset.read(tmp_path).splits["train"]] == ["1", "2"]


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
