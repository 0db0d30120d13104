"""Study configuration: the sections as frozen dataclasses, the single source of defaults, and the loader.

A YAML file (or a YAML-shaped dict) is read through one key-checking loader (``ser.config.mapping.from_mapping``):
unknown keys are named with a "did you mean" suggestion, values are checked by each section's
``__post_init__``, and errors name ``section.key``. ``docs/config.md`` is generated from the field
metadata here (``ser.config.reference``) and kept in sync by a test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from ser.measures.asr_errors import NORMALIZERS, WerNormalizer
from ser.config.backends import STAGES, StageSpec, doc
from ser.config.mapping import (ConfigError, as_data, check_choice, check_count, check_flag, from_mapping, section,
                                stage_spec)
from ser._util.checks import is_count, is_number
from ser.data.corpora.registry import CORPORA
from ser.fusion.rules import BUILTIN_SYSTEMS, GATES, Rule, rule_from_config
from ser.data.folds import TUNING_PROTOCOLS
from ser._util.io import InputError, check_keys, read_yaml
from ser.data.labels import DEFAULT_LABELS, LabelSet
from ser.measures.metrics import METRICS
from ser.measures.objective import AGGREGATES, Objective
from ser.config.space import Candidates, SearchSpace

METHODS = ("search", "published")
ENGINES = ("auto", "ray", "tasks", "optuna")
CHAIN_CHOICES = ("auto", "always", "never")
AUTO_RAY_ROWS = 20_000
"""``tune.engine: auto`` searches the folds side by side from this many score-table rows: as Ray tasks on this machine
(starting Ray), with Ray Tune on a cluster (``RAY_ADDRESS``). Below it starting Ray costs about what the folds side by
side save (``python -m jobs.bench tune`` on 2 cores, 10 folds x 48 trials: 5,548 rows 19.4 s in process against
12.8 s as Ray tasks plus 3.6 s to start Ray, and 24.9 s against 17.8 + 6.5 s on a slower hour; at 55,479 rows the
tasks 1.97x the in-process engine and Ray Tune 1.73x; on the demo's 960 rows the whole ``ser tune`` took 11.9 s in
process against 14.5 s as tasks; every engine gives the same trials)."""
AUTO_TASK_WORK = 30_000
"""``tune.engine: auto`` below ``AUTO_RAY_ROWS`` also searches the folds as Ray tasks when this process already runs
Ray (``ser run`` after inference) and rows × trials reach this; below it one fold after another in process is as
fast (a task's worker first imports the search code, ~1–2 s; the demo's 960 rows × 48 trials take ~10 s in one
process on 2 cores)."""
CHOICES = ("levels", "one-se", "inner-best", "tuning-best")


@dataclass(frozen=True)
class EvaluateConfig:
    """``evaluate``: how fixed and tuned systems are scored and compared."""

    baseline: str = field(default="speech", metadata=doc("system every other system is compared with (paired tests)"))
    bootstrap: int = field(default=1000, metadata=doc("paired bootstrap resamples for confidence intervals and p"))
    metric: str = field(default="ua", metadata=doc(f"headline metric: one of {list(METRICS)}"))
    min_fold_rows: int = field(default=20, metadata=doc("folds with fewer test rows get a warning"))
    wer_normalizer: str = field(default="whisper", metadata=doc(
        f"text normalization before WER/CER: one of {list(NORMALIZERS)} (basic: the paper's)"))
    wer_spelling: str | None = field(default=None, metadata=doc(
        "JSON file of British→American spellings for the whisper normalizer (Whisper's english.json; "
        "null: spellings are left as they are)"))

    def __post_init__(self) -> None:
        check_choice(self.metric, tuple(METRICS), "evaluate.metric")
        check_choice(self.wer_normalizer, NORMALIZERS, "evaluate.wer_normalizer")
        if self.wer_spelling is not None and self.wer_normalizer != "whisper":
            raise ConfigError(f"evaluate.wer_spelling is used by the whisper normalizer only; "
                              f"evaluate.wer_normalizer is '{self.wer_normalizer}'")
        if self.wer_spelling is not None:
            self.wer()                  # a missing or malformed spelling file is refused before any work starts
        check_count(self.bootstrap, "evaluate.bootstrap")
        check_count(self.min_fold_rows, "evaluate.min_fold_rows")

    def for_tuning(self, objective: str) -> "EvaluateConfig":
        """The settings a tuned result is scored with: against speech, on the tuning objective."""
        return replace(self, baseline="speech", metric=objective)

    def wer(self) -> WerNormalizer:
        """The WER normalizer ``wer_normalizer`` and ``wer_spelling`` name (the spelling file read and checked)."""
        return WerNormalizer.load(self.wer_normalizer, self.wer_spelling)


@dataclass(frozen=True)
class TuneConfig:
    """``tune``: the leakage-free per-fold search for a fusion configuration."""

    method: str = field(default="search", metadata=doc(f"one of {list(METHODS)} (published: the paper's procedure)"))
    engine: str = field(default="auto", metadata=doc(
        f"one of {list(ENGINES)} (ray: a Ray Tune trial per fold; tasks: a plain Ray task per fold; optuna: in "
        f"process, no Ray; auto: from {AUTO_RAY_ROWS:,} rows the folds side by side, as Ray tasks on this machine "
        f"and with Ray Tune on a cluster (RAY_ADDRESS), else in process, or as Ray tasks when this process already "
        f"runs Ray, as `ser run` does after inference, and rows x trials >= {AUTO_TASK_WORK:,}; the same trials "
        f"every way)"))
    protocol: str = field(default="oof", metadata=doc(f"tuning rows per fold: one of {list(TUNING_PROTOCOLS)}"))
    objective: str = field(default="macro_f1", metadata=doc(f"metric maximized on tuning rows: one of {list(METRICS)}"))
    aggregate: str = field(default="fold-mean", metadata=doc(
        f"how the objective is aggregated over the tuning rows' folds when fitting weights and thresholds and "
        f"ranking trials: one of {list(AGGREGATES)} (fold-mean: the mean over folds of per-fold scores, the "
        f"aggregation every reported figure uses)"))
    trials: int = field(default=48, metadata=doc("search trials per fold"))
    max_concurrent_trials: int = field(default=2, metadata=doc("trials running at once (ray engine)"))
    choice: str = field(default="levels", metadata=doc(
        f"which trial is kept: one of {list(CHOICES)} (levels: the best tuning score per number of free "
        f"parameters, then the simplest fusion within one overlap-corrected SE of the best inner estimate, kept over "
        f"speech alone when it leads speech by half an SE)"))
    space: SearchSpace = field(default_factory=SearchSpace, metadata=doc(
        "the search space (`tune.space.*` below): keys given replace those defaults, unknown keys are errors"))
    text: str | None = field(default=None, metadata=doc(
        "further text paths tuned besides the primary one, each its own search per fold: a path name or `all`"))
    storage: str | None = field(default=None, metadata=doc(
        "an Optuna storage URL that receives each fold's finished search as a study named after the fold, for "
        "optuna-dashboard and optuna.visualization: `sqlite:///{out}/optuna.db` (`{out}`: the run directory) or any "
        "SQLAlchemy URL"))

    def __post_init__(self) -> None:
        for key, allowed in (("method", METHODS), ("engine", ENGINES), ("protocol", TUNING_PROTOCOLS),
                             ("objective", tuple(METRICS)), ("aggregate", AGGREGATES), ("choice", CHOICES)):
            check_choice(getattr(self, key), allowed, f"tune.{key}")
        check_count(self.trials, "tune.trials")
        check_count(self.max_concurrent_trials, "tune.max_concurrent_trials")
        if self.storage is not None and (not isinstance(self.storage, str) or "://" not in self.storage):
            raise InputError(f"tune.storage: {self.storage!r} is not a storage URL (e.g. sqlite:///{{out}}/optuna.db)")
        object.__setattr__(self, "space", section(self.space, SearchSpace, "tune.space."))

    @property
    def target(self) -> Objective:
        """What each fold's search maximizes on its tuning rows: ``objective`` aggregated as ``aggregate``."""
        return Objective(self.objective, self.aggregate)


