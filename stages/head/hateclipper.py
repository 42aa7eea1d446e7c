"""The trainable Hate-CLIPper head (Kumar & Nandakumar 2022, Fig. 2, Sec. 3), K runs side by side.

    image features -> image projection -> L2 norm --\
                                                     fusion (FIM) -> pre-output -> one logit per label
    text features  -> text projection  -> L2 norm --/

The feature interaction matrix (FIM) is the outer product of the two projections: `cross`
keeps all of it, `align` only its diagonal, `cross_nd` all but the diagonal. `concat`,
`align_concat`, MOMENTA's cross-modal attention fusion `attention_m` (CMAF, as the official
code has it) and the single-modality ablations `image` / `text` complete the set. One output
per task label (stages/data/task.py): 1 for Hateful Memes, 22 for Propaganda Memes, plus any
auxiliary labels. `head.normalize`, `head.pre_output_dim` and `head.activation` also express
the seed repository's head (no L2 norm, a 128-wide GELU pre-output layer).

Every weight carries a leading run dimension: `runs` independent heads (train.runs), each
initialised from its own seed, computed by one batched matrix product per layer. A small head's
step is bound by per-kernel overhead, not arithmetic, so K runs cost little more than one.
Tensors flow as (runs, memes, width).
"""
from __future__ import annotations

import dataclasses
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stages.common import params
from stages.common.errors import InputError
from stages.common.files import atomic_path

CHECKPOINT = Path("models/head.pt")
ACTIVATIONS = params.registry(params.ACTIVATIONS, {"relu": F.relu, "gelu": F.gelu}, "head.activation")


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

    @classmethod
    def from_params(cls, p, image_dim: int, text_dim: int, task=None) -> "HeadConfig":
        """The head params.yaml describes, for features of these widths (from the cache) and
        a task (stages/data/task.py; None: one label): one output per label column, a
        softmax over each C-class label's."""
        return cls(image_dim=image_dim, text_dim=text_dim, fusion=p.fusion,
                   map_dim=p.head.map_dim, num_mapping_layers=p.head.num_mapping_layers,
                   num_pre_output_layers=p.head.num_pre_output_layers,
                   drop_probs=p.head.drop_probs, runs=p.train.runs,
                   outputs=len(task.labels) if task else 1,
                   aux_outputs=len(task.auxiliary) if task else 0, softmax=task.spans if task else (),
                   normalize=p.head.normalize, pre_output_dim=p.head.pre_output_dim,
                   activation=p.head.activation)

    @property
    def pre_output_width(self) -> int:
        return self.pre_output_dim or self.map_dim


def align(image, text, layers):  # the FIM's diagonal
    return image * text


def cross(image, text, layers):  # the whole FIM, FIM[i, j] = image_i * text_j, flattened
    return (image.unsqueeze(-1) * text.unsqueeze(-2)).flatten(-2)


def cross_nd(image, text, layers):  # the FIM without its diagonal
    off_diagonal = ~torch.eye(image.shape[-1], dtype=torch.bool, device=image.device)
    return (image.unsqueeze(-1) * text.unsqueeze(-2))[..., off_diagonal]


def concat(image, text, layers):
    return torch.cat([image, text], dim=-1)


def align_concat(image, text, layers):
    return torch.cat([image * text, image, text], dim=-1)


def attention_m(image, text, layers):
    """MOMENTA's CMAF as the official engine.py has it: one query and one key layer shared by
    both modalities, each modality's query scored against the other's key (no scaling), a
    softmax over the two scores weighting each projection."""
    (wq, bq), = layers["query"]
    (wk, bk), = layers["key"]
    q1, k1 = F.relu(torch.baddbmm(bq, image, wq)), F.relu(torch.baddbmm(bk, image, wk))
    q2, k2 = F.relu(torch.baddbmm(bq, text, wq)), F.relu(torch.baddbmm(bk, text, wk))
    weights = torch.softmax(torch.stack([(q1 * k2).sum(-1), (q2 * k1).sum(-1)], dim=-1), dim=-1)
    return torch.cat([image * weights[..., :1], text * weights[..., 1:]], dim=-1)


