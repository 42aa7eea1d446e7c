"""Stage 2, train: fit train.runs Hate-CLIPper heads on the cached features, in one loop.

    python -m stages.train            (reads params.yaml: fusion, head.*, train.*, data.dev_split)

No CLIP model is loaded: the needed splits come from the HDF5 cache into memory once, and the
loop runs on tensors (GPU when present). After every epoch each run's dev AUROC decides its
early stopping; every run is saved at its best epoch, all in one checkpoint.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from stages.cache import features
from stages.common import distributed
from stages.common import params as params_module
from stages.common.errors import InputError, run_stage
from stages.common.files import write_csv, write_json
from stages.data import fine_grained
from stages.data.memes import TRAIN_SPLIT
from stages.data.task import HATEFUL, Task
from stages.head import adamw, backprop, hateclipper, inputs, losses, retrieval
from stages.head.hateclipper import predict_probs
from stages.report import plotting, scoring

CURVES = Path("reports/training_curves.csv")
CURVES_PICTURE = CURVES.with_suffix(".png")
TRAIN_SUMMARY = Path("reports/train.json")


def as_tensors(split: features.SplitFeatures, device: torch.device):
    """Features, and labels (N, L) as floats with -1 where unknown."""
    return (torch.from_numpy(split.image).to(device), torch.from_numpy(split.text).to(device),
            torch.from_numpy(split.labels.astype(np.float32)).to(device))


def check_splits(p: params_module.Params, splits: dict[str, features.SplitFeatures],
                 task: Task) -> None:
    for name in (TRAIN_SPLIT, p.data.dev_split):
        if not task.is_labeled(splits[name].labels):
            raise InputError(f"split '{name}' has no labels; training needs labeled "
                             f"'{TRAIN_SPLIT}' and data.dev_split '{p.data.dev_split}' splits")
    if len(task.labels) > 1 and p.train.loss == "rgcl":
        raise InputError(f"train.loss rgcl mines same-label positives, so it needs one primary "
                         f"label; this task has {len(task.labels)} (train.loss: bce serves it)")
    if p.train.super_loss_weight and (task.labels != HATEFUL.labels or task.auxiliary != fine_grained.LABELS):
        raise InputError("train.super_loss_weight trains the official super output over the hateful "
                         "logit and the 14 fine-grained ones: it needs data.layout hateful_memes with "
                         "data.fine_grained set")


def primary_loss(logits: torch.Tensor, labels: torch.Tensor, task: Task) -> torch.Tensor:
    """Each run's loss (runs,) of the primary labels: the mean BCE over binary labels, or one
    C-class label's cross-entropy."""
    if task.is_categorical:
        return losses.masked_cross_entropy(logits[..., task.primary], labels[..., task.primary])
    return losses.bce(logits[..., task.primary], labels[..., task.primary])


def task_loss(logits: torch.Tensor, labels: torch.Tensor, task: Task, aux_weight: float
              ) -> torch.Tensor:
    """Each run's loss (runs,): the primary labels', plus aux_weight x the mean over the
    auxiliary labels of each one's loss over the memes that know it (the binary ones' BCE
    pooled as one)."""
    loss = primary_loss(logits, labels, task)
    if aux_weight and task.auxiliary:
        terms = [losses.masked_cross_entropy(logits[..., start:end], labels[..., start:end])
                 for start, end in task.spans if start >= len(task.labels)]
        binary = [k for k in range(len(task.labels), len(task.names))
                  if not any(start <= k < end for start, end in task.spans)]
        if binary:
            terms.append(losses.masked_bce(logits[..., binary], labels[..., binary]))
        loss = loss + aux_weight * torch.stack(terms).mean(0)
    return loss


def side_loss(p: params_module.Params, sides: dict[str, torch.Tensor], labels: torch.Tensor,
              task: Task) -> torch.Tensor | float:
    """The official code's side losses, each weighted by its train.<side>_loss_weight: each
    unimodal head's loss of the primary labels, the super output's BCE of the first."""
    total = 0.0
    for side, logits in sides.items():
        weight = getattr(p.train, f"{side}_loss_weight")
        total = total + weight * (losses.bce(logits, labels[..., :1]) if side == "super"
                                  else primary_loss(logits, labels, task))
    return total


