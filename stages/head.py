"""The trainable Hate-CLIPper head (Kumar & Nandakumar 2022, Fig. 2, Sec. 3), K runs side by side.

    image features -> image projection -> L2 norm --\
                                                     fusion (FIM) -> pre-output -> 1 logit
    text features  -> text projection  -> L2 norm --/

The feature interaction matrix (FIM) is the outer product of the two projections: `cross`
keeps all of it, `align` only its diagonal, `cross_nd` all but the diagonal. `concat`,
`align_concat` and the single-modality ablations `image` / `text` complete the set.

Every weight carries a leading run dimension: `runs` independent heads (train.runs), each
initialised from its own seed, computed by one batched matrix product per layer. A small head's
step is bound by per-kernel overhead, not arithmetic, so K runs cost little more than one.
Tensors flow as (runs, memes, width).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stages import feature_reader, features
from stages.outputs import InputError, atomic_path, load_saved

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

    @classmethod
    def from_params(cls, p, image_dim: int, text_dim: int) -> "HeadConfig":
        """The head params.yaml describes, for features of these widths (from the cache)."""
        return cls(image_dim=image_dim, text_dim=text_dim, fusion=p.fusion,
                   map_dim=p.head.map_dim, num_mapping_layers=p.head.num_mapping_layers,
                   num_pre_output_layers=p.head.num_pre_output_layers,
                   drop_probs=p.head.drop_probs, runs=p.train.runs)


def fuse(fusion: str, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Combine L2-normalised projections (..., map_dim) into one fused vector per meme."""
    if fusion == "align":  # the FIM's diagonal
        return image * text
    if fusion == "cross":  # the whole FIM, FIM[i, j] = image_i * text_j, flattened
        return (image.unsqueeze(-1) * text.unsqueeze(-2)).flatten(-2)
    if fusion == "cross_nd":  # the FIM without its diagonal
        fim = image.unsqueeze(-1) * text.unsqueeze(-2)
        off_diagonal = ~torch.eye(image.shape[-1], dtype=torch.bool, device=image.device)
        return fim[..., off_diagonal]
    if fusion == "concat":
        return torch.cat([image, text], dim=-1)
    if fusion == "align_concat":
        return torch.cat([image * text, image, text], dim=-1)
    if fusion == "image":
        return image
    if fusion == "text":
        return text
    raise ValueError(f"unknown fusion {fusion!r}")


