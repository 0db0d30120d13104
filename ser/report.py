"""``ser report``: report.md and a self-contained report.html (figures embedded) from a run directory.

The content is built once as a list of blocks (headings, paragraphs, tables, figures) and
rendered to both formats, so they never disagree.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from ser import figures
from ser.evaluate import format_p
from ser.io import atomic_path
from ser.metrics import METRICS
from ser.tuning import describe_config

Block = tuple


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def headline(result: dict, metric: str) -> str:
    """One sentence: did tuned fusion help, by how much, how sure, in how many folds."""
    cmp = result["comparisons"].get("tuned")
    if not cmp:
        return "No tuned system in this run."
    b, f = cmp["bootstrap"], cmp["folds"]
    verdict = "improved" if b["ci_low"] > 0 else "did not significantly change" if b["ci_high"] > 0 else "hurt"
    wilcoxon = "" if f["wilcoxon_p"] is None else f" (Wilcoxon {format_p(f['wilcoxon_p'])})"
    return (f"**Tuned fusion {verdict} {metric} by {100 * b['diff']:+.2f} points** over speech alone "
            f"(pooled, 95% CI [{100 * b['ci_low']:+.2f}, {100 * b['ci_high']:+.2f}], bootstrap {format_p(b['p_value'])}); "
            f"better in **{f['improved']} of {f['n_folds']} folds**, worse in {f['worse']}{wilcoxon}.")


def build_blocks(run: Path, fig_dir: Path) -> list[Block]:
    """Everything the report says, from ``run``'s results.json, sweep/ and cross.json."""
    result = json.loads((run / "results.json").read_text())
    metric = result.get("tuning", {}).get("objective", "ua")
    systems = [s for s in ("speech", "text", "tuned", "oracle") if s in result["mean"]]
    blocks: list[Block] = [("h1", f"Fusion report: {run.name}"), ("p", headline(result, metric))]
    tuning = result.get("tuning")
    if tuning:
        blocks.append(("p", f"Protocol `{tuning['protocol']}`, objective `{metric}`, method `{tuning['method']}`: "
                             f"{tuning['configurations_evaluated']:,} configurations evaluated; each fold's "
                             f"configuration was chosen on its tuning rows only and applied once to its test rows."))
    blocks.append(("h2", "Per fold"))
    blocks.append(("img", figures.fold_bars(result, metric, fig_dir / "folds.png", systems[:3]),
                   f"{metric} per fold with 95% bootstrap CIs."))
    rows = []
    for f in result["folds"]:
        s = f["systems"]
        row = [f["fold"], str(f["n"])] + [_pct(s[name][metric]) for name in systems]
        if "tuned" in s:
            row += [f"{100 * (s['tuned'][metric] - s['speech'][metric]):+.2f}", describe_config(f["best"]["config"])]
        rows.append(row)
    head = ["fold", "n"] + systems + (["gain", "chosen configuration"] if "tuned" in systems else [])
    blocks.append(("table", head, rows))
    blocks.append(("h2", "All metrics (mean ± std over folds, pooled)"))
    blocks.append(("table", ["system"] + [f"{m} mean ± std" for m in METRICS] + ["pooled ua", "pooled macro_f1"],
                   [[name] + [f"{_pct(result['mean'][name][m])} ± {_pct(result['std'][name][m])}" for m in METRICS]
                    + [_pct(result["pooled"][name]["ua"]), _pct(result["pooled"][name]["macro_f1"])]
                    for name in result["mean"]]))
    if "tuned" in systems:
        blocks.append(("h2", "What fusion changed"))
        blocks.append(("img", figures.confusions(result, fig_dir / "confusions.png"),
                       "Pooled confusion matrices, speech alone vs tuned fusion (rows = gold)."))
        blocks.append(("img", figures.transitions(result, fig_dir / "transitions.png"),
                       "Label changes by transition: errors fixed (up) vs right labels broken (down)."))
    sweep_dir = run / "sweep" if (run / "sweep").is_dir() else run
    if (sweep_dir / "sweep.parquet").exists():
        surfaces = pd.read_parquet(sweep_dir / "sweep.parquet")
        chosen = pd.read_parquet(sweep_dir / "sweep_chosen.parquet")
        stats = json.loads((sweep_dir / "sweep.json").read_text())
        m = stats["objective"]
        blocks.append(("h2", f"Threshold sensitivity ({stats['gate']} gate)"))
        blocks.append(("p", f"Thresholds chosen on each fold's tuning rows: τ_H {stats['chosen_tau_h']['mean']:.3f} ± "
                             f"{stats['chosen_tau_h']['std']:.3f}, τ_V {stats['chosen_tau_v']['mean']:.3f} ± "
                             f"{stats['chosen_tau_v']['std']:.3f} across folds. On test rows they reach {m} "
                             f"{_pct(stats['mean_test_score'])} (speech {_pct(stats['mean_speech_score'])}); the best "
                             f"point of the grid in hindsight {_pct(stats['mean_best_on_grid'])}; the oracle "
                             f"{_pct(stats['mean_oracle_score'])} (gap {100 * stats['gap_to_oracle']:.2f} points)."))
        blocks.append(("img", figures.sensitivity(surfaces, chosen, m, fig_dir / "sensitivity.png"),
                       "Mean test surfaces over folds; circles = thresholds chosen per fold, star = their mean."))
        if (surfaces["scope"] != "global").any():
            blocks.append(("img", figures.class_sensitivity(surfaces, m, fig_dir / "sensitivity_classes.png"),
                           "Per speech-predicted class: only that class's thresholds move (x = best)."))
        blocks.append(("table", ["fold", "τ_H", "τ_V", "test", "speech", "best on grid", "oracle"],
                       [[r.fold, f"{r.tau_h:.3f}", f"{r.tau_v:.3f}", _pct(r.test_score), _pct(r.speech_score),
                         _pct(r.best_test_score), _pct(r.oracle_score)] for r in chosen.itertuples()]))
    if "baselines" in result:
        blocks += search_blocks(result, metric)
    if (run / "cross.json").exists():
        cross = json.loads((run / "cross.json").read_text())
        blocks.append(("h2", "Cross-dataset transfer"))
        blocks.append(("img", figures.cross_matrix(cross, fig_dir / "cross.png"),
                       "Rows: corpus the configuration was tuned on; columns: corpus it was tested on."))
        names = cross["corpora"]
        blocks.append(("table", ["tuned on \\ tested on"] + names,
                       [[a] + [f"{_pct(cross['matrix'][a][b]['tuned'])} ({100 * cross['matrix'][a][b]['gain']:+.2f})"
                               for b in names] for a in names]))
    return blocks


