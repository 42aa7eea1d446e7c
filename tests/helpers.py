"""Plain functions and constants that several test files share; fixtures live in the
conftest.py files. No test file imports another test file: what two of them need is here."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from scripts.workspace import FORMAT_SETTINGS
from stages import extract
from stages.cache import features
from stages.common.errors import run_stage
from stages.data import dataset
from stages.data.task import HATEFUL
from stages.head import backprop, hateclipper, losses
from stages.head.hateclipper import HeadConfig

ROOT = Path(__file__).resolve().parents[1]


def params_dict(data_dir: str | Path, dev_split: str = "dev", **overrides) -> dict:
    """The committed params.yaml, switched to the tiny random encoder and the given data."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(dir=str(data_dir), dev_split=dev_split)
    raw["clip"].update(model="tiny", pretrained="none", batch_size=32, device="cpu")
    for dotted, value in overrides.items():
        *sections, key = dotted.split("__")
        node = raw
        for section in sections:
            node = node[section]
        node[key] = value
    return raw


def write_params(workdir: Path, data_dir, dev_split: str = "dev", **overrides) -> Path:
    path = workdir / "params.yaml"
    path.write_text(yaml.safe_dump(params_dict(data_dir, dev_split, **overrides)))
    return path


def format_overrides(layout: str) -> dict:
    """scripts/workspace.py's settings for a synthetic release format, as write_params overrides."""
    return {key.replace(".", "__"): yaml.safe_load(value) for key, value in FORMAT_SETTINGS[layout].items()}


GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}


