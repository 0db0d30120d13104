"""Typed results: what ``ser evaluate`` (evaluation.json), ``ser tune`` (results.json) and ``ser cross``
(cross.json) compute, built once by the stage that computes them.

Each class is frozen and knows its JSON layout: ``to_dict()`` writes the file's layout (key order included, so the
files are byte-stable) and ``from_dict()`` reads it back, lenient only where files written by earlier versions lack
a section. Scores are fractions in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

Json = dict[str, Any]
"""A JSON object as read from or written to a results file."""


def _plain(obj: Any) -> Json:
    """A flat dataclass's fields as a JSON object, in field order."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _known(cls: type, raw: Mapping[str, Any]) -> Json:
    """The keys of ``raw`` that are fields of ``cls`` (a file may carry more, or lack optional ones)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in raw.items() if k in names}


@dataclass(frozen=True)
class Interval:
    """A 95% bootstrap CI of one metric."""

    metric: str
    low: float
    high: float


@dataclass(frozen=True)
class SystemScores:
    """One system's scores on one fold's test rows, with a bootstrap CI of the comparison metric."""

    values: Mapping[str, float]
    ci: Interval | None = None

    def __getitem__(self, metric: str) -> float:
        return self.values[metric]

    def to_dict(self) -> Json:
        return {**self.values, **({} if self.ci is None else {"ci": _plain(self.ci)})}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "SystemScores":
        ci = raw.get("ci")
        return cls({k: v for k, v in raw.items() if k != "ci"}, Interval(**ci) if ci else None)


@dataclass(frozen=True)
class KeptConfig:
    """What a fold's search kept: the configuration, in words, why, and its tuning, inner and test scores."""

    config: Mapping[str, Any]
    description: str | None = None
    free_parameters: int | None = None
    trial: int | None = None
    tuning_score: float | None = None
    inner_score: float | None = None
    inner_se: float | None = None
    test_score: float | None = None
    optimism: float | None = None
    why: str | None = None

    def to_dict(self) -> Json:
        return _plain(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "KeptConfig":
        return cls(**_known(cls, raw))


@dataclass(frozen=True)
class FoldResult:
    """One fold's test rows scored by every system; ``best`` where a search (or a transfer) chose the tuned one."""

    fold: str
    n: int
    systems: Mapping[str, SystemScores]
    best: KeptConfig | None = None

    def to_dict(self) -> Json:
        out = {"fold": self.fold, "n": self.n, "systems": {k: s.to_dict() for k, s in self.systems.items()}}
        return out if self.best is None else {**out, "best": self.best.to_dict()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "FoldResult":
        best = raw.get("best")
        return cls(raw["fold"], raw["n"], {k: SystemScores.from_dict(s) for k, s in raw["systems"].items()},
                   KeptConfig.from_dict(best) if best else None)


@dataclass(frozen=True)
class PooledScores:
    """One system on every test row at once: metrics, per-class precision/recall/F1, confusion, label switches."""

    values: Mapping[str, float]
    per_class: Mapping[str, Mapping[str, float]]
    confusion: list[list[int]]
    switches: Mapping[str, Any]

    def __getitem__(self, metric: str) -> float:
        return self.values[metric]

    def to_dict(self) -> Json:
        return {**self.values, "per_class": self.per_class, "confusion": self.confusion, "switches": self.switches}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "PooledScores":
        parts = ("per_class", "confusion", "switches")
        return cls({k: v for k, v in raw.items() if k not in parts}, *(raw[p] for p in parts))


@dataclass(frozen=True)
class PairedDifference:
    """A system minus the baseline on the pooled test rows: the difference, its percentile CI and p-value."""

    metric: str
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_boot: int
    alpha: float


@dataclass(frozen=True)
class FoldTest:
    """A system against the baseline fold by fold: folds better and worse, mean gain, Wilcoxon and paired t."""

    n_folds: int
    improved: int
    worse: int
    mean_gain: float
    wilcoxon_p: float | None
    ttest_p: float | None


@dataclass(frozen=True)
class Comparison:
    """One system against the baseline system (speech): pooled paired bootstrap and the test over folds."""

    baseline: str
    bootstrap: PairedDifference
    folds: FoldTest

    def to_dict(self) -> Json:
        return {"baseline": self.baseline, "bootstrap": _plain(self.bootstrap), "folds": _plain(self.folds)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Comparison":
        return cls(raw["baseline"], PairedDifference(**raw["bootstrap"]), FoldTest(**raw["folds"]))


@dataclass(frozen=True)
class ScoredSystems:
    """Systems scored on every fold's test rows (evaluation.json): per fold, mean ± std over folds, pooled, each
    system against the baseline, warnings about weak input; and, where the table has them, its text paths and ASR
    errors."""

    labels: list[str]
    folds: tuple[FoldResult, ...]
    mean: Mapping[str, Mapping[str, float]]
    std: Mapping[str, Mapping[str, float]]
    pooled: Mapping[str, PooledScores]
    comparisons: Mapping[str, Comparison]
    warnings: tuple[str, ...] = ()
    text_paths: Mapping[str, Any] | None = None
    """``ser.evaluation.text_paths.path_summary``: per path its columns, transcript source and sentiment accuracy."""
    asr: Mapping[str, Any] | None = None
    """``ser.evaluation.text_paths.asr_report``: WER/CER pooled and by fold, class and speaker, per path."""

    @property
    def systems(self) -> list[str]:
        return list(self.mean)

    @property
    def n_rows(self) -> int:
        return sum(f.n for f in self.folds)

    def fold_values(self, system: str, metric: str) -> list[float]:
        """The system's metric on each fold that scored it, in fold order."""
        return [f.systems[system][metric] for f in self.folds if system in f.systems]

    def gain(self, system: str, metric: str) -> float:
        """Mean over folds of ``system`` minus speech alone's."""
        return self.mean[system][metric] - self.mean["speech"][metric]

    @property
    def baseline_verdict(self) -> "BaselineVerdict | None":
        """The search against the simple baselines: only a tuning that compared them has one."""
        return None

    @property
    def headline_metric(self) -> str:
        """The metric the result is about: the comparisons' metric (``ua`` without comparisons)."""
        cmp = next(iter(self.comparisons.values()), None)
        return cmp.bootstrap.metric if cmp else "ua"

    def _core(self) -> Json:
        return {"labels": list(self.labels), "folds": [f.to_dict() for f in self.folds],
                "mean": self.mean, "std": self.std, "pooled": {k: p.to_dict() for k, p in self.pooled.items()},
                "comparisons": {k: c.to_dict() for k, c in self.comparisons.items()},
                "warnings": list(self.warnings)}

    def to_dict(self) -> Json:
        return {**self._core(), **_present(text_paths=self.text_paths, asr=self.asr)}

    @classmethod
    def _core_fields(cls, raw: Mapping[str, Any]) -> Json:
        return {"labels": list(raw["labels"]), "folds": tuple(FoldResult.from_dict(f) for f in raw["folds"]),
                "mean": raw["mean"], "std": raw["std"],
                "pooled": {k: PooledScores.from_dict(p) for k, p in raw["pooled"].items()},
                "comparisons": {k: Comparison.from_dict(c) for k, c in raw.get("comparisons", {}).items()},
                "warnings": tuple(raw.get("warnings", ())), "text_paths": raw.get("text_paths"),
                "asr": raw.get("asr")}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "ScoredSystems":
        """evaluation.json, or a cross pair off the diagonal; a results.json layout reads as :class:`TunedSystems`."""
        if "tuning" in raw:
            return TunedSystems.from_dict(raw)
        return cls(**cls._core_fields(raw))


def _present(**sections: Any) -> Json:
    """The sections that are there (a missing section is left out of the file, not written as null)."""
    return {k: v for k, v in sections.items() if v is not None}


@dataclass(frozen=True)
class TuningSummary:
    """How the search ran (protocol, objective, method, choice rule, work) and its kept trials' mean scores."""

    protocol: str
    objective: str
    method: str
    choice: str
    configurations_evaluated: int
    mean_tuning_score: float
    mean_inner_score: float | None
    mean_test_score: float
    mean_optimism: float

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "TuningSummary":
        return cls(**{"choice": "tuning-best", "mean_inner_score": None, **_known(cls, raw)})


@dataclass(frozen=True)
class VersusBest:
    """The tuned system minus the best of several baselines (mean over folds), its CI, and how much picking that
    baseline on the test rows flatters it."""

    metric: str
    diff: float
    ci_low: float
    ci_high: float
    selection_bias: float
    n_boot: int
    alpha: float


@dataclass(frozen=True)
class BaselineVerdict:
    """The search against a set of simple baselines: the best of them, the difference, its CI and the verdict
    (``beats``, ``is level with``, ``falls short of``)."""

    systems: list[str]
    best: str
    tuned_minus_best: float
    versus_best: VersusBest | None
    verdict: str | None

    def to_dict(self) -> Json:
        return {"systems": list(self.systems), "best": self.best, "tuned_minus_best": self.tuned_minus_best,
                **_present(versus_best=None if self.versus_best is None else _plain(self.versus_best),
                           verdict=self.verdict)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "BaselineVerdict":
        versus = raw.get("versus_best")
        return BaselineVerdict(raw["systems"], raw["best"], raw["tuned_minus_best"],
                               VersusBest(**versus) if versus else None, raw.get("verdict"))


@dataclass(frozen=True)
class PerFoldPick:
    """Choosing per fold among the one-weight baselines by tuning score, against those baselines kept fixed."""

    systems: list[str]
    picked: Mapping[str, str]
    score: float
    fixed_mean: float
    diff: float


@dataclass(frozen=True)
class Hindsight:
    """The best one-weight fusion fitted on every test label: a ceiling to read the folds by, not a method."""

    system: str
    config: Mapping[str, Any]
    gain: float
    per_fold: Mapping[str, float]
    not_better: list[str]


@dataclass(frozen=True)
class Baselines:
    """Did the search earn its complexity: against every simple baseline, against the one-path ones alone (with
    several text paths), choosing per fold among them, and the hindsight ceiling."""

    verdict: BaselineVerdict
    one_path: BaselineVerdict | None = None
    per_fold_pick: PerFoldPick | None = None
    hindsight: Hindsight | None = None

    def to_dict(self) -> Json:
        return {**self.verdict.to_dict(),
                **_present(one_path=None if self.one_path is None else self.one_path.to_dict(),
                           per_fold_pick=None if self.per_fold_pick is None else _plain(self.per_fold_pick),
                           hindsight=None if self.hindsight is None else _plain(self.hindsight))}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Baselines":
        one_path, pick, ceiling = raw.get("one_path"), raw.get("per_fold_pick"), raw.get("hindsight")
        return cls(BaselineVerdict.from_dict(raw), BaselineVerdict.from_dict(one_path) if one_path else None,
                   PerFoldPick(**pick) if pick else None, Hindsight(**ceiling) if ceiling else None)


@dataclass(frozen=True, kw_only=True)
class TunedSystems(ScoredSystems):
    """A leakage-free search per fold scored on the test rows (results.json): the systems as in an evaluation
    (``tuned`` among them, each fold's ``best`` saying what was kept), what the search did, the simple baselines,
    and with further text paths their kept configurations, the text-path transfer and the WER cascade."""

    tuning: TuningSummary
    baselines: Baselines | None = None
    path_configs: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None
    """{text path: {fold: kept configuration}} of each further tuned path."""
    text_transfer: Mapping[str, Any] | None = None
    """``ser.evaluation.text_paths.transfer_matrix``: a configuration tuned on one path applied to another."""
    cascade: Mapping[str, Any] | None = None
    """``ser.evaluation.text_paths.cascade``: the fusion gain by utterance WER, per path."""

    @classmethod
    def of(cls, scored: ScoredSystems, **sections: Any) -> "TunedSystems":
        """``scored`` (with each fold's ``best``) and the tuning's own sections."""
        return cls(**{f.name: getattr(scored, f.name) for f in fields(ScoredSystems)}, **sections)

    @property
    def objective(self) -> str:
        return self.tuning.objective

    @property
    def headline_metric(self) -> str:
        return self.tuning.objective

    @property
    def baseline_verdict(self) -> BaselineVerdict | None:
        return None if self.baselines is None else self.baselines.verdict

    def kept(self) -> dict[str, Mapping[str, Any]]:
        """{fold: the configuration its search kept}."""
        return {f.fold: f.best.config for f in self.folds}

    def to_dict(self) -> Json:
        return {**self._core(), "tuning": _plain(self.tuning),
                **_present(baselines=None if self.baselines is None else self.baselines.to_dict(),
                           path_configs=self.path_configs, text_paths=self.text_paths,
                           text_transfer=self.text_transfer, asr=self.asr, cascade=self.cascade)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "TunedSystems":
        baselines = raw.get("baselines")
        return cls(**cls._core_fields(raw), tuning=TuningSummary.from_dict(raw["tuning"]),
                   baselines=Baselines.from_dict(baselines) if baselines else None,
                   path_configs=raw.get("path_configs"), text_transfer=raw.get("text_transfer"),
                   cascade=raw.get("cascade"))


@dataclass(frozen=True)
class TransferCell:
    """Tuned on one corpus, tested on another: the tuned and speech means over the test folds in the objective."""

    tuned: float
    speech: float
    gain: float
    folds_improved: int
    n_folds: int


@dataclass(frozen=True)
class CrossTransfer:
    """The transfer matrix (cross.json): rows tuned on, columns tested on; each pair's scored systems (the diagonal
    an ordinary per-fold tuning), and the same for each further text path."""

    objective: str
    corpora: list[str]
    matrix: Mapping[str, Mapping[str, TransferCell]]
    pairs: Mapping[str, ScoredSystems]
    text_paths: Mapping[str, "CrossTransfer"] = field(default_factory=dict)

    def pair(self, src: str, dst: str) -> ScoredSystems:
        return self.pairs[f"{src}->{dst}"]

    def gain(self, src: str, dst: str, metric: str) -> float:
        """Tuned on ``src``, tested on ``dst``: the tuned system's mean over ``dst``'s folds minus speech alone's."""
        return self.pair(src, dst).gain("tuned", metric)

    def to_dict(self) -> Json:
        out = {"objective": self.objective, "corpora": list(self.corpora),
               "matrix": {s: {d: _plain(c) for d, c in row.items()} for s, row in self.matrix.items()},
               "pairs": {k: p.to_dict() for k, p in self.pairs.items()}}
        return out if not self.text_paths else {**out, "text_paths": {k: t.to_dict() for k, t in self.text_paths.items()}}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "CrossTransfer":
        return cls(raw["objective"], list(raw["corpora"]),
                   {s: {d: TransferCell(**c) for d, c in row.items()} for s, row in raw["matrix"].items()},
                   {k: ScoredSystems.from_dict(p) for k, p in raw["pairs"].items()},
                   {k: cls.from_dict(t) for k, t in raw.get("text_paths", {}).items()})

