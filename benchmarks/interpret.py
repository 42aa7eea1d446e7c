"""7. The interpret stage's cost: trigger vectors and K-means for ~3,000 hateful memes.

The head is a freshly initialised `cross` head on random ViT-L-14-sized features (1,024 image,
768 text): the cost depends on the sizes, not on what the head learned. Each size runs in a
process of its own, so that its peak memory is its own. Pictures are off (their cost does not
grow with map_dim).
"""
from __future__ import annotations

import multiprocessing
import resource
import time

import numpy as np
import torch

from benchmarks.common import record
from benchmarks.head_training import random_split
from stages import interpret
from stages.head import hateclipper, triggers

HATEFUL, CLUSTERS = 3000, 15
MAP_DIMS = (32, 1024)


def measure(map_dim: int, queue) -> None:
    torch.manual_seed(0)
    config = hateclipper.HeadConfig(image_dim=1024, text_dim=768, fusion="cross", map_dim=map_dim,
                                    num_mapping_layers=1, num_pre_output_layers=1,
                                    drop_probs=(0.2, 0.4, 0.1))
    head = hateclipper.HateClipper(config, seed=0)
    split = random_split(HATEFUL, 0)
    started = time.perf_counter()
    d = triggers.direction(head)
    vectors = triggers.trigger_vectors(d, triggers.fused_vectors(head, split.image, split.text),
                                       triggers.Quantiles((0.2, 0.8), (0.1, 0.9)))
    vector_seconds = time.perf_counter() - started
    started = time.perf_counter()
    interpret.cluster(vectors.astype(np.float32), CLUSTERS, seed=42)
    queue.put({"vectors (s)": vector_seconds, "k-means (s)": time.perf_counter() - started,
               "nonzero trigger entries": int(vectors.nnz),
               "trigger vectors (MB, CSR)": (vectors.data.nbytes + vectors.indices.nbytes
                                             + vectors.indptr.nbytes) / 1e6,
               "peak RSS (MB)": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def main(device: torch.device) -> None:
    figures = {"hateful memes": HATEFUL, "clusters": CLUSTERS, "fusion": "cross"}
    context = multiprocessing.get_context("spawn")
    for map_dim in MAP_DIMS:
        queue = context.Queue()
        process = context.Process(target=measure, args=(map_dim, queue))
        process.start()
        result = queue.get()
        process.join()
        figures.update({f"map_dim {map_dim}: {key}": value for key, value in result.items()})
    record("interpret", figures)
