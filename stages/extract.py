"""Stage 1, extract: run the frozen CLIP encoders once and cache per-meme features in HDF5.

    python -m stages.extract          (reads params.yaml: data.*, clip.*)

Each unique image and each unique text (captions and the text streams of data.texts) is
encoded once, however many splits, memes or streams share it. Images are decoded in DataLoader
workers while the encoder runs. Work is saved in units beside the output (`resume_store`), so
an interrupted run resumes where it stopped; the cache itself appears atomically when
everything is done, and the units are removed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from tqdm import tqdm

from stages.cache import features, resume_store
from stages.common import distributed
from stages.common import params as params_module
from stages.common.errors import InputError, run_stage
from stages.common.files import write_csv, write_json
from stages.data import dataset, fine_grained
from stages.data import texts as streams
from stages.data.memes import TRAIN_SPLIT
from stages.encoder import clip

BAD_IMAGES_REPORT = Path("reports/bad_images.csv")
EXTRACT_REPORT = Path("reports/extract.json")  # a DVC metric: what the cache cost and holds


def decode_workers() -> int:
    """One DataLoader worker per core (up to 16): PNG decoding and resizing is what starves a GPU."""
    return min(16, os.cpu_count() or 1)


class ImageFiles(TorchDataset):
    """Decodes and prepares (resize) one image per item, reporting failures instead of raising.

    With `view_seeds`, item i is the augmented view that seed draws (clip.augmented_view)."""

    def __init__(self, paths: list[Path], prepare_image, view_seeds: list[str] | None = None):
        self.paths, self.prepare_image, self.view_seeds = paths, prepare_image, view_seeds

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = dataset.load_image(self.paths[index])
            if self.view_seeds is not None:
                image = clip.augmented_view(image, self.view_seeds[index])
            return index, self.prepare_image(image), ""
        except InputError as err:
            return index, None, str(err)


def collate(items):
    """Stack the decoded images; keep the failures (index, reason) beside them."""
    decoded = [(i, pixels) for i, pixels, _ in items if pixels is not None]
    failures = [(i, reason) for i, pixels, reason in items if pixels is None]
    indices = [i for i, _ in decoded]
    pixels = torch.stack([p for _, p in decoded]) if decoded else None
    return indices, pixels, failures


def unit_batches(unit: range, batch_size: int) -> list[range]:
    """The batches of a unit of work; no batch crosses its end."""
    return [range(s, min(s + batch_size, unit.stop)) for s in range(unit.start, unit.stop, batch_size)]


def encode_image_units(enc: clip.Encoder, paths: list[Path], units: list[range], batch_size: int,
                       on_bad_image: str, view_seeds: list[str] | None = None,
                       workers: int | None = None):
    """Yield (unit, rows) per unit of `paths`; rows hold pooled, proj and a failure reason."""
    batches = [list(batch) for unit in units for batch in unit_batches(unit, batch_size)]
    loader = DataLoader(
        ImageFiles(paths, enc.prepare_image, view_seeds), batch_sampler=batches, collate_fn=collate,
        num_workers=decode_workers() if workers is None else workers,
        pin_memory=enc.device.type == "cuda", prefetch_factor=4,
    )
    rows: dict[int, tuple] = {}
    pending = list(units)  # the loader keeps the batches' order, so units finish in this order
    for indices, pixels, failures in loader:
        if failures and on_bad_image == "fail":
            raise InputError(f"{failures[0][1]} (set data.on_bad_image: skip to leave such memes out)")
        if pixels is not None:
            pooled, proj = enc.encode_images(pixels)
            rows.update({i: (None if pooled is None else pooled[k], proj[k], "")
                         for k, i in enumerate(indices)})
        rows.update({i: (None, None, reason) for i, reason in failures})
        while pending and all(i in rows for i in pending[0]):
            unit = pending.pop(0)
            yield unit, stack_rows([rows.pop(i) for i in unit], enc.image_widths)


def stack_rows(rows: list[tuple], widths: tuple[int | None, int]) -> dict[str, np.ndarray]:
    """Rows of a unit as arrays; a failed image's rows are NaN (dropped before writing). Pooled
    rows only where the encoder has them (a pooled width)."""
    stacked = {"reason": np.array([r[2] for r in rows], dtype=str)}
    for key, column, width in (("pooled", 0, widths[0]), ("proj", 1, widths[1])):
        if width is not None:
            missing = np.full(width, np.nan, np.float32)
            stacked[key] = np.stack([r[column] if r[2] == "" else missing for r in rows])
    return stacked


def encode_text_units(enc: clip.Encoder, texts: list[str], units: list[range], batch_size: int):
    for unit in units:
        parts = [enc.encode_texts(texts[b.start:b.stop]) for b in unit_batches(unit, batch_size)]
        rows = {"proj": np.concatenate([q for _, q in parts]),
                "reason": np.full(len(unit), "", dtype=str)}
        if parts[0][0] is not None:
            rows["pooled"] = np.concatenate([p for p, _ in parts])
        yield unit, rows


@dataclass(frozen=True)
class Table:
    """Rows to encode: unique images, unique texts (captions and streams) or augmented views."""
    name: str
    n: int
    unit: str  # what the progress bar counts
    encode_units: Callable  # units -> (unit, rows) as each finishes


def encode_share(table: Table, units: list[range], store: resume_store.Store,
                 shard: distributed.Shard = distributed.ONE_PROCESS) -> None:
    """Encode and save this rank's units; rank 0's bar shows every rank's saved rows."""
    with tqdm(total=table.n, initial=store.rows_done(table.name, table.n), unit=table.unit,
              desc=f"encode {table.name}", disable=not shard.is_main) as bar:
        for unit, rows in table.encode_units(units):
            store.save(table.name, unit, rows)
            bar.update(store.rows_done(table.name, table.n) - bar.n)


