"""Static pictures (PNG; SVG where a path ends in .svg) that need no network: curves, confusion
matrices, contact sheets, heatmaps, forest plots. DVC's own plots render with Vega from a CDN;
these show in `dvc plots show` offline, and in any image viewer.

Every figure is written atomically (as every output) and closed at once: the stages make many.
"""
from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only
matplotlib.rcParams["svg.fonttype"] = "none"  # an SVG's text stays text: editable in a paper

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from stages.common.files import atomic_path  # noqa: E402

DPI = 110


def save(figure, path: str | Path) -> None:
    """PNG, or SVG where the path ends in .svg (the temporary name beside it has no suffix)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="svg" if Path(path).suffix == ".svg" else "png", dpi=DPI,
                       bbox_inches="tight")
    plt.close(figure)


def curves(path: str | Path, series: dict[str, tuple[np.ndarray, np.ndarray]], xlabel: str,
           ylabel: str, title: str, chance: bool = False) -> None:
    """One line per split (label -> (x, y)), on one unit square; `chance`: the diagonal."""
    figure, axes = plt.subplots(figsize=(5, 5))
    for label, (x, y) in series.items():
        axes.plot(x, y, label=label, linewidth=1.5)
    if chance:
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=xlabel, ylabel=ylabel, title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right" if chance else "lower left", fontsize=8)
    save(figure, path)


def confusion(path: str | Path, matrices: dict[str, np.ndarray], title: str) -> None:
    """A 2x2 count matrix (actual x predicted) per split, side by side."""
    figure, axes = plt.subplots(1, len(matrices), figsize=(3.2 * len(matrices), 3.4), squeeze=False,
                                layout="constrained")
    for ax, (split, matrix) in zip(axes[0], matrices.items()):
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center",
                    color="white" if count > matrix.max() / 2 else "black")
        ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual", title=split)
    figure.suptitle(title)
    save(figure, path)


def training_curves(path: str | Path, table, dev_split: str) -> None:
    """Train loss and dev AUROC per epoch, each the mean over runs with a band of one std."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, label in ((axes[0], "train_loss", "train loss"),
                           (axes[1], "dev_auroc", f"{dev_split} AUROC")):
        mean, std = table[key].to_numpy(), table[f"{key}_std"].to_numpy()
        ax.plot(table["epoch"], mean, marker=".")
        ax.fill_between(table["epoch"], mean - std, mean + std, alpha=0.25)
        ax.set(xlabel="epoch", ylabel=label, title=label)
        ax.grid(alpha=0.3)
    save(figure, path)


THUMBNAIL = 200  # a contact sheet's thumbnail box (px)
LINE = 14  # one line of a sheet's text (px)
CELL = (THUMBNAIL + 10, THUMBNAIL + 3 * LINE)  # one meme: its thumbnail, then id and caption


@functools.cache
def sheet_font() -> ImageFont.FreeTypeFont:
    """matplotlib's own DejaVu Sans, always installed with it: Latin, Greek, Cyrillic and
    Arabic captions draw as letters (Pillow's default font has Basic Latin only)."""
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), 11)


def contact_sheet(path: str | Path, memes: list[tuple[str, Path | None, str]], title: str,
                  columns: int = 6) -> None:
    """Thumbnails with their id and the caption's first words; a meme without an image file
    (the data folder is elsewhere) shows its id and caption as text. Pasted with Pillow: a
    grid of matplotlib axes took as long as the rest of interpret, which draws one per cluster."""
    heading = textwrap.fill(title, columns * CELL[0] // 7)  # ~7 px a character
    top = (heading.count("\n") + 2) * LINE
    rows = max(1, -(-len(memes) // columns))
    sheet = Image.new("RGB", (columns * CELL[0], top + rows * CELL[1]), "white")
    ImageDraw.Draw(sheet).multiline_text((5, 5), heading, fill="black", font=sheet_font())
    for k, meme in enumerate(memes):
        sheet.paste(meme_cell(*meme), (k % columns * CELL[0], top + k // columns * CELL[1]))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="png")


def meme_cell(meme_id: str, image: Path | None, caption: str) -> Image.Image:
    """One meme's cell: its thumbnail centred above its id and the caption's first words, or
    its id and caption as text; text that would run past the cell is cut at its edge."""
    cell = Image.new("RGB", CELL, "white")
    draw = ImageDraw.Draw(cell)
    if image is None:
        text = textwrap.fill(textwrap.shorten(caption, 450, placeholder="..."), 30)
        draw.multiline_text((5, 0), f"{meme_id}\n\n{text}", fill="black", font=sheet_font())
        return cell
    with Image.open(image) as picture:
        picture.thumbnail((THUMBNAIL, THUMBNAIL))
        cell.paste(picture.convert("RGB"), (5 + (THUMBNAIL - picture.width) // 2,
                                            (THUMBNAIL - picture.height) // 2))
    words = textwrap.shorten(caption, 36, placeholder="...")
    draw.multiline_text((5, THUMBNAIL + 2), f"{meme_id}\n{words}", fill="black", font=sheet_font())
    return cell


def heatmaps(path: str | Path, maps: dict[str, np.ndarray], title: str, xlabel: str,
             ylabel: str) -> None:
    """One signed heatmap per entry (title -> 2-D array) on a shared symmetric colour scale."""
    columns = min(5, len(maps))
    rows = -(-len(maps) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.6 * rows), squeeze=False)
    scale = max(float(np.abs(m).max()) for m in maps.values()) or 1.0
    image = None
    for ax in axes.flat:
        ax.axis("off")
    for k, (ax, (name, values)) in enumerate(zip(axes.flat, maps.items())):
        image = ax.imshow(values, cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel(xlabel, fontsize=7)
        if k % columns == 0:  # one y label per row
            ax.set_ylabel(ylabel, fontsize=7)
        ax.axis("on")
        ax.tick_params(labelsize=6)
    figure.colorbar(image, ax=axes, shrink=0.6)
    figure.suptitle(title, fontsize=9)
    save(figure, path)


def forest(path: str | Path, panels: dict[str, list[dict]], title: str) -> None:
    """A forest plot, one panel per split: a line per cell with its value and interval
    (blue; hollow where the paired test does not tell it apart from the reference cell),
    what a constant prediction scores (grey square), the paper's figure (red tick), the
    reference cell's interval shaded. A row: label, value, low, high, constant (None without
    a result), paper (or None), reference, same_as_reference."""
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 0.4 * max(map(len, panels.values())) + 1.4),
                                sharey=True, squeeze=False)
    for ax, (split, rows) in zip(axes[0], panels.items()):
        for y, row in enumerate(reversed(rows)):
            if row["value"] is not None:
                if row["reference"]:
                    ax.axvspan(row["low"], row["high"], color="steelblue", alpha=0.12, zorder=0)
                filled = row["reference"] or not row["same_as_reference"]
                ax.errorbar(row["value"], y, xerr=[[row["value"] - row["low"]], [row["high"] - row["value"]]],
                            fmt="o", color="steelblue", mfc="steelblue" if filled else "white", capsize=3)
                ax.plot(row["constant"], y, marker="s", color="grey", markersize=5)
            if row["paper"] is not None:
                ax.plot(row["paper"], y, marker="|", color="crimson", markersize=14, mew=2)
        ax.set_yticks(range(len(rows)), [r["label"] for r in reversed(rows)])
        ax.set(xlabel=split)
        ax.grid(axis="x", alpha=0.3)
    figure.suptitle(title)
    save(figure, path)
