"""Fusion rules, each vectorized over a whole table.

Every rule maps :class:`ScoreArrays` to a :class:`Decision`: the predicted class per row and the
mask of rows whose label differs from the speech prediction. Rules are plain frozen dataclasses
built from config mappings by :func:`rule_from_config`, so a search can construct thousands. Each
rule class carries its config ``kind`` and keys, how it is built, its free parameters and its
description, and ``@register_rule`` adds it to :data:`RULES`, the one registry of fusion rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Protocol

import numpy as np

from ser.data.arrays import PRIMARY_PATH, ScoreArrays
from ser._util.io import InputError, check_keys
from ser.data.labels import LabelSet
from ser.fusion.text import EPS, REFER, NegativeMapping, TextDistribution, text_labels

GATES: dict[str, tuple[str | None, str | None]] = {
    "hv": ("ge", "le"),      # published: uncertain (H ≥ τ_H) but peaked surprisal (V ≤ τ_V)
    "h": ("ge", None),       # entropy only
    "v": (None, "le"),       # varentropy only
    "low": ("lt", "lt"),     # fixed-rule family: H < τ_H and V < τ_V (selects confident rows)
}
"""Gate forms: direction of the entropy and varentropy comparison (None = not used)."""

NEVER = {"ge": 1e9, "gt": 1e9, "le": -1.0, "lt": -1.0}
"""A finite threshold no row passes (entropy and varentropy are ≥ 0 and bounded), JSON-safe."""

_COMPARE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "ge": np.greater_equal, "le": np.less_equal, "lt": np.less, "gt": np.greater,
}


@dataclass(frozen=True)
class Decision:
    """Predicted class per row and the mask of rows whose label differs from speech."""

    pred: np.ndarray
    switched: np.ndarray


def _per_class(value: Any, labels: LabelSet, name: str) -> np.ndarray:
    """A scalar or a {class: value} mapping → array of K values indexed by speech-predicted class."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(labels.classes))
        missing = sorted(set(labels.classes) - set(value))
        if unknown or missing:
            raise InputError(f"{name}: per-class mapping must name exactly {list(labels.classes)}"
                             f" (unknown {unknown}, missing {missing})")
        return np.array([float(value[c]) for c in labels.classes])
    return np.full(labels.k, float(value))


def _decision(a: ScoreArrays, pred: np.ndarray) -> Decision:
    return Decision(pred, pred != a.speech)


class Rule(Protocol):
    """A fusion rule: a config kind, its keys, how it is built, how complex it is and how it reads in words.

    A class with these members and ``@register_rule`` is a fusion rule everywhere a config names one (``systems:``,
    tuned configurations, the report); nothing else needs to change. A rule that also defines
    ``search_sample(trial, space) -> params`` and ``search_fit(params, arrays, space, objective) -> TrialResult``
    (:class:`ser.tuning.search.Variant`) is a search variant too, sampled where ``tune.space.variants`` names its kind.
    """

    kind: ClassVar[str]
    keys: ClassVar[frozenset[str]]
    """Config keys besides ``kind``."""

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], labels: LabelSet) -> "Rule": ...

    @staticmethod
    def free_parameters(config: Mapping[str, Any]) -> int: ...

    @staticmethod
    def describe(config: Mapping[str, Any]) -> str: ...

    def decide(self, a: ScoreArrays) -> Decision: ...


RULES: dict[str, type[Rule]] = {}
"""The one fusion-rule registry: config ``kind`` → rule class."""


def register_rule(cls: type[Rule]) -> type[Rule]:
    """Class decorator: the rule becomes buildable from configs naming its ``kind`` (a kind registered twice is
    a bug in the registering code)."""
    if cls.kind in RULES:
        raise ValueError(f"fusion rule kind '{cls.kind}' is already registered")
    RULES[cls.kind] = cls
    return cls


