"""The head's operations, each written once: its forward, and beside it the closed form of its
backward, which a Tape records as the forward runs.

The head's forward (hateclipper.py) is a short chain of these. Run without a tape it is plain
torch, and autograd differentiates it (evaluation, and every head the hand-written step does
not serve). Run with a tape, each operation adds its backward to the tape, and the training
step (backprop.py) replays them last first: the gradient by hand, derived from the one forward.
An operation without a backward (GELU, a fusion registered without one) marks the tape
incomplete, and that head trains through autograd.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

Backward = Callable[[torch.Tensor], "torch.Tensor | None"]


class Tape:
    """The backwards of one chain of operations, in the order they ran."""

    def __init__(self):
        self.steps: list[Backward] = []
        self.complete = True  # every operation that ran had a backward

    def add(self, backward: Backward | None) -> None:
        if backward is None:
            self.complete = False
        self.steps.append(backward)

    def backward(self, grad):
        """The chain's input gradient from its output's (None where the input needs none)."""
        for step in reversed(self.steps):
            grad = step(grad)
        return grad


@dataclass(frozen=True)
class Layer:
    """One linear layer of every run: weight (runs, in, out), bias (runs, 1, out) or None (a
    copy of CLIP's bias-free projection), views of the head's one weight tensor; `grad` the
    same views of its gradient, where a step writes."""
    weight: torch.Tensor
    bias: torch.Tensor | None
    grad: tuple[torch.Tensor, torch.Tensor | None] | None = None


def linear(x: torch.Tensor, layer: Layer, tape: Tape | None = None, input_grad: bool = True) -> torch.Tensor:
    """x W + b, every run at once: (runs, N, in) -> (runs, N, out)."""
    if tape is not None:
        tape.add(lambda dz: linear_backward(x, dz, layer, input_grad))
    if layer.bias is None:
        return torch.bmm(x, layer.weight)
    return torch.baddbmm(layer.bias, x, layer.weight)


def linear_backward(x: torch.Tensor, dz: torch.Tensor, layer: Layer, input_grad: bool) -> torch.Tensor | None:
    """dW = x^T dz and db = sum dz, written into the layer's gradient views; dx = dz W^T."""
    torch.bmm(x.transpose(-1, -2), dz, out=layer.grad[0])
    if layer.bias is not None:
        torch.sum(dz, 1, keepdim=True, out=layer.grad[1])
    return dz @ layer.weight.transpose(-1, -2) if input_grad else None


@dataclass(frozen=True)
class Activation:
    forward: Callable[[torch.Tensor], torch.Tensor]
    backward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None  # (dy, y) -> dx


# head.activation's choices; params.py reads the names here.
ACTIVATIONS = {"relu": Activation(F.relu, lambda dy, y: dy * (y > 0)),
               "gelu": Activation(F.gelu, None)}


def activate(x: torch.Tensor, name: str, tape: Tape | None = None) -> torch.Tensor:
    activation = ACTIVATIONS[name]
    y = activation.forward(x)
    if tape is not None:
        tape.add(None if activation.backward is None else lambda dy: activation.backward(dy, y))
    return y


def dropout(x: torch.Tensor, p: float, draw, tape: Tape | None = None) -> torch.Tensor:
    """Inverted dropout with the mask `draw(x, p)` gives (None: no dropout, as in eval mode)."""
    mask = None if draw is None else draw(x, p)
    if tape is not None:
        tape.add(lambda dy: dy if mask is None else dy * mask)
    return x if mask is None else x * mask


def dropout_mask(x: torch.Tensor, p: float) -> torch.Tensor | None:
    """Inverted dropout's mask for x, drawn by one torch.rand_like: 0 with probability p, else
    1 / (1 - p); None for p = 0. torch.rand, not nn.Dropout's bernoulli_, is the quicker draw on
    a CPU (`python -m benchmarks head_training`)."""
    if p == 0:
        return None
    return as_dropout_mask(torch.rand_like(x), p)


def as_dropout_mask(uniform: torch.Tensor, p: float) -> torch.Tensor:
    """Uniform draws in [0, 1), in place, as inverted dropout's mask of p: the one rule by which
    dropout_mask and masks.py turn the same draws into the same masks."""
    return uniform.ge_(p).mul_(1.0 / (1.0 - p))


def l2_normalize(x: torch.Tensor, tape: Tape | None = None) -> torch.Tensor:
    """x / |x|, as F.normalize (which divides by max(|x|, 1e-12))."""
    norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    y = x / norm
    if tape is not None:  # dx = (dy - y (y . dy)) / |x|
        tape.add(lambda dy: (dy - y * (y * dy).sum(-1, keepdim=True)) / norm)
    return y
