"""Report figures. Each function draws one figure from run outputs and returns it as a matplotlib ``Figure``
(which a notebook cell displays); ``save`` writes ``<stem>.png`` plus any vector formats asked for.

Figures are built without pyplot, in ser's own style (``matplotlib.rc_context``), so drawing one changes
neither the caller's backend nor their rcParams, and nothing has to be closed."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, Mapping

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ser._util.io import atomic_path
from ser.evaluation.result_types import CrossTransfer, ScoredSystems

COLORS = {"speech": "#7f8c8d", "text": "#e0a458", "tuned": "#2a9d8f", "oracle": "#c9ada7"}
PATH_COLORS = ("#2a9d8f", "#e0a458", "#6d597a", "#457b9d", "#e76f51")
"""Text paths in figures, the primary first (ser's tuned colour)."""
METRIC_NAMES = {"ua": "UA", "wa": "WA", "macro_f1": "macro-F1", "weighted_f1": "weighted-F1"}
FORMATS = ("png", "svg", "pdf")


STYLE = {"figure.dpi": 100, "savefig.dpi": 150, "font.size": 9, "axes.spines.top": False,
         "axes.spines.right": False, "svg.fonttype": "none", "pdf.fonttype": 42,
         "text.parse_math": False}    # labels come from data (fold names): a "$" is a dollar, never mathtext


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def _styled(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Run a drawing function inside ser's style, leaving the caller's rcParams untouched."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs) -> Figure:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def _figure(figsize: tuple[float, float], layout: str | None = "tight") -> Figure:
    return Figure(figsize=figsize, layout=layout)


def _savefig(fig: Figure, target, fmt: str, **options) -> None:
    """The one way a figure is written, to a file or a buffer: ser's style, cropped to what is drawn."""
    with matplotlib.rc_context(STYLE):
        fig.savefig(target, format=fmt, bbox_inches="tight", pad_inches=0.08, **options)


def save(fig: Figure, stem: Path, formats: tuple[str, ...] = ()) -> Path:
    """Write ``stem.png`` and ``stem.<fmt>`` for each vector format (atomically); return the PNG's path."""
    for fmt in dict.fromkeys(("png",) + tuple(formats)):
        with atomic_path(stem.with_suffix(f".{fmt}")) as tmp:
            _savefig(fig, tmp, fmt)
    return stem.with_suffix(".png")


def png_bytes(fig: Figure) -> bytes:
    """The figure as a PNG at screen resolution (its own dpi), as a notebook shows it."""
    buffer = io.BytesIO()
    _savefig(fig, buffer, "png", dpi="figure")
    return buffer.getvalue()


@_styled
def fold_bars(result: ScoredSystems, metric: str, systems=("speech", "text", "tuned")) -> Figure:
    """Per-fold metric of each system with its 95% bootstrap CI, on an axis from 0; dashed = means over folds."""
    folds = [f.fold for f in result.folds]
    systems = [s for s in systems if s in result.mean]
    x = np.arange(len(folds))
    width = 0.8 / len(systems)
    fig = _figure((max(6.5, 0.7 * len(folds) + 2), 3.6))
    ax = fig.subplots()
    for i, s in enumerate(systems):
        vals = np.array([100 * f.systems[s][metric] for f in result.folds])
        ci = [f.systems[s].ci for f in result.folds]
        err = None
        if all(c and c.metric == metric for c in ci):
            err = np.array([[v - 100 * c.low, 100 * c.high - v] for v, c in zip(vals, ci)]).T
        ax.bar(x + (i - (len(systems) - 1) / 2) * width, vals, width, yerr=err, capsize=2,
               color=COLORS.get(s), label=f"{s} (mean over folds {100 * result.mean[s][metric]:.1f})",
               error_kw={"elinewidth": 0.8, "ecolor": "#333"})
        ax.axhline(100 * result.mean[s][metric], color=COLORS.get(s, "k"), ls="--", lw=0.8)
    ax.set_xticks(x, folds, rotation=30, ha="right")
    ax.set_ylabel(f"{metric_name(metric)} (%)")
    ax.set_ylim(0, 100)
    ax.legend(ncol=len(systems), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig


@_styled
def gain_bars(gains: pd.DataFrame, metric: str) -> Figure:
    """Tuned − speech per fold with its paired 95% bootstrap CI, on an axis through zero."""
    fig = _figure((max(6.5, 0.55 * len(gains) + 2), 3.0))
    ax = fig.subplots()
    x = np.arange(len(gains))
    colors = np.where(gains["gain"] >= 0, COLORS["tuned"], "#e76f51")
    err = np.array([gains["gain"] - gains["low"], gains["high"] - gains["gain"]])
    ax.bar(x, gains["gain"], color=colors, yerr=err, capsize=2, error_kw={"elinewidth": 0.8, "ecolor": "#333"})
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, gains["fold"], rotation=30, ha="right")
    ax.set_ylabel(f"tuned − speech, {metric_name(metric)} (points)")
    return fig


@_styled
def confusions(result: ScoredSystems, systems: list[str], metric: str) -> Figure:
    """Row-normalized pooled confusion matrices (with counts), one panel per system."""
    labels = result.labels
    fig = _figure((3.3 * len(systems) + 0.4, 3.4))
    axes = fig.subplots(1, len(systems), squeeze=False)
    for ax, name in zip(axes[0], systems):
        c = np.array(result.pooled[name].confusion, dtype=float)
        norm = c / np.maximum(c.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{100 * norm[i, j]:.0f}%\n({int(c[i, j])})", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_title(f"{name}: pooled {metric_name(metric)} {100 * result.pooled[name][metric]:.1f}%")
    axes[0][0].set_ylabel("gold")
    return fig


@_styled
def transitions(result: ScoredSystems, system: str = "tuned") -> Figure:
    """Label changes by transition: how many fixed an error (wrong→right) vs broke a right label."""
    trans = result.pooled[system].switches["transitions"]
    names = sorted(trans, key=lambda t: -trans[t]["n"])
    good = np.array([trans[t]["wrong_to_right"] for t in names])
    bad = np.array([trans[t]["right_to_wrong"] for t in names])
    neutral = np.array([trans[t]["wrong_to_wrong"] for t in names])
    fig = _figure((max(5.5, 0.55 * len(names) + 2), 3.4))
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x, good, color="#2a9d8f", label="wrong → right")
    ax.bar(x, -bad, color="#e76f51", label="right → wrong")
    ax.bar(x, neutral, bottom=good, color="#bdbdbd", label="wrong → wrong")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, [t.replace("->", "→") for t in names], rotation=30, ha="right")
    ax.set_ylabel("utterances (pooled over folds)")
    ax.legend(frameon=False)
    return fig


@_styled
def uncertainty(pred: pd.DataFrame) -> Figure:
    """Distributions of the speech model's entropy H and varentropy V for its right and wrong predictions."""
    right = (pred["pred_speech"] == pred["label"]).to_numpy()
    fig = _figure((8, 3.0))
    axes = fig.subplots(1, 2)
    for ax, col, name in ((axes[0], "h", "entropy H"), (axes[1], "v", "varentropy V")):
        values = pred[col].to_numpy()
        bins = np.linspace(values.min(), values.max(), 31)
        for mask, label, color in ((right, "speech right", COLORS["tuned"]), (~right, "speech wrong", "#e76f51")):
            if mask.any():
                ax.hist(values[mask], bins=bins, density=True, alpha=0.55, color=color,
                        label=f"{label} (n = {int(mask.sum())}, median {np.median(values[mask]):.2f})")
                ax.axvline(np.median(values[mask]), color=color, ls="--", lw=1)
        ax.set_xlabel(f"{name} of the speech probabilities (nats)")
        ax.set_ylabel("density")
        ax.legend(frameon=False, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=1)
    return fig


@_styled
def sensitivity(surfaces: pd.DataFrame, chosen: pd.DataFrame, metric: str) -> Figure:
    """Mean-over-folds surfaces of the metric and the switch rate, with each fold's chosen thresholds."""
    mean = surfaces[(surfaces["fold"] == "mean") & (surfaces["scope"] == "global")]
    th, tv = np.sort(mean["tau_h"].unique()), np.sort(mean["tau_v"].unique())
    fig = _figure((9, 4.2), layout=None)
    axes = fig.subplots(1, 2)
    for ax, col, cmap, label in ((axes[0], metric, "viridis", f"test {metric_name(metric)}, mean over folds (%)"),
                                 (axes[1], "switch_rate", "magma", "labels changed (%)")):
        grid = mean.pivot(index="tau_h", columns="tau_v", values=col).loc[th, tv].to_numpy()
        im = ax.imshow(100 * grid, origin="lower", aspect="auto", cmap=cmap, extent=[tv[0], tv[-1], th[0], th[-1]])
        fig.colorbar(im, ax=ax, label=label)
        ax.scatter(chosen["tau_v"], chosen["tau_h"], s=22, facecolor="none", edgecolor="white", lw=1.2,
                   label="chosen per fold (on its tuning rows)")
        ax.scatter([chosen["tau_v"].mean()], [chosen["tau_h"].mean()], marker="*", s=120, color="red",
                   label="mean of the chosen")
        ax.set_xlabel("τ_V (switch if V ≤ τ_V)")
        ax.set_ylabel("τ_H (switch if H ≥ τ_H)")
    handles = [Line2D([], [], ls="none", marker="o", mfc="none", mec="k", label="chosen per fold (on its tuning rows)"),
               Line2D([], [], ls="none", marker="*", ms=11, color="red", label="mean of the chosen")]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False)
    fig.set_layout_engine("tight", rect=(0, 0.08, 1, 1))
    return fig


