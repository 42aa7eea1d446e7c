"""stages/data/harmeme.py: HarMeme's Harm-C and Harm-P (V1, with its quirks) and their three tasks."""
import json
from collections import Counter

from scripts import synthetic
from stages.data import harmeme
from tests.helpers import read_release as read


def test_harmeme_reads_its_three_tasks_with_the_releases_counts(sets):
    root, memes = sets["harmeme"]
    intensities = {s: Counter(synthetic.harm_labels(m)[0] for m in ms) for s, ms in memes.items()}
    harmful = read(root, "harmeme")
    assert harmful.task.labels == ("harmful",) and harmful.task.metric == "auroc"
    assert harmful.task.auxiliary[:1] == ("intensity=not harmful",)
    for split, counts in intensities.items():
        got = Counter(m.labels[0] for m in harmful.splits[split])
        assert got[0] == counts["not harmful"] and got[1] == len(memes[split]) - counts["not harmful"]
    intensity = read(root, "harmeme", "intensity")
    assert intensity.task.is_categorical and intensity.task.metric == "macro_f1"
    for split, counts in intensities.items():
        got = Counter(intensity.task.classes[m.labels.index(1)] for m in intensity.splits[split])
        assert got == counts
    target = read(root, "harmeme", "target")  # harmful memes only
    for split, ms in memes.items():
        expected = Counter(t for m in ms for t in synthetic.harm_labels(m)[1:])
        assert Counter(target.task.classes[m.labels[:4].index(1)] for m in target.splits[split]) == expected
    not_harmful = [m for m in intensity.splits["train"] if m.labels[0] == 1]
    assert all(set(m.labels[4:]) == {-1} for m in not_harmful)  # intensity, harmful, target: unknown


def test_harm_p_reads_v1_with_the_releases_quirks_as_momentas_code_does(sets):
    root, memes = sets["harmp"]
    data = read(root, "harmeme", "intensity")  # train.jsonl (V0) lies beside: V1 wins
    lines = [json.loads(line) for line in (root / "train_v1.jsonl").read_text().splitlines()]
    by_id = {m.id: m for m in data.splits["train"]}
    empty = [r for r in lines if r["labels"][0] == ""]
    double = [r for r in lines if len(r["labels"]) > 2]
    stray = [r for r in lines if r["labels"][0] == "not harmful" and len(r["labels"]) > 1]
    assert empty and double and stray
    assert by_id[empty[0]["id"]].labels[:3] == (0, 0, 1)  # empty intensity: very harmful
    first = harmeme.TARGETS.index(double[0]["labels"][1])
    assert by_id[double[0]["id"]].labels[4:] == tuple(int(k == first) for k in range(4))
    assert by_id[stray[0]["id"]].labels[4:] == (-1,) * 4  # not harmful: no target
