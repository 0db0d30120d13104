"""Study configuration: frozen dataclasses, the single source of defaults, validation and the key reference.

A YAML file (or a YAML-shaped dict) is read through one key-checking loader (``from_mapping``):
unknown keys are named with a "did you mean" suggestion, values are checked by each section's
``__post_init__``, and errors name ``section.key``. ``docs/config.md`` is generated from the field
metadata here (``config_reference``) and kept in sync by a test.
"""

from __future__ import annotations

import inspect
import logging
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from ser.measures.asr_errors import NORMALIZERS, WerNormalizer
from ser.config.backends import DEPRECATED_KEYS, STAGE_SCHEDULING, STAGES, Scheduling, StageSpec, doc
from ser._util.checks import is_count, is_number
from ser.data.corpora.registry import CORPORA
from ser.fusion.rules import BUILTIN_SYSTEMS, GATES, Rule, rule_from_config
from ser.data.folds import TUNING_PROTOCOLS
from ser._util.io import InputError, check_keys, read_yaml
from ser.data.labels import DEFAULT_LABELS, LabelSet
from ser.measures.metrics import METRICS
from ser.measures.objective import AGGREGATES, Objective
from ser.config.space import Candidates, SearchSpace, SelectSpace, SoftSpace

log = logging.getLogger(__name__)

METHODS = ("search", "published")
ENGINES = ("auto", "ray", "optuna")
AUTO_RAY_ROWS = 20_000
"""``tune.engine: auto`` takes Ray Tune on a cluster (``RAY_ADDRESS``) or from this many score-table rows; below it
Tune's per-trial overhead costs more than searching folds side by side saves (``python -m jobs.bench tune`` on 2
cores, 10 folds x 48 trials: Ray 0.86x the in-process engine at 5,548 rows, 1.49x at 20,065, 1.60x at 55,479; both
give the same trials)."""
CHOICES = ("levels", "one-se", "inner-best", "tuning-best")


class ConfigError(InputError):
    """A config is malformed; the message names the source and the offending key."""


def _one_of(value: Any, allowed: tuple, where: str) -> None:
    if value not in allowed:
        raise InputError(f"{where}: '{value}' is not one of {list(allowed)}")


def _count(value: Any, where: str, minimum: int = 1) -> None:
    if not is_count(value, minimum=minimum):
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise InputError(f"{where} must be {kind} integer, got {value!r}")


def _flag(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise InputError(f"{where} must be true or false, got {value!r}")


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
        _one_of(self.metric, tuple(METRICS), "evaluate.metric")
        _one_of(self.wer_normalizer, NORMALIZERS, "evaluate.wer_normalizer")
        if self.wer_spelling is not None and self.wer_normalizer != "whisper":
            raise ConfigError(f"evaluate.wer_spelling is used by the whisper normalizer only; "
                              f"evaluate.wer_normalizer is '{self.wer_normalizer}'")
        if self.wer_spelling is not None:
            self.wer()                  # a missing or malformed spelling file is refused before any work starts
        _count(self.bootstrap, "evaluate.bootstrap")
        _count(self.min_fold_rows, "evaluate.min_fold_rows")

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
        f"one of {list(ENGINES)} (ray: a Ray Tune trial per fold; optuna: in-process, no Ray; auto: Ray Tune on a "
        f"cluster (RAY_ADDRESS) or from {AUTO_RAY_ROWS:,} rows, where it is faster, else in-process; the same trials "
        f"either way)"))
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
            _one_of(getattr(self, key), allowed, f"tune.{key}")
        _count(self.trials, "tune.trials")
        _count(self.max_concurrent_trials, "tune.max_concurrent_trials")
        if self.storage is not None and (not isinstance(self.storage, str) or "://" not in self.storage):
            raise InputError(f"tune.storage: {self.storage!r} is not a storage URL (e.g. sqlite:///{{out}}/optuna.db)")
        object.__setattr__(self, "space", _section(self.space, SearchSpace, "tune.space."))

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
        _one_of(self.gate, tuple(GATES), "sweep.gate")
        for key in ("tau_h", "tau_v"):
            spec = _section(getattr(self, key), Candidates, f"sweep.{key}.")
            object.__setattr__(self, key, spec)
            spec.check(f"sweep.{key}")
            if spec.range is None:
                raise InputError(f"sweep.{key} needs an absolute range (surfaces are averaged across folds)")
        _flag(self.per_class, "sweep.per_class")


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
            _one_of(self.backend, TRACK_BACKENDS, "track.backend")
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
            _one_of(self.corpus, tuple(CORPORA), "prepare.corpus")
        if self.per_speaker is not None:
            _count(self.per_speaker, "prepare.per_speaker")


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
        _flag(self.in_sample, "infer.in_sample")
        if not is_number(self.val_share) or not 0 <= self.val_share < 1:
            raise InputError(f"infer.val_share must be in [0, 1), got {self.val_share!r}")
        _count(self.shard_rows, "infer.shard_rows")

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
        _count(self.seed, "seed", minimum=0)
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
        out = {**out, **{k: _as_data(v) for k, v in out.items() if is_dataclass(v)}}
        return {**out, "systems": self.system_specs, "infer": self.infer.to_dict()}

    def with_overrides(self, **values: Any) -> "StudyConfig":
        """A copy with top-level values replaced (``None`` keeps the current one)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def stage_spec(stage: str, raw: Mapping | None, where: str | None = None) -> StageSpec:
    """A flat stage mapping (backend + its options + scheduling) → ``StageSpec``; ``checkpoint`` → ``model``."""
    where = where or f"infer.{stage}"
    if raw is not None and not isinstance(raw, Mapping):
        raise InputError(f"{where} must be a mapping")
    raw = dict(raw or {})
    backends = STAGES[stage]
    name = raw.pop("backend", next(iter(backends)))
    if name not in backends:
        raise InputError(f"{where}.backend: '{name}' is not one of {list(backends)}")
    backend = backends[name]
    for old, new in DEPRECATED_KEYS.items():
        if old in raw:
            if new in raw:
                raise InputError(f"{where}: give '{new}' only ('{old}' is its deprecated name)")
            log.warning("%s.%s is deprecated; call it '%s'", where, old, new)
            raw[new] = raw.pop(old)
    option_keys = [f.name for f in fields(backend.options)]
    sched_keys = [f.name for f in fields(Scheduling)]
    check_keys(raw, option_keys + sched_keys, f"{where} (backend {name})")
    options = backend.options(**{k: v for k, v in raw.items() if k in option_keys})
    scheduling = replace(STAGE_SCHEDULING[stage], **{k: v for k, v in raw.items() if k in sched_keys})
    scheduling.check(where)
    if "sub_batch" in option_keys:
        _count(options.sub_batch, f"{where}.sub_batch")
    if getattr(options, "cpu_threads", None) is not None:
        _count(options.cpu_threads, f"{where}.cpu_threads")
    if backend.needs_model and not options.model:
        raise InputError(f"{where}: backend '{name}' needs 'model'")
    return StageSpec(stage, name, options, scheduling)


def from_mapping(cls: type, raw: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from a YAML mapping: keys checked, nested sections built the same way."""
    if raw is None:
        raw = {}
    label = where.rstrip(".") or "top level"
    if not isinstance(raw, Mapping):
        raise InputError(f"{label} must be a mapping, got {type(raw).__name__}")
    names = [f.name for f in fields(cls)]
    check_keys(raw, names, label)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        value, kind = raw[f.name], hints[f.name]
        if kind is StageSpec:
            value = stage_spec(f.name, value, f"{where}{f.name}")
        elif kind in (LabelSet, LabelSet | None):
            value = None if value is None else LabelSet.from_dict(value)
        elif is_dataclass(kind):
            value = from_mapping(kind, value, f"{where}{f.name}.")
        elif value is None and f.default is MISSING:
            continue                                    # `section:` left empty in YAML → the default
        elif kind in (str, str | None) and value is not None and not isinstance(value, str):
            raise InputError(f"{where}{f.name} must be text, got {type(value).__name__} {value!r}"
                             + (" (quote it in YAML)" if isinstance(value, (int, float, bool)) else ""))
        kwargs[f.name] = value
    return cls(**kwargs)