def searchable_rules() -> tuple[str, ...]:
    """The registered kinds that bring their own search (``search_sample`` and ``search_fit``)."""
    return tuple(kind for kind, rule in RULES.items()
                 if callable(getattr(rule, "search_sample", None)) and callable(getattr(rule, "search_fit", None)))


def _negative(raw: Mapping[str, Any], labels: LabelSet) -> NegativeMapping:
    return NegativeMapping.from_config(raw.get("negative", REFER), labels)


@register_rule
@dataclass(frozen=True)
class SpeechRule:
    """Baseline: the speech model's argmax."""

    kind: ClassVar[str] = "speech"
    keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], labels: LabelSet) -> "SpeechRule":
        return cls()

    @staticmethod
    def free_parameters(config: Mapping[str, Any]) -> int:
        return 0

    @staticmethod
    def describe(config: Mapping[str, Any]) -> str:
        return "speech alone"

    def decide(self, a: ScoreArrays) -> Decision:
        return _decision(a, a.speech)


@dataclass(frozen=True)
class _TextLabelRule:
    """A rule reading the sentiment's mapped label as is: nothing fitted, only the negative mapping configured."""

    negative: NegativeMapping
    keys: ClassVar[frozenset[str]] = frozenset({"negative"})

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], labels: LabelSet) -> "_TextLabelRule":
        return cls(_negative(raw, labels))

    @staticmethod
    def free_parameters(config: Mapping[str, Any]) -> int:
        return 0


@register_rule
@dataclass(frozen=True)
class TextRule(_TextLabelRule):
    """The sentiment label mapped to an emotion class, for every row."""

    kind: ClassVar[str] = "text"

    @staticmethod
    def describe(config: Mapping[str, Any]) -> str:
        return "sentiment label alone"

    def decide(self, a: ScoreArrays) -> Decision:
        return _decision(a, text_labels(a, self.negative))


@register_rule
@dataclass(frozen=True)
class OracleRule(_TextLabelRule):
    """Analysis only: switch exactly where speech is wrong and the text label is right."""

    kind: ClassVar[str] = "oracle"

    @staticmethod
    def describe(config: Mapping[str, Any]) -> str:
        return "oracle switch"

    def decide(self, a: ScoreArrays) -> Decision:
        text = text_labels(a, self.negative)
        return _decision(a, np.where((a.speech != a.y) & (text == a.y), text, a.speech))


GATE_WORDS = {"hv": "where H ≥ τ_H and V ≤ τ_V", "h": "where H ≥ τ_H", "v": "where V ≤ τ_V",
              "low": "where H < τ_H and V < τ_V"}
MERGES = ("replace", "exclude")