def image_only(image, text, layers):
    return image


def text_only(image, text, layers):
    return text


# Each fusion: its function of the two projections (runs, N, map_dim), and its width.
FUSIONS = params.registry(params.FUSIONS, {
    "align": (align, lambda m: m), "cross": (cross, lambda m: m * m),
    "cross_nd": (cross_nd, lambda m: m * m - m), "concat": (concat, lambda m: 2 * m),
    "align_concat": (align_concat, lambda m: 3 * m), "attention_m": (attention_m, lambda m: 2 * m),
    "image": (image_only, lambda m: m), "text": (text_only, lambda m: m),
}, "fusion")


def fuse(fusion: str, image: torch.Tensor, text: torch.Tensor, layers: dict | None = None) -> torch.Tensor:
    """Combine the projections (runs, N, map_dim) into one fused vector per meme; `layers`
    holds the query and key layers attention_m needs."""
    return FUSIONS[fusion][0](image, text, layers)


def fused_dim(fusion: str, map_dim: int) -> int:
    return FUSIONS[fusion][1](map_dim)


def dropout_mask(x: torch.Tensor, p: float) -> torch.Tensor | None:
    """Inverted dropout's mask for x, drawn by one torch.rand_like: 0 with probability p, else
    1 / (1 - p); None for p = 0. Dropout and the hand-written step (backprop.py) draw it here,
    so they draw the same masks; masks.py draws these very masks ahead for small heads."""
    if p == 0:
        return None
    return as_dropout_mask(torch.rand_like(x), p)


