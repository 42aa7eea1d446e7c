"""The frozen CLIP encoders, built by open_clip from `clip.model` and `clip.pretrained`.

`clip.pretrained` is an open_clip pretrained tag (`openai` for the paper's ViT-L-14), a local
checkpoint path, or `none` for a seeded random init. The model config `tiny`, shipped in
stages/model_configs/, is a small random ViT that runs fast on a CPU for tests and the demo.

Hate-CLIPper reads the *pooled* outputs of both towers, before CLIP's final projections into
the shared embedding space. open_clip applies those projections inside each tower, so the
encoder takes them out of the model and applies them itself: one forward pass yields both
the pooled features and the projected embeddings.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
from torch import nn

from stages import params
from stages.outputs import InputError

open_clip.add_model_config(Path(__file__).parent / "model_configs")
RANDOM_INIT = "none"
RANDOM_INIT_SEED = 0  # fixed so random-init features are reproducible across runs


@dataclass
class Encoder:
    model: nn.Module
    preprocess: object  # PIL image -> (3, H, W) tensor
    tokenizer: object  # list[str] -> (N, context_length) token ids
    image_projection: torch.Tensor | nn.Module
    text_projection: torch.Tensor | nn.Module
    device: torch.device
    info: dict  # what the cache records about the encoder

    def _autocast(self):
        # bf16 on GPUs that have it (fp16 otherwise); full precision on the CPU.
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3, H, W) preprocessed images -> pooled (N, width), projected (N, embed_dim)."""
        with self._autocast():
            pooled = self.model.visual(pixels.to(self.device, non_blocking=True))
            projected = project(pooled, self.image_projection)
        return to_numpy(pooled), to_numpy(projected)

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Captions -> pooled (N, width), projected (N, embed_dim); long ones truncated as CLIP does."""
        tokens = self.tokenizer(texts).to(self.device)
        with self._autocast():
            pooled = self.model.encode_text(tokens)
            projected = project(pooled, self.text_projection)
        return to_numpy(pooled), to_numpy(projected)


def project(pooled: torch.Tensor, projection: torch.Tensor | nn.Module) -> torch.Tensor:
    if isinstance(projection, nn.Module):
        return projection(pooled)
    return pooled @ projection.to(pooled.dtype)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.float().cpu().numpy()


def load(model_name: str, pretrained: str, device: str = "auto") -> Encoder:
    """Build the frozen encoder; errors for unknown names or unreachable weights are one line."""
    if model_name not in open_clip.list_models():
        raise InputError(
            f"clip.model: unknown open_clip model {model_name!r} "
            "(see open_clip.list_models(); `tiny` is the small config shipped here)"
        )
    check_pretrained(model_name, pretrained)
    torch_device = params.resolve_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=None if pretrained == RANDOM_INIT else pretrained,
                device=torch_device,
            )
        except Exception as err:  # noqa: BLE001 - hub, file and format errors all land here
            raise InputError(
                f"clip.pretrained: could not load {pretrained!r} weights for {model_name} "
                f"({type(err).__name__}: {err}). Pretrained tags download on first use; on an "
                "offline machine point clip.pretrained at a local checkpoint file"
            ) from None
    model.eval().requires_grad_(False)
    image_projection, text_projection = detach_projections(model, model_name)
    image_size = model.visual.image_size
    return Encoder(
        model=model,
        preprocess=preprocess,
        tokenizer=open_clip.get_tokenizer(model_name),
        image_projection=image_projection,
        text_projection=text_projection,
        device=torch_device,
        info={
            "model": model_name,
            "pretrained": pretrained,
            "image_size": int(image_size[0] if isinstance(image_size, tuple) else image_size),
            "open_clip_version": open_clip.__version__,
        },
    )


def check_pretrained(model_name: str, pretrained: str) -> None:
    if pretrained == RANDOM_INIT or Path(pretrained).is_file():
        return
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained not in tags:
        known = ", ".join(tags) or "none for this model"
        raise InputError(
            f"clip.pretrained: {pretrained!r} is neither a pretrained tag of {model_name} "
            f"(known: {known}), a checkpoint file, nor `none`"
        )


def detach_projections(model: nn.Module, model_name: str):
    """Take CLIP's final projections out of both towers, so the towers return pooled features."""
    visual = model.visual
    text_tower = getattr(model, "text", model)  # CustomTextCLIP keeps its text tower apart
    if getattr(visual, "proj", None) is None or getattr(text_tower, "text_projection", None) is None:
        raise InputError(
            f"clip.model {model_name}: pooled features need a ViT image tower and a text tower "
            "with separate final projections (the CLIP ViT family, as in the paper)"
        )
    image_projection, visual.proj = visual.proj, None
    text_projection, text_tower.text_projection = text_tower.text_projection, None
    return image_projection, text_projection
