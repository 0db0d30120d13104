"""The public API: score tables in, typed results out; nothing printed (``logging`` only), and files written
only by a result's ``.save(directory)`` and by ``ser.write_report``.

    import ser
    scores = ser.read_scores("runs/demo/infer/scores.parquet")
    ev = ser.evaluate(scores)                                   # speech, text, oracle per fold
    tuned = ser.tune(scores, {"tune": {"engine": "optuna", "trials": 16}})
    tuned.table().pivot(index="fold", columns="system", values="macro_f1")
    ser.write_report(tuned.save("runs/notebook"))               # report.md/.html, as `ser report` writes them

``scores`` is a DataFrame or a path; ``config`` a YAML path, a YAML-shaped dict or a ``StudyConfig``. The
label set comes from the config when it names one, else from the table's ``speech_*`` columns.

Units: every score the API returns (result dictionaries, ``.table()``, ``.chosen()``, ``.baselines()``) is a
fraction in [0, 1]; the terminal, ``summary()``, reports and the CSV/TeX tables show percent (points).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ser.data.arrays import same_on_every_row
from ser.config import StudyConfig, load_config
from ser._util.io import InputError
from ser.data.labels import SENTIMENTS
from ser._util.progress import progress
from ser.evaluation.result_types import TunedSystems
from ser.reporting.results import CrossResult, Evaluation, SweepResult, TuneResult
from ser.data.schema import labels_of, path_view, read_table, require_classes, text_path_names, validate
from ser.evaluation.scoring import evaluate_systems, evaluation_predictions
from ser.evaluation.text_paths import asr_report, cascade, has_references, path_errors, path_summary, paths_of, \
    primary_name, transfer_matrix

log = logging.getLogger(__name__)

ScoresLike = pd.DataFrame | str | Path
ConfigLike = str | Path | Mapping[str, Any] | StudyConfig | None


def resolve(scores: ScoresLike, config: ConfigLike = None, *, origin: str | None = None
            ) -> tuple[pd.DataFrame, StudyConfig]:
    """(validated table, config) with the label set from the config, else from the table's columns; ``origin``
    names where a mapping ``config`` was read from, for its errors."""
    cfg = load_config(config, origin=origin)
    source = str(scores) if isinstance(scores, (str, Path)) else "score table"
    table = read_table(scores) if isinstance(scores, (str, Path)) else scores
    if cfg.labels is None:
        cfg = replace(cfg, labels=labels_of(table, source))
    df = validate(table, cfg.label_set, source=source)
    require_classes(df, source)
    return df, cfg


def evaluate(scores: ScoresLike, config: ConfigLike = None) -> Evaluation:
    """Every fixed system of the config (plus speech, text, oracle) on each fold's test rows."""
    df, cfg = resolve(scores, config)
    return evaluate_table(df, cfg)


def evaluate_table(df: pd.DataFrame, cfg: StudyConfig) -> Evaluation:
    """``ser.evaluate`` on a validated table and a resolved config (what the run directory's stages call)."""
    ev, rules = cfg.evaluate, cfg.rules()
    asr = None
    if has_references(df):
        wer = ev.wer()
        asr = asr_report(df, path_errors(df, wer), wer.label)
    scored = evaluate_systems(df, rules, cfg.label_set, ev, cfg.seed)
    result = replace(scored, text_paths=path_summary(df, cfg.label_set), asr=asr)
    return Evaluation(result, evaluation_predictions(df, rules, cfg.label_set))


def tune(scores: ScoresLike, config: ConfigLike = None) -> TuneResult:
    """A leakage-free search per fold (``tune.engine``: ray, tasks or optuna), with the simple baselines beside it."""
    df, cfg = resolve(scores, config)
    return tune_table(df, cfg)


