#!/usr/bin/env bash
# make demo: the real pipeline on a generated synthetic meme set with the random `tiny` encoder,
# in a scratch DVC workspace (demo/), so your own params.yaml and dvc.lock stay untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@localhost
export GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@localhost
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cat <<'NOTE'
Hate-CLIPper demo. Read this first:
  * the memes are SYNTHETIC (python -m scripts.synthetic): coloured scenes with captions whose
    label is an interaction of picture and caption, like the real set's benign confounders;
  * the CLIP encoder is the RANDOMLY INITIALISED `tiny` config, not trained weights.
So every AUROC below is a smoke test of the pipeline, not a result on Hateful Memes.
NOTE

step "Making a scratch DVC workspace in demo/ with 1000 synthetic memes (tracked by dvc add)"
python scripts/workspace.py demo --n 1000
cd demo

step "dvc repro: extract (frozen encoder, once) -> train -> evaluate -> predict -> interpret"
dvc repro
git add -A && git commit -qm "demo: first run (fusion=cross)"

step "dvc metrics show"
dvc metrics show

step "dvc exp run -S fusion=align: a head-only change, so extract is skipped"
time (dvc exp run -S fusion=align 2>&1 | grep -v "^epoch")

step "dvc metrics diff: align (workspace) against cross (HEAD)"
dvc metrics diff

step "dvc exp run --queue, twice, then dvc queue start: each in a fresh copy of the repo"
dvc exp run --queue -S fusion=cross_nd
dvc exp run --queue -S fusion=concat
dvc queue start -j 1
# grep without -q reads the whole status, so pipefail never sees a broken pipe
while dvc queue status | grep -E "Queued|Running" >/dev/null; do sleep 2; done
dvc queue status

# the trained files' hashes and DVC's bookkeeping columns left out, so that it fits a wide terminal
step "dvc exp show --only-changed --drop 'models/|Created|State|Executor'"
dvc exp show --only-changed --drop 'models/|Created|State|Executor'

step "dvc plots show: ROC, precision-recall, confusion and training curves"
dvc plots show -o plots_html

step "The pictures this run made (PNG: they need no network)"
find reports -name '*.png' | sort | sed 's|^|  demo/|'
cat <<DONE

Done. Open demo/plots_html/index.html for the plots: the pictures in it show offline, the
interactive Vega plots load their library from a CDN. reports/interpret/ holds the paper's
Sec. 5 clusters of the hateful memes (sheets/ are contact sheets of memes). Run more
experiments with, from demo/:
  dvc exp run -S fusion=cross_nd -S head.map_dim=64
  dvc exp show --only-changed
Remember: random encoder, synthetic memes. See README.md for the real dataset and weights.
DONE
