"""``ser report``: report.md, a self-contained report.html, figures and paper tables from a run directory.

The content is built once as a list of blocks (headings, paragraphs, tables, figures: ``ser.reporting.blocks``)
and rendered to Markdown and HTML, and every table also to ``tables/<name>.csv`` and ``tables/<name>.tex``
(booktabs), so they never disagree. Order: headline → per fold → per class → what changed →
uncertainty (H/V) → sensitivity → search → transfer → breakdowns. Works on any directory holding
``results.json`` (``ser tune``/``ser run``) or ``evaluation.json`` (``ser evaluate``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ser.reporting import figures
from ser.reporting.plots import RunOutputs, draw, label_codes
from ser.reporting.results import run_outputs
from ser.evaluation.result_types import CrossTransfer, ScoredSystems, TunedSystems
from ser.evaluation.scoring import format_p
from ser.reporting.figures import metric_name
from ser._util.io import DamagedFile, InputError, file_component, file_set, read_json
from ser.reporting.paper_tables import Table, numeric_frame, to_tex
from ser.measures.metrics import METRICS, REPORTED_METRICS, summary
from ser.tuning.baselines import baseline_table, describe_hindsight, describe_per_fold_pick, describe_versus_best
from ser.fusion.rules import describe_config
from ser.reporting.blocks import (Block, Figure, Heading, Paragraph, Provenance, TableBlock, tables_with_captions,
                                   to_html, to_markdown)

Image = Callable[[str, str], Figure]          # (figure name, caption) -> its block, the figure saved


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def headline(out: RunOutputs) -> str:
    """One sentence: did fusion help, by how much (pooled, labelled), how sure, in how many folds."""
    metric, main = out.metric, out.main
    cmp = out.result.comparisons.get(main) if main else None
    if not cmp:
        return "This run evaluates the built-in systems only (speech, text, oracle); no fusion system to compare."
    b, f = cmp.bootstrap, cmp.folds
    verdict = "improved" if b.ci_low > 0 else "did not significantly change" if b.ci_high > 0 else "hurt"
    subject = "Tuned fusion" if out.tuned else f"The best fixed system, `{main}`,"
    wilcoxon = "" if f.wilcoxon_p is None else f" (Wilcoxon {format_p(f.wilcoxon_p)})"
    mean_gain = 100 * out.result.gain(main, metric)
    return (f"**{subject} {verdict} {metric_name(metric)} by {100 * b.diff:+.2f} points** over speech alone on "
            f"the pooled test rows (95% CI [{100 * b.ci_low:+.2f}, {100 * b.ci_high:+.2f}], paired bootstrap "
            f"{format_p(b.p_value)}); {mean_gain:+.2f} points as the mean over folds; better in "
            f"**{f.improved} of {f.n_folds} folds**, worse in {f.worse}{wilcoxon}.")


FAMILIES = {"speech": "speech alone", "loglinear": "one-weight log-linear fusion", "average": "one-weight average",
            "joint": "joint fusion of several text paths", "select": "entropy-gated selection",
            "text": "the sentiment label alone", "oracle": "the oracle switch"}


def kept_per_fold(result: ScoredSystems) -> str:
    """What the tuned system is, fold by fold, in families a reader recognizes (and when it is a baseline)."""
    folds = result.folds
    families: dict[str, int] = {}
    for f in folds:
        name = FAMILIES.get(f.best.config["kind"], f.best.config["kind"])
        families[name] = families.get(name, 0) + 1
    parts = ", ".join(f"{name} in {n}/{len(folds)} folds" for name, n in sorted(families.items(), key=lambda x: -x[1]))
    shapes = {_baseline_shape(f.best.config) for f in folds}
    shape = next(iter(shapes)) if len(shapes) == 1 else None
    tail = (f": in every fold the family of the fixed baseline `{shape}`, its weight refitted per fold"
            if shape and shape in result.mean else "")
    return f"The tuned system is {parts}{tail}."


def _baseline_shape(config: dict) -> str | None:
    """The one-weight baseline a configuration is a refit of (``loglinear[probs,ratio]``), if it is one."""
    text = config.get("text") or {}
    if config["kind"] not in ("loglinear", "average") or config.get("weight_gate", "none") != "none" or \
            text.get("uniform"):
        return None
    return f"{config['kind']}[{text.get('spread', 'probs')},{text.get('negative_split', 'even')}]"


def build_blocks(out: RunOutputs, fig_dir: Path, formats: tuple[str, ...]) -> list[Block]:
    """Everything the report says, in order."""
    r, metric, main = out.result, out.metric, out.main
    m = metric_name(metric)

    def image(name: str, caption: str) -> Figure:
        return Figure(figures.save(draw(out, name), fig_dir / name, formats), caption)

    shown = out.shown
    blocks: list[Block] = [Heading(1, f"Fusion report: {out.name}"), Paragraph(headline(out))]
    if out.tuned:
        blocks.append(Paragraph(kept_per_fold(r)))
    t = r.tuning if isinstance(r, TunedSystems) else None
    if t:
        blocks.append(Paragraph(f"Protocol `{t.protocol}`, objective {m}, method `{t.method}`, choice rule "
                            f"`{t.choice}`: {t.configurations_evaluated:,} configurations "
                            f"evaluated; each fold's configuration was chosen on its tuning rows only and applied "
                            f"once to its test rows."))
    for warning in r.warnings:
        blocks.append(Paragraph(f"Warning: {warning}."))

    blocks.append(Heading(2, "Per fold"))
    blocks.append(image("folds", f"{m} per fold (test rows) with 95% bootstrap CIs; dashed lines: means over folds."))
    gains = out.gains
    if gains is not None:
        blocks.append(image("gains", f"{main} − speech per fold, {m} points, with paired 95% bootstrap CIs."))
    head = ["fold", "n"] + [f"{s} {m}" for s in shown] + ([f"gain ({main} − speech)"] if main else [])
    if gains is not None:
        head.append("gain 95% CI")
    if out.tuned:
        head.append("chosen configuration")
    rows = []
    for i, f in enumerate(r.folds):
        s = f.systems
        row = [f.fold, str(f.n)] + [_pct(s[name][metric]) for name in shown]
        if main:
            row.append(f"{100 * (s[main][metric] - s['speech'][metric]):+.2f}")
        if gains is not None:
            row.append(f"[{gains['low'][i]:+.2f}, {gains['high'][i]:+.2f}]")
        if out.tuned:
            row.append(f.best.description or describe_config(f.best.config))
        rows.append(row)
    blocks.append(TableBlock(Table("per_fold", head, rows)))
    blocks.append(Heading(2, "All metrics"))
    blocks.append(Paragraph("Mean ± standard deviation over folds, and the same metrics on all test rows pooled."))
    blocks.append(TableBlock(Table("metrics", ["system"] + [f"{metric_name(x)} mean ± std" for x in METRICS]
                                  + ["pooled UA", "pooled macro-F1"],
                                  [[name] + [f"{_pct(r.mean[name][x])} ± {_pct(r.std[name][x])}" for x in METRICS]
                                   + [_pct(r.pooled[name]["ua"]), _pct(r.pooled[name]["macro_f1"])]
                                   for name in r.mean])))

    blocks += per_class_blocks(r, shown)
    blocks.append(Heading(2, "What changed"))
    blocks.append(image("confusions",
                        "Pooled confusion matrices, rows = gold, normalized per row (counts in brackets)."))
    if main:
        sw = r.pooled[main].switches
        blocks.append(image("transitions", f"{main}: {sw['switched']} labels changed ({100 * sw['rate']:.1f}%), "
                                           f"{sw['wrong_to_right']} errors fixed (up), {sw['right_to_wrong']} right "
                                           f"labels broken (down), by transition."))
    if out.predictions is not None:
        blocks += uncertainty_blocks(out, image)
    if out.sweep:
        blocks += sweep_blocks(out, image)
    if isinstance(r, TunedSystems) and r.baselines is not None:
        blocks += search_blocks(out, image)
    if out.cross:
        blocks += cross_blocks(out.cross, image)
    if len(r.text_paths or {}) > 1 or r.asr is not None:
        blocks += text_path_blocks(r, image)
    if main and out.predictions is not None:
        blocks += breakdown_blocks(out, main)
    return blocks


def per_class_blocks(r: ScoredSystems, shown: list[str]) -> list[Block]:
    head = ["class", "support"] + [f"{s} {x}" for s in shown for x in ("P", "R", "F1")]
    rows = [[c, str(r.pooled["speech"].per_class[c]["support"])]
            + [_pct(r.pooled[s].per_class[c][x]) for s in shown for x in ("precision", "recall", "f1")]
            for c in r.labels]
    return [Heading(2, "Per class"),
            Paragraph("Precision (P), recall (R) and F1 per class on the pooled test rows (%)."),
            TableBlock(Table("per_class", head, rows))]


def uncertainty_blocks(out: RunOutputs, image: Image) -> list[Block]:
    pred = out.predictions
    right = pred["pred_speech"] == pred["label"]
    med = {(col, ok): float(np.median(pred.loc[right == ok, col])) for col in ("h", "v") for ok in (True, False)
           if (right == ok).any()}
    text = "Entropy-aware selection rests on the speech model being less sure where it is wrong."
    if len(med) == 4:
        text += (f" Here the median entropy is {med[('h', False)]:.2f} nats on wrong and {med[('h', True)]:.2f} on "
                 f"right predictions; the median varentropy {med[('v', False)]:.2f} vs {med[('v', True)]:.2f}.")
    return [Heading(2, "Uncertainty of the speech model"), Paragraph(text),
            image("uncertainty", "H and V of the speech probabilities on test rows, for right and wrong speech "
                                 "predictions.")]


def sweep_blocks(out: RunOutputs, image: Image) -> list[Block]:
    surfaces, chosen, stats = out.sweep.surfaces, out.sweep.chosen, out.sweep.stats
    metric = stats["objective"]
    m = metric_name(metric)
    blocks = [Heading(2, f"Threshold sensitivity ({stats['gate']} gate)"),
              Paragraph(f"The sweep evaluates one global τ_H × τ_V grid of the `{stats['gate']}` selection rule on every "
                    f"fold's test rows. Its own simple tuner picks each fold's grid point on the fold's tuning rows "
                    f"(this is not the tuned system above): τ_H {stats['chosen_tau_h']['mean']:.3f} ± "
                    f"{stats['chosen_tau_h']['std']:.3f}, τ_V {stats['chosen_tau_v']['mean']:.3f} ± "
                    f"{stats['chosen_tau_v']['std']:.3f} across folds, reaching test {m} "
                    f"{_pct(stats['mean_test_score'])} (speech {_pct(stats['mean_speech_score'])}); the best grid "
                    f"point in hindsight {_pct(stats['mean_best_on_grid'])}; the oracle "
                    f"{_pct(stats['mean_oracle_score'])} (gap {100 * stats['gap_to_oracle']:.2f} points)."),
              image("sensitivity", f"Mean test surfaces over folds ({m} and share of labels changed); circles: each "
                                   f"fold's choice, star: their mean.")]
    if (surfaces["scope"] != "global").any():
        blocks.append(image("sensitivity_classes", f"Per speech-predicted class, only that class's thresholds move "
                                                   f"(test {m}, one colour scale; x = best)."))
    blocks.append(TableBlock(Table("thresholds", ["fold", "τ_H", "τ_V", f"test {m} (sweep tuner)", f"speech {m}",
                                                 f"best on grid {m}", f"oracle {m}"],
                                  [[c.fold, f"{c.tau_h:.3f}", f"{c.tau_v:.3f}", _pct(c.test_score), _pct(c.speech_score),
                                    _pct(c.best_test_score), _pct(c.oracle_score)] for c in chosen.itertuples()])))
    return blocks


def search_blocks(out: RunOutputs, image: Image) -> list[Block]:
    """Did the search earn its complexity: tuned vs simple baselines, each fold's tuning vs test score, trials."""
    r, metric = out.result, out.metric
    m = metric_name(metric)
    t = r.tuning
    rows = [[row.system, f"{_pct(row.mean)} ± {_pct(row.std)}", f"{100 * row.vs_speech:+.2f}",
             f"{row.folds_better}/{row.folds_worse}", "" if row.system == "tuned" else f"{100 * row.vs_tuned:+.2f}"]
            for row in baseline_table(r).itertuples()]
    honesty = [[f.fold, f.best.description or describe_config(f.best.config),
                "" if f.best.free_parameters is None else str(f.best.free_parameters), _pct(f.best.tuning_score),
                "" if f.best.inner_score is None else _pct(f.best.inner_score),
                _pct(f.best.test_score), f"{100 * f.best.optimism:+.2f}"]
               for f in r.folds if f.best.test_score is not None]
    blocks = [
        Heading(2, "Search vs simple baselines"),
        Paragraph(_versus_best_text(r, m)),
        TableBlock(Table("baselines", ["system", f"{m} mean ± std", "vs speech", "folds better/worse", "vs tuned"],
                        rows)),
        Paragraph(f"Kept configurations scored {_pct(t.mean_tuning_score)} on the rows they were tuned on and "
              f"{_pct(t.mean_test_score)} on test rows: an optimism of {100 * t.mean_optimism:+.2f} points. The "
              f"inner estimate (refit without each tuning group, scored on it) is what the choice used."),
        TableBlock(Table("optimism", ["fold", "kept configuration", "free parameters", f"tuning {m}",
                                     f"inner estimate {m}", f"test {m}", "optimism"], honesty)),
    ]
    why = [[f.fold, f.best.why] for f in r.folds if f.best.why]
    if why:
        blocks += [Paragraph("Why each fold kept its configuration: a fusion is kept over speech alone (and a joint fusion "
                         "over the one-path one) only when its inner estimate leads by the required SEs, it is better "
                         "in most held-out folds, and no held-out fold loses more than its size allows."),
                   TableBlock(Table("choices", ["fold", "why"], why))]
    if len(out.primary_trials):
        blocks.append(image("trials", "Search history per fold: each trial's inner estimate (dots) and the best so "
                                      "far (lines)."))
    return blocks


