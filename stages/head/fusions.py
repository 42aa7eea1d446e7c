"""The fusions: each combines the two projections (runs, N, map_dim) into one vector per meme,
and is registered once, here, with its width and, where written, its backward.

The feature interaction matrix (FIM) is the outer product of the two projections: `cross`
keeps all of it, `align` only its diagonal, `cross_nd` all but the diagonal (Kumar &
Nandakumar 2022, Sec. 3). `concat`, `align_concat`, MOMENTA's cross-modal attention fusion
`attention_m` (CMAF, as the official code has it) and the single-modality ablations `image` /
`text` complete the set.

A new fusion is one function under `@fusion(name, width=...)`: it is then a valid `fusion` in
params.yaml and trains through autograd. Given `backward=` (the gradients of both projections
from the fused vector's), it trains through the hand-written step too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Fusion:
    forward: Callable  # (image, text, layers) -> the fused vectors (runs, N, width)
    width: Callable[[int], int]  # of map_dim
    backward: Callable | None = None  # (d fused, image, text) -> (d image, d text)
    layers: Callable[[int], list[tuple[str, int, int]]] = lambda map_dim: []  # its own (part, in, out)
    # The FIM positions its vector holds, in its order, as a (map_dim, map_dim) mask read row by
    # row: where given, the paper's interpretation (stages/interpret.py) applies.
    fim: Callable[[int], np.ndarray] | None = None


# `fusion`'s choices; params.py reads the names here.
FUSIONS: dict[str, Fusion] = {}


def fusion(name: str, width: Callable[[int], int], backward: Callable | None = None,
           layers: Callable[[int], list] | None = None, fim: Callable[[int], np.ndarray] | None = None):
    """Register the decorated function as the fusion `name`."""
    def register(forward: Callable) -> Callable:
        FUSIONS[name] = Fusion(forward, width, backward, layers or Fusion.layers, fim)
        return forward
    return register


def cross_backward(g: torch.Tensor, image: torch.Tensor, text: torch.Tensor):
    """FIM[i, j] = image_i text_j: d image = G text, d text = G^T image, G (runs, b, m, m)."""
    return (g @ text.unsqueeze(-1)).squeeze(-1), (image.unsqueeze(-2) @ g).squeeze(-2)


def off_diagonal(m: int, device) -> torch.Tensor:
    return ~torch.eye(m, dtype=torch.bool, device=device)


@fusion("align", width=lambda m: m, backward=lambda g, i, t: (g * t, g * i),
        fim=lambda m: np.eye(m, dtype=bool))
def align(image, text, layers):  # the FIM's diagonal
    return image * text


@fusion("cross", width=lambda m: m * m, fim=lambda m: np.ones((m, m), dtype=bool),
        backward=lambda g, i, t: cross_backward(g.unflatten(-1, (i.shape[-1], t.shape[-1])), i, t))
def cross(image, text, layers):  # the whole FIM, FIM[i, j] = image_i * text_j, flattened
    return (image.unsqueeze(-1) * text.unsqueeze(-2)).flatten(-2)


def cross_nd_backward(g: torch.Tensor, image: torch.Tensor, text: torch.Tensor):
    """The gradient (runs, b, m*m - m) back in the FIM's place, zero on the diagonal."""
    m = image.shape[-1]
    full = g.new_zeros(*g.shape[:-1], m, m)
    full[..., off_diagonal(m, g.device)] = g
    return cross_backward(full, image, text)


@fusion("cross_nd", width=lambda m: m * m - m, backward=cross_nd_backward,
        fim=lambda m: ~np.eye(m, dtype=bool))
def cross_nd(image, text, layers):  # the FIM without its diagonal
    return (image.unsqueeze(-1) * text.unsqueeze(-2))[..., off_diagonal(image.shape[-1], image.device)]


@fusion("concat", width=lambda m: 2 * m, backward=lambda g, i, t: g.split([i.shape[-1], t.shape[-1]], -1))
def concat(image, text, layers):
    return torch.cat([image, text], dim=-1)


def align_concat_backward(g: torch.Tensor, image: torch.Tensor, text: torch.Tensor):
    diagonal, g_image, g_text = g.split(image.shape[-1], -1)
    return g_image + diagonal * text, g_text + diagonal * image


@fusion("align_concat", width=lambda m: 3 * m, backward=align_concat_backward)
def align_concat(image, text, layers):
    return torch.cat([image * text, image, text], dim=-1)


@fusion("attention_m", width=lambda m: 2 * m,
        layers=lambda m: [("query", m, m // 4), ("key", m, m // 4)])  # gen_query, gen_key
def attention_m(image, text, layers):
    """MOMENTA's CMAF as the official engine.py has it: one query and one key layer shared by
    both modalities, each modality's query scored against the other's key (no scaling), a
    softmax over the two scores weighting each projection."""
    (query,), (key,) = layers["query"], layers["key"]
    q1, k1 = F.relu(torch.baddbmm(query.bias, image, query.weight)), F.relu(torch.baddbmm(key.bias, image, key.weight))
    q2, k2 = F.relu(torch.baddbmm(query.bias, text, query.weight)), F.relu(torch.baddbmm(key.bias, text, key.weight))
    weights = torch.softmax(torch.stack([(q1 * k2).sum(-1), (q2 * k1).sum(-1)], dim=-1), dim=-1)
    return torch.cat([image * weights[..., :1], text * weights[..., 1:]], dim=-1)


@fusion("image", width=lambda m: m, backward=lambda g, i, t: (g, torch.zeros_like(t)))
def image_only(image, text, layers):
    return image


@fusion("text", width=lambda m: m, backward=lambda g, i, t: (torch.zeros_like(i), g))
def text_only(image, text, layers):
    return text
