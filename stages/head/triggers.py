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

from stages.head.fusions import FUSIONS
from stages.head.hateclipper import HateClipper
from stages.head.ops import Layer

QUANTILE_LIMIT = 2 ** 24  # torch.quantile's largest input
SELECT_FROM = 2 ** 16  # rows this long get their quantiles from a band of values (row_quantiles)
SAMPLE_STRIDE, BAND = 61, 256  # the sample that brackets the band (a prime stride: a FIM row-major
# has period map_dim, and a sample of every 64th entry would see 16 of its 1024 text positions),
# and the band's half-width in sample entries


@dataclass(frozen=True)
class Quantiles:
    direction: tuple[float, float]  # D's negative, positive cut-offs (0.2, 0.8 in the paper)
    meme: tuple[float, float]  # each meme's R's (0.1, 0.9)


def fim_fusions() -> tuple[str, ...]:
    """The fusions whose vector is (part of) the FIM: those the interpretation applies to."""
    return tuple(name for name, fusion in FUSIONS.items() if fusion.fim)


def run_layers(head: HateClipper, run: int) -> dict:
    """One run's layers, keeping the run dimension (of size 1), apart from the weights."""
    def one(tensor):
        return None if tensor is None else tensor[run:run + 1].detach()
    return {part: [Layer(one(layer.weight), one(layer.bias)) for layer in layers]
            for part, layers in head.layers().items()}


def direction(head: HateClipper, run: int = 0) -> torch.Tensor:
    """D (fused_dim,): minus the gradient of the hateful-label BCE at a zero fused vector."""
    head.eval()
    fused = torch.zeros(1, 1, head.config.fused_width, requires_grad=True)
    _, logits = head.classify(fused, run_layers(head, run))
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
    batch_size = max(1, QUANTILE_LIMIT // head.config.fused_width)
    for start in range(0, len(image), batch_size):
        rows = slice(start, start + batch_size)
        yield head.fuse(torch.as_tensor(image[rows])[None], torch.as_tensor(text[rows])[None],
                        layers)[0]


def trigger_vectors(d: torch.Tensor, fused_batches, quantiles: Quantiles) -> scipy.sparse.csr_matrix:
    """The memes' trigger vectors (N, fused_dim), int8 in {-1, 0, +1}, CSR."""
    low, high = quantiles.direction
    d_positive, d_negative = d >= torch.quantile(d, high), d <= torch.quantile(d, low)
    # only where D is positive or negative can a meme trigger: 40% of the FIM in the paper
    columns = torch.nonzero(d_positive | d_negative).ravel()
    d_positive, d_negative = d_positive[columns], d_negative[columns]
    cut_offs = torch.tensor(quantiles.meme, dtype=d.dtype)
    blocks = []
    for r in fused_batches:
        r_low, r_high = row_quantiles(r, cut_offs)
        r_columns = r.index_select(1, columns)
        trigger = ((d_positive & (r_columns >= r_high)).to(torch.int8)
                   - (d_negative & (r_columns <= r_low)).to(torch.int8))
        blocks.append(as_csr(trigger.numpy(), columns.numpy(), r.shape[1]))
    return scipy.sparse.vstack(blocks, format="csr", dtype=np.int8)


def row_quantiles(r: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """torch.quantile(r, q, dim=1, keepdim=True) for a 2-D float tensor, the same values (bit
    for bit, but for the sign of a zero where -0.0 and 0.0 tie), without
    sorting whole rows where they are long (a FIM at map_dim 1024 has a million entries): a
    sorted sample of every SAMPLE_STRIDE-th entry brackets each order statistic the quantile
    interpolates in a band of about 2 x BAND x SAMPLE_STRIDE values, and np.partition finds
    it in there (a row whose band misses it is partitioned whole; `python -m benchmarks
    interpret` times both). The ranks and the interpolation are torch.quantile's: ranks in
    float64, lerp in the rows' dtype."""
    x, width = r.numpy(), r.shape[1]
    if width < SELECT_FROM or np.isnan(x).any():
        return torch.quantile(r, q, dim=1, keepdim=True)
    ranks = q.double() * (width - 1)
    below, above = ranks.long(), torch.ceil(ranks).long()
    sample = np.sort(x[:, ::SAMPLE_STRIDE], axis=1)
    order_statistics = np.empty((len(x), len(q), 2), dtype=x.dtype)
    for k, (b, a) in enumerate(zip(below.tolist(), above.tolist())):
        centre = b * sample.shape[1] // width
        low = (sample[:, centre - BAND] if centre >= BAND else np.full(len(x), -np.inf, x.dtype))
        high = (sample[:, centre + BAND] if centre + BAND < sample.shape[1]
                else np.full(len(x), np.inf, x.dtype))
        under = np.count_nonzero(x < low[:, None], axis=1)
        for i, row in enumerate(x):
            band = row[(row >= low[i]) & (row <= high[i])]
            c = under[i]
            if c <= b and a - c < len(band):
                order_statistics[i, k] = np.partition(band, [b - c, a - c])[[b - c, a - c]]
            else:
                order_statistics[i, k] = np.partition(row, [b, a])[[b, a]]
    values = torch.from_numpy(order_statistics)
    weights = (ranks - below).to(r.dtype).expand(len(x), len(q)).contiguous()
    result = values[..., 0].contiguous().lerp_(values[..., 1].contiguous(), weights)
    return result.T[..., None]


def as_csr(dense: np.ndarray, columns: np.ndarray, width: int) -> scipy.sparse.csr_matrix:
    """The 2-D array's non-zeros as a CSR matrix `width` wide, dense's column k placed at
    columns[k] (increasing, so each row's indices stay sorted)."""
    flat = np.flatnonzero(dense)
    rows, positions = np.divmod(flat, dense.shape[1])
    indptr = np.searchsorted(rows, np.arange(dense.shape[0] + 1))
    return scipy.sparse.csr_matrix((dense.ravel()[flat], columns[positions].astype(np.int32), indptr),
                                   shape=(dense.shape[0], width))


def fim_positions(fusion: str, map_dim: int) -> np.ndarray:
    """(fused_dim, 2): the (image, text) FIM position of each entry of the fused vector."""
    if FUSIONS[fusion].fim is None:
        raise ValueError(f"fusion {fusion!r} has no FIM")
    return np.argwhere(FUSIONS[fusion].fim(map_dim))  # row by row, as the fusion flattens it


def as_fim(values: np.ndarray, fusion: str, map_dim: int) -> np.ndarray:
    """A fused-vector-shaped array laid out on the (map_dim, map_dim) FIM, 0 where not fused."""
    fim = np.zeros((map_dim, map_dim), dtype=np.float32)
    positions = fim_positions(fusion, map_dim)
    fim[positions[:, 0], positions[:, 1]] = values
    return fim
