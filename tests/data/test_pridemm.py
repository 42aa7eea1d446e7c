"""stages/data/pridemm.py: PrideMM's four tasks from one CSV, blank cells unknown."""
import shutil

import pandas as pd
import pytest

from stages.common.errors import InputError
from tests.helpers import read_release as read


def test_pridemm_reads_four_tasks_from_one_csv(sets):
    """A blank cell is an unknown label: `target` leaves its memes out, `hate` keeps them with
    the target's columns unknown."""
    root, memes = sets["pridemm"]
    table = pd.read_csv(root / "PrideMM.csv")
    train = table[table["split"] == "train"]
    assert train["target"].isna().any() and train["target"].notna().any()
    for task, classes in (("hate", 0), ("target", 4), ("stance", 3), ("humour", 0)):
        data = read(root, "pridemm", task)
        if classes:
            assert data.task.is_categorical and len(data.task.labels) == classes
            got = [m.labels[:classes].index(1) for m in data.splits["train"]]
        else:
            got = [m.labels[0] for m in data.splits["train"]]
        assert got == train[task].dropna().astype(int).tolist()
    hate = read(root, "pridemm", "hate")
    target = [k for k, name in enumerate(hate.task.names) if name.startswith("target=")]
    blank = train["target"].isna().tolist()
    assert [all(m.labels[k] == -1 for k in target) for m in hate.splits["train"]] == blank


@pytest.mark.parametrize("cell", ["nan", "inf", "1.5"])
def test_a_pridemm_class_cell_that_is_no_class_index_is_one_line(sets, tmp_path, cell):
    root = tmp_path / "copy"
    shutil.copytree(sets["pridemm"][0], root)
    table = pd.read_csv(root / "PrideMM.csv", dtype=str, keep_default_na=False)
    table.loc[3, "stance"] = cell
    table.to_csv(root / "PrideMM.csv", index=False)
    with pytest.raises(InputError, match=rf"PrideMM.csv:5: 'stance' must be a class index 0 to 2, got '{cell}'"):
        read(root, "pridemm")
