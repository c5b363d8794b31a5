"""Charts for report pages, returned as PNG bytes (embedded in the page, never fetched)."""

from __future__ import annotations

import io
import math

import numpy as np

from ..metrics import calibration_bins, expected_calibration_error, roc_auc
from .pictures import _show, display_range, pyplot


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    pyplot().close(figure)
    return buffer.getvalue()


def _numbers(values) -> np.ndarray:
    """Values to plot, with NaN where a value is missing (null in the files)."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def learning_curves(history: list[dict], higher_is_better=None) -> bytes:
    """Losses per epoch (train and validation), then the validation metrics in two panels: those
    where higher is better (accuracy, F1, R²) and those where lower is (NLL, ECE, Brier, errors),
    so that no metric is flattened by another's scale. ``higher_is_better(name)`` says which (by
    default every metric is a score)."""
    plt = pyplot()
    keys = list(dict.fromkeys(k for r in history for k in r))  # validation keys: validated epochs only
    losses = [k for k in keys if k.endswith("loss")]
    metrics = [k for k in keys if k.startswith("val_") and not k.endswith("loss")]
    better = higher_is_better or (lambda name: True)
    scores = [k for k in metrics if better(k[len("val_"):])]
    errors = [k for k in metrics if k not in scores]
    groups = [("loss", losses), ("validation scores (higher is better)", scores),
              ("validation errors (lower is better)", errors)]
    groups = [group for group in groups if group[1] or group[0] == "loss"]
    figure, axes = plt.subplots(1, len(groups), figsize=(5.0 * len(groups), 3.6), squeeze=False)

    def curve(axis, key):
        kept = [r for r in history if key in r]
        axis.plot([r["epoch"] for r in kept], _numbers(r[key] for r in kept), label=key,
                  marker="o" if len(kept) < len(history) and len(kept) <= 30 else None, markersize=3)

    for axis, (title, names) in zip(axes.flat, groups):
        for key in names:
            curve(axis, key)
        axis.set_xlabel("epoch")
        axis.set_title(title, fontsize=10)
        axis.xaxis.set_major_locator(_whole_numbers())
        if names:
            axis.legend(frameon=False, fontsize=8)
        axis.grid(alpha=0.3)
    positive = all(r.get(k) is None or r[k] > 0 for r in history for k in losses)  # None: not finite
    if positive and losses:
        axes[0, 0].set_yscale("log")
    return png(figure)


def _whole_numbers():
    """Ticks at whole numbers only (epochs, trials)."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def learning_rate(history: list[dict]) -> bytes:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 2.6))
    axis.plot([r["epoch"] for r in history], [r["lr"] for r in history], color="#6b7280")
    axis.set_xlabel("epoch")
    axis.set_ylabel("learning rate (at epoch end)")
    axis.grid(alpha=0.3)
    return png(figure)


