"""Training losses, per run: binary cross-entropy, softmax cross-entropy for a label of C
classes, and RGCL's retrieval-guided contrastive loss.

RGCL (Mei et al., ACL 2024, Sec. 3) pulls each training meme's embedding g towards its
pseudo-gold positive g+ (the most similar same-label training meme) and away from its hard
negative g- (the most similar other-label training meme) and from the in-batch memes of the
other label N_b, with cosine similarity s and no temperature:

    L_contrastive = -log( e^s(g, g+) / (e^s(g, g+) + e^s(g, g-) + sum_{n in N_b} e^s(g, n)) )

g+ and g- come from the training split's embeddings, refreshed once per epoch (constants to the
gradient, as in RGCL's retrieval); `train.loss: rgcl` trains on
(1 - train.rgcl_weight) * BCE + train.rgcl_weight * L, with L this form (`train.rgcl_form:
nll`) or the triplet form RGCL's released script trains with (`triplet`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of each run over a batch's memes and labels: logits, labels
    (runs, b, L) -> (runs,)."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").flatten(1).mean(-1)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of each run over the cells whose label is known (not -1):
    logits, labels (runs, b, L) -> (runs,); 0 for a run whose batch knows none."""
    known = labels >= 0
    cells = F.binary_cross_entropy_with_logits(logits, labels.clamp(min=0), reduction="none")
    return (cells * known).flatten(1).sum(-1) / known.flatten(1).sum(-1).clamp(min=1)


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy of each run over the memes whose class is known: logits and
    one-hot labels (runs, b, C), -1 where unknown -> (runs,); 0 for a run whose batch knows
    none."""
    known = labels[..., 0] >= 0
    cells = F.cross_entropy(logits.flatten(0, 1), labels.argmax(-1).flatten(), reduction="none")
    cells = cells.view(known.shape) * known
    return cells.sum(-1) / known.sum(-1).clamp(min=1)


def rgcl_contrastive(embedding: torch.Tensor, labels: torch.Tensor, positive: torch.Tensor,
                     negative: torch.Tensor, has_negative: torch.Tensor) -> torch.Tensor:
    """L_contrastive of each run (the paper's Eq. 6), averaged over the batch: embedding,
    positive and negative (runs, b, E), labels and has_negative (runs, b) -> (runs,); an
    anchor without a hard negative has no such term in its denominator."""
    g = F.normalize(embedding, dim=-1)
    s_positive = (g * F.normalize(positive, dim=-1)).sum(-1)  # (runs, b)
    s_negative = (g * F.normalize(negative, dim=-1)).sum(-1).masked_fill(~has_negative, -torch.inf)
    other_label = labels[..., :, None] != labels[..., None, :]  # (runs, b, b); never itself
    in_batch = (g @ g.transpose(-1, -2)).masked_fill(~other_label, -torch.inf)
    terms = torch.cat([s_positive[..., None], s_negative[..., None], in_batch], dim=-1)
    return (torch.logsumexp(terms, dim=-1) - s_positive).mean(-1)


def rgcl_triplet(embedding: torch.Tensor, labels: torch.Tensor, positive: torch.Tensor,
                 negative: torch.Tensor, has_negative: torch.Tensor, margin: float) -> torch.Tensor:
    """RGCL's shipped `--loss triplet` of each run: relu(mean cosine similarity to the batch's
    other-label memes (0 without any) + s(g, g-) (0 without a hard negative) - s(g, g+) +
    margin), averaged over the batch."""
    g = F.normalize(embedding, dim=-1)
    s_positive = (g * F.normalize(positive, dim=-1)).sum(-1)
    s_negative = (g * F.normalize(negative, dim=-1)).sum(-1) * has_negative
    other_label = (labels[..., :, None] != labels[..., None, :]).to(g.dtype)
    in_batch = ((g @ g.transpose(-1, -2)) * other_label).sum(-1) / other_label.sum(-1).clamp(min=1)
    return F.relu(in_batch + s_negative - s_positive + margin).mean(-1)
