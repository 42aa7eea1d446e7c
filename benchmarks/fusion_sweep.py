"""5. Every fusion on the synthetic set: dev AUROC and the train stage's time.

1,000 synthetic memes (kaggle layout), features from the random-init `tiny` encoder, the
committed head and training params. The image and text ablations should stay near chance and
the fused heads should not: the synthetic labels are an image-caption interaction. These are
smoke-test numbers on synthetic data, not results on Hateful Memes.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.common import record, seconds, synthetic_params, timed, working_directory
from scripts import synthetic
from scripts.workspace import set_param
from stages import extract, train
from stages.cache import features
from stages.common import params
from stages.head import inputs
from stages.head.fusions import FUSIONS

ROOT = Path(__file__).resolve().parents[1]


def main(device: torch.device) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synthetic.generate(work / "memes", n=1000, seed=0)
        p = synthetic_params(work / "memes", "tiny", device=device.type)
        p = dataclasses.replace(p, train=params.load(ROOT / "params.yaml").train)
        with working_directory(work):
            extract.extract(p)
            splits, _ = inputs.read(features.CACHE, ["train", "dev"])
            figures = {}
            for fusion in FUSIONS:
                (_, history, _), loop = timed(lambda fusion=fusion: train.train(
                    dataclasses.replace(p, fusion=fusion), splits, device, log=lambda _: None))
                best = max(history, key=lambda h: h["dev_auroc"][0])  # the committed one run
                figures[f"{fusion}: dev AUROC (best epoch {best['epoch']}, loop {loop:.1f}s)"] = \
                    float(best["dev_auroc"][0])
            stage_params = work / "params.yaml"
            shutil.copy(ROOT / "params.yaml", stage_params)
            for key, value in (("data.dir", work / "memes"), ("clip.model", "tiny"),
                               ("clip.pretrained", "none")):
                set_param(stage_params, key, str(value))
            figures["train stage, cross, `python -m stages.train` wall (s)"] = seconds(
                lambda: subprocess.run([sys.executable, "-m", "stages.train"], check=True,
                                       capture_output=True))
    record("fusion_sweep", {"device": str(device), "data": "1000 synthetic memes, tiny random encoder",
                            **figures})
