"""Hate-CLIPper on frozen CLIP features: one module per DVC stage over a few library modules.

Library: params (params.yaml, validated once), dataset (jsonl + images), encoder (frozen
open_clip), features (the HDF5 cache), head (the trainable Hate-CLIPper head), scoring
(metrics), outputs (atomic files, clear errors).
Stages: extract -> train -> evaluate -> predict. `synthetic` draws demo/test meme sets.
"""
