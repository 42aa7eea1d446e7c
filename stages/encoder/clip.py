"""The frozen CLIP encoders, built by open_clip from the `clip.*` params.

`clip.model` is any open_clip model name; `clip.pretrained` an open_clip pretrained tag
(`openai` for the paper's ViT-L-14), a local checkpoint path, or `none` for a seeded random init.
The model configs `tiny` (a small ViT), `tiny-timm` (a small timm tower) and `tiny-rn` (a
small attention-pooled ResNet, which yields projected features only), shipped in
stages/encoder/model_configs/, run fast on a CPU for tests and the demo.

Every model yields its *projected* features: what its `encode_image` / `encode_text` return
(the CLIP embedding space). Where a tower ends in a separable final linear projection (CLIP's
ViT `proj`, a text tower's `text_projection`, a timm tower's head `proj` or its classifier used
as projection, a Hugging Face text tower's linear `proj`), the encoder takes that projection
out of the model and applies it itself, so one forward pass yields the *pooled* features before
it as well: the paper's features. Which towers separate is decided from the model and checked
on a probe at load (projecting the pooled features must give the untouched model's output);
pooled features are cached only where both towers separate (docs/fidelity.md lists the families).

Each model keeps its own tokenizer (`open_clip.get_tokenizer`, or a local copy of a Hugging Face
tokenizer named by `clip.tokenizer`) and preprocessing (the pretrained config's mean/std; the
resize mode and interpolation as `clip.resize` says, `model` for the tag's own).

With the committed params the features are those of the official Hate-CLIPper code (Hugging
Face's CLIPModel on OpenAI's weights):
- images: PIL `convert("RGB")`, then `resize((S, S))` bicubic whatever the aspect ratio
  (`clip.resize: squash`), OpenAI's mean/std;
- activation: QuickGELU wherever the pretrained tag says its weights were trained with it
  (open_clip's plain `ViT-L-14` config would otherwise build GELU and only warn);
- captions: [SOT] + BPE + [EOT] in 77 tokens; a longer caption keeps its first 75 BPE tokens and
  its EOT, as the official collator's `CLIPTokenizer(truncation=True)` (model_max_length 77)
  cuts it, and is pooled at that EOT;
- fp32 (`clip.precision`), and the pooled outputs of both towers.

Image preprocessing is split in two: decode workers resize to uint8 tensors (`prepare_image`),
and the scaling and normalisation run on the device, where they are free; uint8 batches also
cross to the GPU at a quarter of the bytes.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
MODEL_TOKENIZER = "model"  # clip.tokenizer: the model's own, as open_clip builds it
MODEL_RESIZE = "model"  # clip.resize: the pretrained tag's own resize mode and interpolation


@dataclass
class Projection:
    """A tower's final linear projection, taken out of the tower (`owner.name`, set to
    `neutral`) so that the tower returns the pooled features before it."""
    owner: nn.Module
    name: str
    weight: torch.Tensor | nn.Module
    neutral: nn.Module | None  # what stands in its place: None where the tower skips a None
    held: object = None  # what detach took out of the tower, for restore

    def detach(self) -> None:
        self.held = getattr(self.owner, self.name)
        setattr(self.owner, self.name, self.neutral)

    def restore(self) -> None:
        setattr(self.owner, self.name, self.held)

    def __call__(self, pooled: torch.Tensor) -> torch.Tensor:
        if isinstance(self.weight, nn.Module):
            return self.weight(pooled)
        return pooled @ self.weight.to(pooled.dtype)

    @property
    def in_width(self) -> int:
        weight = self.weight
        return weight.in_features if isinstance(weight, nn.Linear) else weight.shape[0]

    def matrices(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The projection as x W (+ b): W (in, out) and its bias, or None (CLIP's has none)."""
        if isinstance(self.weight, nn.Linear):
            bias = self.weight.bias
            return (to_numpy(self.weight.weight.T),
                    None if bias is None else to_numpy(bias))
        return to_numpy(self.weight), None


