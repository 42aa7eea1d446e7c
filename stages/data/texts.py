"""Text streams (`data.texts`): each meme's other texts, such as an image caption or OCR text.

    <data.dir>/texts/<NAME>.jsonl      {"id": ..., "text": "..."}, one meme a line

Ids are written as the release writes them (an integer id as an integer or its decimal string).
A layout may supply a stream of its own (MMHS150K's `ocr`); a file of that name wins over it.
A meme without a line gets the empty text. An id that no split holds, a broken line, an id
given twice, and a stream that gives no meme a text are one-line errors naming the file.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from stages.common.errors import InputError
from stages.data.memes import Dataset, Meme, json_records

FOLDER = "texts"
# The stream the `concat_with_text` caption mode reads: the official code's join of the meme's
# text and the caption (datasets.py), encoded as a stream of its own.
SEPARATOR = " [SEP] "


def joined_name(name: str) -> str:
    return f"text{SEPARATOR}{name}"


def attach(data: Dataset, names: tuple[str, ...], own: dict[str, Callable[[Dataset], dict]]) -> Dataset:
    """The dataset with each named stream: from its file, else from the layout's `own` readers."""
    streams = {}
    for name in names:
        path = data.root / FOLDER / f"{name}.jsonl"
        if path.is_file():
            streams[name] = read(path, data)
        elif name in own:
            streams[name] = own[name](data)
        else:
            supplied = f"; the layout supplies {', '.join(own)}" if own else ""
            raise InputError(f"data.texts names '{name}': no file {path}{supplied} (docs/datasets.md)")
        if not any(streams[name].values()):
            raise InputError(f"{path if path.is_file() else name}: stream '{name}' gives no meme a text")
    return dataclasses.replace(data, texts=streams)


def read(path: Path, data: Dataset) -> dict[str, str]:
    """A stream file's text of each meme id it names."""
    ids = {m.id for memes in data.splits.values() for m in memes}
    texts, first_line = {}, {}
    for number, record in json_records(path, ("id", "text")):
        where, meme_id, text = f"{path}:{number}", record["id"], record["text"]
        if isinstance(meme_id, bool) or not isinstance(meme_id, (int, str)):
            raise InputError(f"{where}: 'id' must be an integer or a string")
        meme_id = str(meme_id)
        if not isinstance(text, str):
            raise InputError(f"{where}: 'text' must be a string")
        if meme_id not in ids:
            hint = (f" (the release writes it {meme_id.lstrip('0')}: ids as the release writes them)"
                    if meme_id.isdigit() and meme_id.lstrip("0") in ids else "")
            raise InputError(f"{where}: id {meme_id} is no meme of {data.root}'s splits{hint}")
        if meme_id in texts:
            raise InputError(f"{where}: id {meme_id} given twice (first on line {first_line[meme_id]})")
        texts[meme_id], first_line[meme_id] = text, number
    return texts


def cached(data: Dataset) -> list[str]:
    """The streams extract encodes: each named one, then each joined to the meme's text."""
    return [*data.texts, *(joined_name(name) for name in data.texts)]


def texts_of(data: Dataset, memes: list[Meme], stream: str) -> list[str]:
    """The memes' texts in a stream (the empty text where it has none); a joined stream's is
    the meme's own text, the separator and the stream's text, as the official code joins them."""
    base = stream.removeprefix(joined_name(""))
    own = [data.texts[base].get(m.id, "") for m in memes]
    if base == stream:
        return own
    return [m.text + SEPARATOR + text for m, text in zip(memes, own)]


def covered(data: Dataset) -> dict[str, dict[str, int]]:
    """Per stream and split, how many memes have a non-empty text."""
    return {name: {split: sum(map(bool, texts_of(data, memes, name))) for split, memes in data.splits.items()}
            for name in data.texts}
