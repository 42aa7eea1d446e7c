"""The training step's gradient by hand, for the heads the paper trains.

A step of this small head is a few dozen tiny kernels, and on a CPU autograd's bookkeeping
between them (recording the graph, then walking it) costs more than their arithmetic. For the
common case, binary cross-entropy over binary labels with ReLU pre-output layers and any fusion
but attention_m, the backward pass here is written out: the same forward, the same dropout
draws in the same order, and the gradient of each layer as its closed form. Everything else
(RGCL, GELU, C-class labels, auxiliary labels, CMAF) keeps autograd. tests/test_backprop.py
checks the two against each other.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from stages.head import masks
from stages.head.hateclipper import HateClipper, dropout_mask, fuse

Draw = Callable[[torch.Tensor, float], "torch.Tensor | None"]  # dropout_mask's signature

# Fusions whose backward is written here: each maps the fused vector's gradient
# (runs, b, fused_dim) and the projections (runs, b, m) to the projections' gradients.
FUSION_BACKWARD = {
    "align": lambda g, i, t: (g * t, g * i),
    "cross": lambda g, i, t: cross_backward(g.unflatten(-1, (i.shape[-1], t.shape[-1])), i, t),
    "cross_nd": lambda g, i, t: cross_backward(off_diagonal_scatter(g, i.shape[-1]), i, t),
    "concat": lambda g, i, t: g.split([i.shape[-1], t.shape[-1]], -1),
    "align_concat": lambda g, i, t: align_concat_backward(g, i, t),
    "image": lambda g, i, t: (g, torch.zeros_like(t)),
    "text": lambda g, i, t: (torch.zeros_like(i), g),
}


def supports(head: HateClipper, loss: str) -> bool:
    """Whether this step serves the head and loss: BCE on binary labels, ReLU, no CMAF."""
    config = head.config
    return (loss == "bce" and config.activation == "relu" and not config.softmax
            and not config.aux_outputs and config.fusion in FUSION_BACKWARD)


def cross_backward(g: torch.Tensor, image: torch.Tensor, text: torch.Tensor):
    """FIM[i, j] = image_i text_j: d image = G text, d text = G^T image, G (runs, b, m, m)."""
    return (g @ text.unsqueeze(-1)).squeeze(-1), (image.unsqueeze(-2) @ g).squeeze(-2)


def off_diagonal_scatter(g: torch.Tensor, m: int) -> torch.Tensor:
    """cross_nd's gradient (runs, b, m*m - m) back in the FIM's place, zero on the diagonal."""
    full = g.new_zeros(*g.shape[:-1], m, m)
    full[..., ~torch.eye(m, dtype=torch.bool, device=g.device)] = g
    return full


def align_concat_backward(g: torch.Tensor, image: torch.Tensor, text: torch.Tensor):
    diagonal, g_image, g_text = g.split(image.shape[-1], -1)
    return g_image + diagonal * text, g_text + diagonal * image


def masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask


def linear_backward(x: torch.Tensor, dz: torch.Tensor, weight: torch.Tensor | None,
                    into: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor | None:
    """z = x W + b: the weight's and bias's gradients written into `into` (views of the one
    gradient buffer), and x's returned (None when not needed)."""
    torch.bmm(x.transpose(-1, -2), dz, out=into[0])
    torch.sum(dz, 1, keepdim=True, out=into[1])
    return None if weight is None else dz @ weight.transpose(-1, -2)


class Projection:
    """One modality's mapping layers, forward then backward, keeping what backward needs."""

    def __init__(self, x: torch.Tensor, layers: list, p: float, normalize: bool, draw: Draw):
        self.inputs, self.masks, self.layers = [], [], layers
        for k, (weight, bias) in enumerate(layers):
            x = F.relu(x) if k else x
            self.inputs.append(x)
            z = torch.baddbmm(bias, x, weight)
            self.masks.append(draw(z, p))
            x = masked(z, self.masks[-1])
        self.norm = x.norm(dim=-1, keepdim=True) if normalize else None
        # F.normalize divides by max(norm, 1e-12); a projection that small never occurs
        # with real features, so the gradient below is the unclamped one.
        self.out = x / self.norm.clamp_min(1e-12) if normalize else x

    def backward(self, dy: torch.Tensor, into: list) -> None:
        """Each layer's weight and bias gradient, into its views of the gradient buffer."""
        if self.norm is not None:  # y = x / |x|: dx = (dy - y (y . dy)) / |x|
            dy = (dy - self.out * (self.out * dy).sum(-1, keepdim=True)) / self.norm
        for k in reversed(range(len(self.layers))):
            weight = self.layers[k][0] if k else None  # the cached features need no gradient
            dx = linear_backward(self.inputs[k], masked(dy, self.masks[k]), weight, into[k])
            if k:
                dy = dx * (self.inputs[k] > 0)


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
        with masks.Ahead(head.config, memes, batch_size, epochs, head.weights.dtype) as draw:
            yield Step(head, draw)


class Step:
    """The training step of one head by hand: its weights' and its gradient's layer views are
    made once, and every step writes each layer's gradient straight into the head's one
    gradient buffer, which the optimizer then reads. Each dropout mask comes from `draw`, a
    function of the activations and p: dropout_mask itself, or masks.Ahead."""

    def __init__(self, head: HateClipper, draw: Draw | None = None):
        self.head, self.draw = head, draw or dropout_mask
        with torch.no_grad():  # views of the weights the optimizer updates in place
            head.weights.grad = torch.zeros_like(head.weights)
            self.layers, self.grads = head.layers(), head.layers(head.weights.grad)

    def __call__(self, image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Each run's mean BCE (runs,) on a batch, with the gradient of their sum left in
        head.weights.grad, as `losses.bce(head(image, text), labels).sum().backward()` would
        leave it (the head in training mode, with its dropout)."""
        config, layers, grads, draw = self.head.config, self.layers, self.grads, self.draw
        p_map, p_fusion, p_pre = config.drop_probs
        with torch.no_grad():
            projections = [Projection(x, layers[part], p_map, config.normalize, draw)
                           for x, part in ((image, "image"), (text, "text"))]
            image_out, text_out = (projection.out for projection in projections)
            fused = fuse(config.fusion, image_out, text_out, layers)
            fusion_mask = draw(fused, p_fusion)
            x, pre_output = masked(fused, fusion_mask), []
            for weight, bias in layers["pre_output"]:
                activated = F.relu(torch.baddbmm(bias, x, weight))
                pre_output.append((x, weight, activated > 0, draw(activated, p_pre)))
                x = masked(activated, pre_output[-1][-1])
            (weight, bias), = layers["output"]
            logits = torch.baddbmm(bias, x, weight)
            loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").flatten(1).mean(-1)
            # backward, last layer first: d BCE / d logit = (sigmoid - label) / cells averaged
            d_logits = (torch.sigmoid(logits) - labels) / labels[0].numel()
            dx = linear_backward(x, d_logits, weight, grads["output"][0])
            for (x_in, weight, positive, mask), into in zip(reversed(pre_output),
                                                            reversed(grads["pre_output"])):
                dx = linear_backward(x_in, masked(dx, mask) * positive, weight, into)
            d_image, d_text = FUSION_BACKWARD[config.fusion](masked(dx, fusion_mask), image_out, text_out)
            projections[0].backward(d_image, grads["image"])
            projections[1].backward(d_text, grads["text"])
        return loss
