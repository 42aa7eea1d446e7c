"""stages/data/fine_grained.py: the fine-grained Hateful Memes annotations as auxiliary labels."""
import json

import pytest

from scripts import synthetic
from stages.common.errors import InputError
from stages.data import dataset, fine_grained
from tests.helpers import write_lines


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
