"""Picture files: image grids, latent scatters, histograms and curves as PNG files in a run
directory (matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_write


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def save(figure, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(figure)
    atomic_write(path, buffer.getvalue())
    return path


def _show(axis, image: np.ndarray, vmin: float, vmax: float) -> None:
    """One (C, H, W) image on ``axis``: gray for one channel, RGB for three."""
    if image.shape[0] == 1:
        axis.imshow(image[0], cmap="gray_r", vmin=vmin, vmax=vmax, interpolation="nearest")
    else:
        axis.imshow(np.clip((image.transpose(1, 2, 0) - vmin) / max(vmax - vmin, 1e-12), 0, 1),
                    interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])


def display_range(images: np.ndarray) -> tuple[float, float]:
    """Robust (low, high) for showing ``images``: their 0.5th and 99.5th percentiles."""
    low, high = np.percentile(images, [0.5, 99.5])
    return float(low), float(high if high > low else low + 1.0)


def image_grid(images: np.ndarray, path: str | Path, *, columns: int = 10, row_labels: list[str] | None = None,
               title: str | None = None, value_range: tuple[float, float] | None = None) -> Path:
    """Images (N, C, H, W) in rows of ``columns``; ``row_labels`` names each row."""
    plt = pyplot()
    rows = int(np.ceil(len(images) / columns))
    vmin, vmax = value_range or display_range(images)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 0.8, rows * 0.8 + (0.4 if title else 0)),
                                squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index < len(images):
            _show(axis, images[index], vmin, vmax)
        else:
            axis.axis("off")
    if row_labels:
        for row, label in enumerate(row_labels[:rows]):
            axes[row, 0].set_ylabel(str(label), rotation=0, ha="right", va="center")
    if title:
        figure.suptitle(title)
    return save(figure, Path(path))


def reconstruction_grid(originals: np.ndarray, reconstructions: np.ndarray, path: str | Path, *,
                        title: str = "inputs and their reconstructions") -> Path:
    """Inputs and their reconstructions in alternating rows of ten."""
    columns = 10
    pairs = []
    for start in range(0, len(originals), columns):
        block = slice(start, start + columns)
        pad = columns - len(originals[block])
        filler = np.full((pad, *originals.shape[1:]), np.nan)
        pairs += [np.concatenate([originals[block], filler]), np.concatenate([reconstructions[block], filler])]
    images = np.concatenate(pairs)
    labels = ["input" if i % 2 == 0 else "output" for i in range(len(pairs))]
    return image_grid(images, path, columns=columns, row_labels=labels, title=title,
                      value_range=display_range(originals))


def latent_scatter(codes: np.ndarray, labels: np.ndarray | None, class_names: list | None, path: str | Path, *,
                   title: str = "latent codes") -> Path:
    """The codes in 2-D, coloured by class. Codes with more than two numbers are shown along
    their first two principal components (the title says which)."""
    plt = pyplot()
    if codes.shape[1] == 1:
        points, axes_name = np.column_stack([codes[:, 0], np.zeros(len(codes))]), "code"
    elif codes.shape[1] == 2:
        points, axes_name = codes, "the two latent numbers"
    else:
        centred = codes - codes.mean(axis=0)
        _, _, vectors = np.linalg.svd(centred, full_matrices=False)
        points, axes_name = centred @ vectors[:2].T, f"first two principal components of {codes.shape[1]}-D codes"
    figure, axis = plt.subplots(figsize=(6, 5))
    if labels is None:
        axis.scatter(points[:, 0], points[:, 1], s=6, alpha=0.7)
    else:
        colours = plt.get_cmap("tab10" if len(class_names or []) <= 10 else "tab20")
        for code in np.unique(labels):
            chosen = labels == code
            name = class_names[code] if class_names else code
            axis.scatter(points[chosen, 0], points[chosen, 1], s=8, alpha=0.75, color=colours(int(code) % 20),
                         label=str(name))
        axis.legend(markerscale=2, fontsize=8, loc="best", frameon=False)
    axis.set_title(f"{title} ({axes_name})", fontsize=10)
    return save(figure, Path(path))


def score_histogram(normal: np.ndarray, anomalous: np.ndarray, threshold: float, path: str | Path) -> Path:
    """Anomaly scores of normal and anomalous test rows, with the threshold."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(np.concatenate([normal, anomalous]), bins=40)
    axis.hist(normal, bins=bins, alpha=0.6, label=f"normal ({len(normal)})")
    axis.hist(anomalous, bins=bins, alpha=0.6, label=f"anomalous ({len(anomalous)})")
    axis.axvline(threshold, color="black", linestyle="--", label="threshold")
    axis.set_xlabel("reconstruction error")
    axis.set_ylabel("test rows")
    axis.legend(frameon=False)
    return save(figure, Path(path))


def curve(xs, series: dict[str, list[float]], path: str | Path, *, xlabel: str = "epoch", ylabel: str = "",
          title: str | None = None) -> Path:
    """One line per named series."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for name, ys in series.items():
        axis.plot(xs, ys, marker="o", markersize=3, label=name)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    if title:
        axis.set_title(title)
    if len(series) > 1:
        axis.legend(frameon=False)
    axis.grid(alpha=0.3)
    return save(figure, Path(path))
