"""Stage 1, extract: run the frozen CLIP encoders once and cache per-meme features in HDF5.

    python -m stages.extract          (reads params.yaml: data.*, clip.*)

Each unique image and each unique caption is encoded once, however many splits or memes share
it. Images are decoded in DataLoader workers while the encoder runs. Work is saved in chunks
beside the output, so an interrupted run resumes where it stopped; the cache itself appears
atomically when everything is done, and the chunks are removed.
"""
from __future__ import annotations

import argparse
import os
from functools import partial
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset as TorchDataset
from tqdm import tqdm

from stages import dataset, distributed, encoder, features, params as params_module
from stages.outputs import InputError, atomic_path, run_stage, write_csv

BAD_IMAGES_REPORT = Path("reports/bad_images.csv")
# Resume granularity: images or captions per saved chunk (--chunk-size). Not a multiple of the
# batch size, so a rerun with another clip.batch_size finds chunks of exactly the same rows.
CHUNK_SIZE = 1024
PART_KEYS = ("pooled", "proj", "reason")


def decode_workers() -> int:
    """One DataLoader worker per core (up to 16): PNG decoding and resizing is what starves a GPU."""
    return min(16, os.cpu_count() or 1)


class ImageFiles(TorchDataset):
    """Decodes and prepares (resize) one image per item, reporting failures instead of raising.

    With `view_seeds`, item i is the augmented view that seed draws (encoder.augmented_view)."""

    def __init__(self, paths: list[Path], prepare_image, view_seeds: list[str] | None = None):
        self.paths, self.prepare_image, self.view_seeds = paths, prepare_image, view_seeds

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = dataset.load_image(self.paths[index])
            if self.view_seeds is not None:
                image = encoder.augmented_view(image, self.view_seeds[index])
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


def chunk_starts(n: int, chunk: int) -> list[int]:
    return list(range(0, n, chunk))


def batch_ranges(start: int, chunk: int, batch_size: int, n: int) -> list[range]:
    """The batches of the chunk that begins at `start`; no batch crosses a chunk's end."""
    end = min(start + chunk, n)
    return [range(s, min(s + batch_size, end)) for s in range(start, end, batch_size)]


def encode_image_chunks(enc: encoder.Encoder, paths: list[Path], starts: list[int], chunk: int,
                        batch_size: int, on_bad_image: str, view_seeds: list[str] | None = None,
                        workers: int | None = None):
    """Yield (start, rows) per chunk of `paths`; rows hold pooled, proj and a failure reason."""
    batches = [list(r) for start in starts for r in batch_ranges(start, chunk, batch_size, len(paths))]
    loader = DataLoader(
        ImageFiles(paths, enc.prepare_image, view_seeds), batch_sampler=batches, collate_fn=collate,
        num_workers=decode_workers() if workers is None else workers,
        pin_memory=enc.device.type == "cuda", prefetch_factor=4,
    )
    rows: dict[int, tuple] = {}
    for indices, pixels, failures in loader:
        if failures and on_bad_image == "fail":
            raise InputError(f"{failures[0][1]} (set data.on_bad_image: skip to leave such memes out)")
        if pixels is not None:
            pooled, proj = enc.encode_images(pixels)
            rows.update({i: (pooled[k], proj[k], "") for k, i in enumerate(indices)})
        rows.update({i: (None, None, reason) for i, reason in failures})
        start = min(rows) // chunk * chunk
        end = min(start + chunk, len(paths))
        if all(i in rows for i in range(start, end)):
            yield start, stack_rows([rows.pop(i) for i in range(start, end)], enc.image_widths)


def stack_rows(rows: list[tuple], widths: tuple[int, int]) -> dict[str, np.ndarray]:
    """Rows of a chunk as arrays; a failed image's rows are NaN (dropped before writing)."""
    missing = [np.full(width, np.nan, np.float32) for width in widths]
    return {
        "pooled": np.stack([r[0] if r[0] is not None else missing[0] for r in rows]),
        "proj": np.stack([r[1] if r[1] is not None else missing[1] for r in rows]),
        "reason": np.array([r[2] for r in rows], dtype=str),
    }


def encode_text_chunks(enc: encoder.Encoder, texts: list[str], starts: list[int], chunk: int,
                       batch_size: int):
    for start in starts:
        batches = batch_ranges(start, chunk, batch_size, len(texts))
        parts = [enc.encode_texts(texts[r.start:r.stop]) for r in batches]
        yield start, {"pooled": np.concatenate([p for p, _ in parts]),
                      "proj": np.concatenate([q for _, q in parts]),
                      "reason": np.full(batches[-1].stop - start, "", dtype=str)}