def prepare_store(store: resume_store.Store, tables: list[Table]) -> None:
    """Rank 0, before any rank plans: keep only whole units, say what an interrupted run left."""
    for table in tables:
        saved = store.prune(table.name, table.n)
        if saved:
            print(f"resuming {table.name}: {len(saved)} finished units reused "
                  f"({sum(len(unit) for unit in saved)} {table.unit})")


def training_images(data: dataset.Dataset) -> list[str]:
    """The training split's unique images, in order of first appearance: the augmented views'."""
    return list(dict.fromkeys(m.img for m in data.splits[TRAIN_SPLIT]))


def view_seeds(images: list[str], views: int) -> list[str]:
    """The seed of each augmented view to encode: `views` per image, image-major, each seeded
    by its image path and view number."""
    return [f"{img}\0{view}" for img in images for view in range(views)]


def assemble(data: dataset.Dataset, image_rows: dict, text_rows: dict, images: list[str],
             texts: list[str], view_rows: dict | None = None
             ) -> tuple[dict[str, features.SplitFeatures], list[tuple]]:
    """Per-split feature rows in jsonl order; memes whose image failed are left out and listed.
    The training split also gets its augmented views' rows when `view_rows` holds them."""
    image_index = {img: i for i, img in enumerate(images)}
    text_index = {text: i for i, text in enumerate(texts)}
    splits, skipped = {}, []
    for name, memes in data.splits.items():
        kept = []
        for meme in memes:
            reason = str(image_rows["reason"][image_index[meme.img]])
            if reason:
                skipped.append((name, meme.id, meme.img, reason))
            else:
                kept.append(meme)
        if not kept:
            raise InputError(f"split '{name}': every meme's image was unreadable; nothing left")
        img_rows = [image_index[m.img] for m in kept]
        txt_rows = [text_index[m.text] for m in kept]
        splits[name] = features.SplitFeatures(
            ids=[m.id for m in kept],
            labels=np.array([m.labels for m in kept], dtype=np.int8).reshape(len(kept), -1),
            image=pooled_rows(image_rows, img_rows), text=pooled_rows(text_rows, txt_rows),
            image_proj=image_rows["proj"][img_rows], text_proj=text_rows["proj"][txt_rows],
            captions=[m.text for m in kept],
            streams={stream: stream_rows(streams.texts_of(data, kept, stream), text_rows, text_index)
                     for stream in streams.cached(data)},
        )
        if name == TRAIN_SPLIT and view_rows is not None:
            attach_views(splits[name], kept, view_rows, training_images(data))
    return splits, skipped


