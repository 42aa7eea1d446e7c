"""The official code's caption modes (`head.caption_mode`, engine.py and datasets.py's
`--caption_mode`): how a caption stream (`head.caption`, one of data.texts) enters the head.

Each mode says what the image side and the text side read from the cache, and whether a
second fusion, of the caption with the text, joins the image-text fusion:

    none               image, text
    replace_image      caption (through the text projection), text
    replace_text       image, caption
    concat_with_text   image, the stream `text [SEP] caption` (stages/data/texts.py)
    parallel_mean      image, text; and fusion(caption, text), averaged with fusion(image, text)
    parallel_max       ... their elementwise maximum
    parallel_align     ... their elementwise product

The caption goes through the text projection wherever it enters, as in the official code.
Every mode reads only what extract cached, so a change of mode reruns the head alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class CaptionMode:
    image: str  # what the image side reads: "image", or "caption" through the text projection
    text: str  # what the text side reads: "text", "caption" or "joined" (text [SEP] caption)
    parallel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # (fused, caption's)


# head.caption_mode's choices; params.py reads the names here.
CAPTION_MODES = {
    "none": CaptionMode("image", "text"),
    "replace_image": CaptionMode("caption", "text"),
    "replace_text": CaptionMode("image", "caption"),
    "concat_with_text": CaptionMode("image", "joined"),
    "parallel_mean": CaptionMode("image", "text", lambda fused, other: (fused + other) / 2.0),
    "parallel_max": CaptionMode("image", "text", torch.maximum),
    "parallel_align": CaptionMode("image", "text", torch.mul),
}