def sh(cmd: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    # Stages run as `python -m stages.X`: this interpreter's folder must come first on PATH.
    # Python writes bytecode as on a user's machine (CI's sets PYTHONDONTWRITEBYTECODE), into
    # the stages' code folders that are their deps.
    env = {**os.environ, **GIT_ENV, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
    if ok and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def workspace(target: Path, *args: str) -> Path:
    sh(f"{sys.executable} scripts/workspace.py {target} " + " ".join(args), ROOT)
    return target


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_entry(stage, monkeypatch, capsys, *argv):
    """Run a stage as `python -m stages.X` would (run_stage(main)); return (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", [stage.__name__, *argv])
    try:
        run_stage(stage.main)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.err, captured.out


def run_stages(workdir: Path, *stages) -> str:
    """Each stage in `workdir` as `python -m stages.X` runs it there (run_stage(main), no
    arguments); every one must succeed without a traceback. Their stdout. Needs neither
    monkeypatch nor capsys, so module fixtures call it too."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        for stage in stages:
            err = io.StringIO()
            mp.setattr(sys, "argv", [stage.__name__])
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    run_stage(stage.main)
            except SystemExit as exit_:
                raise AssertionError(f"{stage.__name__} exited {exit_.code}:\n{err.getvalue()}") from None
            assert "Traceback" not in err.getvalue(), (stage.__name__, err.getvalue())
    return out.getvalue()


def leftovers(workdir: Path) -> list[str]:
    """Anything an aborted stage left in the output folders (resume units excepted)."""
    found = []
    for folder in ("features", "models", "reports"):
        for path in (workdir / folder).rglob("*") if (workdir / folder).exists() else []:
            if path.is_file() and ".parts-" not in str(path):
                found.append(str(path.relative_to(workdir)))
    return found


def interaction_features(n, seed, signal=2.5):
    """Features whose label is (image bit) XOR (text bit): only a fused head can predict it."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    u, v = np.eye(24)[0], np.eye(16)[0]
    image = rng.normal(size=(n, 24)) + signal * np.outer(2 * a - 1, u)
    text = rng.normal(size=(n, 16)) + signal * np.outer(2 * b - 1, v)
    return features.SplitFeatures(ids=[str(i) for i in range(n)],
                                  labels=(a ^ b).astype(np.int8)[:, None],
                                  image=image.astype(np.float32), text=text.astype(np.float32))


def head_config(**kw):
    base = dict(image_dim=10, text_dim=7, fusion="cross", map_dim=6, num_mapping_layers=2,
                num_pre_output_layers=2, drop_probs=(0.2, 0.4, 0.1))
    return HeadConfig(**{**base, **kw})


CACHE_ATTRS = {"model": "tiny", "pretrained": "none", "resize": "squash", "precision": "fp32",
         "tokenizer": "model", "activation": "gelu", "image_size": 64, "open_clip_version": "x",
         "data_fingerprint": "abc", "on_bad_image": "fail", "task": HATEFUL.to_json()}


def split_features(n, rng, labeled=True):
    return features.SplitFeatures(
        ids=[f"{i:05d}" for i in range(n)],
        labels=rng.integers(0, 2, (n, 1)).astype(np.int8) if labeled else np.full((n, 1), -1, np.int8),
        image=rng.normal(size=(n, 6)).astype(np.float32),
        text=rng.normal(size=(n, 4)).astype(np.float32),
        image_proj=rng.normal(size=(n, 3)).astype(np.float32),
        text_proj=rng.normal(size=(n, 3)).astype(np.float32),
    )


def read_release(root: Path, layout: str, task: str | None = None, **kw):
    return dataset.read(root, layout, task=task, **kw)


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def curve_cases():
    """Labels and float32 probabilities: random, tied, and one-class splits, 1 to 200 memes."""
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 10, 200):
        for kind in ("mixed", "ties", "positives", "negatives"):
            labels = {"positives": np.ones(n, int), "negatives": np.zeros(n, int)}.get(
                kind, rng.integers(0, 2, n))
            probs = rng.integers(0, 4, n) / 4 if kind == "ties" else rng.random(n)
            yield labels, probs.astype(np.float32)


def pairwise_auroc(labels, probs):
    """AUROC as its definition: the share of (positive, negative) pairs the positive wins, a
    tie counting half."""
    positives, negatives = probs[labels == 1][:, None], probs[labels == 0][None, :]
    return ((positives > negatives) + 0.5 * (positives == negatives)).mean()


def direct_delong(labels, a, b):
    """DeLong et al. (1988) as written: the structural components from every
    (positive, negative) pair, their covariances, z and its two-sided p."""
    def psi(x, y):
        return 1.0 if x > y else 0.5 if x == y else 0.0

    pos, neg = labels == 1, labels == 0
    v10, v01, aucs = [], [], []
    for s in (a, b):
        grid = np.array([[psi(x, y) for y in s[neg]] for x in s[pos]])
        aucs.append(grid.mean())
        v10.append(grid.mean(axis=1))
        v01.append(grid.mean(axis=0))
    s = np.cov(v10) / pos.sum() + np.cov(v01) / neg.sum()
    z = (aucs[0] - aucs[1]) / math.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    return aucs[0], aucs[1], math.erfc(abs(z) / math.sqrt(2))


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# model -> whether both towers separate their final projection, so the cache holds pooled features
FAMILIES = {"RN50": False,  # attention pooling ends in its own output projection
            "EVA02-B-16": True,  # timm tower, open_clip uses its classifier as the projection
            "MobileCLIP-S1": True,
            "coca_ViT-B-32": True,  # attentional pooler, then proj; towers return tuples
            "convnext_base": True,  # timm tower with open_clip's head proj
            "ViT-B-16-SigLIP": False}  # no image projection (its MAP pooling is the embedding)


def side_head(sides, aux=0, runs=2):
    """A small cross head in eval mode with the official side outputs `sides`."""
    config = HeadConfig(image_dim=10, text_dim=7, fusion="cross", map_dim=6, num_mapping_layers=1,
                        num_pre_output_layers=1, drop_probs=(0.2, 0.4, 0.1), runs=runs, aux_outputs=aux,
                        sides=sides)
    return hateclipper.HateClipper(config, seed=3).eval()


def auroc_metrics(auroc, std, low, high, ensemble, runs=2):
    """A split's AUROC figures as evaluate reports them, spread and runs included."""
    return {"auroc": auroc, "auroc_std": std, "auroc_ci_low": low, "auroc_ci_high": high,
            "ensemble_auroc": ensemble, "runs": runs}


def f1_metrics(paper, std, low, high, ensemble, micro, runs=2):
    """A split's paper micro-F1 figures, with the standard micro-F1 and the constants' scores."""
    return {"paper_micro_f1": paper, "paper_micro_f1_std": std, "paper_micro_f1_ci_low": low,
            "paper_micro_f1_ci_high": high, "ensemble_paper_micro_f1": ensemble,
            "micro_f1": micro, "runs": runs,
            "baselines": {"all_negative": {"micro_f1": 0.0, "paper_micro_f1": 0.8811},
                          "majority": {"micro_f1": 0.0, "paper_micro_f1": 0.8811},
                          "all_positive": {"micro_f1": 0.21, "paper_micro_f1": 0.1189}}}


def nested(flat: dict) -> dict:
    """Dotted params ({"head.map_dim": 32}) as params.yaml nests them."""
    tree = {}
    for key, value in flat.items():
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def extracted(work: Path, p) -> Path:
    """Run extraction with params `p` in the folder `work`, as the stage runs there; the cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        extract.extract(p)
    return work / features.CACHE


def both_gradients(head, image, text, labels):
    """(autograd's loss, its gradient, the hand-written step's loss, its gradient) of a head
    in training mode, each step from the same seed, so both draw the same dropout masks."""
    torch.manual_seed(0)
    expected = losses.bce(head(image, text), labels)
    expected.sum().backward()
    expected_grad, head.weights.grad = head.weights.grad.clone(), None
    torch.manual_seed(0)
    loss = backprop.Step(head)(image, text, labels)
    return expected.detach(), expected_grad, loss, head.weights.grad