@_styled
def class_sensitivity(surfaces: pd.DataFrame, metric: str) -> Figure:
    """Per speech-predicted class, the mean test metric when only that class's thresholds move (one scale)."""
    scopes = [s for s in surfaces["scope"].unique() if s != "global"]
    mean = surfaces[surfaces["fold"] == "mean"]
    parts = {scope: mean[mean["scope"] == scope] for scope in scopes}
    lo, hi = (100 * min(p[metric].min() for p in parts.values()), 100 * max(p[metric].max() for p in parts.values()))
    ncols = 2 if len(scopes) > 2 else len(scopes)
    nrows = int(np.ceil(len(scopes) / ncols))
    fig = _figure((4.2 * ncols + 1.2, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, scope in zip(axes.ravel(), scopes):
        part = parts[scope]
        th, tv = np.sort(part["tau_h"].unique()), np.sort(part["tau_v"].unique())
        grid = part.pivot(index="tau_h", columns="tau_v", values=metric).loc[th, tv].to_numpy()
        im = ax.imshow(100 * grid, origin="lower", aspect="auto", cmap="viridis", vmin=lo, vmax=hi,
                       extent=[tv[0], tv[-1], th[0], th[-1]])
        i, j = np.unravel_index(np.argmax(grid), grid.shape)
        ax.scatter([tv[j]], [th[i]], marker="x", color="red")
        ax.set_title(f"speech predicted {scope}: best {100 * grid[i, j]:.1f}%")
        ax.set_xlabel("τ_V")
        ax.set_ylabel("τ_H")
    for ax in axes.ravel()[len(scopes):]:
        ax.set_visible(False)
    fig.colorbar(im, ax=axes.ravel().tolist(), label=f"test {metric_name(metric)}, mean over folds (%)")
    return fig


@_styled
def trial_history(trials: pd.DataFrame, metric: str) -> Figure:
    """Each fold's search: every trial's inner estimate (dots) and the best so far (line)."""
    score = "inner_score" if "inner_score" in trials and trials["inner_score"].notna().all() else "tuning_score"
    fig = _figure((7, 3.4))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab10"]
    for i, (fold, part) in enumerate(trials.sort_values("trial").groupby("fold", sort=True)):
        color = cmap(i % 10)
        ax.scatter(part["trial"], 100 * part[score], s=6, color=color, alpha=0.35)
        ax.plot(part["trial"], 100 * part[score].cummax(), color=color, lw=1.2, label=str(fold))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{'inner estimate' if score == 'inner_score' else 'tuning score'}, "
                  f"{metric_name(metric)} (%)")
    ax.legend(ncol=1 + len(ax.lines) // 13, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              title="fold (best so far)")                      # beside the axes: it never covers a point
    return fig


@_styled
def cross_matrix(cross: CrossTransfer) -> Figure:
    """Gain over speech (points, mean over the test corpus' folds) for each tuning corpus → test corpus."""
    names = cross.corpora
    gain = np.array([[100 * cross.matrix[a][b].gain for b in names] for a in names])
    fig = _figure((1.5 * len(names) + 2.8, 1.3 * len(names) + 1.5))
    ax = fig.subplots()
    lim = max(1.0, np.abs(gain).max())
    im = ax.imshow(gain, cmap="RdBu", vmin=-lim, vmax=lim)
    for i in range(len(names)):
        for j in range(len(names)):
            cell = cross.matrix[names[i]][names[j]]
            ax.text(j, i, f"{gain[i, j]:+.1f}\n{cell.folds_improved}/{cell.n_folds} folds", ha="center",
                    va="center", fontsize=8, color="white" if abs(gain[i, j]) > 0.6 * lim else "black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("tested on")
    ax.set_ylabel("tuned on")
    fig.colorbar(im, ax=ax, label=f"{metric_name(cross.objective)} gain over speech, mean over folds (points)")
    return fig


@_styled
def gain_by_wer(cascade: Mapping[str, Any]) -> Figure:
    """Accuracy gain of fusion over speech by utterance WER bucket, one bar group per text path, 95% CIs."""
    paths = list(cascade["paths"])
    buckets = [b["bucket"] for b in cascade["paths"][paths[0]]]
    fig = _figure((1.6 * len(buckets) + 2.5, 3.4))
    ax = fig.subplots()
    width = 0.8 / len(paths)
    for i, path in enumerate(paths):
        rows = cascade["paths"][path]
        x = np.arange(len(rows)) + (i - (len(paths) - 1) / 2) * width
        gain = np.array([100 * (b["gain"] or 0.0) for b in rows])
        low = np.array([100 * (b["ci_low"] if b["ci_low"] is not None else 0.0) for b in rows])
        high = np.array([100 * (b["ci_high"] if b["ci_high"] is not None else 0.0) for b in rows])
        ax.bar(x, gain, width, label=f"{path} ({cascade['systems'][path]})", color=PATH_COLORS[i % len(PATH_COLORS)],
               yerr=[gain - low, high - gain], capsize=3, error_kw={"elinewidth": 0.8})
        for xi, top, b in zip(x, np.maximum(high, 0), rows):      # each bar's count above its CI, clear of the axis
            ax.annotate(f"n={b['n']}", (xi, top), xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=7, color="#555")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(buckets)), [f"WER {b}" for b in buckets])
    ax.set_ylabel("accuracy gain over speech (points)")
    ax.margins(y=0.12)
    ax.legend(fontsize=8, frameon=False, ncol=len(paths), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig
