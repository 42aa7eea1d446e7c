"""scripts/synthetic.py: memes shaped like the real sets, whose labels need picture and caption
together."""
import hashlib
import json
from collections import defaultdict

import numpy as np
from PIL import Image

from scripts import synthetic


def test_labels_are_the_interaction_of_picture_and_caption(kaggle_set):
    _, splits = kaggle_set
    memes = [m for split in splits.values() for m in split]
    assert all(m.label == m.scene ^ m.family for m in memes)


def test_no_single_modality_rule_predicts_the_label(kaggle_set):
    """Benign confounders: the picture's scene alone or the caption's family alone is chance,
    and the same caption (or picture) appears with both labels."""
    _, splits = kaggle_set
    memes = [m for split in splits.values() for m in split]
    for factor in ("scene", "family"):
        agree = np.mean([m.label == getattr(m, factor) for m in memes])
        best_rule_accuracy = max(agree, 1 - agree)  # "label = factor" or "label = not factor"
        assert best_rule_accuracy < 0.6, factor
    for key in ("text", "picture"):
        labels_by_value = defaultdict(set)
        for m in memes:
            labels_by_value[getattr(m, key)].add(m.label)
        flipped = sum(len(labels) == 2 for labels in labels_by_value.values())
        assert flipped >= len(labels_by_value) // 3, key


def test_layouts_match_the_real_sets(kaggle_set, challenge_set):
    kaggle, _ = kaggle_set
    challenge, splits = challenge_set
    assert sorted(p.stem for p in kaggle.glob("*.jsonl")) == ["dev", "test", "train"]
    assert sorted(p.stem for p in challenge.glob("*.jsonl")) == [
        "dev_seen", "dev_unseen", "test_seen", "test_unseen", "train"]
    first = json.loads((kaggle / "train.jsonl").read_text().splitlines()[0])
    assert isinstance(first["id"], int) and first["img"] == f"img/{first['id']:05d}.png"
    assert all("label" not in json.loads(l) for l in (kaggle / "test.jsonl").read_text().splitlines())
    seen = {m.id for m in splits["dev_seen"]}
    assert seen & {m.id for m in splits["dev_unseen"]}, "dev_unseen overlaps dev_seen"
    assert any(m.id < 10000 for s in splits.values() for m in s), "some zero-padded names"


def test_images_come_in_the_real_sets_modes(kaggle_set):
    root, _ = kaggle_set
    modes, formats = set(), set()
    for path in (root / "img").glob("*.png"):
        with Image.open(path) as image:
            modes.add(image.mode)
            formats.add(image.format)
    assert {"RGB", "RGBA", "P", "L"} <= modes
    assert formats == {"PNG", "JPEG"}


def test_captions_repeat_and_include_unicode(kaggle_set):
    _, splits = kaggle_set
    texts = [m.text for s in splits.values() for m in s]
    assert len(set(texts)) < len(texts)
    assert any(not t.isascii() for t in texts)


def test_generation_is_deterministic(tmp_path):
    def digest(root):
        h = hashlib.sha256()
        for path in sorted(root.rglob("*")):
            if path.is_file():
                h.update(path.name.encode() + path.read_bytes())
        return h.hexdigest()
    synthetic.generate(tmp_path / "a", n=60, seed=5)
    synthetic.generate(tmp_path / "b", n=60, seed=5)
    synthetic.generate(tmp_path / "c", n=60, seed=6)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