def _as_data(value: Any) -> Any:
    """A config section as plain data: nested sections as mappings, candidate specs as written in YAML."""
    if isinstance(value, Candidates):
        return value.to_config()
    if is_dataclass(value):
        return {f.name: _as_data(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_as_data(v) for v in value]
    return value


def _section(value: Any, cls: type, where: str) -> Any:
    """A nested section given as a mapping (a dataclass built in code with plain data) built like YAML's."""
    return from_mapping(cls, value, where) if isinstance(value, Mapping) else value


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


def _default_text(f) -> str:
    if f.default is not MISSING:
        value = f.default
    elif f.default_factory is not MISSING:
        value = f.default_factory()
    else:
        return ""
    if isinstance(value, StageSpec) or value is None and f.name in STAGES:
        return ""
    if is_dataclass(value) and not isinstance(value, (type, Candidates)):
        return ""                                       # a nested section: its own table follows
    value = _as_data(value)
    return "`" + yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip() + "`"


def _table(cls: type, prefix: str) -> list[str]:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for f in fields(cls):
        meaning = f.metadata.get("doc", "").replace("|", "\\|")        # a pipe would end the table cell
        rows.append(f"| `{prefix}{f.name}` | {_default_text(f)} | {meaning} |")
    return rows


SECTIONS: tuple[tuple[str, type], ...] = (("", StudyConfig), ("evaluate", EvaluateConfig), ("tune", TuneConfig),
                                          ("sweep", SweepConfig), ("cross", CrossConfig), ("prepare", PrepareConfig),
                                          ("track", TrackConfig), ("infer", InferConfig))


def config_reference() -> str:
    """The key reference (``docs/config.md`` body), generated from the dataclasses and the backend registry."""
    lines: list[str] = []
    for section, cls in SECTIONS:
        lines += [f"## {'top level' if not section else f'`{section}`'}", "", (cls.__doc__ or "").strip(), ""]
        lines += _table(cls, f"{section}." if section else "") + [""]
        if cls is TuneConfig:
            for prefix, part in (("tune.space", SearchSpace), ("tune.space.select", SelectSpace),
                                 ("tune.space.soft", SoftSpace)):
                lines += [f"### `{prefix}`", "", inspect.cleandoc(part.__doc__ or ""), "", *_table(part, f"{prefix}."),
                          ""]
    for stage, backends in STAGES.items():
        for name, backend in backends.items():
            default = " (default)" if name == next(iter(backends)) else ""
            lines += [f"### `infer.{stage}` with `backend: {name}`{default}", ""]
            if fields(backend.options):
                lines += _table(backend.options, f"infer.{stage}.") + [""]
            else:
                lines += ["No options: the stage is skipped.", ""]
    sched = STAGE_SCHEDULING
    lines += ["### Scheduling keys of every `infer` stage", "", *_table(Scheduling, "infer.<stage>."), "",
              f"Sentiment's default `batch_size` is {sched['sentiment'].batch_size}. "
              f"Deprecated: {', '.join(f'`{o}` (use `{n}`)' for o, n in DEPRECATED_KEYS.items())}.", ""]
    return "\n".join(lines)