def pooled_rows(table: dict, rows: list[int]) -> np.ndarray | None:
    return table["pooled"][rows] if "pooled" in table else None


def stream_rows(texts: list[str], text_rows: dict, text_index: dict[str, int]) -> features.Stream:
    rows = [text_index[text] for text in texts]
    return features.Stream(texts, pooled_rows(text_rows, rows), text_rows["proj"][rows])


def attach_views(split: features.SplitFeatures, memes: list[dataset.Meme], view_rows: dict,
                 train_images: list[str]) -> None:
    """(N, views, D) rows of each meme's augmented views, from the image-major view table."""
    position = {img: i for i, img in enumerate(train_images)}
    rows = [position[m.img] for m in memes]
    views = len(view_rows["reason"]) // len(train_images)
    image_major = {key: view_rows[key].reshape(len(train_images), views, -1)[rows]
                   for key in ("pooled", "proj") if key in view_rows}
    split.image_views = image_major.get("pooled")
    split.image_proj_views = image_major["proj"]


def extract_report(summary: dict, splits: dict[str, features.SplitFeatures], cache: Path,
                   shard: distributed.Shard, enc: clip.Encoder, data: dataset.Dataset) -> dict:
    """The extraction's cost and what the cache holds, for `dvc exp show` and the encoders
    table: a cache restored from DVC's run-cache keeps the figures of the run that made it.
    `texts`: per stream and split, the memes with a non-empty text."""
    some = next(iter(splits.values()))
    size = cache.stat().st_size
    return {**summary,
            "memes_per_second": summary["memes"] / max(summary["encode_seconds"], 1e-9),
            "processes": shard.world, "device": enc.device.type,
            "cache_bytes": size, "bytes_per_meme": size / summary["memes"],
            "feature_kinds": " ".join(enc.kinds),
            "widths": {key: int(getattr(some, key).shape[1]) for key in
                       ("image", "text", "image_proj", "text_proj") if getattr(some, key) is not None},
            **({"texts": streams.covered(data)} if data.texts else {})}


def write_bad_images_report(skipped: list[tuple]) -> None:
    write_csv(BAD_IMAGES_REPORT, pd.DataFrame(skipped, columns=["split", "id", "img", "reason"]))
    for split, meme_id, _, reason in skipped:
        print(f"skipped meme {meme_id} in {split}: {reason}")
    if skipped:
        print(f"{len(skipped)} memes skipped for unreadable images; listed in {BAD_IMAGES_REPORT}")


def extract(p: params_module.Params, cache: Path = features.CACHE,
            max_unit: int = resume_store.MAX_UNIT) -> dict:
    """Run the extraction; returns what it did (counts and encoding time) for logs and benchmarks.

    In a world of several processes (torchrun, or `spawn` on a machine with several GPUs) each
    encodes its share of the units, and rank 0 alone assembles and writes the cache.
    """
    shard = distributed.from_env()
    device = shard.device(p.clip.device)
    with distributed.process_group(shard, str(distributed.resolve_device(device))):
        return extract_shard(p, cache, max_unit, shard, device)