@dataclass
class Encoder:
    model: nn.Module
    prepare_image: Compose  # PIL image -> uint8 (3, S, S), resized as clip.resize says
    mean: torch.Tensor  # (3, 1, 1) on the device: open_clip's Normalize
    std: torch.Tensor
    input_dtype: torch.dtype  # the weights' dtype (clip.precision)
    tokenizer: Callable[[list[str]], torch.Tensor]  # the model's own: captions -> token ids
    # Both towers' final projections where both separate (pooled features exist), else None.
    projections: tuple[Projection, Projection] | None
    embed_dim: int  # the width of the projected features
    device: torch.device
    info: dict  # what the cache records about the encoder

    @property
    def kinds(self) -> tuple[str, ...]:
        """The feature kinds this encoder yields (`head.features` values)."""
        return ("pooled", "projected") if self.projections else ("projected",)

    @property
    def image_widths(self) -> tuple[int | None, int]:
        """(pooled width or None, embedding width) of the image tower."""
        return (self.projections[0].in_width if self.projections else None), self.embed_dim

    @torch.inference_mode()
    def projection_matrices(self) -> dict[str, np.ndarray]:
        """Each tower's final projection (`image`, `text`, and `<tower>_bias` where it has
        one), where both separate: what head.pretrained_map starts from."""
        found = {}
        for tower, projection in zip(("image", "text"), self.projections or ()):
            weight, bias = projection.matrices()
            found[tower] = weight
            if bias is not None:
                found[f"{tower}_bias"] = bias
        return found

    def encode_images(self, pixels: torch.Tensor) -> tuple[np.ndarray | None, np.ndarray]:
        """uint8 (N, 3, H, W) from prepare_image -> pooled (N, width) or None, projected
        (N, embed_dim)."""
        return self.split(self.tower_outputs(pixels, None)[0], 0)

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """Captions -> pooled (N, width) or None, projected (N, embed_dim)."""
        return self.split(self.tower_outputs(None, texts)[1], 1)

    def tower_outputs(self, pixels: torch.Tensor | None, texts: list[str] | None):
        """What the model's encode_image / encode_text return (unnormalised) for either input."""
        image = text = None
        if pixels is not None:
            # ToTensor's scaling and Normalize, as open_clip's preprocess does them, on the device.
            x = pixels.to(self.device, non_blocking=True).to(torch.float32).div_(255)
            x = x.sub_(self.mean).div_(self.std).to(self.input_dtype)
            image = self.model.encode_image(x, normalize=False)
        if texts is not None:
            text = self.model.encode_text(self.tokenizer(texts).to(self.device), normalize=False)
        return image, text

    def split(self, output: torch.Tensor, tower: int) -> tuple[np.ndarray | None, np.ndarray]:
        """A tower's output as (pooled, projected): with its projection taken out the output is
        pooled, and projecting it gives the model's own embedding."""
        if self.projections is None:
            return None, to_numpy(output)
        return to_numpy(output), to_numpy(self.projections[tower](output))


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


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


def load(model: str, pretrained: str, resize: str = "squash", precision: str = "fp32",
         tokenizer: str = MODEL_TOKENIZER, device: str = "auto") -> Encoder:
    """Build the frozen encoder; errors for unknown names or unreachable weights are one line."""
    if model not in open_clip.list_models():
        raise InputError(
            f"clip.model: unknown open_clip model {model!r} "
            "(see open_clip.list_models(); `tiny`, `tiny-timm` and `tiny-rn` are small configs shipped here)"
        )
    check_pretrained(model, pretrained)
    captions_to_tokens = model_tokenizer(model, tokenizer)
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
                image_resize_mode=None if resize == MODEL_RESIZE else resize,
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
    prepare_image, normalize = split_preprocess(preprocess)
    image_size = clip.visual.image_size
    enc = Encoder(
        model=clip,
        prepare_image=prepare_image,
        mean=torch.tensor(normalize.mean, device=torch_device).view(3, 1, 1),
        std=torch.tensor(normalize.std, device=torch_device).view(3, 1, 1),
        input_dtype=open_clip.get_input_dtype(precision) or torch.float32,
        tokenizer=captions_to_tokens,
        projections=None,
        embed_dim=int(open_clip.get_model_config(model)["embed_dim"]),
        device=torch_device,
        info={
            "model": model,
            "pretrained": pretrained,
            "resize": resize,
            "precision": precision,
            "tokenizer": tokenizer,
            "activation": "quick_gelu" if quick_gelu else "gelu",
            "image_size": int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size),
            "open_clip_version": open_clip.__version__,
        },
    )
    enc.projections = separate_projections(enc)
    return enc


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