def _versus_best_text(result: TunedSystems, m: str) -> str:
    """The search against the best simple baseline, in words (a results.json written before the CI existed gives
    the difference alone)."""
    base, choice = result.baselines, result.tuning.choice
    head = f"Every baseline was fitted on the same tuning rows as the search (choice rule `{choice}`), in {m}. "
    if base.verdict.versus_best is None:
        return head + f"Tuned − best baseline (`{base.verdict.best}`): {100 * base.verdict.tuned_minus_best:+.2f} points."
    pick = "" if base.per_fold_pick is None else f" {describe_per_fold_pick(base.per_fold_pick)}"
    ceiling = "" if base.hindsight is None else f" {describe_hindsight(result)}"
    return head + describe_versus_best(base.verdict) + pick + ceiling


def cross_blocks(cross: CrossTransfer, image: Image) -> list[Block]:
    m = metric_name(cross.objective)
    head = ["tuned on", "tested on", *(f"tuned {metric_name(x)}" for x in REPORTED_METRICS),
            *(f"{metric_name(x)} gain" for x in REPORTED_METRICS), f"{m} gain (pooled) [95% CI]", "folds better"]
    blocks = [Heading(2, "Cross-dataset transfer"),
              Paragraph("The diagonal is ordinary per-fold tuning; off the diagonal one configuration tuned on all of the "
                    "row corpus is applied to every fold of the column corpus. Tuned UA, WA and macro-F1 and their "
                    f"gains over speech are means over the test corpus' folds (points); the pooled gain and folds "
                    f"better are in {m}, the objective."),
              image("cross", f"{m} gain over speech, mean over the test corpus' folds (points), and folds improved."),
              TableBlock(Table("transfer", head, _transfer_rows(cross)))]
    for path, part in cross.text_paths.items():
        blocks += [Paragraph(f"The same with text path `{path}` in every corpus (its own tuning and transfer)."),
                   TableBlock(Table(f"transfer_{file_component(path)}", head, _transfer_rows(part)))]
    return blocks


