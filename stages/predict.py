"""predict: hate probabilities for new memes, and again for every split of the cache.

    python -m stages.predict --image meme.png --text "caption"
    python -m stages.predict --jsonl memes.jsonl      {"id", "img", "text"} lines; img relative to it
    python -m stages.predict --add-to-index new.jsonl labeled memes join the retrieval index
    python -m stages.predict                          every split -> reports/predictions/<split>.csv
                                                                   and reports/submission/<split>.*

In the pipeline `evaluate` writes every split's predictions and submission files
(stages/report/predictions.py has their columns): it reads the same head and cache and reruns
on the same changes, so one process serves both. New memes come as JSON lines in one form for
every task (stages/data/memes.py, read_new_memes): `id`, `img`, `text`, and for --add-to-index
their labels, by name (`"labels": [...]`) or, for a one-label task, as `"label": 0|1` (the
Hateful Memes line as it ships); captions are read as data.layout's reader reads them, and the
table printed has the prediction files' columns. Probabilities come from params.yaml's
`classifier`: the heads' logits, or RGCL's kNN vote among the training memes
(stages/head/retrieval.py). Memes added with --add-to-index join the training memes when new
memes are scored, at once and without retraining; the pipeline's own outputs keep to the
training split. New memes go through the encoder settings recorded in the head's checkpoint
(those of the cache it was trained on: model, weights, resize, precision), then the head: the
same numbers the pipeline gives for the same meme.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from stages.common import params as params_module
from stages.common.errors import InputError, run_stage
from stages.data import dataset
from stages.data.memes import UNLABELED, Meme
from stages.data.task import Task
from stages.head import hateclipper, inputs, retrieval
from stages.report import predictions


def predict_splits(p: params_module.Params) -> None:
    """Every split's predictions and submission files, as `evaluate` writes them."""
    head, meta, splits = inputs.trained_head(p)
    task = Task.from_json(meta["task"])
    index = retrieval.index_for(p, head)
    predictions.write({name: (split.ids, ensemble(p, head, split.image, split.text, index))
                       for name, split in splits.items()}, task, head.config.runs)


def ensemble(p, head: hateclipper.HateClipper, image, text, index) -> np.ndarray:
    """Each label's probability (N, labels): the mean of the runs' probabilities."""
    return retrieval.classify(p, head, image, text, index).mean(axis=0)


def encode_memes(enc, memes: list[Meme], root: Path, kind: str,
                 batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows of `kind` for new memes, computed exactly as extraction computes them."""
    image_rows, text_rows = [], []
    for start in range(0, len(memes), batch_size):
        batch = memes[start:start + batch_size]
        pixels = torch.stack([enc.prepare_image(dataset.load_image(root / m.img)) for m in batch])
        image_pooled, image_proj = enc.encode_images(pixels)
        text_pooled, text_proj = enc.encode_texts([m.text for m in batch])
        image_rows.append(image_pooled if kind == "pooled" else image_proj)
        text_rows.append(text_pooled if kind == "pooled" else text_proj)
    return np.concatenate(image_rows), np.concatenate(text_rows)


def features_of(meta: dict, memes: list[Meme], root: Path, device: str):
    """The feature rows of new memes, encoded with the settings of the head's cache."""
    # open_clip takes seconds to import: only new memes need it, not the pipeline.
    from stages.encoder import clip

    enc = clip.load(**meta["encoder"], device=device)
    return encode_memes(enc, memes, root, meta["features"])


def predict_new(p, head: hateclipper.HateClipper, meta: dict, task: Task, memes: list[Meme], root: Path,
                device: str) -> None:
    image, text = features_of(meta, memes, root, device)
    probs = ensemble(p, head, image, text, retrieval.index_for(p, head, with_added=True))
    print(predictions.prediction_table([m.id for m in memes], probs, task).to_csv(index=False),
          end="")


def add_to_index(p, head: hateclipper.HateClipper, meta: dict, task: Task, path: Path, device: str) -> None:
    """Labeled memes join the retrieval index (models/retrieval_added.pt), atomically."""
    lines = dataset.new_memes(path, p.data.layout, task)
    unlabeled = [number for number, m in lines if UNLABELED in m.labels[task.primary]]
    if unlabeled:
        raise InputError(f"{path}:{unlabeled[0]}: memes added to the retrieval index need their "
                         "labels: 'label' (0 or 1) or 'labels' (names; docs/outputs.md)")
    memes = [m for _, m in lines]
    image, text = features_of(meta, memes, path.parent, device)
    added = retrieval.Index(hateclipper.outputs(head, image, text)[0],
                            torch.tensor([m.labels[task.primary] for m in memes]), [m.id for m in memes])
    if retrieval.ADDED.is_file():
        added = retrieval.load_checked(retrieval.ADDED, head).extended(added)
    retrieval.save(retrieval.ADDED, added, {"head": retrieval.head_id(head)})
    print(f"{retrieval.ADDED}: {len(memes)} memes added, {len(added)} in all; "
          "`classifier: retrieval` now scores new memes against them too")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="classifier and retrieval.k")
    parser.add_argument("--image", help="score one meme: its image file")
    parser.add_argument("--text", help="score one meme: its caption")
    parser.add_argument("--jsonl", help="score the memes of a jsonl file")
    parser.add_argument("--add-to-index", metavar="JSONL",
                        help="add the labeled memes of a jsonl file to the retrieval index")
    parser.add_argument("--head", default=str(hateclipper.CHECKPOINT))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    p = params_module.load(args.params)
    jsonl = args.jsonl or args.add_to_index
    if jsonl and not Path(jsonl).is_file():
        raise InputError(f"{jsonl}: jsonl file not found")
    if not (jsonl or args.image is not None or args.text is not None):
        predict_splits(p)
        return
    if not jsonl and (args.image is None or args.text is None):
        raise InputError("scoring one meme needs both --image and --text")
    head, meta = hateclipper.load(args.head)
    if head.config.caption_mode != "none":
        raise InputError(f"{args.head} reads a caption stream (head.caption_mode: {head.config.caption_mode}), "
                         "which new memes do not bring: score them with a head of caption_mode none")
    task = Task.from_json(meta["task"])
    if args.add_to_index:
        add_to_index(p, head, meta, task, Path(args.add_to_index), args.device)
    elif args.jsonl:
        path = Path(args.jsonl)
        memes = [m for _, m in dataset.new_memes(path, p.data.layout, task)]
        predict_new(p, head, meta, task, memes, path.parent, args.device)
    else:
        image = Path(args.image)
        meme = Meme(id=image.stem, img=image.name, text=dataset.LAYOUTS[p.data.layout].caption(args.text),
                    labels=(UNLABELED,) * len(task.names))
        predict_new(p, head, meta, task, [meme], image.parent, args.device)


if __name__ == "__main__":
    run_stage(main)
