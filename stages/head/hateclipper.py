"""The trainable Hate-CLIPper head (Kumar & Nandakumar 2022, Fig. 2, Sec. 3), K runs side by side.

    image features -> image projection -> L2 norm --\\
                                                     fusion (FIM) -> pre-output -> one logit per label
    text features  -> text projection  -> L2 norm --/

The fusion is `fusion` of stages/head/fusions.py; `head.caption_mode` (captions.py) lets a
caption stream take the image's or the text's place, or join through a second fusion.
`head.pretrained_map` starts each projection as a copy of CLIP's own. One output per task label
(stages/data/task.py): 1 for Hateful Memes, 22 for Propaganda Memes, plus any auxiliary labels.
`head.normalize`, `head.pre_output_dim` and `head.activation` also express the seed
repository's head (no L2 norm, a 128-wide GELU pre-output layer).

The forward is written once, `HateClipper.run`, from the operations of ops.py: evaluation and
autograd run it as it is, and the hand-written training step (backprop.py) runs it with tapes
that record each operation's backward. Every weight carries a leading run dimension: `runs`
independent heads (train.runs), each initialised from its own seed, computed by one batched
matrix product per layer. Tensors flow as (runs, memes, width).
"""
from __future__ import annotations

import dataclasses
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stages.common.errors import InputError
from stages.common.files import atomic_path
from stages.head.captions import CAPTION_MODES
from stages.head.fusions import FUSIONS
from stages.head.ops import Layer, Tape, activate, dropout, dropout_mask, l2_normalize, linear

CHECKPOINT = Path("models/head.pt")


@dataclass(frozen=True)
class HeadConfig:
    image_dim: int
    text_dim: int
    fusion: str
    map_dim: int
    num_mapping_layers: int
    num_pre_output_layers: int
    drop_probs: tuple[float, float, float]  # map, fusion, pre-output
    runs: int = 1  # independent heads trained side by side
    outputs: int = 1  # one logit per primary label of the task
    aux_outputs: int = 0  # and per auxiliary label, in a layer of their own
    softmax: tuple[tuple[int, int], ...] = ()  # output columns of each C-class label
    normalize: bool = True  # L2-normalise the projections (the paper)
    pre_output_dim: int | None = None  # None: map_dim (the paper)
    activation: str = "relu"  # after each pre-output layer
    sides: tuple[str, ...] = ()  # the official code's side outputs: of SIDES, those trained
    caption_mode: str = "none"  # captions.py: what each side reads
    pretrained_map: int = 0  # the width of CLIP's projections each mapping starts from; 0: off
    pretrained_bias: tuple[str, ...] = ()  # the sides whose CLIP projection has a bias

    @classmethod
    def from_params(cls, p, image_dim: int, text_dim: int, task=None,
                    projections: dict[str, np.ndarray] | None = None) -> "HeadConfig":
        """The head params.yaml describes, for inputs of these widths (from the cache) and
        a task (stages/data/task.py; None: one label): one output per label column, a
        softmax over each C-class label's. With head.pretrained_map, `projections` are CLIP's
        (inputs.projections)."""
        if CAPTION_MODES[p.head.caption_mode].parallel:
            text_dim //= 2  # the text side carries the text and the caption
        if p.head.pretrained_map and projections is None:
            raise ValueError("head.pretrained_map starts from CLIP's projections: pass inputs.projections")
        pretrained = projections if p.head.pretrained_map else {}
        return cls(image_dim=image_dim, text_dim=text_dim, fusion=p.fusion,
                   map_dim=p.head.map_dim, num_mapping_layers=p.head.num_mapping_layers,
                   num_pre_output_layers=p.head.num_pre_output_layers,
                   drop_probs=p.head.drop_probs, runs=p.train.runs,
                   outputs=len(task.labels) if task else 1,
                   aux_outputs=len(task.auxiliary) if task else 0, softmax=task.spans if task else (),
                   normalize=p.head.normalize, pre_output_dim=p.head.pre_output_dim,
                   activation=p.head.activation,
                   sides=tuple(side for side in SIDES if getattr(p.train, f"{side}_loss_weight")),
                   caption_mode=p.head.caption_mode,
                   pretrained_map=pretrained["text"].shape[1] if pretrained else 0,
                   pretrained_bias=tuple(side for side in ("image", "text") if f"{side}_bias" in pretrained))

    @property
    def pre_output_width(self) -> int:
        return self.pre_output_dim or self.map_dim

    @property
    def fused_width(self) -> int:
        return FUSIONS[self.fusion].width(self.map_dim)

    @property
    def text_input_dim(self) -> int:
        """The text side's input width: a parallel caption mode's carries text and caption."""
        return self.text_dim * (2 if CAPTION_MODES[self.caption_mode].parallel else 1)

    @property
    def mapped(self) -> tuple[str, ...]:
        """The sides with a mapping of their own: replace_image maps the caption with the text's."""
        return ("text",) if CAPTION_MODES[self.caption_mode].image == "caption" else ("image", "text")