def _transfer_rows(cross: CrossTransfer) -> list[list[str]]:
    rows = []
    for a in cross.corpora:
        for b in cross.corpora:
            cell, pair = cross.matrix[a][b], cross.pair(a, b)
            boot, mean = pair.comparisons["tuned"].bootstrap, pair.mean["tuned"]
            rows.append([a, b, *(_pct(mean[x]) for x in REPORTED_METRICS),
                         *(f"{100 * cross.gain(a, b, x):+.2f}" for x in REPORTED_METRICS),
                         f"{100 * boot.diff:+.2f} [{100 * boot.ci_low:+.2f}, {100 * boot.ci_high:+.2f}]",
                         f"{cell.folds_improved}/{cell.n_folds}"])
    return rows


def text_path_blocks(r: ScoredSystems, image: Image) -> list[Block]:
    """Every text path: its ASR errors, sentiment accuracy, text-only and tuned scores; the gain by utterance WER;
    the text-path transfer matrix."""
    metric = r.headline_metric
    m, paths, asr = metric_name(metric), r.text_paths or {}, r.asr or {}
    rows = []
    for name, info in paths.items():
        suffix = "" if info["columns"] == "text_*" else ":" + info["columns"].split(":", 1)[1]
        errors = asr.get("per_path", {}).get(name, {})
        text, tuned = r.mean.get(f"text{suffix}"), r.mean.get(f"tuned{suffix}")
        acc = info["sentiment_accuracy"]
        rows.append([name, ", ".join(info["transcript_source"]) or "-",
                     _pct(errors["wer"]) if errors.get("wer") is not None else "-",
                     _pct(errors["cer"]) if errors.get("cer") is not None else "-",
                     _pct(acc) if acc is not None else "-", _pct(text[metric]) if text else "-",
                     _pct(tuned[metric]) if tuned else "-"])
    blocks: list[Block] = [
        Heading(2, "Text paths"),
        Paragraph(f"Each ASR + sentiment combination as its own text path. WER and CER against the reference "
              f"transcripts (normalizer `{asr.get('normalizer', '-')}`; pooled over utterances); sentiment accuracy "
              f"against the gold emotion mapped to sentiment; text-only and tuned {m} as means over folds (%)."),
        TableBlock(Table("text_paths", ["path", "transcripts", "WER", "CER", "sentiment accuracy", f"text {m}",
                                       f"tuned {m}"], rows))]
    cascade = r.cascade if isinstance(r, TunedSystems) else None
    if cascade is not None:
        blocks.append(image("gain_by_wer", "How transcript errors reach the fusion: accuracy gain over speech by "
                                           "utterance WER, with 95% bootstrap CIs over utterances."))
        rows = [[path, b["bucket"], str(b["n"]), f"{100 * b['gain']:+.2f}" if b["gain"] is not None else "-",
                 str(b["switches"]), _pct(b["switch_right"]) if b["switch_right"] is not None else "-"]
                for path, buckets in cascade["paths"].items() for b in buckets]
        blocks.append(TableBlock(Table("gain_by_wer", ["path", "utterance WER", "n", "gain (points)",
                                                      "switches", "switches right (%)"], rows)))
    if isinstance(r, TunedSystems) and r.text_transfer is not None:
        t = r.text_transfer
        rows = [[src] + [f"{100 * t['matrix'][src][dst]['gain']:+.2f}" for dst in t["paths"]] for src in t["paths"]]
        blocks.append(Paragraph(f"A configuration tuned on one path (rows) applied to another path's text (columns): "
                            f"{m} gain over speech, mean over folds (points)."))
        blocks.append(TableBlock(Table("text_transfer", ["tuned on \\ applied to"] + t["paths"], rows)))
    return blocks


