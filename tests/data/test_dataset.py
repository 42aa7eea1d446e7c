"""stages/data/dataset.py: what every release reader shares: the fingerprint, images loaded
and refused in one line, a carved dev split, and bad input of each format in one line."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stages.common.errors import InputError
from stages.data import dataset
from tests.helpers import read_release as read


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


@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_dev_fraction_carves_a_seeded_stratified_dev_split(tamil_set, fraction):
    root, _ = tamil_set
    whole = dataset.read(root, "tamil")
    data = dataset.read(root, "tamil", dev_fraction=fraction)
    assert data == dataset.read(root, "tamil", dev_fraction=fraction)  # seeded
    train, dev = data.splits["train"], data.splits["dev"]
    assert len(dev) == round(fraction * len(whole.splits["train"])) and data.splits["test"] == whole.splits["test"]
    assert sorted(m.id for m in train + dev) == sorted(m.id for m in whole.splits["train"])
    share = np.mean([m.label for m in whole.splits["train"]])
    assert abs(np.mean([m.label for m in dev]) - share) <= 1 / len(dev) + 1e-9  # stratified
    with pytest.raises(InputError, match="has a 'dev' split already"):
        dataset.carve_dev(data, 0.1)


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