def tune_table(df: pd.DataFrame, cfg: StudyConfig, state_dir: Path | None = None, reuse: bool = True,
               experiment_dir: Path | None = None) -> TuneResult:
    """``ser.tune`` on a validated table and a resolved config; finished folds saved in and, with ``reuse``, taken
    from ``state_dir``, and a Ray Tune experiment kept in ``experiment_dir`` to resume."""
    from ser.engine import search_engine
    from ser.evaluation.scoring import result_predictions
    from ser.tuning.per_fold import make_fold_search, path_state_dir, trials_table, tune_folds, tuned_results

    warn_blank_paths(df)
    engine = search_engine(cfg.tune, len(df), experiment_dir, resume=reuse and experiment_dir is not None)
    search = make_fold_search(cfg.tune, engine)
    searches = tune_folds(df, cfg.label_set, cfg.tune, search, cfg.seed, state_dir=state_dir, reuse=reuse)
    path_searches = {name: tune_folds(path_view(df, name), cfg.label_set, cfg.tune, search, cfg.seed, reuse=reuse,
                                      state_dir=path_state_dir(state_dir, name) if state_dir else None)
                     for name in tuned_paths(df, cfg.tune.text)}
    result = tuned_results(df, cfg.label_set, searches, cfg.tune, cfg.evaluate, cfg.seed, path_searches=path_searches)
    predictions = result_predictions(df, cfg.label_set, result)
    result = _with_text_path_studies(df, cfg, result, predictions)
    trials = trials_table(searches, path_searches)
    if cfg.tune.storage:
        _save_studies(df, cfg, result, trials)
    return TuneResult(result, trials, predictions)


def warn_blank_paths(df: pd.DataFrame) -> None:
    """One warning per text path whose sentiment is the same on every row (blank transcripts, a model that never
    changes its answer): it carries nothing to fuse, and a fold whose every path is so keeps speech unsearched."""
    corpus = ", ".join(map(str, df["corpus"].unique()))
    for name, suffix in paths_of(df).items():
        columns = [f"text_{s}" if suffix is None else f"text_{s}:{suffix}" for s in SENTIMENTS]
        if len(df) and same_on_every_row(df[columns].to_numpy()):
            log.warning(f"text path '{name}' of {corpus}: the sentiment is the same on every row (blank "
                        f"transcripts?); it carries nothing to fuse")


def _save_studies(df: pd.DataFrame, cfg: StudyConfig, result: TunedSystems, trials: pd.DataFrame) -> None:
    """Each fold's finished search as an Optuna study in ``tune.storage`` (``ser.tuning.optuna_store``)."""
    from ser.data.arrays import ScoreArrays
    from ser.tuning.optuna_store import OUT_PLACEHOLDER, save_studies
    from ser.tuning.search import space_for

    if OUT_PLACEHOLDER in cfg.tune.storage:
        raise InputError(f"tune.storage {cfg.tune.storage!r} names the run directory, and this run has none "
                         f"(give --out, or a URL without {OUT_PLACEHOLDER})")
    space = space_for(cfg.tune.space, {"table": ScoreArrays.from_table(df, cfg.label_set)})
    names = save_studies(trials, space, cfg.tune.storage, objective=cfg.tune.objective,
                         kept={f.fold: f.best.trial for f in result.folds})
    log.info(f"wrote {len(names)} Optuna studies to {cfg.tune.storage}")


def _common_paths(frames: Mapping[str, pd.DataFrame], text: str | None) -> list[str]:
    """The text paths ``tune.text`` names that every corpus has; a path named outright must be in every corpus,
    and with ``all`` the paths some corpora lack are left out with a warning."""
    found = {}
    for name, df in frames.items():
        try:
            found[name] = tuned_paths(df, text)
        except ValueError as exc:
            raise InputError(f"cross: corpus '{name}': {exc}") from None
    common = [p for p in next(iter(found.values()), []) if all(p in paths for paths in found.values())]
    lacking = {name: sorted(set().union(*found.values()) - set(paths)) for name, paths in found.items()}
    if any(lacking.values()):
        log.warning(f"cross: text path(s) missing from some corpora {({n: m for n, m in lacking.items() if m})}; "
                    f"transferred: {common or 'none'}")
    return common


def tuned_paths(df: pd.DataFrame, text: str | None) -> list[str]:
    """The further text paths ``tune.text`` names (a path, or ``all``); an unknown name is an error naming the
    table's paths."""
    available = text_path_names(df.columns)
    if text is None:
        return []
    if text == "all":
        return available
    if text not in available:
        raise InputError(f"tune.text: the score table has no text path '{text}' (paths: {available or 'none'})")
    return [text]


