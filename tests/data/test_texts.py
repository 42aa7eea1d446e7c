"""Text streams (stages/data/texts.py): each meme's other texts from data.dir/texts/NAME.jsonl
or the layout's own, the empty text where a meme has none, bad files in one line naming them."""
import dataclasses
import json

import pytest

from scripts import synthetic
from stages.common.errors import InputError
from stages.data import dataset, texts
from tests.helpers import write_lines


@pytest.fixture(scope="module")
def captioned(tmp_path_factory):
    """A Kaggle-layout set with a caption stream, and an MMHS150K set with its OCR."""
    root = tmp_path_factory.mktemp("streams")
    kaggle = synthetic.generate(root / "kaggle", n=80, layout="kaggle", seed=4, stream="caption")
    mmhs = synthetic.generate(root / "mmhs", n=80, layout="mmhs150k", seed=4, stream="ocr", carries="text")
    return root, kaggle, mmhs


def test_a_stream_gives_each_meme_its_line_and_the_empty_text_where_it_has_none(captioned):
    root, memes, _ = captioned
    data = dataset.read(root / "kaggle", "hateful_memes", streams=("caption",))
    expected = {str(m.id): m.stream for split in memes.values() for m in split}
    assert data.texts["caption"] == {i: t for i, t in expected.items() if t}  # ids as the release writes them
    train = data.splits["train"]
    assert texts.texts_of(data, train, "caption") == [expected[m.id] for m in train]
    every = [m for split in data.splits.values() for m in split]
    assert "" in texts.texts_of(data, every, "caption")  # every 20th meme has none
    joined = texts.texts_of(data, train, texts.joined_name("caption"))
    assert joined == [f"{m.text} [SEP] {expected[m.id]}" for m in train]  # as the official code joins
    assert texts.cached(data) == ["caption", "text [SEP] caption"]
    counts = texts.covered(data)["caption"]
    assert counts == {split: sum(bool(expected[m.id]) for m in ms) for split, ms in data.splits.items()}


def test_mmhs150k_supplies_its_ocr_stream_and_a_file_of_that_name_wins(captioned, copy_of):
    root, _, memes = captioned
    data = dataset.read(root / "mmhs", "mmhs150k", streams=("ocr",))
    assert data.texts["ocr"] == {str(m.id): m.stream for split in memes.values() for m in split if m.stream}
    folder = copy_of(root / "mmhs")
    first = memes["train"][0]
    write_lines(folder / "texts" / "ocr.jsonl", [{"id": str(first.id), "text": "from a file"}])
    assert dataset.read(folder, "mmhs150k", streams=("ocr",)).texts["ocr"] == {str(first.id): "from a file"}


def test_the_streams_are_part_of_the_data_fingerprint_and_survive_a_dev_carve(captioned, copy_of):
    root, memes, _ = captioned
    folder = copy_of(root / "kaggle")
    plain = dataset.fingerprint(dataset.read(folder, "hateful_memes"))
    before = dataset.read(folder, "hateful_memes", streams=("caption",))
    assert dataset.fingerprint(before) != plain
    path = folder / "texts" / "caption.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    lines[0] = json.dumps({**record, "text": record["text"] + "!"})
    path.write_text("\n".join(lines) + "\n")
    assert dataset.fingerprint(dataset.read(folder, "hateful_memes", streams=("caption",))) != \
        dataset.fingerprint(before)
    carved = dataset.carve_dev(dataclasses.replace(before, splits={
        "train": before.splits["train"] + before.splits["dev"], "test": before.splits["test"]}), 0.2)
    assert carved.texts == before.texts


@pytest.mark.parametrize("lines, message", [
    ([{"id": 99999999, "text": "x"}], r"caption.jsonl:1: id 99999999 is no meme of .*'s splits"),
    (["{broken"], r"caption.jsonl:1: not valid JSON"),
    ([{"id": "ID", "text": "a"}, {"id": "ID", "text": "b"}], r"caption.jsonl:2: id \S+ given twice \(first on line 1\)"),
    ([{"id": "ID", "text": 3}], r"caption.jsonl:1: 'text' must be a string"),
    ([{"id": "ID"}], r"caption.jsonl:1: missing 'text'"),
    ([{"id": "ID", "text": ""}], r"caption.jsonl: stream 'caption' gives no meme a text"),
    ([], r"caption.jsonl: stream 'caption' gives no meme a text"),
])
def test_a_bad_stream_file_is_one_line_naming_file_and_line(captioned, copy_of, lines, message):
    root, memes, _ = captioned
    folder = copy_of(root / "kaggle")
    meme_id = memes["train"][0].id
    path = folder / "texts" / "caption.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(
        {k: meme_id if v == "ID" else v for k, v in line.items()})) + "\n" for line in lines))
    with pytest.raises(InputError, match=message):
        dataset.read(folder, "hateful_memes", streams=("caption",))


def test_a_stream_without_a_file_names_the_file_and_what_the_layout_supplies(captioned):
    root, _, _ = captioned
    with pytest.raises(InputError, match=r"data.texts names 'ocr': no file .*texts/ocr.jsonl \(docs"):
        dataset.read(root / "kaggle", "hateful_memes", streams=("ocr",))
    with pytest.raises(InputError, match=r"no file .*texts/caption.jsonl; the layout supplies ocr"):
        dataset.read(root / "mmhs", "mmhs150k", streams=("caption",))


def test_a_broken_ocr_file_of_mmhs150k_is_named(captioned, copy_of):
    root, _, memes = captioned
    folder = copy_of(root / "mmhs")
    tweet = next(m for m in memes["val"] if m.stream)
    (folder / "img_txt" / f"{tweet.id}.json").write_text('{"text": 1}')
    with pytest.raises(InputError, match=rf"img_txt/{tweet.id}.json: expected"):
        dataset.read(folder, "mmhs150k", streams=("ocr",))


def test_a_zero_padded_id_is_refused_with_the_id_the_release_writes(captioned, copy_of):
    """Hateful Memes writes id 1235 for img/01235.png: a caption file keyed by the image's
    name is refused, and the error says which id to write."""
    root, memes, _ = captioned
    folder = copy_of(root / "kaggle")
    meme = next(m for split in memes.values() for m in split if m.id < 10000)
    write_lines(folder / "texts" / "caption.jsonl", [{"id": f"{meme.id:05d}", "text": "a caption"}])
    with pytest.raises(InputError, match=rf"id {meme.id:05d} is no meme .*the release writes it {meme.id}:"):
        dataset.read(folder, "hateful_memes", streams=("caption",))