def breakdown_blocks(out: RunOutputs, main: str) -> list[Block]:
    """Speech vs the main system by condition (improvised/scripted) and gender, where the table has them."""
    pred, labels, metric = out.predictions, out.result.labels, out.metric
    m, k = metric_name(metric), len(labels)
    blocks = []
    for column in ("condition", "gender"):
        if column not in pred or pred[column].nunique() < 2:
            continue
        rows = []
        for value, part in pred.groupby(column, sort=True):
            y = label_codes(part, labels, "label")
            sp = summary(y, label_codes(part, labels, "pred_speech"), k)[metric]
            mn = summary(y, label_codes(part, labels, f"pred_{main}"), k)[metric]
            rows.append([str(value), str(len(part)), _pct(sp), _pct(mn), f"{100 * (mn - sp):+.2f}"])
        blocks.append(TableBlock(Table(f"by_{column}", [column, "n", f"speech {m}", f"{main} {m}", "gain"], rows)))
    if blocks:
        blocks.insert(0, Heading(2, "Breakdowns"))
        blocks.insert(1, Paragraph("Pooled test rows of each group (%)."))
    return blocks


def provenance_text(record: dict) -> str:
    """Where the numbers come from, in one line: ser version, commit, command, seed, date (``run.json``)."""
    if not record:
        return "Provenance: this directory has no run.json (written by `ser tune`, `ser run` or `ser infer`)."
    commit = record.get("git_commit") or "no git checkout"
    parts = [f"ser `{record.get('ser_code', '?')}`", f"commit `{commit}`", f"`ser {record.get('command', '?')}`",
             f"seed {record.get('seed', '?')}", f"created {record.get('created', 'before ser recorded dates')}",
             f"Python {record.get('python', '?')}"]
    return "Provenance: " + ", ".join(parts) + " (all in run.json)."


