"""The releases' own layouts (Propaganda Memes, TamilMemes, the fine-grained annotations) and
data.dev_fraction, on synthetic sets written in each format, and their bad input."""
import json

import numpy as np
import pytest

from scripts import synthetic
from stages.common.errors import InputError
from stages.data import dataset, fine_grained, propaganda


@pytest.fixture(scope="module")
def propaganda_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("propaganda")
    return root, synthetic.generate(root, n=80, layout="propaganda", seed=4)


@pytest.fixture(scope="module")
def tamil_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("tamil")
    return root, synthetic.generate(root, n=80, layout="tamil", seed=5)


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


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


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


def test_dev_fraction_carves_a_seeded_stratified_dev_split(tamil_set):
    root, _ = tamil_set
    whole = dataset.read(root, "tamil")
    data = dataset.read(root, "tamil", dev_fraction=0.1)
    assert data == dataset.read(root, "tamil", dev_fraction=0.1)  # seeded
    train, dev = data.splits["train"], data.splits["dev"]
    assert len(dev) == round(0.1 * len(whole.splits["train"])) and data.splits["test"] == whole.splits["test"]
    assert sorted(m.id for m in train + dev) == sorted(m.id for m in whole.splits["train"])
    share = np.mean([m.label for m in whole.splits["train"]])
    assert abs(np.mean([m.label for m in dev]) - share) <= 1 / len(dev) + 1e-9  # stratified
    with pytest.raises(InputError, match="has a 'dev' split already"):
        dataset.carve_dev(data, 0.1)


def test_fine_grained_annotations_become_auxiliary_labels(kaggle_set, tmp_path):
    root, splits = kaggle_set
    annotated = synthetic.write_fine_grained(tmp_path / "fine", splits, coverage=0.8)
    data = dataset.read(root, fine_grained_dir=str(tmp_path / "fine"))
    assert data.task.labels == ("hateful",) and data.task.auxiliary == fine_grained.LABELS
    covered = 0
    for meme in (m for memes in data.splits.values() for m in memes):
        aux = dict(zip(fine_grained.LABELS, meme.labels[1:]))
        if meme.id in annotated:
            pc, attack = annotated[meme.id]
            assert [k for k, v in aux.items() if v == 1] == [f"{pc}_pc", f"{attack}_attack"]
            covered += 1
        else:
            assert set(aux.values()) == {-1}
    assert 0 < covered < sum(len(m) for m in data.splits.values())
    assert fine_grained.annotated(data) == {
        name: sum(m.id in annotated for m in memes) for name, memes in data.splits.items()}


def test_fine_grained_annotations_of_no_meme_are_refused(kaggle_set, tmp_path):
    """Ids written otherwise (zero-padded, say) would leave every auxiliary label unknown."""
    root, splits = kaggle_set
    synthetic.write_fine_grained(tmp_path / "fine", splits, coverage=0.8)
    for path in (tmp_path / "fine" / "annotations").glob("*.json"):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        write_lines(path, [{**r, "id": f"{r['id']:06d}"} for r in records])
    with pytest.raises(InputError, match=r"fine/annotations: none of its \d+ ids is the id of a meme"):
        dataset.read(root, fine_grained_dir=str(tmp_path / "fine"))


@pytest.mark.parametrize("record, message", [
    ({"id": 1, "gold_pc": ["caste"], "gold_attack": ["attack_empty"]},
     "train.json:1: unknown gold_pc value 'caste'"),
    ({"id": 1, "gold_pc": [], "gold_attack": ["attack_empty"]},
     "train.json:1: 'gold_pc' must be a non-empty list of names"),
])
def test_fine_grained_bad_lines_name_file_and_line(tmp_path, record, message):
    for name in fine_grained.FILES:
        write_lines(tmp_path / "annotations" / f"{name}.json", [record] if name == "train" else [])
    with pytest.raises(InputError, match=message):
        fine_grained.read(tmp_path)


def test_fine_grained_files_that_disagree_on_a_meme_are_an_error(tmp_path):
    one = {"id": 7, "gold_pc": ["race"], "gold_attack": ["mocking"]}
    write_lines(tmp_path / "annotations" / "train.json", [])
    write_lines(tmp_path / "annotations" / "dev_seen.json", [one])
    write_lines(tmp_path / "annotations" / "dev_unseen.json", [{**one, "gold_pc": ["sex"]}])
    with pytest.raises(InputError, match="dev_unseen.json:1: id 7 is annotated differently"):
        fine_grained.read(tmp_path)


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