def fused_dim(fusion: str, map_dim: int) -> int:
    return {
        "align": map_dim, "cross": map_dim ** 2, "cross_nd": map_dim ** 2 - map_dim,
        "concat": 2 * map_dim, "align_concat": 3 * map_dim, "image": map_dim, "text": map_dim,
    }[fusion]


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
        if not self.training or self.p == 0:
            return x
        keep = (torch.rand_like(x) >= self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def layer_shapes(config: HeadConfig) -> list[tuple[str, int, int]]:
    """The head's linear layers as data, (part, in, out), in the order they are initialised."""
    map_dim, fused = config.map_dim, fused_dim(config.fusion, config.map_dim)
    shapes = []
    for part, in_dim in (("image", config.image_dim), ("text", config.text_dim)):
        shapes += [(part, in_dim if k == 0 else map_dim, map_dim)
                   for k in range(config.num_mapping_layers)]
    shapes += [("pre_output", fused if k == 0 else map_dim, map_dim)
               for k in range(config.num_pre_output_layers)]
    return shapes + [("output", map_dim if config.num_pre_output_layers else fused, 1)]


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

    def layers(self) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Each part's (weight (runs, in, out), bias (runs, 1, out)) pairs, as views of `weights`."""
        views = self.weights.split(self.sizes, dim=1)
        parts: dict[str, list] = {"image": [], "text": [], "pre_output": [], "output": []}
        for k, (part, in_dim, out_dim) in enumerate(self.shapes):
            weight, bias = views[2 * k], views[2 * k + 1]
            parts[part].append((weight.view(-1, in_dim, out_dim), bias.unsqueeze(1)))
        return parts

    def project(self, x: torch.Tensor, layers: list) -> torch.Tensor:
        """Linear layers to map_dim, ReLU between them, dropout after each, then L2 norm."""
        for k, (weight, bias) in enumerate(layers):
            x = self.map_dropout(torch.baddbmm(bias, F.relu(x) if k else x, weight))
        return F.normalize(x, dim=-1)

    def run(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (runs, N, image_dim), (runs, N, text_dim) -> (embedding, logits (runs, N))."""
        layers = self.layers()
        return self.classify(self.fuse(image, text, layers), layers)

    def fuse(self, image: torch.Tensor, text: torch.Tensor, layers: dict) -> torch.Tensor:
        """The fused vectors (runs, N, fused_dim): for `cross` the flattened FIM."""
        return fuse(self.config.fusion, self.project(image, layers["image"]),
                    self.project(text, layers["text"]))

    def classify(self, fused: torch.Tensor, layers: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused vectors -> (embedding, logits): fusion dropout, pre-output layers, output.

        The embedding is the space RGCL retrieves in: as in RGCL's code, the last pre-output
        layer's output before its ReLU and dropout (the fused vector without pre-output layers).
        """
        embedding, x = fused, self.fusion_dropout(fused)
        for weight, bias in layers["pre_output"]:
            embedding = torch.baddbmm(bias, x, weight)
            x = self.pre_output_dropout(F.relu(embedding))
        (weight, bias), = layers["output"]
        return embedding, torch.baddbmm(bias, x, weight).squeeze(-1)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Features (runs, N, image_dim), (runs, N, text_dim) -> hate logits (runs, N)."""
        return self.run(image, text)[1]


def save(path: str | Path, head: HateClipper, meta: dict) -> None:
    """A plain state dict plus plain values, so loading needs no unpickling of code."""
    checkpoint = {"state_dict": head.state_dict(), "config": asdict(head.config), **meta}
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load(path: str | Path) -> tuple[HateClipper, dict]:
    """Load a head saved by `save`: returns the model (eval mode) and the checkpoint's meta."""
    def build(checkpoint: dict) -> tuple[HateClipper, dict]:
        config = checkpoint.pop("config")
        head = HateClipper(HeadConfig(**{**config, "drop_probs": tuple(config["drop_probs"])}))
        head.load_state_dict(checkpoint.pop("state_dict"))
        return head.eval(), checkpoint

    return load_saved(path, "trained head", "head checkpoint", build)


@torch.no_grad()
def outputs(head: HateClipper, image, text, batch_size: int = 4096
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every run's embeddings (runs, N, E) and hate probabilities (runs, N), in eval mode, for
    feature rows (N, D): tensors on the head's device, or numpy arrays."""
    image, text = torch.as_tensor(image), torch.as_tensor(text)
    runs = head.config.runs
    head.eval()
    parts = [head.run(image[i:i + batch_size].expand(runs, -1, -1),
                      text[i:i + batch_size].expand(runs, -1, -1))
             for i in range(0, len(image), batch_size)]
    return (torch.cat([embedding for embedding, _ in parts], dim=1),
            torch.sigmoid(torch.cat([logits for _, logits in parts], dim=1)))


def predict_probs(head: HateClipper, image, text) -> np.ndarray:
    """Every run's hate probabilities (runs, N); the runs' ensemble is the mean over axis 0."""
    return outputs(head, image, text)[1].float().cpu().numpy()


def load_checked(p, splits: list[str] | None = None
                 ) -> tuple[HateClipper, dict, dict[str, features.SplitFeatures]]:
    """The trained head, its meta and the cache splits it reads, checked to belong together."""
    head, meta = load(CHECKPOINT)
    loaded, attrs = feature_reader.load_checked(features.CACHE, p, splits)
    if meta["cache_fingerprint"] != attrs["fingerprint"]:
        raise InputError(
            f"{CHECKPOINT} was trained on another feature cache (fingerprint "
            f"{meta['cache_fingerprint']}, {features.CACHE} has {attrs['fingerprint']}); "
            "rerun `dvc repro train`"
        )
    if meta["features"] != p.head.features:
        raise InputError(f"{CHECKPOINT} reads head.features={meta['features']}, params.yaml "
                         f"says {p.head.features}; rerun `dvc repro train`")
    return head, meta, loaded
