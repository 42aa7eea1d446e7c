"""RGCL's retrieval side (Mei et al., ACL 2024): exact cosine search in the head's embedding
space, the hard-negative / pseudo-gold-positive mining of its loss, and its kNN classifier.

The embedding is RGCL's: the head's last pre-output layer before its ReLU and dropout
(`HateClipper.embed_and_classify`). Every search
is one matrix product of L2-normalised embeddings, per run: for Hateful Memes (8,500 training
memes) a query against the whole training split costs about as much as one head step. An
approximate index (FAISS IVF/HNSW) would take over beyond a few million indexed memes, where
the (queries x index) similarity matrix no longer fits in memory.

The retrieval classifier scores a meme q from its k nearest indexed memes, ranked 1..k by
cosine similarity s_1 >= ... >= s_k, with labels y_i in {0, 1}:

    score(q) = sum_i w_i * s_i * (2 y_i - 1) / sum_i w_i,    w_i = k + 1 - i
    prob_hate(q) = (1 + score(q)) / 2

(labels as +1/-1 weighted by similarity, rank-decaying "arithmetic" weights: RGCL's
similarity-weighted vote). score lies in [-1, 1], so prob_hate in [0, 1], and prob_hate >= 0.5
exactly where RGCL's sigmoid(score) >= 0.5. A task of several primary labels (Propaganda
Memes' 22 techniques) votes each label apart: every neighbour votes its label vector with the
same weights, so label l's probability is the formula above with y_il.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stages.common.errors import InputError
from stages.common.files import atomic_path
from stages.head import hateclipper
from stages.head.hateclipper import load_saved

INDEX = Path("models/retrieval_index.pt")  # the training split's embeddings, saved by train
ADDED = Path("models/retrieval_added.pt")  # memes added later: predict --add-to-index


@dataclass
class Index:
    embeddings: torch.Tensor  # (runs, N, E), as the head gives them; searches normalise
    labels: torch.Tensor  # (N, L) 0/1: each meme's primary labels
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def extended(self, other: "Index") -> "Index":
        return Index(torch.cat([self.embeddings, other.embeddings], dim=1),
                     torch.cat([self.labels, other.labels]), self.ids + other.ids)


def normalised(embeddings: torch.Tensor) -> torch.Tensor:
    return F.normalize(embeddings.float(), dim=-1)


def similarities(queries: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every query with every indexed meme, per run: (runs, Q, N)."""
    return normalised(queries) @ normalised(index).transpose(1, 2)


def mine(queries: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor,
         index: torch.Tensor, index_labels: torch.Tensor, self_positive: bool = False,
         hard_negative_pool: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGCL's pairs for a batch of training memes: for each, the index position of its
    pseudo-gold positive (the most similar same-label meme; itself excluded unless
    `self_positive`, as RGCL's code lets it be) and of its hard negative (the most similar
    other-label meme: anywhere, or with `hard_negative_pool` K among its K nearest, as RGCL's
    code looks), and whether it has one (none in the pool: that term is dropped).

    queries (runs, b, E), labels and positions (runs, b): each query's label and own place in
    the index. Returns (runs, b) positive and negative positions and the has-negative mask.
    """
    sims = similarities(queries, index)
    same = labels[..., None] == index_labels  # (runs, b, N)
    excluded = ~same if self_positive else ~same | F.one_hot(positions, sims.shape[-1]).bool()
    positive = sims.masked_fill(excluded, -torch.inf).argmax(-1)
    if hard_negative_pool:
        nearest = sims.topk(min(hard_negative_pool, sims.shape[-1]), dim=-1).indices  # ranked
        other = index_labels[nearest] != labels[..., None]
        first = other.int().argmax(-1, keepdim=True)  # the first other-label hit, if any
        return positive, nearest.gather(-1, first).squeeze(-1), other.any(-1)
    negative = sims.masked_fill(same, -torch.inf).argmax(-1)
    return positive, negative, (~same).any(-1)


def knn_probs(queries: torch.Tensor, index: Index, k: int) -> np.ndarray:
    """The retrieval classifier's probabilities (runs, Q, L) of the index's L labels, for
    query embeddings (runs, Q, E); k is capped at the index's size."""
    k = min(k, len(index))
    sims, nearest = similarities(queries, index.embeddings).topk(k, dim=-1)  # ranked 1..k
    votes = 2 * index.labels.to(sims.dtype)[nearest] - 1  # (runs, Q, k, L)
    weights = torch.arange(k, 0, -1, dtype=sims.dtype, device=sims.device)  # k + 1 - rank
    score = torch.einsum("k,rqk,rqkl->rql", weights, sims, votes) / weights.sum()
    return ((1 + score) / 2).cpu().numpy()


def classify(p, head: hateclipper.HateClipper, image, text, index: Index | None) -> np.ndarray:
    """Every run's probabilities (runs, N, outputs) for feature rows, by params.yaml's
    `classifier`: the head's every output, or the kNN vote of the primary labels."""
    embeddings, probs = hateclipper.outputs(head, image, text)
    if p.classifier == "logistic":
        return probs.float().cpu().numpy()
    return knn_probs(embeddings, index, p.retrieval.k)


def head_id(head: hateclipper.HateClipper) -> str:
    """A digest of the trained weights: an index's embeddings belong to exactly one head."""
    return hashlib.sha256(head.weights.detach().cpu().numpy().tobytes()).hexdigest()[:16]


def index_for(p, head: hateclipper.HateClipper, with_added: bool = False) -> Index | None:
    """The index `classifier: retrieval` searches (None for `logistic`): the training split's
    embeddings, and with `with_added` the memes added since (new memes' scoring only; the
    pipeline's own metrics and predictions stay those of the training split)."""
    if p.classifier == "logistic":
        return None
    index = load_checked(INDEX, head)
    if with_added and ADDED.is_file():
        index = index.extended(load_checked(ADDED, head))
    return index


def load_checked(path: Path, head: hateclipper.HateClipper) -> Index:
    index, meta = load(path)
    if meta.get("head") != head_id(head):
        raise InputError(f"{path} was computed by another trained head; "
                         + ("rerun `dvc repro train`" if path == INDEX else
                            "add its memes again (predict --add-to-index) or delete it"))
    return index


def save(path: str | Path, index: Index, meta: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"embeddings": index.embeddings.cpu(), "labels": index.labels.cpu(),
                    "ids": index.ids, **meta}, tmp)


def load(path: str | Path) -> tuple[Index, dict]:
    def build(raw: dict) -> tuple[Index, dict]:
        return Index(raw.pop("embeddings"), raw.pop("labels"), raw.pop("ids")), raw

    return load_saved(path, "retrieval index", "retrieval index", ("embeddings", "labels", "ids"), build)