def confusion_matrix(true: np.ndarray, pred: np.ndarray, classes: list, rows: str = "test") -> bytes:
    """Counts of each true class (rows) predicted as each class; ``rows`` names the rows counted."""
    plt = pyplot()
    size = len(classes)
    counts = np.zeros((size, size), dtype=int)
    np.add.at(counts, (true, pred), 1)
    figure, axis = plt.subplots(figsize=(0.45 * size + 2.5, 0.45 * size + 2))
    axis.imshow(counts, cmap="Blues")
    labels = [str(c) for c in classes]
    axis.set_xticks(range(size), labels, rotation=45 if max(map(len, labels)) > 3 else 0)
    axis.set_yticks(range(size), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if size <= 20:
        for i in range(size):
            for j in range(size):
                if counts[i, j]:
                    axis.text(j, i, counts[i, j], ha="center", va="center", fontsize=8,
                              color="white" if counts[i, j] > counts.max() / 2 else "black")
    axis.set_title(f"{rows} confusion matrix")
    return png(figure)


ROC_CURVES = 4  # beyond this many classes: the macro average and the classes with the lowest AUC


def roc_curves(true: np.ndarray, probabilities: np.ndarray, classes: list) -> bytes:
    """ROC of the positive class (two classes) or of each class against the rest; with more than
    ``ROC_CURVES`` classes, their macro average and the three with the lowest AUC (the table of
    per-class results has every class)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    columns = [1] if len(classes) == 2 else list(range(len(classes)))
    grid = np.linspace(0, 1, 201)

    def roc(column):
        positive = (true == column).astype(int)
        score = probabilities[:, column]
        order = np.argsort(-score, kind="mergesort")
        hits = positive[order]
        tpr = np.concatenate([[0], np.cumsum(hits) / max(hits.sum(), 1)])
        fpr = np.concatenate([[0], np.cumsum(1 - hits) / max((1 - hits).sum(), 1)])
        return fpr, tpr, roc_auc(positive, score)

    curves = {column: roc(column) for column in columns}
    shown = columns
    if len(columns) > ROC_CURVES:
        mean_tpr = np.mean([np.interp(grid, fpr, tpr) for fpr, tpr, _ in curves.values()], axis=0)
        aucs = [auc for _, _, auc in curves.values() if auc == auc]
        axis.plot(grid, mean_tpr, color="#111827", linewidth=2,
                  label=f"macro average of {len(columns)} (AUC {np.mean(aucs):.3f})")
        shown = sorted(columns, key=lambda c: curves[c][2] if curves[c][2] == curves[c][2] else -1)[:3]
    for column in shown:
        fpr, tpr, auc = curves[column]
        name = f"{classes[column]}" if len(classes) > 2 else "positive class"
        if len(columns) > ROC_CURVES:
            name = f"lowest: {name}"
        axis.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})", linewidth=1.2)
    axis.plot([0, 1], [0, 1], color="#9ca3af", linestyle="--", linewidth=0.8)
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title("test ROC" + (" (one class against the rest)" if len(classes) > 2 else ""))
    axis.legend(frameon=False, fontsize=7, loc="lower right")
    return png(figure)


def captioned_pictures(images: np.ndarray, captions: list[str], title: str, columns: int = 8) -> bytes:
    """Pictures (N, C, H, W) in rows of ``columns``, each with its caption under it."""
    plt = pyplot()
    rows = max(1, int(np.ceil(len(images) / columns)))
    low, high = display_range(images)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3 + 0.4), squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index < len(images):
            _show(axis, images[index], low, high)
            axis.set_xlabel(captions[index], fontsize=7)
        else:
            axis.axis("off")
    figure.suptitle(title, fontsize=10)
    return png(figure)


def regression(true: np.ndarray, pred: np.ndarray, name: str, rows: str = "test") -> bytes:
    """Predicted against true, and residuals against predicted."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    axes[0].scatter(true, pred, s=10, alpha=0.6)
    axes[0].plot([low, high], [low, high], color="#9ca3af", linestyle="--")
    axes[0].set_xlabel(f"true {name}")
    axes[0].set_ylabel(f"predicted {name}")
    axes[0].set_title(f"{rows}: predicted vs true")
    axes[1].scatter(pred, true - pred, s=10, alpha=0.6)
    axes[1].axhline(0, color="#9ca3af", linestyle="--")
    axes[1].set_xlabel(f"predicted {name}")
    axes[1].set_ylabel("residual (true - predicted)")
    axes[1].set_title(f"{rows} residuals")
    for axis in axes:
        axis.grid(alpha=0.3)
    return png(figure)


def forecast(history_values: np.ndarray, true: np.ndarray, pred: np.ndarray, name: str) -> bytes:
    """The series' last known steps, then actual and forecast values over the test steps."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9, 3.6))
    known = np.arange(len(history_values))
    ahead = np.arange(len(history_values), len(history_values) + len(true))
    axis.plot(known, history_values, color="#374151", label="history")
    axis.plot(ahead, true, color="#374151", linestyle=":", label="actual")
    axis.plot(ahead, pred, color="#dc2626", label="forecast")
    axis.set_xlabel("step")
    axis.set_ylabel(name)
    axis.set_title("test span: forecast vs actual")
    axis.legend(frameon=False)
    axis.grid(alpha=0.3)
    return png(figure)


def _positive(values) -> np.ndarray:
    """The values that can sit on a log axis; NaN for the rest (missing, 0, negative, infinite)."""
    return np.array([v if v is not None and math.isfinite(v) and v > 0 else np.nan for v in values], dtype=float)


def gradient_flow(layers: list[str], rms: list[float], update: list[float] | None) -> bytes:
    """Median RMS gradient per layer (input side first), and the update-to-weight ratio."""
    plt = pyplot()
    panels = 2 if update else 1
    height = max(2.5, 0.28 * len(layers) + 1)
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels, height), squeeze=False)
    positions = np.arange(len(layers))[::-1]
    safe = _positive(rms)
    axes[0, 0].barh(positions, safe, color="#3b82f6")
    axes[0, 0].set_yticks(positions, layers, fontsize=8)
    if np.isfinite(safe).any():  # a log axis needs one positive value (gradients clipped to 0 have none)
        axes[0, 0].set_xscale("log")
        _sparse_log_ticks(axes[0, 0])
    axes[0, 0].set_xlabel("RMS gradient (median over measured steps)")
    axes[0, 0].set_title("gradient flow (input at the top)")
    if update:
        safe = _positive(update)
        axes[0, 1].barh(positions, safe, color="#10b981")
        axes[0, 1].set_yticks(positions, [""] * len(layers))
        if np.isfinite(safe).any():
            axes[0, 1].set_xscale("log")
            _sparse_log_ticks(axes[0, 1])
        axes[0, 1].axvline(1e-3, color="#9ca3af", linestyle="--", linewidth=0.8)
        axes[0, 1].set_xlabel("update / weight per step (dashed: 1e-3)")
        axes[0, 1].set_title("step size")
    return png(figure)


def _sparse_log_ticks(axis) -> None:
    """A log axis labelled at powers of ten only (with at most four labels), never at the minor
    ticks whose labels print on top of each other over a narrow range."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

    axis.xaxis.set_major_locator(LogLocator(base=10, numticks=4))
    axis.xaxis.set_major_formatter(LogFormatterSciNotation(base=10))
    axis.xaxis.set_minor_formatter(NullFormatter())
    low, high = axis.get_xlim()
    if high / max(low, 1e-300) < 10:  # within one decade: widen it to the powers of ten around it
        axis.set_xlim(10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high)))


