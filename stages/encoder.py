"""The frozen CLIP encoders, built by open_clip from `clip.model` and `clip.pretrained`.

`clip.pretrained` is an open_clip pretrained tag (`openai` for the paper's ViT-L-14), a local
checkpoint path, or `none` for a seeded random init. The model config `tiny`, shipped in
stages/model_configs/, is a small random ViT that runs fast on a CPU for tests and the demo.

Hate-CLIPper reads the *pooled* outputs of both towers, before CLIP's final projections into
the shared embedding space. open_clip applies those projections inside each tower, so the
encoder takes them out of the model and applies them itself: one forward pass yields both
the pooled features and the projected embeddings.

Image preprocessing is open_clip's, split in two: decode workers resize and crop to uint8
tensors (`prepare_image`), and the scaling and normalisation run on the device, where they
are free; uint8 batches also cross to the GPU at a quarter of the bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
from torch import nn
from torchvision.transforms import Compose, Normalize
from torchvision.transforms.functional import pil_to_tensor

from stages import params
from stages.outputs import InputError

open_clip.add_model_config(Path(__file__).parent / "model_configs")
RANDOM_INIT = "none"
RANDOM_INIT_SEED = 0  # fixed so random-init features are reproducible across runs


@dataclass
class Encoder:
    model: nn.Module
    prepare_image: Compose  # PIL image -> uint8 (3, H, W), resized and cropped as CLIP wants
    mean: torch.Tensor  # (3, 1, 1) on the device: open_clip's Normalize
    std: torch.Tensor
    input_dtype: torch.dtype  # bf16 where the weights are (GPU), float32 on the CPU
    tokenizer: object  # list[str] -> (N, context_length) token ids
    image_projection: torch.Tensor | nn.Module
    text_projection: torch.Tensor | nn.Module
    device: torch.device
    info: dict  # what the cache records about the encoder

    @property
    def image_widths(self) -> tuple[int, int]:
        """(pooled width, embedding width) of the image tower, read off CLIP's projection."""
        projection = self.image_projection
        if isinstance(projection, nn.Linear):
            return projection.in_features, projection.out_features
        return projection.shape[0], projection.shape[1]

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, 3, H, W) from prepare_image -> pooled (N, width), projected (N, embed_dim)."""
        # ToTensor's scaling and Normalize, as open_clip's preprocess does them, on the device.
        x = pixels.to(self.device, non_blocking=True).to(torch.float32).div_(255)
        x = x.sub_(self.mean).div_(self.std).to(self.input_dtype)
        pooled = self.model.visual(x)
        return to_numpy(pooled), to_numpy(project(pooled, self.image_projection))

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Captions -> pooled (N, width), projected (N, embed_dim); long ones truncated as CLIP does."""
        pooled = self.model.encode_text(self.tokenizer(texts).to(self.device))
        return to_numpy(pooled), to_numpy(project(pooled, self.text_projection))


def project(pooled: torch.Tensor, projection: torch.Tensor | nn.Module) -> torch.Tensor:
    if isinstance(projection, nn.Module):
        return projection(pooled)
    return pooled @ projection.to(pooled.dtype)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.float().cpu().numpy()


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto`: open_clip's bf16 mode (OpenAI-style: bf16 weights, fp32 LayerNorm) on GPUs that
    have bf16, full precision elsewhere."""
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def load(model_name: str, pretrained: str, device: str = "auto", precision: str = "auto"
         ) -> Encoder:
    """Build the frozen encoder; errors for unknown names or unreachable weights are one line."""
    if model_name not in open_clip.list_models():
        raise InputError(
            f"clip.model: unknown open_clip model {model_name!r} "
            "(see open_clip.list_models(); `tiny` is the small config shipped here)"
        )
    check_pretrained(model_name, pretrained)
    torch_device = params.resolve_device(device)
    precision = resolve_precision(precision, torch_device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=None if pretrained == RANDOM_INIT else pretrained,
                device=torch_device, precision=precision,
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
    prepare_image, normalize = split_preprocess(preprocess)
    return Encoder(
        model=model,
        prepare_image=prepare_image,
        mean=torch.tensor(normalize.mean, device=torch_device).view(3, 1, 1),
        std=torch.tensor(normalize.std, device=torch_device).view(3, 1, 1),
        input_dtype=open_clip.get_input_dtype(precision) or torch.float32,
        tokenizer=open_clip.get_tokenizer(model_name),
        image_projection=image_projection,
        text_projection=text_projection,
        device=torch_device,
        info={
            "model": model_name,
            "pretrained": pretrained,
            "image_size": int(image_size[0] if isinstance(image_size, tuple) else image_size),
            "open_clip_version": open_clip.__version__,
            "precision": precision,  # recorded, not part of the cache identity: see README
        },
    )


def split_preprocess(preprocess: Compose) -> tuple[Compose, Normalize]:
    """open_clip's eval transform is resize, crop, RGB, ToTensor, Normalize: keep the part
    before ToTensor for the decode workers (ending in a uint8 tensor) and hand back Normalize."""
    steps = preprocess.transforms
    to_tensor = next((i for i, step in enumerate(steps) if "ToTensor" in type(step).__name__), None)
    if to_tensor is None or not isinstance(steps[-1], Normalize) or to_tensor != len(steps) - 2:
        raise RuntimeError(f"unexpected open_clip preprocessing {preprocess}; "
                           "stages/encoder.py expects ... ToTensor, Normalize")
    return Compose([*steps[:to_tensor], pil_to_tensor]), steps[-1]


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
