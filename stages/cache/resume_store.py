"""Extraction's resume store: units of work, their files, reuse checks and assembly.

Extraction encodes three tables of rows (unique images, unique texts, augmented views). Its
work is saved in a folder beside the cache, one `.npz` file per *unit*: a contiguous range of
one table's rows, named by that range (`images-000000000-000000105.npz`). The store

- finds the units an earlier run finished (whatever its batch size or number of ranks) and
  deletes any file that is not exactly its range's rows, so nothing can shift rows onto the
  wrong memes;
- plans what is left: the missing rows, cut into units of at most `max_unit` rows and at least
  UNITS_PER_RANK per rank, dealt so that every rank gets a fair share (largest first, each to
  the least loaded rank) at any size, from a few hundred rows to millions;
- assembles a table from units that tile it exactly.

Every rank plans from the same folder contents (extract holds a barrier before and after
planning), so the ranks agree on the plan without talking.
"""
from __future__ import annotations

import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.common.files import atomic_path

MAX_UNIT = 1024  # rows per file at most: a million-row table leaves about a thousand files
UNITS_PER_RANK = 4  # small sets still save (and resume) in a few steps per rank
# The arrays of a unit: projected rows and failures, and pooled rows where the encoder has them
# (the store's folder is named by the cache identity, so every unit of a store has the same).
KEYS = ("proj", "reason")
NAME = re.compile(r"(?P<table>\w+)-(?P<start>\d{9})-(?P<stop>\d{9})\.npz")


@dataclass(frozen=True)
class Store:
    folder: Path

    def path(self, table: str, unit: range) -> Path:
        return self.folder / f"{table}-{unit.start:09d}-{unit.stop:09d}.npz"

    def finished(self, table: str, n: int) -> list[range]:
        """The saved units of an n-row table, by their file names, in row order; where two
        overlap the first is kept (`prune` deletes the other)."""
        units = []
        for path in self.folder.glob(f"{table}-*.npz"):
            match = NAME.fullmatch(path.name)
            if match and match["table"] == table:
                start, stop = int(match["start"]), int(match["stop"])
                if 0 <= start < stop <= n:
                    units.append(range(start, stop))
        kept: list[range] = []
        for unit in sorted(units, key=lambda u: (u.start, -u.stop)):
            if not kept or unit.start >= kept[-1].stop:
                kept.append(unit)
        return kept

    def prune(self, table: str, n: int) -> list[range]:
        """Delete every file of the table that is not a whole unit of exactly its rows (a
        broken write, another table size, an overlap); the units left, in row order."""
        kept = self.finished(table, n)
        valid = [unit for unit in kept if self.load(table, unit) is not None]
        keep_paths = {self.path(table, unit) for unit in valid}
        for path in self.folder.glob(f"{table}-*.npz"):
            if path not in keep_paths:
                path.unlink()
        return valid

    def plan(self, table: str, n: int, world: int, max_unit: int = MAX_UNIT) -> list[list[range]]:
        """Each rank's units of the rows no saved unit holds."""
        gaps, position = [], 0
        for unit in [*self.finished(table, n), range(n, n)]:
            if unit.start > position:
                gaps.append(range(position, unit.start))
            position = max(position, unit.stop)
        missing = sum(len(gap) for gap in gaps)
        size = max(1, min(max_unit, math.ceil(missing / (UNITS_PER_RANK * world))))
        units = [range(s, min(s + size, gap.stop)) for gap in gaps for s in range(gap.start, gap.stop, size)]
        shares: list[list[range]] = [[] for _ in range(world)]
        loads = [0] * world
        for unit in sorted(units, key=len, reverse=True):  # stable: row order among equals
            rank = loads.index(min(loads))
            shares[rank].append(unit)
            loads[rank] += len(unit)
        return [sorted(share, key=lambda u: u.start) for share in shares]

    def save(self, table: str, unit: range, rows: dict[str, np.ndarray]) -> None:
        with atomic_path(self.path(table, unit)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **rows)

    def load(self, table: str, unit: range) -> dict[str, np.ndarray] | None:
        """A saved unit if its file is whole and holds exactly len(unit) rows in every array."""
        try:
            with np.load(self.path(table, unit), allow_pickle=False) as saved:
                rows = {key: saved[key] for key in saved.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # a broken or cut-off write
            return None
        if not all(key in rows for key in KEYS):
            return None
        return rows if all(len(array) == len(unit) for array in rows.values()) else None

    def rows_done(self, table: str, n: int) -> int:
        return sum(len(unit) for unit in self.finished(table, n))

    def assemble(self, table: str, n: int) -> dict[str, np.ndarray]:
        """The table's n rows from saved units that tile it exactly."""
        units, position = self.finished(table, n), 0
        for unit in units:
            if unit.start != position:
                break
            position = unit.stop
        if position != n:
            raise RuntimeError(f"{table}: rows {position}- are in no saved unit")
        loaded = [self.load(table, unit) for unit in units]
        if any(rows is None for rows in loaded):
            raise RuntimeError(f"{table}: a saved unit is broken or of the wrong length")
        return {key: np.concatenate([rows[key] for rows in loaded]) for key in loaded[0]}
