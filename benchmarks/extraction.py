"""3. Extraction throughput: memes/s end to end, with decode and encoder time apart, and dedup.

On the CPU: `tiny` and a random-init ViT-B-32. On a GPU: a random-init ViT-L-14 at 224 px, in
fp32 (the committed clip.precision) and in bf16 (open_clip's mixed mode), decode workers on. Memes come from the synthetic generator (every
meme has its own image file; captions repeat, as in the real set).
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks.common import record, seconds, synthetic_params, timed, working_directory
from scripts import synthetic
from stages import extract
from stages.cache import features
from stages.data import dataset
from stages.encoder import clip


def measure(model: str, n: int, device: str, batch_size: int, precision: str = "fp32") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synthetic.generate(work / "memes", n=n, seed=0)
        p = synthetic_params(work / "memes", model, batch_size, device)
        p = dataclasses.replace(p, clip=dataclasses.replace(p.clip, precision=precision))
        with working_directory(work):
            summary = extract.extract(p)
        figures = {"memes": summary["memes"], "unique images": summary["unique_images"],
                   "unique captions": summary["unique_texts"],  # (no streams here)
                   "end to end, decode workers on (memes/s)": summary["memes"] / summary["encode_seconds"]}
        figures.update(split_costs(p, batch_size))
    record("extraction", {"model": f"{model} (random init)", "device": device, "batch": batch_size,
                          "precision": precision, **figures})


def split_costs(p, batch_size: int) -> dict:
    """Decode alone (the same DataLoader workers), the encoder alone, and what dedup saved."""
    data = dataset.read_params(p.data)
    enc = clip.load(**p.clip.feature_settings(), device=p.clip.device)
    paths = [data.root / img for img in dataset.unique_images(data)]
    loader = DataLoader(extract.ImageFiles(paths, enc.prepare_image), batch_size=batch_size,
                        collate_fn=extract.collate, num_workers=extract.decode_workers())
    batches, decode = timed(lambda: [pixels for _, pixels, _ in loader])
    enc.encode_images(batches[0])  # warm-up (kernel selection)
    image_encode = seconds(lambda: [enc.encode_images(pixels) for pixels in batches], enc.device)
    texts = dataset.unique_texts(data)
    per_meme_texts = [m.text for memes in data.splits.values() for m in memes]
    text_encode = {
        name: seconds(lambda captions=captions: [enc.encode_texts(captions[i:i + batch_size])
                                                 for i in range(0, len(captions), batch_size)],
                      enc.device)
        for name, captions in (("unique", texts), ("per meme", per_meme_texts))}
    return {
        "decode + resize/crop alone (img/s, workers)": len(paths) / decode,
        "image encoder alone (img/s)": len(paths) / image_encode,
        "text encoder, unique captions (s)": text_encode["unique"],
        "text encoder, one per meme, no dedup (s)": text_encode["per meme"],
        "dedup saving on captions (x)": text_encode["per meme"] / text_encode["unique"],
    }


def views_cost(model: str, n: int, device: str, batch_size: int) -> None:
    """What clip.augment_views costs: extraction time and cache size for 0 and 2 views."""
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synthetic.generate(work / "memes", n=n, seed=0)
        for views in (0, 2):
            p = synthetic_params(work / "memes", model, batch_size, device)
            p = dataclasses.replace(p, clip=dataclasses.replace(p.clip, augment_views=views))
            with working_directory(work):
                started = time.perf_counter()
                extract.extract(p)
                figures[f"augment_views {views}: extract (s)"] = time.perf_counter() - started
                figures[f"augment_views {views}: cache (MB)"] = features.CACHE.stat().st_size / 1e6
    record("extraction_views", {"model": f"{model} (random init)", "device": device, "memes": n,
                                **figures})


def main(device: torch.device) -> None:
    if device.type == "cuda":
        for batch_size in (256, 64):
            measure("ViT-L-14", 4000, "cuda", batch_size, "bf16")
        measure("ViT-L-14", 4000, "cuda", 256, "fp32")
    else:
        measure("tiny", 600, "cpu", 64)
        measure("ViT-B-32", 96, "cpu", 32)
        views_cost("tiny", 600, "cpu", 64)