@dataclass(frozen=True)
class SweepConfig:
    """``sweep``: threshold-sensitivity surfaces over (τ_H, τ_V)."""

    gate: str = field(default="hv", metadata=doc(f"gate swept: one of {sorted(GATES)}"))
    tau_h: Candidates = field(default=Candidates(range=(0.0, 1.4), steps=57),
                              metadata=doc("entropy thresholds: {range: [lo, hi], steps: n}"))
    tau_v: Candidates = field(default=Candidates(range=(0.0, 1.4), steps=57),
                              metadata=doc("varentropy thresholds: {range: [lo, hi], steps: n}"))
    per_class: bool = field(default=True, metadata=doc("also sweep per predicted class"))

    def __post_init__(self) -> None:
        check_choice(self.gate, tuple(GATES), "sweep.gate")
        for key in ("tau_h", "tau_v"):
            spec = section(getattr(self, key), Candidates, f"sweep.{key}.")
            object.__setattr__(self, key, spec)
            spec.check(f"sweep.{key}")
            if spec.range is None:
                raise InputError(f"sweep.{key} needs an absolute range (surfaces are averaged across folds)")
        check_flag(self.per_class, "sweep.per_class")


@dataclass(frozen=True)
class CrossConfig:
    """``cross``: cross-corpus transfer (tune on one corpus, test on another)."""

    corpora: dict = field(default_factory=dict, metadata=doc(
        "other corpora: name → score table path, or a `prepare` mapping to score it in the run"))

    def __post_init__(self) -> None:
        if not isinstance(self.corpora, dict):
            raise InputError("cross.corpora must map corpus names to score tables or prepare mappings")
        for name, spec in self.corpora.items():
            if isinstance(spec, Mapping):
                from_mapping(PrepareConfig, spec, f"cross.corpora.{name}.")
            elif not isinstance(spec, str):
                raise InputError(f"cross.corpora.{name} must be a score table path or a prepare mapping")

    def prepare_for(self, name: str, base: "PrepareConfig") -> "PrepareConfig":
        """The prepare settings of corpus ``name``: the study's, without its root and table, overlaid."""
        return from_mapping(PrepareConfig, {**asdict(base), "root": None, "table": None, **self.corpora[name]},
                            f"cross.corpora.{name}.")