class Shape(NamedTuple):
    """A linear layer as data: its part of the head, its widths, whether it has a bias."""
    part: str
    in_dim: int
    out_dim: int
    bias: bool = True

    @property
    def size(self) -> int:
        return self.in_dim * self.out_dim + (self.out_dim if self.bias else 0)


def layer_shapes(config: HeadConfig) -> list[Shape]:
    """The head's linear layers as data, in the order they are initialised."""
    map_dim, width = config.map_dim, config.pre_output_width
    shapes = []
    for part in config.mapped:
        shapes += mapping_shapes(config, part)
    shapes += [Shape(*shape) for shape in FUSIONS[config.fusion].layers(map_dim)]
    shapes += [Shape("pre_output", config.fused_width if k == 0 else width, width)
               for k in range(config.num_pre_output_layers)]
    last = width if config.num_pre_output_layers else config.fused_width
    shapes.append(Shape("output", last, config.outputs))
    # initialised after everything else, so that auxiliary labels and side outputs change no
    # primary weight
    if config.aux_outputs:
        shapes.append(Shape("aux_output", last, config.aux_outputs))
    return shapes + side_shapes(config)


def mapping_shapes(config: HeadConfig, part: str) -> list[Shape]:
    """A side's mapping: num_mapping_layers to map_dim; or, with a pretrained map (the official
    code's), CLIP's own projection, then one layer to map_dim."""
    in_dim, map_dim = (config.image_dim if part == "image" else config.text_dim), config.map_dim
    if config.pretrained_map:
        return [Shape(part, in_dim, config.pretrained_map, part in config.pretrained_bias),
                Shape(part, config.pretrained_map, map_dim)]
    return [Shape(part, in_dim if k == 0 else map_dim, map_dim) for k in range(config.num_mapping_layers)]


# The official code's side outputs (engine.py, --weight_image_loss, --weight_text_loss,
# --weight_super_loss): a unimodal head on each projection (fusion dropout, pre-output layers,
# an output of its own) and the super output, Linear over the ReLU of every logit (the primary
# label's and the 14 fine-grained ones).
SIDES = ("image", "text", "super")


def side_shapes(config: HeadConfig) -> list[Shape]:
    shapes, width = [], config.pre_output_width
    for side in ("image", "text"):
        if side in config.sides:
            shapes += [Shape(f"{side}_pre_output", config.map_dim if k == 0 else width, width)
                       for k in range(config.num_pre_output_layers)]
            shapes.append(Shape(f"{side}_output", width if config.num_pre_output_layers else config.map_dim,
                                config.outputs))
    if "super" in config.sides:
        shapes.append(Shape("super_output", config.outputs + config.aux_outputs, 1))
    return shapes


def trainable_params(config: HeadConfig) -> int:
    """One run's trainable parameters: every layer's weight and bias."""
    return sum(shape.size for shape in layer_shapes(config))


class Forward(NamedTuple):
    embedding: torch.Tensor  # (runs, N, E): RGCL's retrieval space
    logits: torch.Tensor  # (runs, N, outputs): every label's, auxiliary ones after the primary
    sides: dict[str, torch.Tensor]  # each side output's logits (SIDES), where trained


class Tapes:
    """The hand-written step's tapes of one forward: each projection's, and the trunk's from
    the fusion on."""

    def __init__(self):
        self.image, self.text, self.trunk = Tape(), Tape(), Tape()

    @property
    def complete(self) -> bool:
        return self.image.complete and self.text.complete and self.trunk.complete

    def backward(self, d_logits: torch.Tensor) -> None:
        d_image, d_text = self.trunk.backward(d_logits)
        self.image.backward(d_image)
        self.text.backward(d_text)


