"""Hate-CLIPper on frozen CLIP features: the DVC stages over folders named for what they hold.

    extract.py -> train.py -> evaluate.py, interpret.py   (DVC stages; python -m stages.X)
                  predict.py: new memes, and the splits' predictions evaluate also writes
      data/      release files -> meme records and a task; no torch
      encoder/   the frozen open_clip towers and small model configs: what decides a feature
      cache/     the HDF5 format and its writer, extraction's units of work
      head/      the Hate-CLIPper head, its hand-written backward and AdamW step, losses,
                 retrieval, trigger vectors, the checked inputs
      report/    metrics, intervals, baselines, pictures, prediction and submission files
      common/    params, errors, atomic writes, devices and shards

Imports run one way: stages -> {data, encoder, cache, head, report} -> common.
"""