def encode_missing(name: str, n: int, chunk: int, parts_dir: Path, encode_chunks, unit: str,
                   shard: distributed.Shard = distributed.ONE_PROCESS) -> None:
    """Encode this shard's chunks of n items that no earlier run saved, saving each.

    A saved chunk is reused only if it holds exactly the rows its place calls for; anything
    else is encoded again, so a resumed table can never shift rows onto the wrong memes.
    Rank 0's bar shows every shard's progress, read off the saved chunks.
    """
    starts = chunk_starts(n, chunk)
    todo = [start for start in starts if shard.owns(start // chunk) and load_part(
        part_path(parts_dir, name, start), min(chunk, n - start)) is None]

    def done() -> int:
        return sum(min(chunk, n - start) for start in starts
                   if part_path(parts_dir, name, start).exists())

    with tqdm(total=n, initial=done(), desc=f"encode {name}", unit=unit,
              disable=not shard.is_main) as bar:
        for start, rows in encode_chunks(todo):
            with atomic_path(part_path(parts_dir, name, start)) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, **rows)
            bar.update(done() - bar.n)


def report_resumed(tables: dict, chunk: int, parts_dir: Path) -> None:
    """Say what an interrupted run left that this one reuses."""
    for name, (n, unit, _) in tables.items():
        saved = [start for start in chunk_starts(n, chunk) if load_part(
            part_path(parts_dir, name, start), min(chunk, n - start)) is not None]
        if saved:
            print(f"resuming {name}: {len(saved)} finished chunks reused "
                  f"({sum(min(chunk, n - start) for start in saved)} {unit})")


def load_table(name: str, n: int, chunk: int, parts_dir: Path) -> dict[str, np.ndarray]:
    """The n items' rows from their saved chunks, each checked to hold exactly its rows."""
    parts = []
    for start in chunk_starts(n, chunk):
        part = load_part(part_path(parts_dir, name, start), min(chunk, n - start))
        if part is None:
            raise RuntimeError(f"{name}: chunk at {start} missing or of the wrong length")
        parts.append(part)
    return {key: np.concatenate([part[key] for part in parts]) for key in PART_KEYS}


def load_part(path: Path, rows: int) -> dict[str, np.ndarray] | None:
    """A saved chunk if it is whole and holds `rows` rows in every array, else None."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as part:
            loaded = {key: part[key] for key in PART_KEYS}
    except (OSError, ValueError, KeyError):
        return None
    return loaded if all(len(array) == rows for array in loaded.values()) else None


def part_path(parts_dir: Path, name: str, start: int) -> Path:
    return parts_dir / f"{name}-{start:09d}.npz"


def training_images(data: dataset.Dataset) -> list[str]:
    """The training split's unique images, in order of first appearance: the augmented views'."""
    return list(dict.fromkeys(m.img for m in data.splits[dataset.TRAIN_SPLIT]))


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
            labels=np.array([m.label for m in kept], dtype=np.int8),
            image=image_rows["pooled"][img_rows], text=text_rows["pooled"][txt_rows],
            image_proj=image_rows["proj"][img_rows], text_proj=text_rows["proj"][txt_rows],
        )
        if name == dataset.TRAIN_SPLIT and view_rows is not None:
            attach_views(splits[name], kept, view_rows, training_images(data))
    return splits, skipped


def attach_views(split: features.SplitFeatures, memes: list[dataset.Meme], view_rows: dict,
                 train_images: list[str]) -> None:
    """(N, views, D) rows of each meme's augmented views, from the image-major view table."""
    position = {img: i for i, img in enumerate(train_images)}
    rows = [position[m.img] for m in memes]
    views = len(view_rows["reason"]) // len(train_images)
    split.image_views = view_rows["pooled"].reshape(len(train_images), views, -1)[rows]
    split.image_proj_views = view_rows["proj"].reshape(len(train_images), views, -1)[rows]


def write_bad_images_report(skipped: list[tuple]) -> None:
    write_csv(BAD_IMAGES_REPORT, pd.DataFrame(skipped, columns=["split", "id", "img", "reason"]))
    for split, meme_id, _, reason in skipped:
        print(f"skipped meme {meme_id} in {split}: {reason}")
    if skipped:
        print(f"{len(skipped)} memes skipped for unreadable images; listed in {BAD_IMAGES_REPORT}")


def extract(p: params_module.Params, cache: Path = features.CACHE, chunk_size: int = CHUNK_SIZE
            ) -> dict:
    """Run the extraction; returns what it did (counts and encoding time) for logs and benchmarks.

    In a world of several processes (torchrun, or `spawn` on a machine with several GPUs) each
    encodes its share of the chunks, and rank 0 alone assembles and writes the cache.
    """
    shard = distributed.from_env()
    device = shard.device(p.clip.device)
    with distributed.process_group(shard, str(params_module.resolve_device(device))):
        return extract_shard(p, cache, chunk_size, shard, device)


