"""CSV and TSV annotation files, read as text with one-line errors naming file and row."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import pandas as pd

from stages.common.errors import InputError


def read_table(path: Path, columns: tuple[str, ...], hint: str, sep: str = ",",
               names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Every cell as a string (none read as NaN); `names` for a file without a header row.
    A missing file, an unreadable one or a missing column is a one-line error."""
    if not path.is_file():
        raise InputError(f"{path}: not found ({hint})")
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                            header=None if names else "infer", names=list(names) if names else None)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: not a readable {'TSV' if sep == chr(9) else 'CSV'} ({err})") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{path}:1: missing column {missing[0]!r} (has {', '.join(table.columns)})")
    return table


def rows(table: pd.DataFrame, path: Path, header: bool = True) -> Iterator[tuple[str, dict]]:
    """("file:line", row) per row; line numbers count a header as line 1."""
    first = 2 if header else 1
    for number, row in enumerate(table.to_dict("records"), start=first):
        yield f"{path}:{number}", row


def gold(rows: Iterator[tuple[str, dict]], key: str, value) -> dict[str, object]:
    """key cell -> value(row), from a file of gold labels: a key repeated with the same value
    is fine, with another value an error naming both lines."""
    found: dict[str, tuple[str, object]] = {}
    for where, row in rows:
        name, label = row[key].strip(), value(row)
        first_where, first_label = found.setdefault(name, (where, label))
        if first_label != label:
            raise InputError(f"{where}: {name!r} is labeled {label}, but {first_label} on {first_where}")
    return {name: label for name, (_, label) in found.items()}


def finite(value: str) -> float | None:
    """A cell's finite number, or None (text, nan, inf)."""
    try:
        parsed = float(value)
    except ValueError:
        return None
    return parsed if math.isfinite(parsed) else None


def binary(value: str, where: str, column: str) -> int:
    """A 0/1 cell ("1.0" too, as some copies write it)."""
    number = finite(value)
    if number not in (0.0, 1.0):
        raise InputError(f"{where}: '{column}' must be 0 or 1, got {value!r}")
    return int(number)


def class_index(value: str, classes: int, where: str, column: str) -> int | None:
    """A class index 0..classes-1, or None for an empty cell (the label unknown)."""
    if not value.strip():
        return None
    number = finite(value)
    if number is None or number != int(number) or not 0 <= number < classes:
        raise InputError(f"{where}: '{column}' must be a class index 0 to {classes - 1}, got {value!r}")
    return int(number)
