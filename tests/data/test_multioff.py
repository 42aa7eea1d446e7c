"""stages/data/multioff.py: MultiOFF as it ships."""
from tests.helpers import read_release as read


def test_multioff_reads_the_releases_spelling(sets):
    root, memes = sets["multioff"]
    data = read(root, "multioff")
    assert data.task.metric == "macro_f1" and set(data.splits) == {"train", "val", "test"}
    for split, ms in memes.items():
        assert [m.labels for m in data.splits[split]] == [(m.label,) for m in ms]
    assert "Non-offensiv" in (root / "Split Dataset/Training_meme_dataset.csv").read_text()