def as_dropout_mask(uniform: torch.Tensor, p: float) -> torch.Tensor:
    """Uniform draws in [0, 1), in place, as inverted dropout's mask of p: the one rule by which
    dropout_mask and masks.py turn the same draws into the same masks."""
    return uniform.ge_(p).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """Inverted dropout, as nn.Dropout, with the mask drawn by torch.rand.

    On the CPU, nn.Dropout's bernoulli_ is the slower way to draw the mask (BENCHMARKS.md,
    head_training), and in a small head dropout is one of the larger costs of a step. The mask
    is a constant to autograd, so the backward pass is one multiplication.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = dropout_mask(x, self.p) if self.training else None
        return x if mask is None else x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def layer_shapes(config: HeadConfig) -> list[tuple[str, int, int]]:
    """The head's linear layers as data, (part, in, out), in the order they are initialised."""
    map_dim, fused = config.map_dim, fused_dim(config.fusion, config.map_dim)
    width = config.pre_output_width
    shapes = []
    for part, in_dim in (("image", config.image_dim), ("text", config.text_dim)):
        shapes += [(part, in_dim if k == 0 else map_dim, map_dim)
                   for k in range(config.num_mapping_layers)]
    if config.fusion == "attention_m":  # gen_query, gen_key: Linear(map_dim, map_dim // 4)
        shapes += [("query", map_dim, map_dim // 4), ("key", map_dim, map_dim // 4)]
    shapes += [("pre_output", fused if k == 0 else width, width)
               for k in range(config.num_pre_output_layers)]
    last = width if config.num_pre_output_layers else fused
    shapes.append(("output", last, config.outputs))
    # initialised after everything else, so that auxiliary labels change no primary weight
    return shapes + ([("aux_output", last, config.aux_outputs)] if config.aux_outputs else [])


def trainable_params(config: HeadConfig) -> int:
    """One run's trainable parameters: every layer's weight and bias."""
    return sum(i * o + o for _, i, o in layer_shapes(config))


class HateClipper(nn.Module):
    """config.runs heads; run k is initialised from seed + k, exactly as a one-run head with
    that seed would be.

    All weights live in one parameter, one row per run: each layer's weight and bias are views
    of it. The optimizer, the per-run gradient clipping and zero_grad then each touch one
    tensor, and the backward pass gathers every layer's gradient in one concatenation.
    """

    def __init__(self, config: HeadConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.shapes = layer_shapes(config)
        self.sizes = [size for _, i, o in self.shapes for size in (i * o, o)]  # weight, bias
        self.weights = nn.Parameter(torch.empty(config.runs, sum(self.sizes)))
        p_map, p_fusion, p_pre = config.drop_probs
        self.map_dropout, self.fusion_dropout = Dropout(p_map), Dropout(p_fusion)
        self.pre_output_dropout = Dropout(p_pre)
        with torch.no_grad():
            for run in range(config.runs):
                generator = torch.Generator().manual_seed(seed + run)
                for (_, in_dim, _), chunk in zip(self.shapes, self.weights[run].split(
                        [i * o + o for _, i, o in self.shapes])):
                    bound = in_dim ** -0.5  # nn.Linear's default init, weight then bias
                    chunk.uniform_(-bound, bound, generator=generator)

    def layers(self, flat: torch.Tensor | None = None) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Each part's (weight (runs, in, out), bias (runs, 1, out)) pairs, as views of `weights`
        (or of `flat`, a tensor laid out like it: the gradient)."""
        views = (self.weights if flat is None else flat).split(self.sizes, dim=1)
        parts: dict[str, list] = {"image": [], "text": [], "query": [], "key": [],
                                  "pre_output": [], "output": [], "aux_output": []}
        for k, (part, in_dim, out_dim) in enumerate(self.shapes):
            weight, bias = views[2 * k], views[2 * k + 1]
            parts[part].append((weight.view(-1, in_dim, out_dim), bias.unsqueeze(1)))
        return parts

    def project(self, x: torch.Tensor, layers: list) -> torch.Tensor:
        """Linear layers to map_dim, ReLU between them, dropout after each, then the L2 norm
        (head.normalize)."""
        for k, (weight, bias) in enumerate(layers):
            x = self.map_dropout(torch.baddbmm(bias, F.relu(x) if k else x, weight))
        return F.normalize(x, dim=-1) if self.config.normalize else x

    def embed_and_classify(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (runs, N, image_dim), (runs, N, text_dim) -> (embedding, logits
        (runs, N, outputs))."""
        layers = self.layers()
        return self.classify(self.fuse(image, text, layers), layers)

    def fuse(self, image: torch.Tensor, text: torch.Tensor, layers: dict) -> torch.Tensor:
        """The fused vectors (runs, N, fused_dim): for `cross` the flattened FIM."""
        return fuse(self.config.fusion, self.project(image, layers["image"]),
                    self.project(text, layers["text"]), layers)

    def classify(self, fused: torch.Tensor, layers: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused vectors -> (embedding, logits (runs, N, outputs)): fusion dropout,
        pre-output layers (head.activation), output.

        The embedding is the space RGCL retrieves in: as in RGCL's code, the last pre-output
        layer's output before its activation and dropout (the fused vector without pre-output
        layers).
        """
        activation = ACTIVATIONS[self.config.activation]
        embedding, x = fused, self.fusion_dropout(fused)
        for weight, bias in layers["pre_output"]:
            embedding = torch.baddbmm(bias, x, weight)
            x = self.pre_output_dropout(activation(embedding))
        logits = torch.cat([torch.baddbmm(bias, x, weight)
                            for weight, bias in layers["output"] + layers["aux_output"]], dim=-1)
        return embedding, logits

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Features (runs, N, image_dim), (runs, N, text_dim) -> logits (runs, N, outputs)."""
        return self.embed_and_classify(image, text)[1]


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


def probabilities(logits: torch.Tensor, softmax: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """Each binary label's sigmoid, each C-class label's softmax over its columns."""
    probs = torch.sigmoid(logits)
    for start, end in softmax:
        probs[..., start:end] = torch.softmax(logits[..., start:end], dim=-1)
    return probs


def predict_probs(head: HateClipper, image, text) -> np.ndarray:
    """Every run's probabilities (runs, N, outputs); the runs' ensemble is the mean over axis 0."""
    return outputs(head, image, text)[1].float().cpu().numpy()
