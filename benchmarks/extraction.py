"""3. Extraction throughput: memes/s end to end, with decode and encoder time apart, and dedup.

On the CPU: `tiny` and a random-init ViT-B-32. On a GPU: a random-init ViT-L-14 at 224 px, in
fp32 and in bf16 (open_clip's mixed mode), decode workers on. Memes come from the synthetic generator (every
meme has its own image file; captions repeat, as in the real set).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks.common import record, sync, synthetic_params
from stages import dataset, encoder, extract, synthetic


def measure(model: str, n: int, device: str, batch_size: int, precision: str = "auto") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synthetic.generate(work / "memes", n=n, seed=0)
        p = synthetic_params(work / "memes", model, batch_size, device)
        cwd = os.getcwd()
        os.chdir(work)
        try:
            summary = extract.extract(p, precision=precision)
        finally:
            os.chdir(cwd)
        figures = {"memes": summary["memes"], "unique images": summary["unique_images"],
                   "unique captions": summary["unique_captions"],
                   "end to end, decode workers on (memes/s)": summary["memes"] / summary["encode_seconds"]}
        figures.update(split_costs(p, batch_size, precision))
    record("extraction", {"model": f"{model} (random init)", "device": device, "batch": batch_size,
                          "precision": encoder.resolve_precision(precision, torch.device(device)),
                          **figures})


def split_costs(p, batch_size: int, precision: str) -> dict:
    """Decode alone (the same DataLoader workers), the encoder alone, and what dedup saved."""
    data = dataset.read(p.data.dir)
    enc = encoder.load(p.clip.model, "none", p.clip.device, precision)
    paths = [data.root / img for img in dataset.unique_images(data)]
    loader = DataLoader(extract.ImageFiles(paths, enc.prepare_image), batch_size=batch_size,
                        collate_fn=extract.collate, num_workers=extract.decode_workers())
    start = time.perf_counter()
    batches = [pixels for _, pixels, _ in loader]
    decode = time.perf_counter() - start
    enc.encode_images(batches[0])  # warm-up (kernel selection)
    sync(enc.device)
    start = time.perf_counter()
    for pixels in batches:
        enc.encode_images(pixels)
    sync(enc.device)
    image_encode = time.perf_counter() - start
    texts = dataset.unique_texts(data)
    per_meme_texts = [m.text for memes in data.splits.values() for m in memes]
    text_encode = {}
    for name, captions in (("unique", texts), ("per meme", per_meme_texts)):
        start = time.perf_counter()
        for i in range(0, len(captions), batch_size):
            enc.encode_texts(captions[i:i + batch_size])
        sync(enc.device)
        text_encode[name] = time.perf_counter() - start
    return {
        "decode + resize/crop alone (img/s, workers)": len(paths) / decode,
        "image encoder alone (img/s)": len(paths) / image_encode,
        "text encoder, unique captions (s)": text_encode["unique"],
        "text encoder, one per meme, no dedup (s)": text_encode["per meme"],
        "dedup saving on captions (x)": text_encode["per meme"] / text_encode["unique"],
    }


def main(device: torch.device) -> None:
    if device.type == "cuda":
        for batch_size in (256, 64):
            measure("ViT-L-14", 4000, "cuda", batch_size, "bf16")
        measure("ViT-L-14", 4000, "cuda", 256, "fp32")
    else:
        measure("tiny", 600, "cpu", 64)
        measure("ViT-B-32", 96, "cpu", 32)
