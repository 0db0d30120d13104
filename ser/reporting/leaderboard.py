"""``ser leaderboard``: several runs side by side, one row per corpus and system (UA / WA / macro-F1 with CIs).

Every figure is read from the runs' own results (``results.json``, ``evaluation.json``, and each corpus' diagonal in
``cross.json``), never recomputed from predictions, so the leaderboard equals what each run reports. The table is
rendered like a report's: Markdown, a self-contained HTML page, CSV with numeric columns and booktabs TeX.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from ser.reporting.figures import metric_name
from ser._util.io import InputError, file_set
from ser.measures.metrics import REPORTED_METRICS
from ser.reporting.paper_tables import Table, numeric_frame, to_tex
from ser.reporting.blocks import Heading, Paragraph, TableBlock, to_html, to_markdown
from ser.reporting.results import load_run
from ser.evaluation.result_types import ScoredSystems, TunedSystems

DEFAULT_SYSTEMS = ("speech", "text", "tuned", "oracle")
"""Shown unless ``--systems`` names others; each further text path's ``tuned:NAME`` comes along with ``tuned``."""
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Entry:
    """One corpus of one run: the run directory's name, the corpus and its scored systems."""

    run: str
    corpus: str
    result: ScoredSystems


def run_entries(run_dir: str | Path) -> list[Entry]:
    """A run directory's corpora: each corpus' per-fold tuning from ``cross.json`` where there is one (``ser run``
    with two corpora, ``ser cross``), else the run's own tuning or evaluation, named after the run's config."""
    loaded = load_run(run_dir)
    name = Path(run_dir).resolve().name
    if loaded.cross is not None:
        cross = loaded.cross.result
        return [Entry(name, c, cross.pair(c, c)) for c in cross.corpora]
    main = loaded.tune or loaded.evaluation
    if main is None:
        raise InputError(f"{run_dir} holds no per-fold results (results.json, evaluation.json or cross.json)")
    corpus = (loaded.record.get("config") or {}).get("name")
    return [Entry(name, corpus if corpus and corpus != "study" else name, main.result)]


def fold_mean_ci(values: list[float]) -> tuple[float, float, float] | None:
    """The mean over folds with its t-interval (``CONFIDENCE``); None for fewer than two folds."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return None
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def _systems(result: ScoredSystems, wanted: tuple[str, ...] | None) -> list[str]:
    """The systems of ``result`` to show: ``wanted`` in its order, else the defaults and every ``tuned:NAME``."""
    have = result.systems
    if wanted:
        return [s for s in wanted if s in have]
    shown = [s for s in DEFAULT_SYSTEMS if s in have]
    if not isinstance(result, TunedSystems):
        shown += [s for s in have if s not in shown]          # an evaluation: every system the user chose
    at = shown.index("tuned") + 1 if "tuned" in shown else len(shown)
    return shown[:at] + [s for s in have if s.startswith("tuned:")] + shown[at:]


def _metric_cell(result: ScoredSystems, system: str, metric: str) -> str:
    """The mean over folds [95% CI] in points, equal to the run's own ``mean`` figure."""
    mean = 100 * result.mean[system][metric]
    ci = fold_mean_ci(result.fold_values(system, metric))
    return f"{mean:.2f}" if ci is None else f"{mean:.2f} [{100 * ci[1]:.2f}, {100 * ci[2]:.2f}]"


def _gain_cells(result: ScoredSystems, system: str, objective: str) -> list[str]:
    """vs speech (mean over folds, points) and folds better, from the run's comparisons."""
    if system == "speech" or system not in result.comparisons:
        return ["—", "—"]
    folds = result.comparisons[system].folds
    return [f"{100 * result.gain(system, objective):+.2f}", f"{folds.improved}/{folds.n_folds}"]


def _verdict(result: ScoredSystems, system: str) -> str:
    """For the tuned system: how the search compares with the best simple baseline, as ``ser tune`` says it."""
    base = result.baseline_verdict
    if system != "tuned" or base is None or base.versus_best is None:
        return ""
    vb = base.versus_best
    return f"{base.verdict} {base.best} ({100 * vb.diff:+.2f} [{100 * vb.ci_low:+.2f}, {100 * vb.ci_high:+.2f}])"


def leaderboard_table(entries: list[Entry], systems: tuple[str, ...] | None = None) -> Table:
    """One row per (corpus, run, system): UA / WA / macro-F1 means over folds with CIs, the gain over speech in
    the run's headline metric (its tuning objective, or an evaluation's comparison metric) and the folds better,
    and for a tuned system the verdict against the best simple baseline."""
    gains = {e.result.headline_metric for e in entries}
    mixed = len(gains) > 1              # then each row names the metric its gain is in
    head = ["corpus", "run", "system", "folds", *(f"{metric_name(m)} [95% CI]" for m in REPORTED_METRICS),
            *(["gain in"] if mixed else []), "vs speech" if mixed else f"vs speech ({metric_name(gains.pop())})",
            "folds better/n", "search vs best baseline"]
    rows = []
    for e in sorted(entries, key=lambda e: (e.corpus, e.run)):
        metric = e.result.headline_metric
        for s in _systems(e.result, systems):
            rows.append([e.corpus, e.run, s, str(len(e.result.folds)),
                         *(_metric_cell(e.result, s, m) for m in REPORTED_METRICS),
                         *([metric_name(metric)] if mixed else []), *_gain_cells(e.result, s, metric),
                         _verdict(e.result, s)])
    if not rows:
        raise InputError(f"none of the runs has the systems {list(systems or DEFAULT_SYSTEMS)}")
    return Table("leaderboard", head, rows)


CAPTION = ("Mean over folds of per-fold UA, WA and macro-F1 (%), with a 95% t-interval over folds; vs speech: the "
           "system's mean minus speech alone's in the run's headline metric (points), and the folds where it is "
           "better.")


def write_leaderboard(runs: list[str | Path], out: str | Path,
                      systems: tuple[str, ...] | None = None) -> list[Path]:
    """``leaderboard.md``, ``.html``, ``.csv`` and ``.tex`` in ``out`` for the given run directories (written as
    one set: a failure leaves earlier files as they were)."""
    if not runs:
        raise InputError("ser leaderboard needs at least one run directory (--runs DIR ...)")
    entries = [entry for run in runs for entry in run_entries(run)]
    table = leaderboard_table(entries, systems)
    blocks = [Heading(1, "ser leaderboard"), Paragraph(CAPTION), TableBlock(table)]
    out = Path(out)
    names = ["leaderboard.md", "leaderboard.html", "leaderboard.csv", "leaderboard.tex"]
    with file_set(out) as staged:
        (staged / names[0]).write_text(to_markdown(blocks, staged))
        (staged / names[1]).write_text(to_html(blocks, "ser leaderboard"))
        numeric_frame(table).to_csv(staged / names[2], index=False)
        (staged / names[3]).write_text(to_tex(table, "Leaderboard. " + CAPTION))
    return [out / n for n in names]
