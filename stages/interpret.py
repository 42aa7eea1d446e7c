"""Stage 5, interpret: the paper's Section 5, clusters of hateful memes by the FIM positions
that drive them to the hateful class.

    python -m stages.interpret      (reads params.yaml: interpret.*, train.seed)

For the trained head (run 0 when train.runs > 1) every hateful training meme gets a trigger
vector (`triggers`), and K-means (scikit-learn, seeded by train.seed) clusters all of them.
Writes, under reports/interpret/:
- clusters.csv: id, cluster, triggered / positive / negative positions, per hateful meme;
- triggers.npz: the trigger vectors, a CSR matrix in scipy's `save_npz` format (numpy reads
  its `data`, `indices`, `indptr`, `shape`), rows in clusters.csv's order, columns the fused
  vector's entries (for `cross` image position i x map_dim + text position j);
- summary.json: per cluster its size and most frequent triggered FIM positions, with sign;
- positions.png: each cluster's mean trigger vector on the FIM;
- sheets/cluster_NN.png (interpret.pictures): the memes nearest each cluster's centre.
For fusions without a FIM the stage writes a summary.json that says so, and nothing else.
A set it cannot cluster as asked stays green and says why in summary.json's `note` (printed
too): fewer distinct trigger vectors than interpret.clusters give that many clusters (a head
that learned little, duplicate memes), and no triggered position or no hateful meme gives none.
"""
from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse
from sklearn.cluster import KMeans

from stages.cache.features import SplitFeatures
from stages.common import params as params_module
from stages.common.errors import run_stage
from stages.common.files import atomic_dir, write_csv, write_json
from stages.data import dataset
from stages.data.memes import TRAIN_SPLIT
from stages.head import hateclipper, inputs, triggers
from stages.report import plotting

REPORT = Path("reports/interpret")
SHEET_SIZE = 30  # memes per contact sheet: the nearest to the cluster's centre
TOP_POSITIONS = 10  # per cluster in summary.json
RUN = 0  # the head interpreted when train.runs > 1


def distinct_rows(vectors: scipy.sparse.csr_matrix) -> int:
    """How many different trigger vectors there are: K-means cannot find more clusters than
    that (a head that learned little, duplicate memes)."""
    vectors = vectors.copy()
    vectors.sort_indices()
    return len({(vectors.indices[a:b].tobytes(), vectors.data[a:b].tobytes())
                for a, b in zip(vectors.indptr[:-1], vectors.indptr[1:])})


def count_sketch(vectors: scipy.sparse.csr_matrix, width: int, seed: int) -> np.ndarray:
    """The vectors (N, fused_dim) as (N, width) float32: each fused-vector entry added, with a
    seeded random sign, into one of `width` seeded buckets (a count sketch). It keeps each
    squared distance, and so each point's distance to a mean, in expectation, and means stay
    means: the sketch of a cluster's mean is the mean of its members' sketches. One pass over
    the non-zeros: entries that share a bucket are summed when scipy densifies the matrix."""
    rng = np.random.default_rng(seed)
    bucket = rng.integers(0, width, vectors.shape[1], dtype=np.int32)
    sign = rng.choice(np.array([-1, 1], dtype=np.float32), vectors.shape[1])
    hashed = scipy.sparse.csr_matrix((vectors.data * sign[vectors.indices], bucket[vectors.indices],
                                      vectors.indptr), shape=(vectors.shape[0], width))
    return hashed.toarray()


def cluster_points(vectors: scipy.sparse.csr_matrix, sketch_dim: int, seed: int):
    """What K-means clusters: the trigger vectors themselves (float32: the cast made once), or,
    where the fused vector is wider than interpret.sketch_dim (0: never), their count sketch:
    at map_dim 1024 K-means on the million-wide vectors is slow, and the sketch finds the same
    clusters (`python -m benchmarks interpret` times both and compares them)."""
    if sketch_dim and vectors.shape[1] > sketch_dim:
        return count_sketch(vectors, sketch_dim, seed)
    return vectors.astype(np.float32)


def cluster(points, clusters: int, seed: int) -> KMeans:
    """K-means of the points into `clusters`, at most the number of distinct vectors."""
    return KMeans(n_clusters=clusters, random_state=seed, n_init=10).fit(points)