@register_rule
@dataclass(frozen=True)
class SelectRule:
    """Entropy-aware score selection: take the text label where the gate fires.

    Thresholds are arrays of K values indexed by the speech-predicted class (equal values =
    global thresholds). ``exclude`` is a K×K mask of speech→text transitions never taken.
    """

    gate: str
    tau_h: np.ndarray
    tau_v: np.ndarray
    negative: NegativeMapping
    exclude: np.ndarray | None = None
    kind: ClassVar[str] = "select"
    keys: ClassVar[frozenset[str]] = frozenset({"gate", "tau_h", "tau_v", "negative", "merge", "exclude"})

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], labels: LabelSet) -> "SelectRule":
        gate = raw.get("gate", "hv")
        if gate not in GATES:
            raise InputError(f"gate '{gate}' is not one of {sorted(GATES)}")
        merge = raw.get("merge", "replace")
        if merge not in MERGES:
            raise InputError(f"merge '{merge}' is not one of {list(MERGES)}")
        if merge == "replace" and raw.get("exclude"):
            raise InputError("exclude is only used with merge: exclude")
        h_op, v_op = GATES[gate]
        tau_h = _per_class(raw["tau_h"], labels, "tau_h") if h_op else np.zeros(labels.k)
        tau_v = _per_class(raw["tau_v"], labels, "tau_v") if v_op else np.zeros(labels.k)
        exclude = exclusion_matrix(raw.get("exclude", []), labels) if merge == "exclude" else None
        return cls(gate, tau_h, tau_v, _negative(raw, labels), exclude)

    @staticmethod
    def free_parameters(config: Mapping[str, Any]) -> int:
        count = sum(len(v) if isinstance(v, Mapping) else 1 for key in ("tau_h", "tau_v")
                    if (v := config.get(key)) is not None)
        negative = config.get("negative", REFER)
        if isinstance(negative, Mapping) and "mode" not in negative:
            count += sum(v != REFER for v in negative.values())
        else:
            count += negative != REFER
        return count + (config.get("merge") == "exclude")

    @staticmethod
    def describe(config: Mapping[str, Any]) -> str:
        per_class = isinstance(config.get("tau_h", config.get("tau_v")), dict)
        taus = ", ".join(f"{'τ_H' if k == 'tau_h' else 'τ_V'} {config[k]:.2f}" for k in ("tau_h", "tau_v")
                         if isinstance(config.get(k), float))
        words = [f"text label {GATE_WORDS[config['gate']]}", "per-class thresholds" if per_class else taus]
        negative = config.get("negative", REFER)
        if isinstance(negative, dict) and "mode" not in negative:
            words.append("per-class negative mapping")
        elif isinstance(negative, dict):
            words.append(f"negative by confidence split at {negative['t']:.2f}"
                         f"{' (flipped)' if negative.get('flip') else ''}")
        if config.get("merge") == "exclude" and config.get("exclude"):
            words.append(f"never {', '.join(t.replace('->', '→') for t in config['exclude'])}")
        return "; ".join(w for w in words if w)

    def gate_mask(self, a: ScoreArrays) -> np.ndarray:
        h_op, v_op = GATES[self.gate]
        fire = np.ones(len(a), dtype=bool)
        if h_op:
            fire &= _COMPARE[h_op](a.h, self.tau_h[a.speech])
        if v_op:
            fire &= _COMPARE[v_op](a.v, self.tau_v[a.speech])
        return fire

    def decide(self, a: ScoreArrays) -> Decision:
        text = text_labels(a, self.negative)
        take = self.gate_mask(a)
        if self.exclude is not None:
            take &= ~self.exclude[a.speech, text]
        return _decision(a, np.where(take, text, a.speech))


def weight_scale(a: ScoreArrays, weight_gate: str, tau_h: float) -> np.ndarray:
    """Per-row multiplier of the text weight: 1, 1 only where H ≥ τ_H (``entropy``), or H / ln K (``scaled``)."""
    if weight_gate == "none":
        return np.ones(len(a))
    if weight_gate == "entropy":
        return (a.h >= tau_h).astype(float)
    return a.h / np.log(a.labels.k)


def _weights(a: ScoreArrays, w: float, weight_gate: str, tau_h: float) -> np.ndarray:
    return w * weight_scale(a, weight_gate, tau_h)


WEIGHT_GATES = ("none", "entropy", "scaled")


def _text_words(config: Mapping[str, Any]) -> list[str]:
    """How a soft rule reads its text distribution, in words (after its weight words)."""
    text = config.get("text") or {}
    words = [f"text as {'top label + confidence' if text.get('spread') == 'top' else 'sentiment probabilities'}"
             f", negative split {'by the speech ratio' if text.get('negative_split') == 'ratio' else 'evenly'}"]
    if text.get("prior") == "divide":
        words.append("divided by its mean on the tuning rows")
    if text.get("uniform"):
        words.append(f"{text['uniform']:g} uniform mix")
    gate = config.get("weight_gate", "none")
    if gate == "entropy":
        words.append(f"text weight only where H ≥ {config['tau_h']:.2f}")
    elif gate == "scaled":
        words.append("text weight scaled by H / ln K")
    return words


def _adaptations(config: Mapping[str, Any]) -> int:
    """Free parameters a soft rule adds beyond its weights: weight gating and uniform mixing."""
    text = config.get("text") or {}
    return (config.get("weight_gate", "none") != "none") + (float(text.get("uniform", 0.0)) > 0)


