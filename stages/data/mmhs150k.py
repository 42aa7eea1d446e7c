"""MMHS150K (Gomez et al., WACV 2020; `data.layout: mmhs150k`), read as it ships.

    MMHS150K_GT.json                  {tweet id: {"tweet_text", "labels": [3 codes 0-5], ...}}
    splits/train_ids.txt, val_ids.txt, test_ids.txt    one tweet id a line
    img_resized/<id>.jpg
    img_txt/<id>.json                 {"img_text": ...}: the text in the image, for some tweets

One binary label, `hate`: the majority of the three annotators, i.e. at least two of them gave
a code other than 0 (NotHate); the release's codes 1-5 name the kind of hate (racist, sexist,
homophobe, religion, other). Scored by AUROC. Splits `train`, `val`, `test`:
`data.dev_split: val`. The tweet's text is the caption, its t.co links kept as released.
The text in the image (img_txt/) is the text stream `ocr` (`data.texts: [ocr]`).
"""
from __future__ import annotations

import json
from pathlib import Path

from stages.common.errors import InputError
from stages.data.memes import Dataset, Meme
from stages.data.task import Task

TASK = Task(("hate",))
TASKS = ("hate",)
SPLITS = ("train", "val", "test")
GROUND_TRUTH = "MMHS150K_GT.json"
HINT = ("data.layout: mmhs150k expects the release's MMHS150K_GT.json, splits/ and img_resized/ "
        "(docs/datasets.md)")


def read(root: Path, task: str = "hate") -> Dataset:
    tweets = ground_truth(root / GROUND_TRUTH)
    return Dataset(root, {split: read_split(root / "splits" / f"{split}_ids.txt", tweets) for split in SPLITS},
                   TASK)


def ground_truth(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: not found ({HINT})")
    try:
        tweets = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(tweets, dict):
        raise InputError(f"{path}: expected an object keyed by tweet id ({HINT})")
    return tweets


def read_split(path: Path, tweets: dict) -> list[Meme]:
    """The split's tweets in the order its id file lists them."""
    if not path.is_file():
        raise InputError(f"{path}: not found ({HINT})")
    memes = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        tweet_id = line.strip()
        if not tweet_id:
            continue
        where = f"{path}:{number}"
        if tweet_id not in tweets:
            raise InputError(f"{where}: tweet {tweet_id} has no entry in {GROUND_TRUTH}")
        memes.append(to_meme(tweet_id, tweets[tweet_id], where))
    if not memes:
        raise InputError(f"{path}: no tweets in this split")
    return memes


def to_meme(tweet_id: str, tweet: dict, where: str) -> Meme:
    if not isinstance(tweet, dict):
        raise InputError(f"{where}: tweet {tweet_id}'s entry in {GROUND_TRUTH} must be an object")
    labels, text = tweet.get("labels"), tweet.get("tweet_text")
    if (not isinstance(labels, list) or len(labels) != 3
            or any(isinstance(code, bool) or code not in range(6) for code in labels)):
        raise InputError(f"{where}: tweet {tweet_id}'s 'labels' in {GROUND_TRUTH} must be three "
                         f"annotators' codes 0-5, got {labels!r}")
    if not isinstance(text, str):
        raise InputError(f"{where}: tweet {tweet_id}'s 'tweet_text' in {GROUND_TRUTH} must be a string")
    return Meme(id=tweet_id, img=f"img_resized/{tweet_id}.jpg", text=text,
                labels=(majority_hate(labels),), where=where)


def ocr_texts(data: Dataset) -> dict[str, str]:
    """The `ocr` stream: each tweet's img_txt/<id>.json `img_text`, where the release has one."""
    ids = dict.fromkeys(m.id for memes in data.splits.values() for m in memes)
    return {tweet_id: image_text(data.root / "img_txt" / f"{tweet_id}.json") for tweet_id in ids
            if (data.root / "img_txt" / f"{tweet_id}.json").is_file()}


def image_text(path: Path) -> str:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(record, dict) or not isinstance(record.get("img_text"), str):
        raise InputError(f"{path}: expected {{\"img_text\": \"...\"}}")
    return record["img_text"]


TEXTS = {"ocr": ocr_texts}  # the layout's own text streams (stages/data/texts.py)


def majority_hate(codes: list[int]) -> int:
    """1 where at least two of the three annotators called the tweet hateful (any code but 0)."""
    return int(sum(code != 0 for code in codes) >= 2)