def members_of(model: KMeans) -> list[np.ndarray]:
    return [np.flatnonzero(model.labels_ == c) for c in range(model.n_clusters)]


def mean_vector(vectors: scipy.sparse.csr_matrix) -> np.ndarray:
    """A cluster's mean trigger vector (zeros for a cluster K-means left empty)."""
    if vectors.shape[0] == 0:
        return np.zeros(vectors.shape[1], dtype=np.float32)
    return np.asarray(vectors.mean(axis=0)).ravel()


def top_positions(vectors: scipy.sparse.csr_matrix, positions: np.ndarray) -> list[dict]:
    """The FIM positions a cluster's memes trigger most often, with sign and share of memes."""
    positive = np.asarray((vectors > 0).sum(axis=0)).ravel()
    negative = np.asarray((vectors < 0).sum(axis=0)).ravel()
    counts = np.maximum(positive, negative)
    order = np.argsort(-counts, kind="stable")[:TOP_POSITIONS]
    return [{"image": int(positions[c, 0]), "text": int(positions[c, 1]),
             "sign": "+" if positive[c] >= negative[c] else "-",
             "share": round(float(counts[c]) / vectors.shape[0], 4)}
            for c in order if counts[c] > 0]


def image_paths(p: params_module.Params, ids: list[str]) -> tuple[list[Path | None], str]:
    """Each meme's image file from the data folder, or None for all with a note when the
    folder is absent (a cache copied elsewhere)."""
    root = Path(p.data.dir)
    if not root.is_dir():
        return [None] * len(ids), f"{root} not found: sheets list ids and captions instead of images"
    data = dataset.read_params(p.data)
    files = {m.id: data.image_path(m) for m in data.splits[TRAIN_SPLIT]}
    return [files.get(i) for i in ids], ""


def write_pictures(folder: Path, p, split: SplitFeatures, rows: np.ndarray, model: KMeans,
                   distances: np.ndarray) -> str:
    ids = [split.ids[r] for r in rows]
    paths, note = image_paths(p, ids)
    captions = split.captions or [""] * len(split.ids)
    for c, members in enumerate(members_of(model)):
        nearest = members[np.argsort(distances[members, c], kind="stable")[:SHEET_SIZE]]
        plotting.contact_sheet(
            folder / "sheets" / f"cluster_{c:02d}.png",
            [(ids[k], paths[k], captions[rows[k]]) for k in nearest],
            f"cluster {c}: {len(members)} hateful training memes, the {len(nearest)} nearest its "
            "centre" + (f" ({note})" if note else ""))
    return note


def write_clusters(folder: Path, ids: list[str], labels: np.ndarray,
                   vectors: scipy.sparse.csr_matrix) -> None:
    write_csv(folder / "clusters.csv", pd.DataFrame({
        "id": ids, "cluster": labels, "triggered": np.diff(vectors.indptr),
        "positive": np.asarray((vectors > 0).sum(axis=1)).ravel(),
        "negative": np.asarray((vectors < 0).sum(axis=1)).ravel()}))
    write_npz(folder / "triggers.npz", vectors)


def write_npz(path: Path, matrix: scipy.sparse.csr_matrix) -> None:
    """The file scipy.sparse.save_npz writes (load_npz and np.load read it), deflated at level 1
    instead of numpy's 6, which at map_dim 1024 took several times as long (`python -m
    benchmarks interpret` weighs and times it)."""
    arrays = {"indices": matrix.indices, "indptr": matrix.indptr,
              "format": np.array(matrix.format.encode("ascii")), "shape": np.array(matrix.shape),
              "data": matrix.data}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as file:
                np.lib.format.write_array(file, array, allow_pickle=False)


