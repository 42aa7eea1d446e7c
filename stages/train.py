"""Stage 2, train: fit the Hate-CLIPper head on the cached features.

    python -m stages.train            (reads params.yaml: fusion, head.*, train.*, data.dev_split)

No CLIP model is loaded: the needed splits come from the HDF5 cache into memory once, and the
loop runs on tensors (GPU when present). After every epoch the dev split's AUROC decides early
stopping; the best epoch's head is saved.
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from stages import feature_reader, features, head as head_module, params as params_module, scoring
from stages.dataset import TRAIN_SPLIT
from stages.head import predict_probs
from stages.outputs import InputError, run_stage, write_csv, write_json

CURVES = Path("reports/training_curves.csv")
TRAIN_SUMMARY = Path("reports/train.json")


def as_tensors(split: features.SplitFeatures, device: torch.device):
    return (torch.from_numpy(split.image).to(device), torch.from_numpy(split.text).to(device),
            torch.from_numpy(split.labels.astype(np.float32)).to(device))


def check_splits(splits: dict[str, features.SplitFeatures], dev_split: str) -> None:
    for name in (TRAIN_SPLIT, dev_split):
        if (splits[name].labels < 0).any():
            raise InputError(f"split '{name}' has no labels; training needs labeled "
                             f"'{TRAIN_SPLIT}' and data.dev_split '{dev_split}' splits")


def train(p: params_module.Params, splits: dict[str, features.SplitFeatures],
          device: torch.device, log=print) -> tuple[head_module.HateClipper, list[dict]]:
    """The training loop: returns the best epoch's head and one row per epoch run."""
    torch.manual_seed(p.train.seed)
    image, text, labels = as_tensors(splits[TRAIN_SPLIT], device)
    dev_image, dev_text, dev_labels = as_tensors(splits[p.data.dev_split], device)
    config = head_module.HeadConfig.from_params(p, image.shape[1], text.shape[1])
    head = head_module.HateClipper(config).to(device)
    # A small head's step is a few dozen tiny kernels: per-kernel overhead, not FLOPs, sets
    # the pace, so the optimizer and the clipping each run as one fused/foreach kernel.
    parameters = list(head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=p.train.lr, weight_decay=p.train.weight_decay,
                                  fused=True)
    order = torch.Generator().manual_seed(p.train.seed)
    best, best_auroc, stale, history = None, -1.0, 0, []
    for epoch in range(1, p.train.epochs + 1):
        head.train()
        # Shuffle once per epoch, then take batches as slices: one large gather per epoch
        # instead of three small ones per step.
        permutation = torch.randperm(len(labels), generator=order).to(device)
        epoch_image, epoch_text, epoch_labels = image[permutation], text[permutation], labels[permutation]
        total_loss = torch.zeros((), device=device)
        for start in range(0, len(labels), p.train.batch_size):
            batch = slice(start, start + p.train.batch_size)
            logits = head(epoch_image[batch], epoch_text[batch])
            loss = F.binary_cross_entropy_with_logits(logits, epoch_labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, p.train.grad_clip, foreach=True)
            optimizer.step()
            total_loss += loss.detach() * len(logits)
        dev_auroc = scoring.auroc(dev_labels.cpu().numpy(), predict_probs(head, dev_image, dev_text))
        history.append({"epoch": epoch, "train_loss": float(total_loss) / len(labels),
                        "dev_auroc": dev_auroc})
        log(f"epoch {epoch:3d}  train loss {history[-1]['train_loss']:.4f}  "
            f"{p.data.dev_split} AUROC {dev_auroc:.4f}")
        if dev_auroc > best_auroc:  # NaN (one-class dev split) never counts as better
            best, best_auroc, stale = copy.deepcopy(head.state_dict()), dev_auroc, 0
        else:
            stale += 1
            if stale >= p.train.patience:
                log(f"early stop: no {p.data.dev_split} AUROC gain for {stale} epochs")
                break
    if best is None:
        raise InputError(f"{p.data.dev_split} AUROC was never defined: the dev split needs "
                         "memes of both labels")
    head.load_state_dict(best)
    return head.eval(), history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the Hate-CLIPper head on cached features.")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    p = params_module.load(args.params)
    splits, attrs = feature_reader.load_checked(features.CACHE, p, [TRAIN_SPLIT, p.data.dev_split])
    check_splits(splits, p.data.dev_split)
    device = params_module.resolve_device("auto")
    started = time.perf_counter()
    head, history = train(p, splits, device)
    seconds = time.perf_counter() - started
    best = max(history, key=lambda h: h["dev_auroc"])
    head_module.save(head_module.CHECKPOINT, head.cpu(), {
        # new memes are encoded with the very settings of the cache (predict --image/--jsonl)
        "encoder": {key: attrs[key] for key in params_module.FEATURE_SETTINGS},
        "features": p.head.features,
        "cache_fingerprint": attrs["fingerprint"],
        "best_epoch": best["epoch"],
    })
    write_csv(CURVES, pd.DataFrame(history))
    write_json(TRAIN_SUMMARY, {"best_epoch": best["epoch"], "best_dev_auroc": best["dev_auroc"],
                               "epochs_run": len(history)})
    print(f"saved {head_module.CHECKPOINT}: best epoch {best['epoch']} ({p.data.dev_split} AUROC "
          f"{best['dev_auroc']:.4f}); {len(history)} epochs in {seconds:.1f}s on {device}")


if __name__ == "__main__":
    run_stage(main)
