"""The frozen CLIP encoders, built by open_clip from the `clip.*` params.

`clip.pretrained` is an open_clip pretrained tag (`openai` for the paper's ViT-L-14), a local
checkpoint path, or `none` for a seeded random init. The model config `tiny`, shipped in
stages/encoder/model_configs/, is a small random ViT that runs fast on a CPU for tests and the demo.

With the committed params the features are those of the official Hate-CLIPper code (Hugging
Face's CLIPModel on OpenAI's weights):
- images: PIL `convert("RGB")`, then `resize((S, S))` bicubic whatever the aspect ratio
  (`clip.resize: squash`), OpenAI's mean/std;
- activation: QuickGELU wherever the pretrained tag says its weights were trained with it
  (open_clip's plain `ViT-L-14` config would otherwise build GELU and only warn);
- captions: [SOT] + BPE + [EOT] in 77 tokens; a longer caption keeps its first 75 BPE tokens and
  its EOT, as the official collator's `CLIPTokenizer(truncation=True)` (model_max_length 77)
  cuts it, and is pooled at that EOT;
- fp32 (`clip.precision`), and the *pooled* outputs of both towers, before CLIP's final
  projections: open_clip applies those inside each tower, so the encoder takes them out of the
  model and applies them itself, and one forward pass yields pooled and projected features.

Image preprocessing is split in two: decode workers resize to uint8 tensors (`prepare_image`),
and the scaling and normalisation run on the device, where they are free; uint8 batches also
cross to the GPU at a quarter of the bytes.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import Compose, Normalize
from torchvision.transforms.functional import pil_to_tensor

from stages.common import distributed
from stages.common.errors import InputError

open_clip.add_model_config(Path(__file__).parent / "model_configs")
RANDOM_INIT = "none"
RANDOM_INIT_SEED = 0  # fixed so random-init features are reproducible across runs


@dataclass
class Encoder:
    model: nn.Module
    prepare_image: Compose  # PIL image -> uint8 (3, S, S), resized as clip.resize says
    mean: torch.Tensor  # (3, 1, 1) on the device: open_clip's Normalize
    std: torch.Tensor
    input_dtype: torch.dtype  # the weights' dtype (clip.precision)
    tokenizer: open_clip.tokenizer.SimpleTokenizer  # CLIP's BPE
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
        """Captions -> pooled (N, width), projected (N, embed_dim)."""
        # open_clip's tokenizer truncates as Hugging Face's does: the EOT takes the last place.
        pooled = self.model.encode_text(self.tokenizer(texts).to(self.device))
        return to_numpy(pooled), to_numpy(project(pooled, self.text_projection))


def augmented_view(image: Image.Image, seed: str) -> Image.Image:
    """One augmented view, drawn from `seed` alone (so a cache is reproducible whatever the
    worker order): a random crop of 80-100% of the area (aspect ratio 3/4-4/3, as torchvision's
    RandomResizedCrop draws it) and a horizontal flip half the time. prepare_image then resizes
    it by clip.resize, as any image."""
    rng = random.Random(seed)
    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(0.8, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        crop_width, crop_height = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            left, top = rng.randint(0, width - crop_width), rng.randint(0, height - crop_height)
            image = image.crop((left, top, left + crop_width, top + crop_height))
            break
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


def project(pooled: torch.Tensor, projection: torch.Tensor | nn.Module) -> torch.Tensor:
    if isinstance(projection, nn.Module):
        return projection(pooled)
    return pooled @ projection.to(pooled.dtype)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.float().cpu().numpy()


def load(model: str, pretrained: str, resize: str = "squash", precision: str = "fp32",
         device: str = "auto") -> Encoder:
    """Build the frozen encoder; errors for unknown names or unreachable weights are one line."""
    if model not in open_clip.list_models():
        raise InputError(
            f"clip.model: unknown open_clip model {model!r} "
            "(see open_clip.list_models(); `tiny` is the small config shipped here)"
        )
    check_pretrained(model, pretrained)
    quick_gelu = uses_quick_gelu(model, pretrained)
    torch_device = distributed.resolve_device(device)
    if precision == "fp32":  # TF32 convolutions (cuDNN's default) would round the patch embedding
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        try:
            clip, _, preprocess = open_clip.create_model_and_transforms(
                model, pretrained=None if pretrained == RANDOM_INIT else pretrained,
                device=torch_device, precision=precision, force_quick_gelu=quick_gelu,
                image_resize_mode=resize,
                # the official code's PIL resize is bicubic; the other modes follow the tag
                image_interpolation="bicubic" if resize == "squash" else None,
            )
        except Exception as err:  # noqa: BLE001 - hub, file and format errors all land here
            raise InputError(
                f"clip.pretrained: could not load {pretrained!r} weights for {model} "
                f"({type(err).__name__}: {err}). Pretrained tags download on first use; on an "
                "offline machine point clip.pretrained at a local checkpoint file"
            ) from None
    clip.eval().requires_grad_(False)
    image_projection, text_projection = detach_projections(clip, model)
    image_size = clip.visual.image_size
    prepare_image, normalize = split_preprocess(preprocess)
    return Encoder(
        model=clip,
        prepare_image=prepare_image,
        mean=torch.tensor(normalize.mean, device=torch_device).view(3, 1, 1),
        std=torch.tensor(normalize.std, device=torch_device).view(3, 1, 1),
        input_dtype=open_clip.get_input_dtype(precision) or torch.float32,
        tokenizer=bpe_tokenizer(model),
        image_projection=image_projection,
        text_projection=text_projection,
        device=torch_device,
        info={
            "model": model,
            "pretrained": pretrained,
            "resize": resize,
            "precision": precision,
            "activation": "quick_gelu" if quick_gelu else "gelu",
            "image_size": int(image_size[0] if isinstance(image_size, tuple) else image_size),
            "open_clip_version": open_clip.__version__,
        },
    )


def uses_quick_gelu(model: str, pretrained: str) -> bool:
    """The activation the weights were trained with: a pretrained tag's `quick_gelu` decides.

    open_clip builds `ViT-L-14` with GELU even for OpenAI's QuickGELU weights, and only warns.
    A local checkpoint carries no such flag: its model name decides (`ViT-L-14-quickgelu` for
    OpenAI's weights, see docs/fidelity.md)."""
    model_quick_gelu = bool(open_clip.get_model_config(model).get("quick_gelu", False))
    tag = open_clip.get_pretrained_cfg(model, pretrained)
    if not tag:
        return model_quick_gelu
    tag_quick_gelu = bool(tag.get("quick_gelu", False))
    if model_quick_gelu and not tag_quick_gelu:
        raise InputError(
            f"clip.model {model} uses QuickGELU, but the {pretrained!r} weights were trained "
            f"with GELU; use the model name without -quickgelu"
        )
    return tag_quick_gelu


def bpe_tokenizer(model: str) -> open_clip.tokenizer.SimpleTokenizer:
    tokenizer = open_clip.get_tokenizer(model)
    if not isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer) or tokenizer.reduction_fn:
        raise InputError(f"clip.model {model}: its text tower does not use CLIP's BPE tokenizer "
                         "with plain truncation (the CLIP ViT family does, as in the paper)")
    return tokenizer


