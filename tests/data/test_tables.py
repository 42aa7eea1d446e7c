"""stages/data/tables.py: the CSV releases' annotation files, their rows named by file and line."""
import shutil
from pathlib import Path

import pandas as pd
import pytest

from stages.common.errors import InputError
from tests.helpers import read_release as read

# Each CSV release's annotation file and its image-name column: two memes whose file names
# differ only in extension would both get the stem as their id.
IMAGE_COLUMNS = {"multioff": ("Split Dataset/Training_meme_dataset.csv", "image_name", ","),
                 "mami": ("TRAINING/training.csv", "file_name", "\t"),
                 "pridemm": ("PrideMM.csv", "name", ",")}


@pytest.mark.parametrize("layout", list(IMAGE_COLUMNS))
def test_two_memes_whose_image_names_share_a_stem_are_refused_naming_both_rows(sets, tmp_path, layout):
    root = tmp_path / layout
    shutil.copytree(sets[layout][0], root)
    name, column, sep = IMAGE_COLUMNS[layout]
    table = pd.read_csv(root / name, sep=sep, dtype=str, keep_default_na=False)
    twin = table.iloc[[0]].copy()
    twin[column] = str(Path(table[column].iloc[0]).with_suffix(".png"))
    pd.concat([table, twin]).to_csv(root / name, sep=sep, index=False)
    with pytest.raises(InputError) as err:
        read(root, layout)
    stem = Path(table[column].iloc[0]).stem
    assert str(err.value).startswith(f"{root / name}:{len(table) + 2}: duplicate id {stem} (first seen on line 2)")
    assert "\n" not in str(err.value)