def search_blocks(result: dict, metric: str) -> list[Block]:
    """Did the search earn its complexity: tuned vs simple baselines, and each fold's tuning vs test score."""
    speech, tuned = result["mean"]["speech"][metric], result["mean"]["tuned"][metric]
    base = result["baselines"]
    t = result["tuning"]
    verdict = ("matches or beats" if base["tuned_minus_best"] >= 0 else "falls short of")
    rows = []
    for name in ["tuned"] + base["systems"]:
        folds = result["comparisons"][name]["folds"]
        rows.append([name, f"{_pct(result['mean'][name][metric])} ± {_pct(result['std'][name][metric])}",
                     f"{100 * (result['mean'][name][metric] - speech):+.2f}", f"{folds['improved']}/{folds['worse']}",
                     "" if name == "tuned" else f"{100 * (result['mean'][name][metric] - tuned):+.2f}"])
    honesty = [[f["fold"], f["best"].get("description", describe_config(f["best"]["config"])),
                str(f["best"].get("free_parameters", "")), _pct(f["best"]["tuning_score"]),
                "" if f["best"].get("inner_score") is None else _pct(f["best"]["inner_score"]),
                _pct(f["best"]["test_score"]), f"{100 * f['best']['optimism']:+.2f}"]
               for f in result["folds"] if "test_score" in f["best"]]
    return [
        ("h2", "Search vs simple baselines"),
        ("p", f"The search (choice rule `{t['choice']}`) {verdict} the best simple leakage-free baseline, "
              f"`{base['best']}`, by {100 * base['tuned_minus_best']:+.2f} points of {metric} (mean over folds). "
              f"Every baseline was fitted on the same tuning rows as the search."),
        ("table", ["system", f"{metric} mean ± std", "vs speech", "folds better/worse", "vs tuned"], rows),
        ("p", f"Kept configurations scored {_pct(t['mean_tuning_score'])} on the rows they were tuned on and "
              f"{_pct(t['mean_test_score'])} on test rows: an optimism of {100 * t['mean_optimism']:+.2f} points. "
              "The inner estimate (refit without each tuning group, scored on it) is what the choice used."),
        ("table", ["fold", "kept configuration", "free parameters", "tuning", "inner estimate", "test",
                   "optimism"], honesty),
    ]


def to_markdown(blocks: list[Block], base: Path) -> str:
    out = []
    for b in blocks:
        if b[0] == "h1":
            out.append(f"# {b[1]}\n")
        elif b[0] == "h2":
            out.append(f"## {b[1]}\n")
        elif b[0] == "p":
            out.append(f"{b[1]}\n")
        elif b[0] == "img":
            out.append(f"![{b[2]}]({b[1].relative_to(base).as_posix()})\n\n*{b[2]}*\n")
        elif b[0] == "table":
            head, rows = b[1], b[2]
            out.append("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
                       + "".join("| " + " | ".join(r) + " |\n" for r in rows))
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape, then render **bold** and `code` spans."""
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


CSS = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222;line-height:1.45}"
       "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ddd;padding:3px 8px;"
       "text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}"
       "img{max-width:100%}figcaption{font-size:13px;color:#555;margin-bottom:1.5em}code{background:#f4f4f4}")


def to_html(blocks: list[Block], title: str) -> str:
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{CSS}</style></head><body>"]
    for b in blocks:
        if b[0] in ("h1", "h2"):
            out.append(f"<{b[0]}>{_inline(b[1])}</{b[0]}>")
        elif b[0] == "p":
            out.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "img":
            data = base64.b64encode(b[1].read_bytes()).decode()
            out.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(b[2])}'>"
                       f"<figcaption>{_inline(b[2])}</figcaption></figure>")
        elif b[0] == "table":
            out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in b[1]) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b[2])
                       + "</table>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(run: str | Path) -> tuple[Path, Path]:
    """Write ``run/report.md``, ``run/report.html`` and ``run/figures/*.png``."""
    run = Path(run)
    if not (run / "results.json").exists():
        raise FileNotFoundError(f"{run}/results.json not found: run `ser tune` or `ser run` into {run} first")
    fig_dir = run / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    blocks = build_blocks(run, fig_dir)
    md, page = run / "report.md", run / "report.html"
    with atomic_path(md) as tmp:
        tmp.write_text(to_markdown(blocks, run))
    with atomic_path(page) as tmp:
        tmp.write_text(to_html(blocks, f"ser report: {run.name}"))
    return md, page