def unit_health(names: list[str], dead: list[float | None], saturated: list[float | None]) -> bytes:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.5, max(2.2, 0.3 * len(names) + 1)))
    positions = np.arange(len(names))[::-1]
    values = [d if d is not None else s for d, s in zip(dead, saturated)]
    colours = ["#ef4444" if d is not None else "#a855f7" for d in dead]
    axis.barh(positions, [v if v is not None else 0 for v in values], color=colours)
    axis.set_yticks(positions, names, fontsize=8)
    axis.set_xlim(0, 1)
    axis.axvline(0.5, color="#9ca3af", linestyle="--", linewidth=0.8)
    axis.set_xlabel("dead units (red, ReLU) or saturated outputs (purple)")
    axis.set_title("activations (second half of training)")
    return png(figure)


def overlaid(runs: list[tuple[str, list[dict]]], key: str) -> bytes:
    """One curve per run for ``key`` (compare page)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 3.6))
    for name, history in runs:
        points = [(r["epoch"], r[key]) for r in history if key in r]
        if points:
            axis.plot(*zip(*points), label=name)
    axis.set_xlabel("epoch")
    axis.set_title(key)
    axis.legend(frameon=False, fontsize=7)
    axis.grid(alpha=0.3)
    return png(figure)


def search_history(numbers: list[int], values: list[float], best: list[float], metric: str) -> bytes:
    """Each finished trial's value in trial order, and the best so far."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 3.4))
    axis.scatter(numbers, values, s=18, color="#3b82f6", label="trial")
    axis.step(numbers, best, where="post", color="#dc2626", label="best so far")
    axis.set_xlabel("trial")
    axis.xaxis.set_major_locator(_whole_numbers())
    axis.set_ylabel(f"validation {metric}")
    axis.grid(alpha=0.3)
    axis.legend(frameon=False)
    return png(figure)