def interpret(p: params_module.Params, head: hateclipper.HateClipper, split: SplitFeatures,
              folder: Path) -> dict:
    """The summary.json of one head; a set it cannot cluster as asked (no hateful meme, no
    triggered position, fewer distinct trigger vectors than interpret.clusters) gets what it
    can, and a note that says why."""
    fusion, map_dim = head.config.fusion, head.config.map_dim
    rows = np.flatnonzero(split.labels[:, 0] == 1)  # hateful: the task's first primary label
    quantiles = triggers.Quantiles(p.interpret.direction_quantiles, p.interpret.meme_quantiles)
    summary = {
        "applies": True, "fusion": fusion, "map_dim": map_dim, "run": RUN,
        "runs": head.config.runs, "hateful_memes": int(len(rows)), "clusters": 0,
        "clusters_asked": p.interpret.clusters, "note": "", "per_cluster": [], "pictures": "off",
        "clustered": "nothing",
        "quantiles": {"direction": list(quantiles.direction), "meme": list(quantiles.meme)},
        "columns": "fused-vector entries: cross i * map_dim + j (image i, text j); align (i, i); "
                   "cross_nd the off-diagonal (i, j) in row-major order",
    }
    if not len(rows):
        return {**summary, "note": "no hateful training meme: nothing to cluster"}
    d = triggers.direction(head, RUN)
    vectors = triggers.trigger_vectors(
        d, triggers.fused_vectors(head, split.image[rows], split.text[rows], RUN), quantiles)
    ids = [split.ids[r] for r in rows]
    if not vectors.nnz:
        write_clusters(folder, ids, np.full(len(rows), -1), vectors)
        return {**summary, "note": "no FIM position triggered in any hateful training meme "
                                   "(a head that learned little?): nothing to cluster"}
    distinct = distinct_rows(vectors)
    clusters = min(p.interpret.clusters, distinct)
    points = cluster_points(vectors, p.interpret.sketch_dim, p.train.seed)
    model = cluster(points, clusters, p.train.seed)
    write_clusters(folder, ids, model.labels_, vectors)
    members = members_of(model)
    plotting.heatmaps(
        folder / "positions.png",
        {f"cluster {c} ({len(m)})": triggers.as_fim(mean_vector(vectors[m]), fusion, map_dim)
         for c, m in enumerate(members)},
        f"mean trigger vector per cluster on the FIM ({fusion}, map_dim {map_dim}; red: "
        "positive, blue: negative)", "text position", "image position")
    pictures = "off"
    if p.interpret.pictures:
        note = write_pictures(folder, p, split, rows, model, model.transform(points))
        pictures = note or "sheets/cluster_NN.png"
    positions = triggers.fim_positions(fusion, map_dim)
    sketched = points.shape[1] < vectors.shape[1]
    return {**summary, "clusters": clusters, "pictures": pictures,
            "clustered": f"a count sketch of the trigger vectors, {points.shape[1]} wide, seeded by "
                         "train.seed (interpret.sketch_dim)" if sketched else "the trigger vectors",
            "note": "" if clusters == p.interpret.clusters else
                    f"{clusters} clusters, not the {p.interpret.clusters} asked: the "
                    f"{len(rows)} hateful training memes have only {distinct} distinct trigger vectors",
            "per_cluster": [{"cluster": c, "size": int(len(m)),
                             "top_positions": top_positions(vectors[m], positions)}
                            for c, m in enumerate(members)]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Cluster hateful memes by their FIM triggers.")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    p = params_module.load(args.params)
    head, _, splits = inputs.trained_head(p, [TRAIN_SPLIT])
    with atomic_dir(REPORT) as folder:
        if head.config.fusion not in triggers.fim_fusions():
            summary = {"applies": False, "fusion": head.config.fusion,
                       "reason": f"fusion {head.config.fusion} has no feature interaction matrix; "
                                 f"interpret applies to {', '.join(triggers.fim_fusions())}"}
        else:
            summary = interpret(p, head, splits[TRAIN_SPLIT], folder)
        write_json(folder / "summary.json", summary)
    if not summary["applies"]:
        print(f"interpret: {summary['reason']}; wrote {REPORT}/summary.json")
        return
    sizes = ", ".join(str(c["size"]) for c in summary["per_cluster"])
    print(f"interpret: {summary['hateful_memes']} hateful training memes in {summary['clusters']} "
          f"clusters" + (f" ({sizes})" if sizes else "") + f" by run {RUN}'s trigger vectors"
          + (f" of {head.config.runs} runs" if head.config.runs > 1 else "") + f"; wrote {REPORT}/"
          + (f"\nnote: {summary['note']}" if summary["note"] else ""))


if __name__ == "__main__":
    run_stage(main)