def train(p: params_module.Params, splits: dict[str, features.SplitFeatures],
          device: torch.device, log=print, task: Task = HATEFUL,
          projections: dict[str, np.ndarray] | None = None
          ) -> tuple[hateclipper.HateClipper, list[dict], np.ndarray]:
    """The training loop for all train.runs heads at once; returns the heads, each at its own
    best epoch, one row per epoch with every run's train loss, dev AUROC and dev score (the
    train.select metric, which picks the epoch), and each run's best (saved) epoch.

    Runs are independent: run k is initialised and shuffled from seed + k, draws its own dropout
    masks, has its gradient clipped by its own norm and keeps its own best epoch. A run that
    early-stops keeps stepping (in a batched step it costs nothing) but its saved epoch no
    longer moves; the loop ends when every run has stopped. `projections`: CLIP's, which a
    pretrained map starts from.
    """
    runs, seed = p.train.runs, p.train.seed
    torch.manual_seed(seed)  # dropout masks
    image, text, labels = as_tensors(splits[TRAIN_SPLIT], device)
    views = image_views(splits[TRAIN_SPLIT], device)
    dev_image, dev_text, dev_labels = as_tensors(splits[p.data.dev_split], device)
    config = hateclipper.HeadConfig.from_params(p, image.shape[1], text.shape[1], task, projections)
    dev_known = dev_labels[:, task.primary].cpu().numpy()
    head = hateclipper.HateClipper(config, seed, projections).to(device)
    # A small head's step is a few dozen tiny kernels: per-kernel overhead, not FLOPs, sets
    # the pace, so the optimizer runs as one fused kernel over all runs' weights (the head
    # keeps every layer of every run in that one tensor).
    optimizer = adamw.AdamW(head.weights, lr=p.train.lr, weight_decay=p.train.weight_decay)
    orders = [torch.Generator().manual_seed(seed + run) for run in range(runs)]
    view_draws = torch.Generator().manual_seed(seed)  # apart, so views change nothing else
    best = head.weights.detach().clone()
    best_score, best_epoch = np.full(runs, -np.inf), np.zeros(runs, dtype=int)
    stale = np.zeros(runs, dtype=int)
    stopped, history = np.zeros(runs, dtype=bool), []
    with backprop.training_step(head, p.train.loss, len(labels), p.train.batch_size,
                                p.train.epochs) as step:
        for epoch in range(1, p.train.epochs + 1):
            # RGCL mines among the whole training split's embeddings, refreshed once per epoch
            index = hateclipper.outputs(head, image, text)[0] if p.train.loss == "rgcl" else None
            head.train()
            order = torch.stack([torch.randperm(len(labels), generator=g) for g in orders]).to(device)
            total_loss = torch.zeros(runs, device=device)
            for start in range(0, len(labels), p.train.batch_size):
                batch = order[:, start:start + p.train.batch_size]  # (runs, b): each run's own memes
                if views is None:
                    batch_image = image[batch]
                else:  # each meme, each epoch: one of its plain and augmented views
                    view = torch.randint(len(views), batch.shape, generator=view_draws).to(device)
                    batch_image = views[view, batch]
                if step is not None:
                    loss = step(batch_image, text[batch], labels[batch])
                else:
                    loss = autograd_step(p, head, task, batch_image, text[batch], labels, batch, index)
                clip_grad_norm_per_run(head.weights.grad, p.train.grad_clip)
                optimizer.step()
                total_loss += loss.detach() * batch.shape[1]
            dev_probs = predict_probs(head, dev_image, dev_text)[..., task.primary]
            dev_auroc = np.array([scoring.mean_auroc(dev_known, probs) for probs in dev_probs])
            dev_score = np.array([scoring.dev_score(p.train.select, dev_known, probs, task)
                                  for probs in dev_probs])
            history.append({"epoch": epoch, "train_loss": (total_loss / len(labels)).cpu().numpy(),
                            "dev_auroc": dev_auroc, "dev_score": dev_score})
            log(f"epoch {epoch:3d}  train loss {history[-1]['train_loss'].mean():.4f}  "
                f"{p.data.dev_split} AUROC {spread(dev_auroc)}"
                + (f"  {p.train.select} {spread(dev_score)}" if p.train.select != "auroc" else ""))
            improved = (dev_score > best_score) & ~stopped  # NaN (one-class dev) is never better
            mask = torch.from_numpy(improved).to(device)
            best[mask] = head.weights.detach()[mask]
            best_score[improved], best_epoch[improved] = dev_score[improved], epoch
            stale = np.where(improved, 0, stale + ~stopped)
            stopped |= stale >= p.train.patience
            if stopped.all():
                log(f"early stop: no {p.data.dev_split} {p.train.select} gain for {p.train.patience} epochs"
                    + (" in any run" if runs > 1 else ""))
                break
    if np.isinf(best_score).any():
        raise InputError(f"{p.data.dev_split} {p.train.select} was never defined: the dev split "
                         "needs memes of both labels")
    with torch.no_grad():
        head.weights.copy_(best)
    return head.eval(), history, best_epoch