def split_preprocess(preprocess: Compose) -> tuple[Compose, Normalize]:
    """open_clip's eval transform is resize (and crop), RGB, ToTensor, Normalize: keep the part
    before ToTensor for the decode workers (ending in a uint8 tensor) and hand back Normalize."""
    steps = preprocess.transforms
    to_tensor = next((i for i, step in enumerate(steps) if "ToTensor" in type(step).__name__), None)
    if to_tensor is None or not isinstance(steps[-1], Normalize) or to_tensor != len(steps) - 2:
        raise RuntimeError(f"unexpected open_clip preprocessing {preprocess}; "
                           "stages/encoder/clip.py expects ... ToTensor, Normalize")
    return Compose([*steps[:to_tensor], pil_to_tensor]), steps[-1]


def check_pretrained(model: str, pretrained: str) -> None:
    if pretrained == RANDOM_INIT or Path(pretrained).is_file():
        return
    tags = open_clip.list_pretrained_tags_by_model(model)
    if pretrained not in tags:
        known = ", ".join(tags) or "none for this model"
        raise InputError(
            f"clip.pretrained: {pretrained!r} is neither a pretrained tag of {model} "
            f"(known: {known}), a checkpoint file, nor `none`"
        )


def detach_projections(clip: nn.Module, model: str):
    """Take CLIP's final projections out of both towers, so the towers return pooled features."""
    visual = clip.visual
    text_tower = getattr(clip, "text", clip)  # CustomTextCLIP keeps its text tower apart
    if getattr(visual, "proj", None) is None or getattr(text_tower, "text_projection", None) is None:
        raise InputError(
            f"clip.model {model}: pooled features need a ViT image tower and a text tower "
            "with separate final projections (the CLIP ViT family, as in the paper)"
        )
    image_projection, visual.proj = visual.proj, None
    text_projection, text_tower.text_projection = text_tower.text_projection, None
    return image_projection, text_projection