@dataclass(frozen=True)
class SoftRule:
    """Soft fusion of p with q (the sentiment as a K-class distribution, see :class:`TextDistribution`), text weight w per row."""

    w: float
    weight_gate: str = "none"
    tau_h: float = 0.0
    text: TextDistribution = TextDistribution()
    keys: ClassVar[frozenset[str]] = frozenset({"w", "weight_gate", "tau_h", "text"})
    words: ClassVar[str]
    """What the fusion is called in a description."""

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], labels: LabelSet) -> "SoftRule":
        w = float(raw["w"])
        if not 0.0 <= w <= 1.0:
            raise InputError(f"w must be in [0, 1], got {w}")
        weight_gate = raw.get("weight_gate", "none")
        if weight_gate not in WEIGHT_GATES:
            raise InputError(f"weight_gate '{weight_gate}' is not one of {list(WEIGHT_GATES)}")
        return cls(w, weight_gate, float(raw.get("tau_h", 0.0)), TextDistribution.from_config(raw.get("text")))

    @staticmethod
    def free_parameters(config: Mapping[str, Any]) -> int:
        return 1 + _adaptations(config)

    @classmethod
    def describe(cls, config: Mapping[str, Any]) -> str:
        return "; ".join([f"{cls.words}, text weight {config['w']:.2f}", *_text_words(config)])

    @staticmethod
    def combine(p: np.ndarray, q: np.ndarray, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def decide(self, a: ScoreArrays) -> Decision:
        w = _weights(a, self.w, self.weight_gate, self.tau_h)[:, None]
        return _decision(a, np.argmax(self.combine(a.p, self.text.apply(a), w), axis=-1))


@register_rule
class LogLinearRule(SoftRule):
    """p^(1-w) · q^w (compared in log space)."""

    kind: ClassVar[str] = "loglinear"
    words: ClassVar[str] = "log-linear"

    @staticmethod
    def combine(p: np.ndarray, q: np.ndarray, w: np.ndarray) -> np.ndarray:
        return (1 - w) * np.log(np.maximum(p, EPS)) + w * np.log(np.maximum(q, EPS))


@register_rule
class AverageRule(SoftRule):
    """(1-w) · p + w · q."""

    kind: ClassVar[str] = "average"
    words: ClassVar[str] = "weighted average"

    @staticmethod
    def combine(p: np.ndarray, q: np.ndarray, w: np.ndarray) -> np.ndarray:
        return (1 - w) * p + w * q


@register_rule
@dataclass(frozen=True)
class JointRule:
    """Log-linear fusion of speech with several text paths, one weight each:
    (1 − Σ w_i) · log p + Σ w_i · log q_i, with Σ w_i ≤ 1 (a weight of 0 leaves a path out)."""

    weights: tuple[tuple[str, float], ...]
    text: TextDistribution = TextDistribution()
    kind: ClassVar[str] = "joint"
    keys: ClassVar[frozenset[str]] = frozenset({"w", "text"})

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], labels: LabelSet) -> "JointRule":
        return cls(_path_weights(raw["w"]), TextDistribution.from_config(raw.get("text")))

    @staticmethod
    def free_parameters(config: Mapping[str, Any]) -> int:
        return len(config["w"]) + _adaptations(config)

    @staticmethod
    def describe(config: Mapping[str, Any]) -> str:
        weights = ", ".join(f"{path} {w:.2f}" for path, w in config["w"].items())
        return "; ".join([f"log-linear over text paths, weights {weights}", *_text_words(config)])

    @staticmethod
    def combine(log_p: np.ndarray, log_q: list[np.ndarray], w: np.ndarray) -> np.ndarray:
        """Fused log-scores for weight rows ``w`` (..., P): (..., n, K) from log p (n, K) and P log q's."""
        w = w[..., None, None, :]
        return (1 - w.sum(axis=-1)) * log_p + sum(w[..., i] * q for i, q in enumerate(log_q))

    def decide(self, a: ScoreArrays) -> Decision:
        log_q = [np.log(np.maximum(self.text.apply(a, path), EPS)) for path, _ in self.weights]
        w = np.array([w for _, w in self.weights])
        return _decision(a, np.argmax(self.combine(np.log(np.maximum(a.p, EPS)), log_q, w), axis=-1))