class HateClipper(nn.Module):
    """config.runs heads; run k is initialised from seed + k, exactly as a one-run head with
    that seed would be.

    All weights live in one parameter, one row per run: each layer's weight and bias are views
    of it. The optimizer, the per-run gradient clipping and zero_grad then each touch one
    tensor.
    """

    def __init__(self, config: HeadConfig, seed: int = 0, projections: dict[str, np.ndarray] | None = None):
        """`projections`: CLIP's (inputs.projections), where config.pretrained_map copies them."""
        super().__init__()
        self.config = config
        self.shapes = layer_shapes(config)
        self.sizes = [size for s in self.shapes for size in (s.in_dim * s.out_dim, s.out_dim if s.bias else 0)]
        self.weights = nn.Parameter(torch.empty(config.runs, sum(self.sizes)))
        with torch.no_grad():
            for run in range(config.runs):
                generator = torch.Generator().manual_seed(seed + run)
                for shape, chunk in zip(self.shapes, self.weights[run].split([s.size for s in self.shapes])):
                    bound = shape.in_dim ** -0.5  # nn.Linear's default init, weight then bias
                    chunk.uniform_(-bound, bound, generator=generator)
            if config.pretrained_map and projections is not None:  # (a saved head loads its own)
                self.copy_projections(projections)

    def copy_projections(self, projections: dict[str, np.ndarray]) -> None:
        """Each mapping's first layer, in every run, as CLIP's projection of its tower (the
        caption's and the text's are the text tower's)."""
        parts = self.layers()
        for part in self.config.mapped:
            first = parts[part][0]
            first.weight.copy_(torch.from_numpy(projections[part]))
            if first.bias is not None:
                first.bias.copy_(torch.from_numpy(projections[f"{part}_bias"]))

    def layers(self, grad: torch.Tensor | None = None) -> dict[str, list[Layer]]:
        """Each part's layers, as views of `weights` (and with `grad`, of a tensor laid out
        like it, where a hand-written step writes each layer's gradient)."""
        views = self.weights.split(self.sizes, dim=1)
        grads = grad.split(self.sizes, dim=1) if grad is not None else None
        parts: dict[str, list[Layer]] = {part: [] for part in ("image", "text", "pre_output", "output",
                                                               "aux_output")}

        def layer(tensors, k: int, shape: Shape):
            weight = tensors[2 * k].view(-1, shape.in_dim, shape.out_dim)
            return weight, (tensors[2 * k + 1].unsqueeze(1) if shape.bias else None)

        for k, shape in enumerate(self.shapes):
            into = layer(grads, k, shape) if grads else None
            parts.setdefault(shape.part, []).append(Layer(*layer(views, k, shape), into))  # a fusion's own too
        return parts

    def draw(self) -> Callable | None:
        """The dropout masks' source: dropout_mask in training mode, none in eval mode."""
        return dropout_mask if self.training else None

    def project(self, x: torch.Tensor, layers: list[Layer], draw, tape: Tape | None = None) -> torch.Tensor:
        """Linear layers to map_dim, ReLU between them, dropout after each (none in a
        pretrained map, as in the official code), then the L2 norm (head.normalize). The cached
        features need no gradient."""
        p_map = 0.0 if self.config.pretrained_map else self.config.drop_probs[0]
        for k, layer in enumerate(layers):
            if k:
                x = activate(x, "relu", tape)
            x = dropout(linear(x, layer, tape, input_grad=k > 0), p_map, draw, tape)
        return l2_normalize(x, tape) if self.config.normalize else x

    def project_both(self, image: torch.Tensor, text: torch.Tensor, layers: dict, draw=None,
                     tapes: Tapes | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Both projections; replace_image projects the caption in the image's place with the
        text's mapping."""
        return (self.project(image, layers[self.config.mapped[0]], draw, tapes and tapes.image),
                self.project(text, layers["text"], draw, tapes and tapes.text))

    def fuse(self, image: torch.Tensor, text: torch.Tensor, layers: dict, draw=None) -> torch.Tensor:
        """The fused vectors (runs, N, fused width): for `cross` the flattened FIM."""
        return self.fuse_projections(image, text, layers, draw)[0]

    def fuse_projections(self, image: torch.Tensor, text: torch.Tensor, layers: dict, draw=None,
                         tapes: Tapes | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The fused vectors, and the image's and text's projections. A parallel caption mode's
        text input carries the caption after the text; its fusion with the text joins the
        image-text fusion."""
        mode = CAPTION_MODES[self.config.caption_mode]
        if mode.parallel:
            text, caption = text.split(self.config.text_dim, dim=-1)
        image, text = self.project_both(image, text, layers, draw, tapes)
        fused = self.combine(image, text, layers, tapes and tapes.trunk)
        if mode.parallel:  # the caption in the image's place, as in the official code
            caption = self.project(caption, layers["text"], draw)
            fused = mode.parallel(fused, self.combine(caption, text, layers))
        if tapes is not None and (len(self.config.mapped) == 1 or mode.parallel):
            tapes.trunk.add(None)  # a mapping used twice: autograd sums its gradients
        return fused, image, text

    def combine(self, image: torch.Tensor, text: torch.Tensor, layers: dict, tape: Tape | None = None
                ) -> torch.Tensor:
        """The fusion (fusions.py) of the two projections; with a tape, its backward too,
        which gives the gradients of both projections."""
        fusion = FUSIONS[self.config.fusion]
        if tape is not None:
            tape.add(fusion.backward and (lambda g: fusion.backward(g, image, text)))
        return fusion.forward(image, text, layers)

    def classify(self, fused: torch.Tensor, layers: dict, draw=None, tape: Tape | None = None,
                 side: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        """Fused vectors -> (embedding, logits (runs, N, outputs)): fusion dropout,
        pre-output layers (head.activation), output. A side's unimodal head (`side`: image or
        text) is the same chain of its own layers over its projection.

        The embedding is the space RGCL retrieves in: as in RGCL's code, the last pre-output
        layer's output before its activation and dropout (the fused vector without pre-output
        layers).
        """
        _, p_fusion, p_pre = self.config.drop_probs
        prefix = f"{side}_" if side else ""
        embedding, x = fused, dropout(fused, p_fusion, draw, tape)
        for layer in layers.get(f"{prefix}pre_output", []):
            embedding = linear(x, layer, tape)
            x = dropout(activate(embedding, self.config.activation, tape), p_pre, draw, tape)
        outputs = layers[f"{prefix}output"] + (layers["aux_output"] if not side else [])
        if tape is not None and len(outputs) > 1:
            tape.add(None)  # the auxiliary labels' layer: autograd's
        logits = torch.cat([linear(x, layer, tape) for layer in outputs], dim=-1)
        return embedding, logits

    def run(self, image: torch.Tensor, text: torch.Tensor, layers: dict | None = None, draw=None,
            tapes: Tapes | None = None) -> Forward:
        """Features (runs, N, image_dim), (runs, N, text_dim) -> the embedding, the logits
        (runs, N, outputs) and the side outputs' logits: the forward, written once. `layers`:
        the head's own by default (a step
        passes them with their gradient views); `draw`: the dropout masks' source (by default
        the mode's); `tapes`: where the hand-written step records each operation's backward."""
        layers = layers or self.layers()
        draw = draw or self.draw()
        fused, image, text = self.fuse_projections(image, text, layers, draw, tapes)
        embedding, logits = self.classify(fused, layers, draw, tapes and tapes.trunk)
        sides = {side: self.classify(projection, layers, draw, side=side)[1]
                 for side, projection in (("image", image), ("text", text)) if side in self.config.sides}
        if "super" in self.config.sides:
            (super_output,) = layers["super_output"]
            sides["super"] = linear(F.relu(logits), super_output)
        if sides and tapes is not None:
            tapes.trunk.add(None)  # side outputs train through autograd
        return Forward(embedding, logits, sides)

    @torch.no_grad()
    def probe(self, **run_args) -> Forward:
        """The forward on one meme of zero features, to read what it does (which masks it
        draws, whether every operation has a backward), not what it computes."""
        config = self.config
        return self.run(self.weights.new_zeros(config.runs, 1, config.image_dim),
                        self.weights.new_zeros(config.runs, 1, config.text_input_dim), **run_args)

    def embed_and_classify(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        forward = self.run(image, text)
        return forward.embedding, forward.logits

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Features (runs, N, image_dim), (runs, N, text_dim) -> logits (runs, N, outputs)."""
        return self.run(image, text).logits