def importances(names: list[str], values: list[float]) -> bytes:
    """How much of the metric's variation each searched key explains (largest at the top)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 0.4 * len(names) + 1.2))
    order = np.argsort(values)
    bars = axis.barh([names[i] for i in order], [values[i] for i in order], color="#3b82f6")
    axis.bar_label(bars, labels=[f"{values[i]:.3g}" for i in order], padding=3, fontsize=8)
    axis.set_xlim(0, max(values, default=1) * 1.15 or 1)
    axis.set_xlabel("importance (share of explained variance)")
    axis.grid(alpha=0.3, axis="x")
    return png(figure)


def parallel_coordinates(axes: list[tuple[str, list[float], list[str] | None]], values: list[float],
                         metric: str) -> bytes:
    """One line per finished trial across the searched keys and, last, the metric (each scaled to
    its own range, its lowest and highest values written at its ends; choices at their
    positions, named), coloured by the trial's value."""
    plt = pyplot()
    axes = [*axes, (f"validation {metric}", list(values), None)]
    figure, axis = plt.subplots(figsize=(max(6.5, 1.6 * len(axes) + 2), 4.0))
    columns = []
    for _, numbers, _ in axes:
        numbers = np.asarray(numbers, dtype=float)
        low, high = np.nanmin(numbers), np.nanmax(numbers)
        columns.append((numbers - low) / (high - low) if high > low else np.full_like(numbers, 0.5))
    scaled = np.stack(columns, axis=1) if columns else np.zeros((len(values), 0))
    colours = plt.get_cmap("viridis")
    span = (min(values), max(values)) if values else (0, 1)
    for row, value in zip(scaled, values):
        share = (value - span[0]) / (span[1] - span[0]) if span[1] > span[0] else 0.5
        axis.plot(range(len(axes)), row, color=colours(share), alpha=0.7, linewidth=1.2)
    axis.set_xticks(range(len(axes)), [name for name, _, _ in axes], rotation=15, ha="right", fontsize=8)
    axis.set_yticks([])
    axis.set_ylim(-0.12, 1.12)
    axis.set_title(f"trials coloured by validation {metric} (yellow: highest)", fontsize=9)
    for i, (_, numbers, labels) in enumerate(axes):
        axis.axvline(i, color="#d1d5db", linewidth=0.8, zorder=0)
        if labels:
            for position, label in enumerate(labels):
                axis.annotate(label, (i, position / max(1, len(labels) - 1)), xytext=(3, 0),
                              textcoords="offset points", fontsize=7, color="#374151", va="center")
            continue
        numbers = np.asarray(numbers, dtype=float)
        low, high = np.nanmin(numbers), np.nanmax(numbers)
        for value, position, where in ((low, 0.0, "top"), (high, 1.0, "bottom")):
            axis.annotate(f"{value:.3g}", (i, position), xytext=(0, -4 if where == "top" else 4),
                          textcoords="offset points", fontsize=7, color="#374151", ha="center", va=where)
    for side in ("left", "right", "top"):
        axis.spines[side].set_visible(False)
    return png(figure)


