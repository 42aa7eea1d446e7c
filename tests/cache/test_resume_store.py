"""The resume store: units that balance the ranks at any size, reuse across runs of any shape,
and nothing reused that is not exactly its rows."""
import math

import numpy as np
import pytest

from stages.cache import resume_store
from stages.cache.resume_store import Store


def rows(unit: range, width: int = 2) -> dict[str, np.ndarray]:
    """A unit's arrays, each row holding its own row number."""
    index = np.arange(unit.start, unit.stop, dtype=np.float32)
    return {"pooled": np.repeat(index[:, None], width, 1), "proj": index[:, None],
            "reason": np.full(len(unit), "")}


def covered(units) -> list[int]:
    return sorted(i for unit in units for i in unit)


@pytest.mark.parametrize("n", [300, 840, 1_700, 3_500, 12_140, 1_000_000])
@pytest.mark.parametrize("world", [1, 2, 4, 8, 64])
def test_every_rank_gets_a_fair_share_at_any_size(tmp_path, n, world):
    shares = Store(tmp_path).plan("images", n, world)
    loads = [sum(len(u) for u in share) for share in shares]
    assert max(loads) <= 1.4 * n / world
    units = [u for share in shares for u in share]
    assert covered(units) == list(range(n))  # every row once
    assert max(len(u) for u in units) <= resume_store.MAX_UNIT
    if n == 1_000_000:  # the files a million-row table leaves at its peak
        assert len(units) == math.ceil(n / resume_store.MAX_UNIT)


def test_a_rerun_with_other_ranks_reuses_what_the_first_finished(tmp_path):
    store = Store(tmp_path)
    first = store.plan("images", 840, 2)
    for unit in first[1]:  # rank 1 finished, rank 0 was killed before saving anything
        store.save("images", unit, rows(unit))
    done = store.prune("images", 840)
    assert done == first[1]
    again = store.plan("images", 840, 4)
    todo = [u for share in again for u in share]
    assert covered(todo + done) == list(range(840))  # the gaps, each row once
    loads = [sum(len(u) for u in share) for share in again]
    assert max(loads) <= 1.4 * sum(loads) / 4
    for unit in todo:
        store.save("images", unit, rows(unit))
    table = store.assemble("images", 840)
    assert table["pooled"][:, 0].tolist() == list(range(840))


@pytest.mark.parametrize("saved", [range(0, 3), range(0, 5)], ids=["short", "long"])
def test_a_unit_that_is_not_exactly_its_rows_is_deleted_and_planned_again(tmp_path, saved):
    """Reuse needs exactly the rows a unit's name calls for: a short one would shift every
    later meme's features, a long one would add rows; neither is ever taken."""
    store = Store(tmp_path)
    store.save("images", range(0, 4), rows(saved))  # three or five rows under a four-row name
    store.save("images", range(4, 6), rows(range(4, 6)))
    (tmp_path / "images-000000006-000000008.npz").write_bytes(b"half a file")
    assert store.load("images", range(0, 4)) is None
    assert store.prune("images", 8) == [range(4, 6)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images-000000004-000000006.npz"]
    [todo] = store.plan("images", 8, 1)
    assert covered(todo) == [0, 1, 2, 3, 6, 7]
    with pytest.raises(RuntimeError, match="rows 0- are in no saved unit"):
        store.assemble("images", 8)
    for unit in todo:
        store.save("images", unit, rows(unit))
    assert store.assemble("images", 8)["pooled"][:, 0].tolist() == list(range(8))


def test_very_uneven_gaps_still_give_the_ranks_near_equal_rows(tmp_path):
    """40 one-row gaps and one 600-row gap over 2 ranks: the plan balances rows, not units."""
    store = Store(tmp_path)
    n = 1_000
    for k in range(40):  # rows 0..79 alternate done / missing, 80..399 done, 400..999 missing
        store.save("images", range(2 * k, 2 * k + 1), rows(range(2 * k, 2 * k + 1)))
    store.save("images", range(80, 400), rows(range(80, 400)))
    shares = store.plan("images", n, 2)
    todo = [u for share in shares for u in share]
    assert covered(todo) == [2 * k + 1 for k in range(40)] + list(range(400, 1_000))
    loads = [sum(len(u) for u in share) for share in shares]
    assert max(loads) - min(loads) <= 1, loads  # the one-row units even out what the large ones leave


def test_units_of_another_table_size_or_name_are_not_taken(tmp_path):
    store = Store(tmp_path)
    store.save("images", range(0, 10), rows(range(0, 10)))
    store.save("captions", range(0, 4), rows(range(0, 4)))
    assert store.finished("images", 8) == []  # a 10-row unit cannot belong to 8 rows
    assert store.finished("captions", 8) == [range(0, 4)]
    assert store.prune("images", 8) == [] and not store.path("images", range(0, 10)).exists()


def test_a_unit_cut_off_mid_write_is_planned_again_not_fatal(tmp_path):
    """A real .npz cut short (a zip without its end, as a killed copy leaves it) is pruned and
    its rows planned again, as the module says, instead of stopping the extraction."""
    store = Store(tmp_path)
    store.save("images", range(0, 4), rows(range(0, 4)))
    store.save("images", range(4, 8), rows(range(4, 8)))
    whole = store.path("images", range(4, 8)).read_bytes()
    store.path("images", range(4, 8)).write_bytes(whole[:len(whole) // 2])
    assert store.prune("images", 8) == [range(0, 4)]
    [todo] = store.plan("images", 8, 1)
    assert covered(todo) == [4, 5, 6, 7]
