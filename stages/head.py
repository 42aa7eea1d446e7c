"""The trainable Hate-CLIPper head (Kumar & Nandakumar 2022, Fig. 2, Sec. 3).

    image features -> image projection -> L2 norm --\
                                                     fusion (FIM) -> pre-output -> 1 logit
    text features  -> text projection  -> L2 norm --/

The feature interaction matrix (FIM) is the outer product of the two projections: `cross`
keeps all of it, `align` only its diagonal, `cross_nd` all but the diagonal. `concat`,
`align_concat` and the single-modality ablations `image` / `text` complete the set.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stages import feature_reader, features
from stages.outputs import InputError, atomic_path

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

    @classmethod
    def from_params(cls, p, image_dim: int, text_dim: int) -> "HeadConfig":
        """The head params.yaml describes, for features of these widths (from the cache)."""
        return cls(image_dim=image_dim, text_dim=text_dim, fusion=p.fusion,
                   map_dim=p.head.map_dim, num_mapping_layers=p.head.num_mapping_layers,
                   num_pre_output_layers=p.head.num_pre_output_layers,
                   drop_probs=p.head.drop_probs)


def fuse(fusion: str, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Combine L2-normalised projections (N, map_dim) into one fused vector per meme."""
    if fusion == "align":  # the FIM's diagonal
        return image * text
    if fusion == "cross":  # the whole FIM, FIM[i, j] = image_i * text_j, flattened
        return (image.unsqueeze(2) * text.unsqueeze(1)).flatten(1)
    if fusion == "cross_nd":  # the FIM without its diagonal
        fim = image.unsqueeze(2) * text.unsqueeze(1)
        off_diagonal = ~torch.eye(image.shape[1], dtype=torch.bool, device=image.device)
        return fim[:, off_diagonal]
    if fusion == "concat":
        return torch.cat([image, text], dim=1)
    if fusion == "align_concat":
        return torch.cat([image * text, image, text], dim=1)
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


def projection(in_dim: int, map_dim: int, layers: int, dropout: float) -> nn.Sequential:
    """`layers` linear layers to map_dim, ReLU between them, dropout after each."""
    modules: list[nn.Module] = [nn.Linear(in_dim, map_dim), Dropout(dropout)]
    for _ in range(layers - 1):
        modules += [nn.ReLU(), nn.Linear(map_dim, map_dim), Dropout(dropout)]
    return nn.Sequential(*modules)


class HateClipper(nn.Module):
    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = config
        map_dim, (p_map, p_fusion, p_pre) = config.map_dim, config.drop_probs
        self.image_projection = projection(config.image_dim, map_dim, config.num_mapping_layers,
                                           p_map)
        self.text_projection = projection(config.text_dim, map_dim, config.num_mapping_layers,
                                          p_map)
        width = fused_dim(config.fusion, map_dim)
        pre_output: list[nn.Module] = [Dropout(p_fusion)]
        for _ in range(config.num_pre_output_layers):
            pre_output += [nn.Linear(width, map_dim), nn.ReLU(), Dropout(p_pre)]
            width = map_dim
        self.pre_output = nn.Sequential(*pre_output)
        self.output = nn.Linear(width, 1)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Features (N, image_dim), (N, text_dim) -> hate logits (N,)."""
        image = F.normalize(self.image_projection(image), dim=1)
        text = F.normalize(self.text_projection(text), dim=1)
        fused = fuse(self.config.fusion, image, text)
        return self.output(self.pre_output(fused)).squeeze(1)


def save(path: str | Path, head: HateClipper, meta: dict) -> None:
    """A plain state dict plus plain values, so loading needs no unpickling of code."""
    checkpoint = {"state_dict": head.state_dict(), "config": asdict(head.config), **meta}
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load(path: str | Path) -> tuple[HateClipper, dict]:
    """Load a head saved by `save`: returns the model (eval mode) and the checkpoint's meta."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: trained head not found; run `dvc repro train` first")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        config = checkpoint.pop("config")
        head = HateClipper(HeadConfig(**{**config, "drop_probs": tuple(config["drop_probs"])}))
        head.load_state_dict(checkpoint.pop("state_dict"))
    except Exception as err:  # noqa: BLE001 - any failure here means "not our checkpoint"
        raise InputError(f"{path}: not a head checkpoint this project can load ({err})") from None
    return head.eval(), checkpoint


@torch.no_grad()
def predict_probs(head: HateClipper, image, text, batch_size: int = 4096) -> np.ndarray:
    """Hate probabilities for feature rows (tensors on the head's device, or numpy arrays)."""
    image, text = torch.as_tensor(image), torch.as_tensor(text)
    head.eval()
    logits = [head(image[i:i + batch_size], text[i:i + batch_size])
              for i in range(0, len(image), batch_size)]
    return torch.sigmoid(torch.cat(logits)).float().cpu().numpy()


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
