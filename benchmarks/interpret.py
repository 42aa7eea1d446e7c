"""7. The interpret stage on ~3,000 hateful memes, at the committed map_dim 32 and the paper's 1024.

The memes come from 15 planted concepts: each meme's image and text features are its concept's
(random, ViT-L-14-sized: 1,024 image, 768 text) plus as much Gaussian noise again, and the head
is a freshly initialised `cross` head. Clusters are then there to be found, so the adjusted Rand
index between the two K-means inputs at map_dim 1024, the trigger vectors themselves
(`interpret.sketch_dim: 0`, the exact method) and their count sketch (the committed 4096), says
whether the sketch finds the same clusters; each is also scored against the planted concepts.
Each case runs the stage's own `interpret()` (pictures off: the sheets' cost does not grow with
map_dim) in a process of its own, so that its peak memory is its own, with its parts timed.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import resource
import tempfile
import time
import timeit
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import adjusted_rand_score

from benchmarks.common import record, timing_part
from stages import interpret
from stages.cache import features
from stages.common import params
from stages.head import hateclipper, triggers
from stages.report import plotting

ROOT = Path(__file__).resolve().parents[1]
HATEFUL, CONCEPTS, NOISE = 3000, 15, 1.0
CASES = ((32, 4096), (1024, 4096), (1024, 0))  # (map_dim, interpret.sketch_dim)
PARTS = ((triggers, "trigger_vectors"), (interpret, "distinct_rows"), (interpret, "cluster_points"),
         (interpret, "cluster"), (interpret, "write_clusters"), (plotting, "heatmaps"))


def planted_split(seed: int = 0) -> tuple[features.SplitFeatures, np.ndarray]:
    rng = np.random.default_rng(seed)
    concept = rng.integers(0, CONCEPTS, HATEFUL)
    image = rng.normal(size=(CONCEPTS, 1024))[concept] + NOISE * rng.normal(size=(HATEFUL, 1024))
    text = rng.normal(size=(CONCEPTS, 768))[concept] + NOISE * rng.normal(size=(HATEFUL, 768))
    return features.SplitFeatures(ids=[str(i) for i in range(HATEFUL)],
                                  labels=np.ones((HATEFUL, 1), dtype=np.int8),
                                  image=image.astype(np.float32), text=text.astype(np.float32)), concept


def measure(map_dim: int, sketch_dim: int, queue) -> None:
    p = params.load(ROOT / "params.yaml")
    p = dataclasses.replace(p, interpret=dataclasses.replace(p.interpret, pictures=False,
                                                             sketch_dim=sketch_dim))
    config = hateclipper.HeadConfig(image_dim=1024, text_dim=768, fusion="cross", map_dim=map_dim,
                                    num_mapping_layers=1, num_pre_output_layers=1,
                                    drop_probs=(0.2, 0.4, 0.1))
    head = hateclipper.HateClipper(config, seed=0)
    split, _ = planted_split()
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder, ExitStack() as patches:
        for module, name in PARTS:
            patches.enter_context(timing_part(module, name, seconds))
        started = time.perf_counter()
        summary = interpret.interpret(p, head, split, Path(folder))
        total = time.perf_counter() - started
        labels = pd.read_csv(Path(folder) / "clusters.csv", dtype={"id": str})["cluster"].to_numpy()
        npz_megabytes = (Path(folder) / "triggers.npz").stat().st_size / 1e6
    queue.put({"labels": labels, "figures": {
        "interpret() (s)": total, **{f"- {name} (s)": seconds[name] for _, name in PARTS},
        "- the rest: summary, top positions (s)": total - sum(seconds.values()),
        "clustered": summary["clustered"], "triggers.npz (MB)": npz_megabytes,
        **cut_off_seconds(head, split), "peak RSS (MB)":
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}})


def cut_off_seconds(head: hateclipper.HateClipper, split: features.SplitFeatures) -> dict:
    """One block of fused vectors' two cut-offs each: row_quantiles against torch.quantile
    (the same values; row_quantiles hands rows shorter than 2^16 to torch.quantile)."""
    r = next(triggers.fused_vectors(head, split.image, split.text))
    q = torch.tensor((0.1, 0.9))
    return {f"cut-offs of {len(r)} memes: {name} (s)": min(
                timeit.repeat(lambda f=f: f(r, q), number=1, repeat=3))
            for name, f in (("row_quantiles", triggers.row_quantiles),
                            ("torch.quantile", lambda r, q: torch.quantile(r, q, dim=1, keepdim=True)))}


def main(device: torch.device) -> None:
    figures = {"hateful memes": HATEFUL, "planted concepts": CONCEPTS, "clusters": 15,
               "fusion": "cross"}
    context = multiprocessing.get_context("spawn")
    _, concept = planted_split()
    labels = {}
    for map_dim, sketch_dim in CASES:
        queue = context.Queue()
        process = context.Process(target=measure, args=(map_dim, sketch_dim, queue))
        process.start()
        result = queue.get()
        process.join()
        case = f"map_dim {map_dim}, sketch_dim {sketch_dim}"
        labels[map_dim, sketch_dim] = result["labels"]
        figures.update({f"{case}: {key}": value for key, value in result["figures"].items()})
        figures[f"{case}: ARI against the planted concepts"] = adjusted_rand_score(
            concept, result["labels"])
    figures["map_dim 1024: ARI between the sketch's clusters and the exact method's"] = (
        adjusted_rand_score(labels[1024, 4096], labels[1024, 0]))
    record("interpret", figures)