TRACK_BACKENDS = ("mlflow", "tensorboard", "wandb")


@dataclass(frozen=True)
class TrackConfig:
    """``track``: each stage's results logged to an experiment tracker (off unless ``backend`` is set)."""

    backend: str | None = field(default=None, metadata=doc(
        f"one of {list(TRACK_BACKENDS)}, or null: no tracking (`--track BACKEND` on the command line)"))
    uri: str | None = field(default=None, metadata=doc(
        "where to log: an MLflow tracking URI (default sqlite:///OUT/mlflow.db, files in OUT/mlartifacts), a "
        "TensorBoard log directory (default OUT/tensorboard) or a W&B directory (default OUT; offline unless "
        "WANDB_MODE=online)"))
    experiment: str = field(default="ser", metadata=doc("MLflow experiment or W&B project"))

    def __post_init__(self) -> None:
        if self.backend is not None:
            check_choice(self.backend, TRACK_BACKENDS, "track.backend")
        if not isinstance(self.experiment, str) or not self.experiment:
            raise InputError(f"track.experiment must be a name, got {self.experiment!r}")


@dataclass(frozen=True)
class PrepareConfig:
    """``prepare``: a corpus directory → manifest with folds."""

    corpus: str | None = field(default=None, metadata=doc(f"one of {list(CORPORA)}"))
    root: str | None = field(default=None, metadata=doc("corpus directory (demo: where its audio is written)"))
    table: str | None = field(default=None, metadata=doc("for corpus `manifest`: the CSV/JSONL/Parquet listing"))
    dataset: str | None = field(default=None, metadata=doc(
        "for corpus `hf`: a Hugging Face dataset (a save_to_disk directory, a Parquet/Arrow folder or a hub id)"))
    split: str | None = field(default=None, metadata=doc("for corpus `hf`: the split (needed when there are several)"))
    columns: dict | None = field(default=None, metadata=doc(
        "for corpora `manifest` and `hf`: its column → our column (hf: audio, label, speaker, utt_id, transcript)"))
    labels: dict | None = field(default=None, metadata=doc("corpus label → class code (IEMOCAP: exc → hap by default)"))
    per_speaker: int | None = field(default=None, metadata=doc("demo corpora: utterances per speaker"))
    folds: str = field(default="column:speaker", metadata=doc(
        "fold protocol: iemocap-speaker, iemocap-session, msp_improv-session, msp_improv-speaker or column:NAME"))

    def __post_init__(self) -> None:
        if self.corpus is not None:
            check_choice(self.corpus, tuple(CORPORA), "prepare.corpus")
        if self.per_speaker is not None:
            check_count(self.per_speaker, "prepare.per_speaker")