def autograd_step(p: params_module.Params, head: hateclipper.HateClipper, task: Task,
                  image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor,
                  batch: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """Each run's loss (runs,) on a batch, its gradient left in the head by autograd: for
    what the hand-written step does not serve (RGCL, GELU, C-class or auxiliary labels, side
    outputs, a fusion without a backward: stages/head/backprop.supports)."""
    embedding, logits, sides = head.run(image, text)
    loss = task_loss(logits, labels[batch], task, p.train.aux_weight) + side_loss(p, sides, labels[batch], task)
    if index is not None:
        weight = p.train.rgcl_weight
        loss = (1 - weight) * loss + weight * rgcl_loss(p, embedding, batch, labels[:, 0], index)
    head.zero_grad(set_to_none=False)  # zeroed in place: a fresh gradient a step is page faults
    loss.sum().backward()  # runs share no weight: each gets its own loss's gradient
    return loss.detach()


def image_views(split: features.SplitFeatures, device: torch.device) -> torch.Tensor | None:
    """(1 + views, N, D): the plain image features, then each cached augmented view."""
    if split.image_views is None:
        return None
    plain = torch.from_numpy(split.image)[None]
    return torch.cat([plain, torch.from_numpy(split.image_views).transpose(0, 1)]).to(device)


def rgcl_loss(p: params_module.Params, embedding: torch.Tensor, batch: torch.Tensor,
              labels: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """RGCL's loss of each run (runs,) for a batch of training positions (runs, b), in the
    form train.rgcl_form says: its positives and hard negatives are mined from `index`, the
    split's embeddings, as the retrieval.* options say."""
    positive, negative, has_negative = retrieval.mine(
        embedding.detach(), labels[batch], batch, index, labels, p.retrieval.self_positive,
        p.retrieval.hard_negative_pool)
    width = index.shape[-1]

    def pick(positions):
        return index.gather(1, positions[..., None].expand(-1, -1, width))

    if p.train.rgcl_form == "triplet":
        return losses.rgcl_triplet(embedding, labels[batch], pick(positive), pick(negative),
                                   has_negative, p.train.rgcl_margin)
    return losses.rgcl_contrastive(embedding, labels[batch], pick(positive), pick(negative),
                                   has_negative)


@torch.no_grad()
def clip_grad_norm_per_run(grad: torch.Tensor, max_norm: float) -> None:
    """clip_grad_norm_ for each run apart: the head's one gradient (runs, P), each row scaled
    by its own norm."""
    norms = torch.linalg.vector_norm(grad, dim=1, keepdim=True)
    grad.mul_((max_norm / (norms + 1e-6)).clamp_(max=1.0))


def write_index(head: hateclipper.HateClipper, split: features.SplitFeatures, task: Task,
                fingerprint: str) -> None:
    """The retrieval classifier's index: the trained runs' embeddings of the training split
    (plain features) and its primary labels, whichever classifier params.yaml names, so that
    switching it reruns only evaluate."""
    embeddings, _ = hateclipper.outputs(head, split.image, split.text)
    labels = torch.from_numpy(split.labels[:, task.primary].astype(np.int64))
    index = retrieval.Index(embeddings, labels, split.ids)
    retrieval.save(retrieval.INDEX, index, {"cache_fingerprint": fingerprint,
                                            "head": retrieval.head_id(head)})


def spread(values: np.ndarray) -> str:
    """`0.8123` for one run, `0.8123 ± 0.0100 (5 runs)` for several (sample std)."""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{values.mean():.4f} ± {scoring.std_over_runs(values):.4f} ({len(values)} runs)"


def curves(history: list[dict], select: str) -> pd.DataFrame:
    """Per epoch, the mean and the sample std over runs of train loss, dev AUROC and, when
    another metric picks the epoch, that metric (`dev_<train.select>`)."""
    columns = {"train_loss": "train_loss", "dev_auroc": "dev_auroc"}
    if select != "auroc":
        columns["dev_score"] = f"dev_{select}"
    rows = []
    for h in history:
        row = {"epoch": h["epoch"]}
        for key, name in columns.items():
            row[name] = float(h[key].mean())
            row[f"{name}_std"] = scoring.std_over_runs(h[key])
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the Hate-CLIPper head on cached features.")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    p = params_module.load(args.params)
    splits, attrs = inputs.load_checked(features.CACHE, p, [TRAIN_SPLIT, p.data.dev_split],
                                                views=True)
    task = inputs.task_of(attrs)
    check_splits(p, splits, task)
    device = distributed.resolve_device("auto")
    started = time.perf_counter()
    projections = inputs.projections(features.CACHE) if p.head.pretrained_map else None
    head, history, epochs = train(p, splits, device, task=task, projections=projections)
    seconds = time.perf_counter() - started
    best = {key: np.array([history[e - 1][key][run] for run, e in enumerate(epochs)])
            for key in ("dev_auroc", "dev_score")}
    hateclipper.save(hateclipper.CHECKPOINT, head.cpu(), {
        # new memes are encoded with the very settings of the cache (predict --image/--jsonl)
        "encoder": {key: attrs[key] for key in params_module.FEATURE_SETTINGS},
        "features": p.head.features,
        "caption": p.head.caption,  # the stream a caption mode reads
        "cache_fingerprint": attrs["fingerprint"],
        "best_epochs": epochs.tolist(),
        "task": task.to_json(),
    })
    write_index(head, splits[TRAIN_SPLIT], task, attrs["fingerprint"])
    table = curves(history, p.train.select)
    write_csv(CURVES, table)
    plotting.training_curves(CURVES_PICTURE, table, p.data.dev_split)
    summary = {
        "runs": p.train.runs, "epochs_run": len(history),
        "best_epoch": float(epochs.mean()),  # mean over runs
        "best_dev_auroc": float(best["dev_auroc"].mean()),
        "best_dev_auroc_std": scoring.std_over_runs(best["dev_auroc"]),
        "selected_by": p.train.select,
        "trainable_params": hateclipper.trainable_params(head.config),  # one run's
    }
    if p.train.select != "auroc":
        summary[f"best_dev_{p.train.select}"] = float(best["dev_score"].mean())
    write_json(TRAIN_SUMMARY, summary)
    print(f"saved {hateclipper.CHECKPOINT}: best epoch{'s' if p.train.runs > 1 else ''} "
          f"{', '.join(map(str, epochs))} ({p.data.dev_split} {p.train.select} "
          f"{spread(best['dev_score'])}); {summary['trainable_params']:,} trainable parameters "
          f"a run; {len(history)} epochs in {seconds:.1f}s on {device}")


if __name__ == "__main__":
    run_stage(main)