def _record(run: Path) -> dict:
    """``run.json`` of a run directory ({} when it has none or it is damaged: the report still builds)."""
    try:
        record = read_json(run / "run.json")
    except (OSError, DamagedFile):
        return {}
    return record if isinstance(record, dict) else {}


def write_report(run: str | Path, formats: tuple[str, ...] = ("png",)) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html``, ``figures/*`` (PNG plus ``formats``) and ``tables/*.csv|tex``."""
    run = Path(run)
    bad = sorted(set(formats) - set(figures.FORMATS))
    if bad:
        raise InputError(f"figure format(s) {bad} are not one of {list(figures.FORMATS)}")
    outputs = run_outputs(run)
    with file_set(run) as staged:                 # a failed rebuild leaves the previous report whole
        fig_dir, table_dir = staged / "figures", staged / "tables"
        fig_dir.mkdir()
        table_dir.mkdir()
        try:
            blocks = build_blocks(outputs, fig_dir, tuple(formats))
            blocks.insert(1, Provenance(provenance_text(_record(run))))
        except (KeyError, TypeError, IndexError) as exc:
            raise InputError(f"{run}: its results lack {exc} (damaged, or written by another ser version); rerun "
                             f"the command that wrote them") from exc
        for table, caption in tables_with_captions(blocks):
            numeric_frame(table).to_csv(table_dir / f"{table.name}.csv", index=False)
            (table_dir / f"{table.name}.tex").write_text(to_tex(table, caption))
        (staged / "report.md").write_text(to_markdown(blocks, staged))
        (staged / "report.html").write_text(to_html(blocks, f"ser report: {run.name}"))
    md, page = run / "report.md", run / "report.html"
    return md, page
