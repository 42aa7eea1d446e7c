"""8. Every encoder family: extraction memes/s and the cache's bytes per meme.

Each family's real open_clip config with random weights (`clip.pretrained: none`), through the
whole extract stage on one synthetic set (every meme its own image; captions repeat), on this
machine's device. The figures are extract's own reports/extract.json: encoding time (decode
workers on) and the HDF5 file's size over the memes, pooled features included where the family
has them. Random weights cost what trained ones do; the features mean nothing.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from benchmarks.common import record, synthetic_params, working_directory
from scripts import synthetic
from stages import extract

FAMILIES = ("tiny", "tiny-timm", "tiny-rn", "ViT-B-32", "RN50", "convnext_base", "MobileCLIP-S1",
            "EVA02-B-16", "coca_ViT-B-32")
MEMES = 64


def main(device) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synthetic.generate(work / "memes", n=MEMES, seed=0)
        for model in FAMILIES:
            with working_directory(work):
                extract.extract(synthetic_params(work / "memes", model, 16, device.type))
                report = json.loads(Path(extract.EXTRACT_REPORT).read_text())
            record("encoders", {"model": f"{model} (random init)", "device": device.type,
                                "memes": report["memes"], "memes/s": report["memes_per_second"],
                                "bytes/meme": report["bytes_per_meme"],
                                "kinds": report["feature_kinds"], "widths": report["widths"]})