def model_tokenizer(model: str, tokenizer: str) -> Callable[[list[str]], torch.Tensor]:
    """The model's own tokenizer, with its own truncation: open_clip's CLIP BPE keeps the EOT in
    the last place, as the official code's Hugging Face tokenizer cuts; a Hugging Face tokenizer
    cuts as `truncation=True` does. `tokenizer` names a local copy of a Hugging Face one."""
    text_cfg = open_clip.get_model_config(model).get("text_cfg", {})
    # open_clip downloads Hugging Face tokenizers, and SigLIP's by name
    downloads = bool(text_cfg.get("hf_tokenizer_name")) or "siglip" in model.lower()
    if tokenizer != MODEL_TOKENIZER and not downloads:
        raise InputError(f"clip.tokenizer: {model} uses open_clip's built-in BPE tokenizer, which "
                         f"needs no copy; set clip.tokenizer: {MODEL_TOKENIZER}")
    tried = f"the local copy {tokenizer}" if tokenizer != MODEL_TOKENIZER else (
        f"{text_cfg.get('hf_tokenizer_name') or 'its tokenizer'} from the Hugging Face hub")
    try:
        if tokenizer == MODEL_TOKENIZER:
            return open_clip.get_tokenizer(model)
        return open_clip.tokenizer.HFTokenizer(
            tokenizer, context_length=text_cfg.get("context_length", 77),
            tokenizer_mode=text_cfg.get("tokenizer_mode"), **text_cfg.get("tokenizer_kwargs", {}))
    except ImportError as err:
        raise InputError(f"clip.model {model}: its tokenizer needs the Hugging Face libraries "
                         f"({err}); pip install transformers sentencepiece") from None
    except Exception as err:  # noqa: BLE001 - hub, network and file errors all land here
        raise InputError(
            f"clip.tokenizer: could not load the tokenizer of {model} ({tried}: "
            f"{type(err).__name__}: {one_line(err)}). Offline, save it where there is a network "
            f"(open_clip.get_tokenizer({model!r}).save_pretrained('tokenizers/{model}')) and set "
            f"clip.tokenizer: tokenizers/{model}"
        ) from None


def one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:300]


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


def separate_projections(enc: Encoder) -> tuple[Projection, Projection] | None:
    """Both towers' final projections, taken out of the model, where both separate; else None
    (the model is left whole and yields projected features only).

    A projection separates when it is the last step of its tower: checked on a probe image and
    caption, where projecting the detached tower's output must give the whole model's."""
    found = image_projection(enc.model.visual), text_projection(enc.model)
    if None in found:
        return None
    probe_pixels = torch.full((1, 3, *enc.prepare_image(Image.new("RGB", (8, 8))).shape[1:]), 128,
                              dtype=torch.uint8)
    probe = probe_pixels, ["a probe caption"]
    with torch.inference_mode():
        whole = enc.tower_outputs(*probe)
        for projection in found:
            projection.detach()
        separated = [projection(pooled) for projection, pooled in zip(found, enc.tower_outputs(*probe))]
    if all(same_embedding(to_numpy(a), to_numpy(b)) for a, b in zip(whole, separated)):
        return found
    for projection in found:
        projection.restore()
    return None


def same_embedding(a: np.ndarray, b: np.ndarray) -> bool:
    # loose enough for bf16/fp16 rounding; a wrongly separated tower is off by far more
    return a.shape == b.shape and np.linalg.norm(a - b) <= 1e-2 * np.linalg.norm(a)


def image_projection(visual: nn.Module) -> Projection | None:
    """CLIP's ViT `proj`; a timm tower's head `proj`, or its classifier where open_clip uses the
    classifier as the projection. Attention-pooled ResNets and towers with an MLP head or none
    have no separable projection."""
    if isinstance(getattr(visual, "proj", None), (nn.Parameter, nn.Linear)):
        return Projection(visual, "proj", visual.proj, None)  # the ViT skips a None proj
    head, trunk = getattr(visual, "head", None), getattr(visual, "trunk", None)
    if isinstance(head, nn.Sequential) and trunk is not None:
        if len(head) and isinstance(head[-1], nn.Linear) and list(head._modules)[-1] == "proj":
            return Projection(head, "proj", head.proj, nn.Identity())
        classifier = trunk.get_classifier() if hasattr(trunk, "get_classifier") else None
        if not len(head) and isinstance(classifier, nn.Linear):
            path = next(name for name, module in trunk.named_modules() if module is classifier)
            owner = trunk.get_submodule(path.rpartition(".")[0])
            return Projection(owner, path.rpartition(".")[2], classifier, nn.Identity())
    return None


def text_projection(clip: nn.Module) -> Projection | None:
    """The text tower's `text_projection` (CLIP keeps it on the model, the others on their text
    tower); a Hugging Face text tower's linear `proj`."""
    tower = getattr(clip, "text", clip)
    projection = getattr(tower, "text_projection", None)
    if isinstance(projection, (nn.Parameter, nn.Linear)):
        return Projection(tower, "text_projection", projection, None)  # skipped when None
    if isinstance(getattr(tower, "proj", None), nn.Linear):
        return Projection(tower, "proj", tower.proj, nn.Identity())
    return None