def exclusion_matrix(pairs: list, labels: LabelSet) -> np.ndarray:
    """[[from, to], ...] or ['from->to', ...] → K×K bool mask of excluded speech→text transitions."""
    mask = np.zeros((labels.k, labels.k), dtype=bool)
    for pair in pairs:
        src, dst = pair.split("->") if isinstance(pair, str) else pair
        for name in (src, dst):
            if name not in labels.classes:
                raise InputError(f"exclude: unknown class '{name}' in transition {pair!r}")
        mask[labels.index(src), labels.index(dst)] = True
    return mask


def rule_from_config(raw: Mapping[str, Any], labels: LabelSet, name: str = "system") -> Rule:
    """Build a rule from ``{kind: ..., <parameters>}``; errors name the system and the bad key."""
    try:
        kind = raw["kind"]
    except KeyError:
        raise InputError(f"{name}: missing 'kind' (one of {sorted(RULES)})") from None
    if kind not in RULES:
        raise InputError(f"{name}: unknown kind '{kind}' (one of {sorted(RULES)})")
    rule = RULES[kind]
    check_keys(raw, rule.keys | {"kind"}, f"{name} (kind {kind})")
    try:
        return rule.from_config(raw, labels)
    except KeyError as exc:
        raise InputError(f"{name}: missing key {exc} for kind '{kind}'") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: {exc}") from None


def _path_weights(raw: Any) -> tuple[tuple[str, float], ...]:
    """A joint fusion's ``w``: {path: weight} over at least two paths, each in [0, 1], summing to at most 1."""
    if not isinstance(raw, Mapping) or len(raw) < 2:
        raise InputError(f"w must map at least two text paths to weights (e.g. {{{PRIMARY_PATH}: 0.3, llm: 0.2}}), "
                         f"got {raw!r}")
    weights = tuple((str(path), float(w)) for path, w in raw.items())
    if any(not 0.0 <= w <= 1.0 for _, w in weights) or sum(w for _, w in weights) > 1.0 + 1e-9:
        raise InputError(f"w: each weight must be in [0, 1] and their sum at most 1, got {dict(weights)}")
    return weights


BUILTIN_SYSTEMS: dict[str, dict[str, Any]] = {
    "speech": {"kind": "speech"},
    "text": {"kind": "text"},
    "oracle": {"kind": "oracle"},
}


def learned_exclusions(a: ScoreArrays, pred: np.ndarray) -> list[str]:
    """Transitions speech → fused whose wrong→right count is below their right→wrong count on these rows."""
    k = a.labels.k
    moved = pred != a.speech
    pair = a.speech[moved] * k + pred[moved]
    gain = (pred[moved] == a.y[moved]).astype(int) - (a.speech[moved] == a.y[moved])
    net = np.bincount(pair, weights=gain, minlength=k * k)
    return [f"{a.labels.classes[i // k]}->{a.labels.classes[i % k]}" for i in np.flatnonzero(net < 0)]


def free_parameters(config: Mapping[str, Any]) -> int:
    """How many things a configuration fitted to its tuning rows: the complexity the one-SE choice prefers low.

    Each tuned threshold or weight counts 1 (per class where per-class); so does each option
    that lets the rule adapt further: weight gating, uniform mixing, a score-split negative
    mapping (per class where per-class), a learned exclusion list.
    """
    return RULES[config["kind"]].free_parameters(config)


def describe_config(config: Mapping[str, Any]) -> str:
    """A fusion configuration in words a reader understands (logs, report tables)."""
    return RULES[config["kind"]].describe(config)
