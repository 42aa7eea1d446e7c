"""Make a scratch DVC workspace from this project, for the demo and the DVC tests.

    python scripts/workspace.py DIR [--data DIR] [--n 600] [--layout kaggle] [--stream NAME] [--set key=value ...]

Copies the pipeline (stages/, dvc.yaml, params.yaml, ignore files) into a fresh git + DVC repo
at DIR, so the user's own params.yaml, dvc.lock and caches are never touched. With --n it also
generates a synthetic meme set in DIR/data/synthetic, tracks it with `dvc add` as the README
asks of the real set (so queued and --temp experiments find it), and points params.yaml at it
with the `tiny` random encoder; --stream adds a text stream to the set and names it in
data.texts (scripts/synthetic.py). --set edits params.yaml lines in place, keeping their comments.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ["stages", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore",
            "features/.gitignore", "models/.gitignore", "reports/.gitignore",
            "data/README.md", "paper_table.yaml"]
SYNTHETIC = {"data.dir": "data/synthetic", "clip.model": "tiny", "clip.pretrained": "none"}
# What each synthetic format needs beyond that: its reader, and the split that picks the epoch
# (TamilMemes and MAMI ship without one: 10% of train is carved out).
FORMAT_SETTINGS = {"kaggle": {}, "challenge": {"data.dev_split": "dev_seen"},
                   "propaganda": {"data.layout": "propaganda", "data.dev_split": "val"},
                   "tamil": {"data.layout": "tamil", "data.dev_fraction": "0.1"},
                   "mmf": {},
                   "harmeme": {"data.layout": "harmeme", "data.dev_split": "val"},
                   "harmp": {"data.layout": "harmeme", "data.dev_split": "val"},
                   "multioff": {"data.layout": "multioff", "data.dev_split": "val"},
                   "mami": {"data.layout": "mami", "data.dev_fraction": "0.1"},
                   "mami_inline": {"data.layout": "mami", "data.dev_fraction": "0.1"},
                   "pridemm": {"data.layout": "pridemm", "data.dev_split": "val"},
                   "mmhs150k": {"data.layout": "mmhs150k", "data.dev_split": "val"}}


def set_param(params_file: Path, dotted: str, value: str) -> None:
    """Replace one `key: value` line under its section, leaving comments and layout alone."""
    lines = params_file.read_text().splitlines(keepends=True)
    *section, key = dotted.split(".")
    indent, inside = ("  ", False) if section else ("", True)
    for i, line in enumerate(lines):
        if section and re.match(rf"{section[0]}:\s*(#.*)?$", line):
            inside = True
        elif inside and re.match(rf"{indent}{key}:", line):
            comment = re.search(r"\s+#.*$", line)
            lines[i] = f"{indent}{key}: {value}{comment.group(0) if comment else ''}\n"
            params_file.write_text("".join(lines))
            return
    raise KeyError(f"no line for {dotted} in {params_file}")


def run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def make(target: Path, data: str | None, n: int | None, layout: str, settings: list[str],
         stream: str = "") -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    run(["git", "init", "-q"], target)
    run([sys.executable, "-m", "dvc", "init", "-q"], target)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], target)
    for name in PIPELINE:
        source, dest = ROOT / name, target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest)
    params_file = target / "params.yaml"
    if n is not None:
        run([sys.executable, "-m", "scripts.synthetic", str(target / "data/synthetic"), "--n", str(n),
             "--layout", layout, "--stream", stream], ROOT)
        run([sys.executable, "-m", "dvc", "add", "-q", "data/synthetic"], target)
        for key, value in SYNTHETIC.items():
            set_param(params_file, key, value)
        for key, value in FORMAT_SETTINGS[layout].items():
            set_param(params_file, key, value)
        if stream:
            set_param(params_file, "data.texts", f"[{stream}]")
    if data:
        set_param(params_file, "data.dir", data)
    for setting in settings:
        key, _, value = setting.partition("=")
        set_param(params_file, key, value)
    run(["git", "add", "-A"], target)
    run(["git", "-c", "user.name=demo", "-c", "user.email=demo@localhost", "commit", "-qm",
         "Scratch workspace of the Hate-CLIPper pipeline"], target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--data", help="point data.dir here")
    parser.add_argument("--n", type=int, help="generate a synthetic set of this many memes")
    parser.add_argument("--layout", choices=tuple(FORMAT_SETTINGS), default="kaggle")
    parser.add_argument("--stream", default="", help="with --n: a text stream of this name (data.texts)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    make(args.dir.resolve(), args.data, args.n, args.layout, args.set, args.stream)


if __name__ == "__main__":
    main()
