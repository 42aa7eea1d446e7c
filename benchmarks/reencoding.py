"""2. Cached vs re-encoding: the same head trained the seed's way and this project's way.

The seed's way (as the original Hate-CLIPper code): every epoch, decode every image and run
the frozen encoders on it and on its caption, then step the head. This project's way: extract
once, then train on the cache. Same encoder, memes, head config and epochs (10), in one run;
then a sweep of five head configs. Dev evaluation is left out of the re-encoding side, which
only flatters it.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks.common import record, seconds, synthetic_params, working_directory
from benchmarks.head_training import TextbookHead, textbook_step
from scripts import synthetic
from stages import extract, train
from stages.cache import features
from stages.data import dataset
from stages.encoder import clip
from stages.head import inputs

EPOCHS = 10
SWEEP = [dict(fusion="cross"), dict(fusion="align"), dict(fusion="cross_nd"),
         dict(fusion="concat"), dict(fusion="align_concat")]


def with_fusion(p, fusion: str):
    return dataclasses.replace(p, fusion=fusion)


def reencoding_run(p, enc: clip.Encoder, data: dataset.Dataset, device: torch.device) -> None:
    memes = data.splits["train"]
    loader = DataLoader(extract.ImageFiles([data.image_path(m) for m in memes], enc.prepare_image),
                        batch_size=p.train.batch_size, shuffle=True, collate_fn=extract.collate,
                        num_workers=extract.decode_workers())
    labels = torch.tensor([m.label for m in memes], dtype=torch.float32, device=device)
    head = optimizer = None
    for _ in range(EPOCHS):
        for indices, pixels, _ in loader:
            image = torch.from_numpy(enc.encode_images(pixels)[0]).to(device)
            text = torch.from_numpy(enc.encode_texts([memes[i].text for i in indices])[0]).to(device)
            if head is None:
                head = TextbookHead(p, image.shape[1], text.shape[1]).to(device).train()
                optimizer = torch.optim.AdamW(head.parameters(), lr=p.train.lr,
                                              weight_decay=p.train.weight_decay)
            textbook_step(head, optimizer, image, text, labels[indices], p.train.grad_clip)


def measure(model: str, n: int, device: torch.device) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synthetic.generate(work / "memes", n=n, seed=0)
        p = synthetic_params(work / "memes", model, 32, device.type, epochs=EPOCHS)
        data = dataset.read_params(p.data)
        enc = clip.load(**p.clip.feature_settings(), device=device.type)
        reencode = seconds(lambda: reencoding_run(p, enc, data, device), device)
        with working_directory(work):
            extraction = seconds(lambda: extract.extract(p), device)
            splits, _ = inputs.read(features.CACHE, ["train", "dev"])
        cached = [seconds(lambda c=c: train.train(with_fusion(p, c["fusion"]), splits, device,
                                              log=lambda _: None), device) for c in SWEEP]
    n_train = len(data.splits["train"])
    record("cached_vs_reencoding", {
        "model": f"{model} (random init)", "device": str(device), "train memes": n_train,
        "epochs": EPOCHS,
        "re-encoding, one run (s)": reencode,
        "extract once, encoder load included (s)": extraction,
        "cached training, one run (s)": cached[0],
        "ratio, one run, training only (x)": reencode / cached[0],
        "ratio, one run, extraction included (x)": reencode / (extraction + cached[0]),
        "re-encoding, sweep of 5 (s, 5 x one run: same encoder work)": 5 * reencode,
        "cached, sweep of 5, extraction included (s)": extraction + sum(cached),
        "ratio, sweep of 5 (x)": 5 * reencode / (extraction + sum(cached)),
    })


def main(device: torch.device) -> None:
    if device.type == "cuda":
        measure("ViT-L-14", 1000, device)
    else:
        measure("tiny", 300, device)
        measure("ViT-B-32", 60, device)