@dataclass(frozen=True)
class TextPathSpec:
    """A further text path scored in the same run: an ASR choice (a stage spec, or the corpus' reference
    transcripts) and a sentiment stage; its columns are ``text_*:NAME`` and ``transcript:NAME``."""

    name: str
    asr: StageSpec | None
    sentiment: StageSpec

    def to_dict(self) -> dict:
        return {"name": self.name, "asr": "reference" if self.asr is None else self.asr.to_dict(),
                "sentiment": self.sentiment.to_dict()}


def text_path_spec(raw: Any, where: str) -> TextPathSpec:
    """``{name: NAME, asr: reference | {backend: whisper, ...}, sentiment: {backend: ...}}``."""
    if not isinstance(raw, Mapping):
        raise InputError(f"{where} must be a mapping {{name, asr, sentiment}}")
    check_keys(raw, ["name", "asr", "sentiment"], where)
    name = raw.get("name")
    if not isinstance(name, str) or not name or ":" in name or name != name.strip():
        raise InputError(f"{where}.name must be a non-empty name without ':' or surrounding spaces, got {name!r}")
    asr = raw.get("asr", "reference")
    asr_spec = None if asr == "reference" else stage_spec("asr", asr, f"{where}.asr")
    if asr_spec is not None and not asr_spec.enabled:
        raise InputError(f"{where}.asr: give 'reference' or an ASR model (backend: whisper), not backend none")
    return TextPathSpec(name, asr_spec, stage_spec("sentiment", raw.get("sentiment"), f"{where}.sentiment"))