def _with_text_path_studies(df: pd.DataFrame, cfg: StudyConfig, result: TunedSystems, predictions: pd.DataFrame
                            ) -> TunedSystems:
    """The result with its text paths; with several tuned paths, the text-path transfer matrix; with reference
    transcripts, WER per path and the fusion gain by utterance WER (each path with its own tuned system, else the
    primary's)."""
    configs = result.path_configs or {}
    names = paths_of(df)
    primary = primary_name(df)
    text_transfer = asr = cascade_report = None
    if configs:
        tuned = {primary: result.kept()}
        tuned |= {name: configs[suffix] for name, suffix in names.items() if suffix in configs}
        text_transfer = transfer_matrix(df, cfg.label_set, tuned, cfg.tune.objective)
    if has_references(df):
        wer = cfg.evaluate.wer()
        errors = path_errors(df, wer)
        asr = asr_report(df, errors, wer.label)
        systems = {name: ("tuned" if suffix is None else f"tuned:{suffix}")
                   for name, suffix in names.items() if suffix is None or suffix in configs}
        cascade_report = {"normalizer": wer.label, "systems": systems,
                          "paths": cascade(df, predictions, systems, errors, cfg.evaluate.bootstrap, cfg.seed)}
    return replace(result, text_paths=path_summary(df, cfg.label_set), text_transfer=text_transfer, asr=asr,
                   cascade=cascade_report)


def sweep(scores: ScoresLike, config: ConfigLike = None) -> SweepResult:
    """Threshold-sensitivity surfaces per fold and averaged, with the thresholds a tuner would pick."""
    df, cfg = resolve(scores, config)
    return sweep_table(df, cfg)


def sweep_table(df: pd.DataFrame, cfg: StudyConfig) -> SweepResult:
    """``ser.sweep`` on a validated table and a resolved config."""
    from ser.tuning.sensitivity import sweep as sweep_surfaces

    return SweepResult(*sweep_surfaces(df, cfg.sweep, cfg.label_set, cfg.tune.protocol, cfg.tune.objective))


def cross(tables: Mapping[str, ScoresLike], config: ConfigLike = None, *,
          in_corpus: Mapping[str, dict] | None = None, state_dirs: Mapping[str, Path] | None = None,
          reuse: bool = True) -> CrossResult:
    """Tune on each corpus, test on every other (and on itself, per fold): the transfer matrix.

    ``state_dirs`` ({corpus: directory}): where each corpus' per-fold (diagonal) searches are saved, in the
    layout ``ser tune`` writes, and with ``reuse`` taken from when their config, seed, table and code are
    unchanged.
    """
    from ser.engine import search_engine
    from ser.tuning.transfer import cross_dataset
    from ser.tuning.per_fold import make_fold_search, path_state_dir

    resolved = {name: resolve(table, config) for name, table in tables.items()}
    frames = {name: df for name, (df, _) in resolved.items()}
    cfg = next(iter(resolved.values()))[1]
    for name, df in frames.items():
        if name not in (in_corpus or {}):             # a corpus tuned before (ser run's tune stage) was warned there
            warn_blank_paths(df)
    search = make_fold_search(cfg.tune, search_engine(cfg.tune, sum(map(len, frames.values()))))
    common = _common_paths(frames, cfg.tune.text)
    dirs = dict(state_dirs or {})
    with progress(len(frames) * (1 + len(common)), "cross", "tuning corpora") as advance:
        result = cross_dataset(frames, cfg.label_set, cfg.tune, search, cfg.evaluate, cfg.seed,
                               in_corpus=dict(in_corpus or {}), state_dirs=dirs, reuse=reuse, advance=advance)
        if common:
            result = replace(result, text_paths={
                path: cross_dataset({name: path_view(df, path) for name, df in frames.items()}, cfg.label_set, cfg.tune,
                                    search, cfg.evaluate, cfg.seed, reuse=reuse,
                                    state_dirs={name: path_state_dir(d, path) for name, d in dirs.items()},
                                    advance=advance)
                for path in common})
    return CrossResult(result)