Built = TypeVar("Built")


def load_saved(path: str | Path, missing: str, foreign: str, keys: tuple[str, ...],
               build: Callable[[dict], Built]) -> Built:
    """A file train wrote with torch.save, read with weights_only (no code is unpickled) and
    built by `build`. A missing file, one torch cannot read and one without `keys` are
    one-line errors; a failure inside `build` is a bug, raised as it is."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {missing} not found; run `dvc repro train` first")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise InputError(f"{path}: not a {foreign} this project can load ({err})") from None
    absent = [key for key in keys if not isinstance(saved, dict) or key not in saved]
    if absent:
        raise InputError(f"{path}: not a {foreign} this project can load (it holds no {absent[0]!r})")
    return build(saved)


def save(path: str | Path, head: HateClipper, meta: dict) -> None:
    """A plain state dict plus plain values, so loading needs no unpickling of code."""
    checkpoint = {"state_dict": head.state_dict(), "config": asdict(head.config), **meta}
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load(path: str | Path) -> tuple[HateClipper, dict]:
    """Load a head saved by `save`: returns the model (eval mode) and the checkpoint's meta."""
    def build(checkpoint: dict) -> tuple[HateClipper, dict]:
        config = checkpoint.pop("config")
        fields = {field.name for field in dataclasses.fields(HeadConfig)}
        if not isinstance(config, dict) or set(config) != fields:
            raise InputError(f"{path}: a head checkpoint of another version of this project "
                             "(its config differs); rerun `dvc repro train`")
        head = HateClipper(HeadConfig(**{**config, "drop_probs": tuple(config["drop_probs"]),
                                         "softmax": tuple(map(tuple, config.get("softmax", ())))}))
        head.load_state_dict(checkpoint.pop("state_dict"))
        return head.eval(), checkpoint

    return load_saved(path, "trained head", "head checkpoint", ("config", "state_dict"), build)