@dataclass(frozen=True)
class InferConfig:
    """``infer``: the Ray Data inference pipeline (each stage: a backend, its options, its actors)."""

    manifest: str | None = field(default=None, metadata=doc("manifest from `ser prepare` (`ser infer`)"))
    shard_rows: int = field(default=256, metadata=doc("utterances per written shard (the unit of resumption)"))
    in_sample: bool = field(default=False, metadata=doc(
        "also score each utterance with every other fold's model (val/trainval protocols, the published preset)"))
    val_share: float = field(default=0.1, metadata=doc("share of in-sample rows marked `val`"))
    chain_stages: str = field(default="auto", metadata=doc(
        f"one of {list(CHAIN_CHOICES)}: run every model stage in one actor pool (one process loads every model and "
        "each batch passes through the stages in turn) instead of a pool per stage; auto: on a Ray that ser starts "
        "itself when no stage asks for a GPU (the speech stage takes the machine's cores there, so a process per "
        "stage only adds start-up and contention)"))
    chain_actors: int | str = field(default="auto", metadata=doc(
        "actors of the chained pool, each loading every model: a number, or auto: on a Ray that ser starts, one "
        "per CPU core (each on one thread) while their models fit in the memory Ray sees free, else the speech "
        "stage's actors (on a cluster, or when a model's size is unknown: a hub model not yet downloaded)"))
    speech: StageSpec = field(default=None, metadata=doc("speech classifier stage"))  # type: ignore[assignment]
    asr: StageSpec = field(default=None, metadata=doc("ASR stage (none: use reference transcripts)"))  # type: ignore[assignment]
    sentiment: StageSpec = field(default=None, metadata=doc("sentiment stage over transcripts"))  # type: ignore[assignment]
    text_paths: tuple = field(default=(), metadata=doc(
        "further text paths: a list of {name, asr: reference | {backend: whisper, model: ...}, sentiment: {...}}"))

    def __post_init__(self) -> None:
        for stage in STAGES:
            if getattr(self, stage) is None:
                object.__setattr__(self, stage, stage_spec(stage, {}))
        if not isinstance(self.text_paths, (list, tuple)):
            raise InputError("infer.text_paths must be a list of {name, asr, sentiment}")
        paths = tuple(p if isinstance(p, TextPathSpec) else text_path_spec(p, f"infer.text_paths[{i}]")
                      for i, p in enumerate(self.text_paths))
        names = [p.name for p in paths]
        if len(set(names)) != len(names):
            raise InputError(f"infer.text_paths: names must be distinct, got {names}")
        object.__setattr__(self, "text_paths", paths)
        check_flag(self.in_sample, "infer.in_sample")
        check_choice(self.chain_stages, CHAIN_CHOICES, "infer.chain_stages")
        if self.chain_actors != "auto" and not is_count(self.chain_actors):
            raise InputError(f"infer.chain_actors must be auto or a positive integer, got {self.chain_actors!r}")
        if not is_number(self.val_share) or not 0 <= self.val_share < 1:
            raise InputError(f"infer.val_share must be in [0, 1), got {self.val_share!r}")
        check_count(self.shard_rows, "infer.shard_rows")

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**out, **{stage: getattr(self, stage).to_dict() for stage in STAGES},
                "text_paths": [p.to_dict() for p in self.text_paths]}


