"""Writing outputs safely and failing clearly.

Every file a stage produces appears atomically: it is written beside its final name and
renamed into place only once complete, so a killed run leaves the previous file or none.
Expected input problems raise `InputError`; stage entry points print its one-line message
and exit non-zero instead of showing a traceback.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import torch


class InputError(Exception):
    """Bad input the user can fix: shown as one line, never as a traceback."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh folder beside `path`; it replaces `path` whole if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_csv(path: str | os.PathLike, table) -> None:
    """A pandas DataFrame as CSV, atomically, without the index."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


Built = TypeVar("Built")


def load_saved(path: str | os.PathLike, missing: str, foreign: str,
               build: Callable[[dict], Built]) -> Built:
    """A file train wrote with torch.save, read with weights_only (no code is unpickled) and
    built by `build`; a missing file or one `build` cannot use is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {missing} not found; run `dvc repro train` first")
    try:
        return build(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # noqa: BLE001 - any failure here means "not ours"
        raise InputError(f"{path}: not a {foreign} this project can load ({err})") from None


def run_stage(main: Callable[[list[str] | None], None]) -> None:
    """Run a stage's main(); turn InputError into `error: ...` on stderr and exit code 2."""
    try:
        main(None)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
