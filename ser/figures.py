"""Report figures (matplotlib, Agg): each function draws one PNG from run outputs and returns its path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLORS = {"speech": "#7f8c8d", "text": "#e0a458", "tuned": "#2a9d8f", "oracle": "#c9ada7"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def fold_bars(result: dict, metric: str, path: Path, systems=("speech", "text", "tuned")) -> Path:
    """Per-fold metric of each system with its 95% bootstrap CI; dashed lines = means over folds."""
    plt = _plt()
    folds = [f["fold"] for f in result["folds"]]
    systems = [s for s in systems if s in result["mean"]]
    x = np.arange(len(folds))
    width = 0.8 / len(systems)
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(folds) + 2), 3.6))
    for i, s in enumerate(systems):
        vals = np.array([100 * f["systems"][s][metric] for f in result["folds"]])
        ci = [f["systems"][s].get("ci") for f in result["folds"]]
        err = None
        if all(c and c["metric"] == metric for c in ci):
            err = np.array([[v - 100 * c["low"], 100 * c["high"] - v] for v, c in zip(vals, ci)]).T
        ax.bar(x + (i - (len(systems) - 1) / 2) * width, vals, width, yerr=err, capsize=2,
               color=COLORS.get(s, None), label=f"{s} (mean {100 * result['mean'][s][metric]:.1f})",
               error_kw={"elinewidth": 0.8, "ecolor": "#333"})
        ax.axhline(100 * result["mean"][s][metric], color=COLORS.get(s, "k"), ls="--", lw=0.8)
    ax.set_xticks(x, folds, rotation=30, ha="right")
    ax.set_ylabel(f"{metric} (%)")
    lo = min(100 * min(f["systems"][s][metric] for f in result["folds"]) for s in systems)
    ax.set_ylim(max(0, lo - 10), 112)
    ax.set_yticks([t for t in ax.get_yticks() if t <= 100])
    ax.legend(ncol=len(systems), loc="upper left", frameon=False)
    ax.set_title(f"{metric} per fold (test rows), with 95% bootstrap CIs")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def confusions(result: dict, path: Path, before: str = "speech", after: str = "tuned") -> Path:
    """Row-normalized pooled confusion matrices before and after fusion, with counts."""
    plt = _plt()
    labels = result["labels"]
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4))
    for ax, name in zip(axes, (before, after)):
        c = np.array(result["pooled"][name]["confusion"], dtype=float)
        norm = c / np.maximum(c.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{100 * norm[i, j]:.0f}%\n({int(c[i, j])})", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_title(f"{name}: UA {100 * result['pooled'][name]['ua']:.1f}%")
    axes[0].set_ylabel("gold")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def transitions(result: dict, path: Path, system: str = "tuned") -> Path:
    """Label changes by transition: how many fixed an error (wrong→right) vs broke a right label."""
    plt = _plt()
    trans = result["pooled"][system]["switches"]["transitions"]
    names = sorted(trans, key=lambda t: -trans[t]["n"])
    good = np.array([trans[t]["wrong_to_right"] for t in names])
    bad = np.array([trans[t]["right_to_wrong"] for t in names])
    neutral = np.array([trans[t]["wrong_to_wrong"] for t in names])
    fig, ax = plt.subplots(figsize=(max(5, 0.55 * len(names) + 2), 3.4))
    x = np.arange(len(names))
    ax.bar(x, good, color="#2a9d8f", label="wrong → right")
    ax.bar(x, -bad, color="#e76f51", label="right → wrong")
    ax.bar(x, neutral, bottom=good, color="#bdbdbd", label="wrong → wrong")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, [t.replace("->", "→") for t in names], rotation=30, ha="right")
    ax.set_ylabel("utterances (pooled over folds)")
    s = result["pooled"][system]["switches"]
    ax.set_title(f"{system}: {s['switched']} labels changed ({100 * s['rate']:.1f}%): "
                 f"{s['wrong_to_right']} fixed, {s['right_to_wrong']} broken")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def sensitivity(surfaces: pd.DataFrame, chosen: pd.DataFrame, metric: str, path: Path) -> Path:
    """Mean-over-folds surfaces of the metric and the switch rate, with each fold's chosen thresholds."""
    plt = _plt()
    mean = surfaces[(surfaces["fold"] == "mean") & (surfaces["scope"] == "global")]
    th, tv = np.sort(mean["tau_h"].unique()), np.sort(mean["tau_v"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, col, cmap, label in ((axes[0], metric, "viridis", f"{metric} (%)"),
                                 (axes[1], "switch_rate", "magma", "switch rate (%)")):
        grid = mean.pivot(index="tau_h", columns="tau_v", values=col).loc[th, tv].to_numpy()
        im = ax.imshow(100 * grid, origin="lower", aspect="auto", cmap=cmap,
                       extent=[tv[0], tv[-1], th[0], th[-1]])
        fig.colorbar(im, ax=ax, label=label)
        ax.scatter(chosen["tau_v"], chosen["tau_h"], s=22, facecolor="none", edgecolor="white", lw=1.2,
                   label="chosen per fold (on tuning rows)")
        ax.scatter([chosen["tau_v"].mean()], [chosen["tau_h"].mean()], marker="*", s=120, color="red",
                   label="mean of chosen")
        ax.set_xlabel("τ_V (switch if V ≤ τ_V)")
        ax.set_ylabel("τ_H (switch if H ≥ τ_H)")
    axes[0].set_title(f"test {metric}, mean over folds")
    axes[1].set_title("share of labels changed")
    axes[0].legend(loc="lower right", fontsize=7, framealpha=0.7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def class_sensitivity(surfaces: pd.DataFrame, metric: str, path: Path) -> Path:
    """Per speech-predicted class: the mean metric when only that class's thresholds move."""
    plt = _plt()
    scopes = [s for s in surfaces["scope"].unique() if s != "global"]
    mean = surfaces[surfaces["fold"] == "mean"]
    fig, axes = plt.subplots(1, len(scopes), figsize=(3.1 * len(scopes), 3), squeeze=False)
    for ax, scope in zip(axes[0], scopes):
        part = mean[mean["scope"] == scope]
        th, tv = np.sort(part["tau_h"].unique()), np.sort(part["tau_v"].unique())
        grid = part.pivot(index="tau_h", columns="tau_v", values=metric).loc[th, tv].to_numpy()
        im = ax.imshow(100 * grid, origin="lower", aspect="auto", cmap="viridis", extent=[tv[0], tv[-1], th[0], th[-1]])
        i, j = np.unravel_index(np.argmax(grid), grid.shape)
        ax.scatter([tv[j]], [th[i]], marker="x", color="red")
        ax.set_title(f"predicted {scope}: best {100 * grid[i, j]:.1f}%")
        ax.set_xlabel("τ_V")
        fig.colorbar(im, ax=ax)
    axes[0][0].set_ylabel("τ_H")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def cross_matrix(cross: dict, path: Path) -> Path:
    """Gain over speech (points) for each tuning corpus → test corpus."""
    plt = _plt()
    names = cross["corpora"]
    gain = np.array([[100 * cross["matrix"][a][b]["gain"] for b in names] for a in names])
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2.5, 1.2 * len(names) + 1.5))
    lim = max(1.0, np.abs(gain).max())
    im = ax.imshow(gain, cmap="RdBu", vmin=-lim, vmax=lim)
    for i in range(len(names)):
        for j in range(len(names)):
            cell = cross["matrix"][names[i]][names[j]]
            ax.text(j, i, f"{gain[i, j]:+.1f}\n{cell['folds_improved']}/{cell['n_folds']} folds", ha="center",
                    va="center", fontsize=8, color="white" if abs(gain[i, j]) > 0.6 * lim else "black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("tested on")
    ax.set_ylabel("tuned on")
    ax.set_title(f"gain in {cross['objective']} over speech (points)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