@torch.no_grad()
def outputs(head: HateClipper, image, text, batch_size: int = 4096
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every run's embeddings (runs, N, E) and probabilities (runs, N, outputs), in eval mode,
    for feature rows (N, D): tensors on the head's device, or numpy arrays."""
    image, text = torch.as_tensor(image), torch.as_tensor(text)
    runs = head.config.runs
    head.eval()
    parts = [head.embed_and_classify(image[i:i + batch_size].expand(runs, -1, -1),
                      text[i:i + batch_size].expand(runs, -1, -1))
             for i in range(0, len(image), batch_size)]
    return (torch.cat([embedding for embedding, _ in parts], dim=1),
            probabilities(torch.cat([logits for _, logits in parts], dim=1), head.config.softmax))


@torch.no_grad()
def side_probs(head: HateClipper, image, text) -> dict[str, np.ndarray]:
    """Each side output's probabilities (runs, N, columns), in eval mode, for feature rows
    (N, D): a unimodal head's of the primary labels, the super output's of the first."""
    image, text = torch.as_tensor(image), torch.as_tensor(text)
    runs, outputs = head.config.runs, head.config.outputs
    sides = head.eval().run(image.expand(runs, -1, -1), text.expand(runs, -1, -1)).sides
    primary = tuple(span for span in head.config.softmax if span[1] <= outputs)
    return {side: probabilities(logits, () if side == "super" else primary).float().cpu().numpy()
            for side, logits in sides.items()}


def probabilities(logits: torch.Tensor, softmax: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """Each binary label's sigmoid, each C-class label's softmax over its columns."""
    probs = torch.sigmoid(logits)
    for start, end in softmax:
        probs[..., start:end] = torch.softmax(logits[..., start:end], dim=-1)
    return probs


def predict_probs(head: HateClipper, image, text) -> np.ndarray:
    """Every run's probabilities (runs, N, outputs); the runs' ensemble is the mean over axis 0."""
    return outputs(head, image, text)[1].float().cpu().numpy()
