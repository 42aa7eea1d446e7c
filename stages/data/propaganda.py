"""Propaganda Memes (Dimitrov et al., 2021; `data.layout: propaganda`), read as it ships.

    annotations/train.jsonl, val.jsonl, test.jsonl   {"id", "text", "image", "labels": [...]}
    images/<image>

22 persuasion techniques, multi-label (a meme may have none). The label order and names are
those of the official Hate-CLIPper `PropMemesDataset`; a name outside them is an error. The
text is what that code passes to CLIP: newlines to spaces, whitespace collapsed, lower case.
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import InputError
from stages.data.memes import Dataset, Meme, check_image_path, read_jsonl_split
from stages.data.task import Task

TECHNIQUES = (
    "Black-and-white Fallacy/Dictatorship", "Name calling/Labeling", "Smears",
    "Reductio ad hitlerum", "Transfer", "Appeal to fear/prejudice", "Loaded Language", "Slogans",
    "Causal Oversimplification", "Glittering generalities (Virtue)", "Flag-waving",
    "Misrepresentation of Someone's Position (Straw Man)", "Exaggeration/Minimisation",
    "Repetition", "Appeal to (Strong) Emotions", "Doubt",
    "Obfuscation, Intentional vagueness, Confusion", "Whataboutism", "Thought-terminating cliché",
    "Presenting Irrelevant Data (Red Herring)", "Appeal to authority", "Bandwagon",
)
TASK = Task(TECHNIQUES, metric="paper_micro_f1")  # Hate-CLIPper's Table 2 figure
TASKS = ("techniques",)
SPLITS = ("train", "val", "test")


def read(root: Path, task: str = "techniques") -> Dataset:
    missing = [s for s in SPLITS if not (root / "annotations" / f"{s}.jsonl").is_file()]
    if missing:
        raise InputError(f"{root}/annotations/: no {', '.join(s + '.jsonl' for s in missing)} "
                         "(data.layout: propaganda expects the release's "
                         "data/datasets/propaganda/defaults folder)")
    return Dataset(root, {s: read_split(root / "annotations" / f"{s}.jsonl") for s in SPLITS}, TASK)


def read_split(path: Path) -> list[Meme]:
    return [meme for _, meme in read_jsonl_split(path, ("id", "text", "image", "labels"), to_meme)]


def to_meme(record: dict, where: str) -> Meme:
    if not isinstance(record["text"], str):
        raise InputError(f"{where}: 'text' must be a string")
    labels = record["labels"]
    if not isinstance(labels, list) or not all(isinstance(name, str) for name in labels):
        raise InputError(f"{where}: 'labels' must be a list of technique names")
    unknown = [name for name in labels if name not in TECHNIQUES]
    if unknown:
        raise InputError(f"{where}: unknown technique {unknown[0]!r} (the 22 of the release: "
                         "see stages/data/propaganda.py)")
    check_image_path(record["image"], where, "image")
    return Meme(id=str(record["id"]), img=f"images/{record['image']}", text=caption(record["text"]),
                labels=tuple(int(name in labels) for name in TECHNIQUES))


def caption(text: str) -> str:
    """As the official code passes it to CLIP: newlines to spaces, whitespace collapsed,
    lower case."""
    return " ".join(text.replace("\n", " ").strip().lower().split())
