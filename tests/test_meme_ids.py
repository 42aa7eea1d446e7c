"""Every meme has one id, and two memes never share one (stages/data/memes.check_ids)."""
import json

import pytest

from stages.common.errors import InputError
from stages.data import dataset


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
