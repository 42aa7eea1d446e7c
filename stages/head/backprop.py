"""The training step with its gradient by hand, derived from the head's one forward.

A step of this small head is a few dozen tiny kernels, and on a CPU autograd's bookkeeping
between them (recording the graph, then walking it) costs more than their arithmetic
(`python -m benchmarks head_training`). So the step runs the head's forward (hateclipper.py)
with tapes: each operation records its closed-form backward as it runs (ops.py, fusions.py),
and the step replays them, writing each layer's gradient straight into the head's one gradient
buffer. It serves BCE over binary labels wherever every operation of the forward has a
backward; anything else (RGCL, C-class or auxiliary labels, GELU, CMAF, a fusion registered
without a backward) trains through autograd.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F

from stages.head import masks
from stages.head.hateclipper import HateClipper, Tapes
from stages.head.ops import dropout_mask


def supports(head: HateClipper, loss: str) -> bool:
    """Whether the step serves the head and loss: BCE on binary labels, and a forward whose
    every operation has a backward (a one-meme forward, taped, tells)."""
    if loss != "bce" or head.config.softmax:
        return False
    tapes = Tapes()
    head.probe(layers=head.layers(torch.empty_like(head.weights)), draw=lambda x, p: None, tapes=tapes)
    return tapes.complete


@contextmanager
def training_step(head: HateClipper, loss: str, memes: int, batch_size: int, epochs: int
                  ) -> Iterator["Step | None"]:
    """The hand-written step where it serves the head and loss (else None: autograd's), for
    `epochs` of `memes` in batches of `batch_size`. On the CPU a small head's dropout masks
    are drawn ahead on a thread of their own (masks.py), stopped on leaving."""
    if not supports(head, loss):
        yield None
    elif head.weights.device.type != "cpu" or not masks.pays(head.weights):
        yield Step(head)
    else:
        with masks.Ahead(head, memes, batch_size, epochs) as draw:
            yield Step(head, draw)


class Step:
    """The training step of one head by hand: the layers and their gradient views are made
    once, and every step writes each layer's gradient into the head's one gradient buffer,
    which the optimizer then reads. Each dropout mask comes from `draw` (x, p): dropout_mask
    itself, or masks.Ahead."""

    def __init__(self, head: HateClipper, draw=None):
        self.head, self.draw = head, draw or dropout_mask
        with torch.no_grad():  # views of the weights the optimizer updates in place
            head.weights.grad = torch.zeros_like(head.weights)
            self.layers = head.layers(head.weights.grad)

    def __call__(self, image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Each run's mean BCE (runs,) on a batch, with the gradient of their sum left in
        head.weights.grad, as `losses.bce(head(image, text), labels).sum().backward()` would
        leave it (the head in training mode, with its dropout)."""
        tapes = Tapes()
        with torch.no_grad():
            logits = self.head.run(image, text, self.layers, self.draw, tapes).logits
            loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").flatten(1).mean(-1)
            # d BCE / d logit = (sigmoid - label) / cells averaged
            tapes.backward((torch.sigmoid(logits) - labels) / labels[0].numel())
        return loss
