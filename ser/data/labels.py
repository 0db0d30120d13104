"""Label sets: the emotion classes of a study and how sentiment polarities map onto them."""

from __future__ import annotations

from dataclasses import dataclass

from ser._util.io import InputError, check_keys

SENTIMENTS = ("neg", "neu", "pos")
"""Sentiment classes in the column order of the score table (text_neg, text_neu, text_pos)."""


@dataclass(frozen=True)
class LabelSet:
    """Ordered emotion classes plus the sentiment → emotion mapping used by the text path.

    ``negative`` lists the classes a negative sentiment may map to (ang vs sad is decided by
    a negative-mapping rule); ``positive`` and ``neutral`` name one class each.
    """

    classes: tuple[str, ...] = ("ang", "hap", "neu", "sad")
    positive: str = "hap"
    neutral: str = "neu"
    negative: tuple[str, ...] = ("ang", "sad")

    def __post_init__(self) -> None:
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise InputError(f"label set needs >= 2 distinct classes, got {list(self.classes)}")
        for role, names in (("positive", [self.positive]), ("neutral", [self.neutral]),
                            ("negative", list(self.negative))):
            unknown = [n for n in names if n not in self.classes]
            if unknown:
                raise InputError(f"label set: {role} class {unknown} is not one of {list(self.classes)}")
        if not self.negative:
            raise InputError("label set: negative needs at least one class")

    @property
    def k(self) -> int:
        return len(self.classes)

    def index(self, name: str) -> int:
        return self.classes.index(name)

    @property
    def polarity(self) -> tuple[int, ...]:
        """Each class's sentiment index in ``SENTIMENTS`` order (neg 0, neu 1, pos 2); -1 for a class with no role."""
        return tuple(0 if c in self.negative else 1 if c == self.neutral else 2 if c == self.positive else -1
                     for c in self.classes)

    @property
    def speech_columns(self) -> list[str]:
        return [f"speech_{c}" for c in self.classes]

    @classmethod
    def from_dict(cls, raw: dict | None) -> "LabelSet":
        """Build from a config mapping ``{classes, positive, neutral, negative}``; unknown keys are errors."""
        if not raw:
            return cls()
        allowed = {"classes", "positive", "neutral", "negative"}
        check_keys(raw, allowed, "labels")
        kwargs = dict(raw)
        for key in ("classes", "negative"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    @classmethod
    def from_columns(cls, columns: list[str]) -> "LabelSet":
        """The label set a score table's ``speech_*`` columns imply (their order), with the sentiment roles of the
        standard codes (hap positive, neu neutral, ang/sad negative); other codes need ``labels:`` in a config."""
        classes = tuple(c.removeprefix("speech_") for c in columns if c.startswith("speech_") and c != "speech_worker")
        negative = tuple(c for c in ("ang", "sad") if c in classes)
        if "hap" not in classes or "neu" not in classes or not negative:
            raise InputError(f"the score table's classes {list(classes)} do not name the sentiment roles (hap, neu, "
                             f"ang/sad); give `labels: {{classes, positive, neutral, negative}}` in the config")
        return cls(classes=classes, positive="hap", neutral="neu", negative=negative)


DEFAULT_LABELS = LabelSet()
