"""The paper's Section 5: which FIM positions drive a hateful meme to the hateful class.

As the official `visualize_dir_vectors.py` computes it, for one trained head (run 0):
1. the direction D: the fused vector set to zeros, passed through the pre-output and output
   layers in eval mode; D = minus the gradient of the BCE loss against the hateful label with
   respect to the fused vector. Positions with D >= its 80th percentile are positive, <= its
   20th negative (`torch.quantile`, on the signed values);
2. each hateful meme's R: its fused vector (the FIM, or its diagonal for `align`, or all but
   the diagonal for `cross_nd`) in eval mode; positive >= its own 90th percentile, negative <=
   its 10th;
3. its trigger vector: +1 where D and R are both positive, -1 where both negative, 0 elsewhere.
Trigger vectors are sparse (at map_dim 1024 a FIM has a million positions): CSR, int8.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch
import torch.nn.functional as F

from stages.head.hateclipper import HateClipper, fused_dim

FIM_FUSIONS = ("cross", "align", "cross_nd")  # fusions whose fused vector is (part of) the FIM
QUANTILE_LIMIT = 2 ** 24  # torch.quantile's largest input


@dataclass(frozen=True)
class Quantiles:
    direction: tuple[float, float]  # D's negative, positive cut-offs (0.2, 0.8 in the paper)
    meme: tuple[float, float]  # each meme's R's (0.1, 0.9)


def run_layers(head: HateClipper, run: int) -> dict:
    """One run's layers, keeping the run dimension (of size 1)."""
    return {part: [(w[run:run + 1], b[run:run + 1]) for w, b in layers]
            for part, layers in head.layers().items()}


def direction(head: HateClipper, run: int = 0) -> torch.Tensor:
    """D (fused_dim,): minus the gradient of the hateful-label BCE at a zero fused vector."""
    head.eval()
    layers = {part: [(w.detach(), b.detach()) for w, b in pairs]
              for part, pairs in run_layers(head, run).items()}
    fused = torch.zeros(1, 1, fused_dim(head.config.fusion, head.config.map_dim), requires_grad=True)
    _, logits = head.classify(fused, layers)
    hateful = logits[..., 0]  # the task's first primary label
    loss = F.binary_cross_entropy_with_logits(hateful, torch.ones_like(hateful))
    (gradient,) = torch.autograd.grad(loss, fused)
    return -gradient.reshape(-1)


@torch.no_grad()
def fused_vectors(head: HateClipper, image: np.ndarray, text: np.ndarray, run: int = 0):
    """Each meme's fused vector R (eval mode), in batches of rows (N_batch, fused_dim) small
    enough for torch.quantile (16 memes at map_dim 1024)."""
    head.eval()
    layers = run_layers(head, run)
    batch_size = max(1, QUANTILE_LIMIT // fused_dim(head.config.fusion, head.config.map_dim))
    for start in range(0, len(image), batch_size):
        rows = slice(start, start + batch_size)
        yield head.fuse(torch.as_tensor(image[rows])[None], torch.as_tensor(text[rows])[None],
                        layers)[0]


def trigger_vectors(d: torch.Tensor, fused_batches, quantiles: Quantiles) -> scipy.sparse.csr_matrix:
    """The memes' trigger vectors (N, fused_dim), int8 in {-1, 0, +1}, CSR."""
    low, high = quantiles.direction
    d_positive, d_negative = d >= torch.quantile(d, high), d <= torch.quantile(d, low)
    blocks = []
    for r in fused_batches:
        r_positive = r >= torch.quantile(r, quantiles.meme[1], dim=1, keepdim=True)
        r_negative = r <= torch.quantile(r, quantiles.meme[0], dim=1, keepdim=True)
        trigger = (d_positive & r_positive).to(torch.int8) - (d_negative & r_negative).to(torch.int8)
        blocks.append(scipy.sparse.csr_matrix(trigger.numpy()))
    return scipy.sparse.vstack(blocks, format="csr", dtype=np.int8)


def fim_positions(fusion: str, map_dim: int) -> np.ndarray:
    """(fused_dim, 2): the (image, text) FIM position of each entry of the fused vector."""
    rows, cols = np.indices((map_dim, map_dim)).reshape(2, -1)
    if fusion == "cross":
        keep = np.ones(map_dim * map_dim, dtype=bool)
    elif fusion == "align":
        keep = rows == cols
    elif fusion == "cross_nd":
        keep = rows != cols
    else:
        raise ValueError(f"fusion {fusion!r} has no FIM")
    return np.stack([rows[keep], cols[keep]], axis=1)


def as_fim(values: np.ndarray, fusion: str, map_dim: int) -> np.ndarray:
    """A fused-vector-shaped array laid out on the (map_dim, map_dim) FIM, 0 where not fused."""
    fim = np.zeros((map_dim, map_dim), dtype=np.float32)
    positions = fim_positions(fusion, map_dim)
    fim[positions[:, 0], positions[:, 1]] = values
    return fim