def extract_shard(p: params_module.Params, cache: Path, chunk_size: int,
                  shard: distributed.Shard, device: str) -> dict:
    data = dataset.read(p.data.dir)
    images, texts = dataset.unique_images(data), dataset.unique_texts(data)
    n_memes = sum(len(m) for m in data.splits.values())
    if shard.is_main:
        print(f"{data.root}: {n_memes} memes in {len(data.splits)} splits "
              f"({', '.join(data.splits)}); {len(images)} unique images, {len(texts)} unique "
              f"captions" + (f"; {shard.world} processes" if shard.world > 1 else ""))
    enc = encoder.load(**p.clip.feature_settings(), device=device)
    attrs = {**enc.info, "data_fingerprint": dataset.fingerprint(data),
             "on_bad_image": p.data.on_bad_image, "augment_views": p.clip.augment_views}
    # Chunks are keyed by everything that decides their rows (the cache identity and the chunk
    # size), so stale ones are never reused; those of an abandoned run are removed.
    parts_dir = cache.with_name(
        f".{cache.name}.parts-{features.cache_fingerprint(attrs)}-{chunk_size}")
    chunk, batch = chunk_size, p.clip.batch_size
    workers = max(1, decode_workers() // shard.local_world)  # the machine's cores, shared
    paths = [data.root / img for img in images]
    tables = {"images": (len(images), "img", lambda todo: encode_image_chunks(
        enc, paths, todo, chunk, batch, p.data.on_bad_image, workers=workers)),
        "captions": (len(texts), "caption", lambda todo: encode_text_chunks(
            enc, texts, todo, chunk, batch))}
    if p.clip.augment_views:
        train_images = training_images(data)
        seeds = view_seeds(train_images, p.clip.augment_views)
        view_paths = [data.root / img for img in train_images for _ in range(p.clip.augment_views)]
        # "skip": an unreadable image already failed (or was left out) in the plain pass
        tables["views"] = (len(seeds), "view", lambda todo: encode_image_chunks(
            enc, view_paths, todo, chunk, batch, "skip", seeds, workers=workers))
    if shard.is_main:
        for stale in cache.parent.glob(f".{cache.name}.parts-*"):
            if stale != parts_dir:
                shutil.rmtree(stale)
        parts_dir.mkdir(parents=True, exist_ok=True)
        report_resumed(tables, chunk, parts_dir)
    distributed.barrier(shard)  # the folder is ready, and no shard has saved a chunk yet
    started = time.perf_counter()
    for name, (n, unit, encode_chunks) in tables.items():
        encode_missing(name, n, chunk, parts_dir, encode_chunks, unit, shard)
    distributed.barrier(shard)  # every shard's chunks are saved
    seconds = time.perf_counter() - started
    summary = {"memes": n_memes, "unique_images": len(images), "unique_captions": len(texts),
               "encode_seconds": seconds}
    if not shard.is_main:
        return summary
    rows = {name: load_table(name, n, chunk, parts_dir) for name, (n, _, _) in tables.items()}
    splits, skipped = assemble(data, rows["images"], rows["captions"], images, texts,
                               rows.get("views"))
    features.write(cache, splits, attrs)
    write_bad_images_report(skipped)
    shutil.rmtree(parts_dir)
    print(f"wrote {cache}: {n_memes} memes encoded in {seconds:.1f}s "
          f"({n_memes / seconds:.1f} memes/s on {shard.world} x {enc.device}, "
          f"{p.clip.model}/{p.clip.pretrained})")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Cache frozen-CLIP features of every meme.")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE,
                        help="images or captions per saved chunk, the unit an interrupted run "
                             f"resumes from (default {CHUNK_SIZE}); does not change the features")
    args = parser.parse_args(argv)
    if args.chunk_size < 1:
        raise InputError(f"--chunk-size must be a positive integer, got {args.chunk_size}")
    p = params_module.load(args.params)
    processes = distributed.local_processes(p.clip.device)
    if processes > 1:  # several GPUs and no launcher: one process per GPU, started here
        distributed.spawn(processes, run_stage, partial(extract_main, p, args.chunk_size))
    else:
        extract(p, chunk_size=args.chunk_size)


def extract_main(p: params_module.Params, chunk_size: int, _argv=None) -> None:
    extract(p, chunk_size=chunk_size)


if __name__ == "__main__":
    run_stage(main)