@dataclass(frozen=True)
class StudyConfig:
    """A study: its label set, fixed systems and every stage's settings."""

    name: str = field(default="study", metadata=doc("study name (default run directory runs/<name>)"))
    seed: int = field(default=0, metadata=doc("seed of every random choice (samplers, bootstrap)"))
    scores: str | None = field(default=None, metadata=doc("score table to start from (skips prepare and infer)"))
    out: str | None = field(default=None, metadata=doc("output directory"))
    labels: LabelSet | None = field(default=None, metadata=doc(
        "classes and the sentiment mapping: {classes, positive, neutral, negative}; unset: the score table's "
        "`speech_*` classes (ang/hap/neu/sad where there is no table)"))
    systems: dict = field(default_factory=dict, metadata=doc(
        "fixed systems for `ser evaluate`: name → {kind: select|loglinear|average|..., ...}"))
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig, metadata=doc("see `evaluate`"))
    tune: TuneConfig = field(default_factory=TuneConfig, metadata=doc("see `tune`"))
    sweep: SweepConfig = field(default_factory=SweepConfig, metadata=doc("see `sweep`"))
    cross: CrossConfig = field(default_factory=CrossConfig, metadata=doc("see `cross`"))
    prepare: PrepareConfig = field(default_factory=PrepareConfig, metadata=doc("see `prepare`"))
    infer: InferConfig = field(default_factory=InferConfig, metadata=doc("see `infer`"))
    track: TrackConfig = field(default_factory=TrackConfig, metadata=doc("see `track`"))

    def __post_init__(self) -> None:
        check_count(self.seed, "seed", minimum=0)
        if not isinstance(self.systems, dict):
            raise InputError("systems must be a mapping of name → {kind: ...}")
        self.rules()                                    # every system spec builds
        if self.evaluate.baseline not in self.system_specs:
            raise InputError(f"evaluate.baseline: '{self.evaluate.baseline}' is not a system; "
                             f"defined: {sorted(self.system_specs)}")

    @property
    def system_specs(self) -> dict[str, dict]:
        """Built-in systems (speech, text, oracle) plus the config's ``systems``."""
        return {**BUILTIN_SYSTEMS, **self.systems}

    @property
    def label_set(self) -> LabelSet:
        """The label set: ``labels`` where the config names one (or a score table set it), else the default."""
        return DEFAULT_LABELS if self.labels is None else self.labels

    def rules(self) -> dict[str, Rule]:
        """Every system as a fusion rule for this label set."""
        return {name: rule_from_config(spec or {}, self.label_set, name=f"systems.{name}")
                for name, spec in self.system_specs.items()}

    def to_dict(self) -> dict:
        """The resolved config as plain data (``ser config show``, run records)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out = {**out, **{k: as_data(v) for k, v in out.items() if is_dataclass(v)}}
        return {**out, "systems": self.system_specs, "infer": self.infer.to_dict()}

    def with_overrides(self, **values: Any) -> "StudyConfig":
        """A copy with top-level values replaced (``None`` keeps the current one)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def parse_set(assignment: str) -> tuple[list[str], Any]:
    """``section.key=value`` (value parsed as YAML) → (path, value)."""
    path, sep, text = assignment.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"--set {assignment!r}: expected section.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML") from None
    return path.strip().split("."), value


def apply_sets(raw: dict, assignments: list[str] | tuple[str, ...]) -> dict:
    """Overlay ``--set`` assignments on a raw config mapping (a copy)."""
    import copy

    out = copy.deepcopy(raw)
    for assignment in assignments:
        path, value = parse_set(assignment)
        node = out
        for key in path[:-1]:
            if node.get(key) is None:
                node[key] = {}
            if not isinstance(node[key], dict):
                raise ConfigError(f"--set {assignment!r}: '{key}' is not a section")
            node = node[key]
        node[path[-1]] = value
    return out


def config_mapping(source: str | Path | Mapping | None = None, sets: list[str] | tuple[str, ...] = (),
                   overrides: Mapping | None = None) -> dict:
    """The YAML mapping of a config (a YAML path, or a mapping) with ``sets`` (``section.key=value`` strings) and
    then ``overrides`` (top-level keys; None values ignored) applied: what :func:`load_config` parses."""
    if isinstance(source, (str, Path)):
        try:
            raw = read_yaml(Path(source), "config") or {}
        except InputError as exc:
            raise ConfigError(str(exc)) from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config {source}: top level must be a mapping")
    else:
        raw = dict(source or {})
    raw = apply_sets(raw, sets)
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return raw


def load_config(source: str | Path | Mapping | StudyConfig | None = None, overrides: Mapping | None = None,
                sets: list[str] | tuple[str, ...] = (), *, origin: str | None = None) -> StudyConfig:
    """A study config from a YAML path, a YAML-shaped mapping or a ``StudyConfig``; ``overrides`` set top-level
    keys (None values ignored), ``sets`` are ``section.key=value`` strings. Errors name the source (``origin``
    for a mapping read from a file) and key."""
    if isinstance(source, StudyConfig):
        if not sets:
            return source.with_overrides(**(overrides or {}))
        source = source.to_dict()
    name = f"config {source}" if isinstance(source, (str, Path)) else origin or "config"
    raw = config_mapping(source, sets, overrides)
    if isinstance(raw.get("systems"), dict):                 # a round trip through to_dict lists built-ins
        raw["systems"] = {k: v for k, v in raw["systems"].items() if BUILTIN_SYSTEMS.get(k) != v}
    try:
        return from_mapping(StudyConfig, raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


