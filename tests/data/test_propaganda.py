"""stages/data/propaganda.py: Propaganda Memes as it ships, synthetic and in the release's own lines."""
import json

import pytest

from scripts import synthetic
from stages.common.errors import InputError
from stages.data import dataset, propaganda
from tests.helpers import write_lines


@pytest.fixture(scope="module")
def propaganda_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("propaganda")
    return root, synthetic.generate(root, n=80, layout="propaganda", seed=4)


def test_propaganda_reads_22_techniques_and_the_official_text(propaganda_set):
    root, splits = propaganda_set
    data = dataset.read(root, "propaganda")
    assert list(data.splits) == ["train", "val", "test"] and data.task.labels == propaganda.TECHNIQUES
    assert len(data.task.labels) == 22
    for name, memes in splits.items():
        lines = [json.loads(l) for l in (root / "annotations" / f"{name}.jsonl").read_text().splitlines()]
        read = data.splits[name]
        assert [m.id for m in read] == [line["id"] for line in lines]
        for meme, line, drawn in zip(read, lines, memes):
            assert [t for t, on in zip(propaganda.TECHNIQUES, meme.labels) if on] == sorted(
                line["labels"], key=propaganda.TECHNIQUES.index) == synthetic.techniques(drawn)
            assert meme.text == " ".join(line["text"].replace("\n", " ").lower().split())
            assert "\n" not in meme.text and (root / meme.img).is_file()


def test_propaganda_labels_need_both_modalities(propaganda_set):
    """Each technique follows scene XOR family: neither the picture nor the caption alone
    decides it."""
    _, splits = propaganda_set
    memes = [m for s in splits.values() for m in s]
    for factor in ("scene", "family"):
        by_value = {}
        for m in memes:
            by_value.setdefault(getattr(m, factor), set()).add(tuple(synthetic.techniques(m)))
        assert all(len(patterns) > 1 for patterns in by_value.values()), factor


@pytest.mark.parametrize("line, message", [
    ({"id": "2", "text": "x", "image": "2.png", "labels": ["Smears", "Trolling"]},
     "train.jsonl:2: unknown technique 'Trolling'"),
    ({"id": "2", "text": "x", "image": "2.png"}, "train.jsonl:2: missing 'labels'"),
    ({"id": "2", "text": "x", "image": "../2.png", "labels": []},
     "train.jsonl:2: 'image' must be a path inside the dataset folder"),
    ({"id": "2", "text": 5, "image": "2.png", "labels": []}, "train.jsonl:2: 'text' must be a string"),
])
def test_propaganda_bad_lines_name_file_and_line(tmp_path, line, message):
    good = {"id": "1", "text": "A\nB", "image": "1.png", "labels": []}  # no technique: allowed
    write_lines(tmp_path / "annotations" / "train.jsonl", [good, line])
    for name in ("val", "test"):
        write_lines(tmp_path / "annotations" / f"{name}.jsonl", [good])
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dataset.read(tmp_path, "propaganda")


def test_propaganda_without_its_annotations_says_what_it_expects(tmp_path):
    with pytest.raises(InputError, match="annotations/: no train.jsonl, val.jsonl, test.jsonl"):
        dataset.read(tmp_path, "propaganda")


# Lines copied verbatim from the release's annotation files (di-dimitrov/propaganda-techniques-
# in-memes, data/datasets/propaganda/defaults/annotations/), split file first: between them
# every one of the 22 technique names, spelled as the release spells it.
RELEASE_LINES = [
    ("val", r'''{"id": "135_batch_2", "labels": ["Appeal to (Strong) Emotions", "Appeal to fear/prejudice", "Smears", "Misrepresentation of Someone's Position (Straw Man)", "Name calling/Labeling", "Transfer", "Flag-waving", "Slogans"], "text": "TRUMP BODY COUNT\nSeptember 16, 2020\n200,770\n\nTRUMPS IDEA OF WINNING\n\nTRUMP\n-2020-\nKEEP AMERICA GREAT", "image": "135_image_batch_2.png"}'''),
    ("test", r'''{"id": "495_batch_2", "labels": ["Black-and-white Fallacy/Dictatorship", "Doubt", "Loaded Language", "Presenting Irrelevant Data (Red Herring)"], "text": "YOU NEED TO TRUST SCIENCE ASSHOLE!\n\nOK. HOW MANY GENDERS ARE THERE?", "image": "495_image_batch_2.png"}'''),
    ("train", r'''{"id": "7", "labels": ["Appeal to authority", "Causal Oversimplification", "Loaded Language", "Name calling/Labeling", "Smears", "Thought-terminating cliché"], "text": "HARRY S. TRUMAN\n\"YOU CAN'T GET RICH IN POLITICS UNLESS YOU'RE A CROOK.\"\n\nWE KNOW\n", "image": "7_image.png"}'''),
    ("train", r'''{"id": "415_batch_2", "labels": ["Exaggeration/Minimisation", "Glittering generalities (Virtue)", "Smears"], "text": "BEST TRADE EVER!\n", "image": "415_image_batch_2.png"}'''),
    ("train", r'''{"id": "559_batch_2", "labels": ["Repetition", "Whataboutism"], "text": "This is fine\n\nThis is fine\n\nThis is fine\n\nNope, COVID\n", "image": "559_image_batch_2.png"}'''),
    ("train", r'''{"id": "189", "labels": ["Reductio ad hitlerum", "Smears", "Transfer"], "text": "This is not an accident!", "image": "189_image.png"}'''),
    ("val", r'''{"id": "81_batch_2", "labels": ["Appeal to fear/prejudice", "Smears", "Flag-waving", "Slogans", "Bandwagon"], "text": "GET IN!\n\nWE'RE MAKING AMERICA GREAT!\n", "image": "81_image_batch_2.png"}'''),
    ("train", r'''{"id": "57_batch_2", "labels": ["Loaded Language", "Misrepresentation of Someone's Position (Straw Man)", "Obfuscation, Intentional vagueness, Confusion", "Smears"], "text": "IMAGINE IF 50 MILLION BABIES WERE ALLOWED DYING WISHES\n", "image": "57_image_batch_2.png"}'''),
]


def test_the_release_s_own_lines_read_with_every_technique_name(tmp_path):
    """The 22 names are pinned to the release, not to the synthetic generator (which builds
    its labels from the same list): a wrong capital in one name rejects these lines."""
    (tmp_path / "annotations").mkdir()
    for split in propaganda.SPLITS:
        (tmp_path / "annotations" / f"{split}.jsonl").write_text(
            "".join(line + "\n" for s, line in RELEASE_LINES if s == split), encoding="utf-8")
    data = dataset.read(tmp_path, "propaganda")
    records = {json.loads(line)["id"]: json.loads(line) for _, line in RELEASE_LINES}
    named = set()
    for memes in data.splits.values():
        for meme in memes:
            named |= set(records[meme.id]["labels"])
            assert {t for t, on in zip(propaganda.TECHNIQUES, meme.labels) if on} == set(records[meme.id]["labels"])
            assert meme.img == f"images/{records[meme.id]['image']}"
    assert named == set(propaganda.TECHNIQUES) and len(propaganda.TECHNIQUES) == 22
    assert next(m for m in data.splits["train"] if m.id == "559_batch_2").text == (
        "this is fine this is fine this is fine nope, covid")  # the official code's caption