def extract_shard(p: params_module.Params, cache: Path, max_unit: int,
                  shard: distributed.Shard, device: str) -> dict:
    data = dataset.read_params(p.data)
    images, texts = dataset.unique_images(data), dataset.unique_texts(data)
    n_memes = sum(len(m) for m in data.splits.values())
    if shard.is_main:
        print(f"{data.root}: {n_memes} memes in {len(data.splits)} splits "
              f"({', '.join(data.splits)}); {len(images)} unique images, {len(texts)} unique "
              f"texts" + (f"; {shard.world} processes" if shard.world > 1 else ""))
        for name, counts in streams.covered(data).items():
            print(f"text stream {name}: a text for {sum(counts.values())} of {n_memes} memes "
                  f"({', '.join(f'{split} {count}' for split, count in counts.items())})")
        if p.data.fine_grained:
            covered = fine_grained.annotated(data)
            print(f"{p.data.fine_grained}: fine-grained labels for {sum(covered.values())} of {n_memes} "
                  f"memes ({', '.join(f'{name} {count}' for name, count in covered.items())})")
    enc = clip.load(**p.clip.feature_settings(), device=device)
    attrs = {**enc.info, "data_fingerprint": dataset.fingerprint(data), "task": data.task.to_json(),
             "on_bad_image": p.data.on_bad_image, "augment_views": p.clip.augment_views,
             "texts": " ".join(data.texts)}
    # Units are kept under the cache identity, so stale ones are never reused; those of an
    # abandoned run are removed. Their files name their rows, so any batch size, unit size or
    # number of ranks reuses them.
    store = resume_store.Store(cache.with_name(f".{cache.name}.parts-{features.cache_fingerprint(attrs)}"))
    batch = p.clip.batch_size
    workers = max(1, decode_workers() // shard.local_world)  # the machine's cores, shared
    paths = [data.root / img for img in images]
    tables = [Table("images", len(images), "img", lambda units: encode_image_units(
                  enc, paths, units, batch, p.data.on_bad_image, workers=workers)),
              Table("texts", len(texts), "text", lambda units: encode_text_units(
                  enc, texts, units, batch))]
    if p.clip.augment_views:
        train_images = training_images(data)
        seeds = view_seeds(train_images, p.clip.augment_views)
        view_paths = [data.root / img for img in train_images for _ in range(p.clip.augment_views)]
        # "skip": an unreadable image already failed (or was left out) in the plain pass
        tables.append(Table("views", len(seeds), "view", lambda units: encode_image_units(
            enc, view_paths, units, batch, "skip", seeds, workers=workers)))
    if shard.is_main:
        for stale in cache.parent.glob(f".{cache.name}.parts-*"):
            if stale != store.folder:
                shutil.rmtree(stale)
        store.folder.mkdir(parents=True, exist_ok=True)
        prepare_store(store, tables)
    distributed.barrier(shard)  # only whole units are left, and no rank has saved one yet
    shares = [store.plan(t.name, t.n, shard.world, max_unit)[shard.rank] for t in tables]
    distributed.barrier(shard)  # every rank planned from the same units
    started = time.perf_counter()
    for table, units in zip(tables, shares):
        encode_share(table, units, store, shard)
    encoded = ", ".join(f"{sum(len(u) for u in units)} {t.name}" for t, units in zip(tables, shares))
    if shard.world > 1:
        print(f"rank {shard.rank} of {shard.world} encoded {encoded}", flush=True)
    distributed.barrier(shard)  # every rank's units are saved
    seconds = time.perf_counter() - started
    summary = {"memes": n_memes, "unique_images": len(images), "unique_texts": len(texts),
               "encode_seconds": seconds}
    if not shard.is_main:
        return summary
    rows = {t.name: store.assemble(t.name, t.n) for t in tables}
    splits, skipped = assemble(data, rows["images"], rows["texts"], images, texts, rows.get("views"))
    splits[TRAIN_SPLIT].projections = enc.projection_matrices()  # what a pretrained map starts from
    features.write(cache, splits, attrs)
    write_bad_images_report(skipped)
    write_json(EXTRACT_REPORT, extract_report(summary, splits, cache, shard, enc, data))
    shutil.rmtree(store.folder)
    print(f"wrote {cache}: {n_memes} memes encoded in {seconds:.1f}s "
          f"({n_memes / seconds:.1f} memes/s on {shard.world} x {enc.device}, "
          f"{p.clip.model}/{p.clip.pretrained})")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Cache frozen-CLIP features of every meme.")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--max-unit", type=int, default=resume_store.MAX_UNIT,
                        help="rows (images or captions) per saved unit of work at most, the "
                             "finest an interrupted run resumes from (default "
                             f"{resume_store.MAX_UNIT}); does not change the features")
    args = parser.parse_args(argv)
    if args.max_unit < 1:
        raise InputError(f"--max-unit must be a positive integer, got {args.max_unit}")
    p = params_module.load(args.params)
    processes = distributed.local_processes(p.clip.device)
    if processes > 1:  # several GPUs and no launcher: one process per GPU, started here
        distributed.spawn(processes, run_stage, partial(extract_main, p, args.max_unit))
    else:
        extract(p, max_unit=args.max_unit)


def extract_main(p: params_module.Params, max_unit: int, _argv=None) -> None:
    extract(p, max_unit=max_unit)


if __name__ == "__main__":
    run_stage(main)