def reliability(true: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> bytes:
    """Accuracy against confidence in 15 bins of the top probability, with each bin's share of
    rows; the diagonal is perfect calibration."""
    plt = pyplot()
    confidence, hit_rate, counts = calibration_bins(true, probabilities, bins)
    figure, (axis, share) = plt.subplots(2, 1, figsize=(5, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = counts > 0
    centres = (np.arange(bins) + 0.5) / bins
    axis.plot([0, 1], [0, 1], color="#9ca3af", linestyle="--", label="perfect")
    axis.bar(centres[filled], hit_rate[filled], width=1 / bins, edgecolor="white", color="#3b82f6", alpha=0.8,
             label="accuracy")
    axis.plot(confidence[filled], hit_rate[filled], "o", color="#1e3a8a", markersize=3)
    ece = expected_calibration_error(true, probabilities, bins)
    axis.set_title(f"reliability (ECE {ece:.3f})")
    axis.set_ylabel("accuracy")
    axis.set_ylim(0, 1)
    axis.legend(frameon=False, loc="upper left")
    share.bar(centres, counts / max(1, counts.sum()), width=1 / bins, color="#6b7280")
    share.set_xlabel("confidence (top probability)")
    share.set_ylabel("rows")
    share.set_xlim(0, 1)
    for panel in (axis, share):
        panel.grid(alpha=0.3)
    return png(figure)


def fold_spread(values: dict[str, list[float]]) -> bytes:
    """Each metric's value per fold as dots beside the folds' mean (a bar), one panel each."""
    plt = pyplot()
    names = list(values)
    figure, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names) + 1, 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        numbers = _numbers(values[name])
        ax.scatter(np.zeros(len(numbers)) + np.linspace(-0.08, 0.08, len(numbers)), numbers, color="#2563eb", zorder=3)
        ax.hlines(float(np.mean(numbers)), -0.3, 0.3, color="#dc2626", label="mean")
        ax.set_xlim(-0.5, 0.5)
        ax.set_xticks([])
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    return png(figure)


def robustness_curve(points: list[dict], metric: str, units: str, method: str) -> bytes:
    """The headline metric against epsilon, for FGSM and the chosen attack."""
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(5.5, 3.5))
    eps = [p["eps"] for p in points]
    for name, style in (("fgsm", "--o"), (method, "-o")):
        if name in points[0]:
            ax.plot(eps, [p[name] for p in points], style, label=name.upper(), markersize=4)
    ax.set_xlabel(f"epsilon ({units})")
    ax.set_ylabel(f"test {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return png(figure)


def attention_maps(maps: list[tuple[np.ndarray, list[str], list[str]]]) -> bytes:
    """One panel per row: how much each answer token (rows) attended to each source token
    (columns), from an encoder-decoder's attention weights."""
    plt = pyplot()
    widths = [max(len(source), 4) for _, source, _ in maps]
    figure, axes = plt.subplots(1, len(maps), figsize=(sum(0.28 * w + 1.2 for w in widths),
                                                      0.28 * max(len(a) for _, _, a in maps) + 1.8), squeeze=False)
    for axis, (weights, source, answer) in zip(axes[0], maps):
        axis.imshow(weights, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        axis.set_xticks(range(len(source)), source, rotation=90, fontsize=7)
        axis.set_yticks(range(len(answer)), answer, fontsize=7)
        axis.set_xlabel("source")
    axes[0][0].set_ylabel("answer")
    figure.suptitle("attention of each answer token to the source")
    return png(figure)


def mask_overlays(pictures: np.ndarray, truths: np.ndarray, answers: np.ndarray, captions: list[str],
                  classes: list[str], title: str) -> bytes:
    """One row per picture (N, C, H, W): the picture, its true mask over it, and the answered
    mask over it (the background left clear, each other class a colour)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = pyplot()
    colours = plt.get_cmap("tab10")(np.arange(max(len(classes) - 1, 1)) % 10)
    cmap = ListedColormap(colours)
    low, high = display_range(pictures)
    figure, axes = plt.subplots(len(pictures), 3, figsize=(5.4, 1.8 * len(pictures) + 0.6), squeeze=False)
    for row, (picture, truth, answer) in enumerate(zip(pictures, truths, answers)):
        for column, mask in enumerate((None, truth, answer)):
            axis = axes[row][column]
            _show(axis, picture, low, high)
            if mask is not None:
                shown = np.ma.masked_where(mask == 0, mask - 1)
                axis.imshow(shown, cmap=cmap, vmin=0, vmax=max(len(classes) - 2, 0), alpha=0.55,
                            interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row][0].set_ylabel(captions[row], fontsize=7)
    for column, name in enumerate(("picture", "true", "answered")):
        axes[0][column].set_title(name, fontsize=8)
    figure.legend(handles=[Patch(color=colours[k - 1], label=classes[k]) for k in range(1, len(classes))],
                  loc="lower center", ncol=min(len(classes) - 1, 5), fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0.5 / (1.8 * len(pictures) + 0.6), 1, 1))
    return png(figure)


def box_overlays(pictures: np.ndarray, truths: list[np.ndarray], answers: list[np.ndarray], captions: list[str],
                 classes: list[str], title: str) -> bytes:
    """Pictures (N, C, H, W) in a grid, each with its true boxes (dashed) and the boxes answered
    (solid, with class and score), each class a colour; ``truths`` and ``answers`` per picture,
    (k, 5 or 6): ``x_min, y_min, x_max, y_max, class[, score]``."""
    from matplotlib.patches import Patch, Rectangle

    plt = pyplot()
    colours = plt.get_cmap("tab10")(np.arange(len(classes)) % 10)
    low, high = display_range(pictures)
    across = min(len(pictures), 3)
    down = -(-len(pictures) // across)
    figure, axes = plt.subplots(down, across, figsize=(2.4 * across, 2.5 * down + 0.5), squeeze=False)
    for axis in axes.flat:
        axis.set_axis_off()
    for axis, picture, truth, answer, caption in zip(axes.flat, pictures, truths, answers, captions):
        _show(axis, picture, low, high)
        for box, dashed in [(b, True) for b in truth] + [(b, False) for b in answer]:
            colour = colours[int(box[4]) % len(colours)]
            axis.add_patch(Rectangle((box[0] - 0.5, box[1] - 0.5), box[2] - box[0], box[3] - box[1], fill=False,
                                     edgecolor=colour, linewidth=1.0, linestyle="--" if dashed else "-"))
            if not dashed:
                axis.text(box[0] - 0.5, box[1] - 1, f"{classes[int(box[4])]} {box[5]:.2f}", color=colour,
                          fontsize=5)
        axis.set_title(caption, fontsize=7)
    figure.legend(handles=[Patch(color=colours[k], label=name) for k, name in enumerate(classes)],
                  loc="lower center", ncol=min(len(classes), 5), fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0.4 / (2.5 * down + 0.5), 1, 1))
    return png(figure)
