"""5. Every fusion on the synthetic set: dev AUROC and the train stage's time.

1,000 synthetic memes (kaggle layout), features from the random-init `tiny` encoder, the
committed head and training params. The image and text ablations should stay near chance and
the fused heads should not: the synthetic labels are an image-caption interaction. These are
smoke-test numbers on synthetic data, not results on Hateful Memes.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import record, synthetic_params
from stages import extract, features, params, synthetic, train

ROOT = Path(__file__).resolve().parents[1]


def main(device: torch.device) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synthetic.generate(work / "memes", n=1000, seed=0)
        p = synthetic_params(work / "memes", "tiny", device=device.type)
        p = dataclasses.replace(p, train=params.load(ROOT / "params.yaml").train)
        cwd = os.getcwd()
        os.chdir(work)
        try:
            extract.extract(p)
            splits, _ = features.read(features.CACHE, ["train", "dev"])
            figures = {}
            for fusion in params.FUSIONS:
                start = time.perf_counter()
                _, history = train.train(dataclasses.replace(p, fusion=fusion), splits, device,
                                         log=lambda _: None)
                seconds = time.perf_counter() - start
                best = max(history, key=lambda h: h["dev_auroc"])
                figures[f"{fusion}: dev AUROC (best epoch {best['epoch']}, loop {seconds:.1f}s)"] = best["dev_auroc"]
            (work / "params.yaml").write_text(
                (ROOT / "params.yaml").read_text()
                .replace("data/hateful_memes", str(work / "memes")).replace("ViT-L-14", "tiny")
                .replace("pretrained: openai", "pretrained: none"))
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "stages.train"], check=True, capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
            figures["train stage, cross, `python -m stages.train` wall (s)"] = time.perf_counter() - start
        finally:
            os.chdir(cwd)
    record("fusion_sweep", {"device": str(device), "data": "1000 synthetic memes, tiny random encoder",
                            **figures})
