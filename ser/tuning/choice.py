"""Which trial a fold keeps: the choice rules over a search's trials (``tune.choice``).

The best of thousands of configurations fitted to one tuning set scores well there partly by luck, so the
default rule (``levels``) ranks trials of equal complexity by their tuning score, prefers the fewest free
parameters among the fusion finalists within one (overlap-corrected) standard error of the best inner
leave-one-group-out estimate, and keeps that fusion over speech alone (nothing fitted) only when the evidence
across the held-out groups is consistent: its inner estimate leads by half a standard error, it is better than
speech in most groups, and no group loses more than its noise allows (:func:`loss_allowed`). Each choice says why
(:class:`Choice`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ser.config import CHOICES
from ser.fusion.rules import free_parameters
from ser.tuning.search import TrialResult
from ser._util.io import InputError


@dataclass(frozen=True)
class TrialRecord:
    """One search trial: the sampled structure, the configuration it settled on, its tuning score."""

    number: int
    params: dict
    config: dict
    score: float
    n_configs: int
    inner: list[float] | None = None

    @classmethod
    def from_result(cls, number: int, params: dict, result: TrialResult) -> "TrialRecord":
        return cls(number, params, result.config, float(result.score), int(result.n_configs),
                   None if result.inner is None else [float(x) for x in result.inner])

    @property
    def inner_mean(self) -> float | None:
        return None if self.inner is None else float(np.mean(self.inner))

    @property
    def selection_score(self) -> float:
        """What the sampler maximizes: the inner estimate where there is one, else the tuning score."""
        return self.score if self.inner is None else self.inner_mean


def standard_error(values: Any) -> float | None:
    """Standard error of the mean (sample std / √n); None for fewer than two values."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None


SPEECH_MARGIN_SE = 0.5
"""``levels`` keeps a fusion over speech alone only when its inner estimate is better by this many corrected SEs,"""
WORST_GROUP_LOSS = 0.02
"""... when no held-out group of ``REFERENCE_GROUP_ROWS`` or more rows scores more than this (2 points) below speech
alone (smaller groups, whose scores move more with each utterance, are allowed more: :func:`loss_allowed`), ..."""
REFERENCE_GROUP_ROWS = 400
MAJORITY = 0.5
"""... and when it is better than speech alone in more than this share of the held-out groups (do no harm)."""
EVIDENCE_MARGIN_SE = 1.0
"""A fusion is kept over speech alone only when the text also shows evidence beyond its own prior: the best fusion
that reads the text divided by its mean (``text.prior: divide``) passes the same test against speech alone with this
lead (a fusion whose gain needs the text's prior only shifts speech's class priors, which does not carry over to an
unseen speaker). A logistic fusion must also pass it against the same regression on speech alone."""
PATH_MARGIN_SE = 1.0
"""A fusion of several text paths (joint, or logistic over them) is kept over the one-path choice only when it passes
the same test against it with this lead: a further path earns its weight, or the fold goes without it."""


@dataclass(frozen=True)
class Choice:
    """The trial a fold keeps and, in words, why (``fold["best"]["why"]`` in results)."""

    kept: TrialRecord
    why: str


def _lead(best: TrialRecord, other: TrialRecord, corrected: bool = False) -> float:
    """How many standard errors ``best``'s inner estimate leads ``other``'s (paired over the same groups).

    ``corrected``: the SE is widened by √(1 + J/(J − 1)) for J groups (Nadeau & Bengio, 2003): the J
    per-group scores come from refits on overlapping data, so the plain SE understates the noise.
    """
    d = np.asarray(best.inner) - np.asarray(other.inner)
    se = standard_error(d) or 0.0
    if corrected:
        se *= np.sqrt(1 + len(d) / (len(d) - 1))
    if se > 0:
        return float(d.mean() / se)
    return 0.0 if abs(d.mean()) <= 1e-12 else float(np.copysign(np.inf, d.mean()))


def _one_se(records: list[TrialRecord], corrected: bool) -> TrialRecord:
    """The fewest free parameters among the trials within one SE of the best inner estimate; ties to the higher
    inner estimate, then the earlier trial."""
    best = max(records, key=lambda r: (r.inner_mean, -r.number))
    close = [r for r in records if _lead(best, r, corrected) <= 1 + 1e-9]
    return min(close, key=lambda r: (free_parameters(r.config), -r.inner_mean, r.number))


def choose_trial(records: list[TrialRecord], rule: str = "levels",
                 group_rows: Sequence[int] | None = None) -> TrialRecord:
    """The trial a fold keeps (:func:`choose` without the reason)."""
    return choose(records, rule, group_rows).kept


def loss_allowed(group_rows: Sequence[int] | None, n_groups: int) -> np.ndarray:
    """How far below the other system each held-out group may score: ``WORST_GROUP_LOSS``, widened by
    √(REFERENCE_GROUP_ROWS / rows) for a group of fewer rows (a score's noise grows as 1/√rows: in a 14-row group
    one utterance moves macro-F1 by several points). Without ``group_rows``, every group is taken as large."""
    if group_rows is None:
        return np.full(n_groups, WORST_GROUP_LOSS)
    rows = np.asarray(group_rows, dtype=float)
    if len(rows) != n_groups:
        raise ValueError(f"group_rows has {len(rows)} entries for {n_groups} held-out groups")
    return WORST_GROUP_LOSS * np.sqrt(np.maximum(REFERENCE_GROUP_ROWS / np.maximum(rows, 1), 1.0))


def _consistently_better(fused: TrialRecord, other: TrialRecord, margin_se: float, group_rows: Sequence[int] | None,
                         other_name: str, kept_other: str, kept_fused: str) -> tuple[bool, str]:
    """Is the evidence that ``fused`` beats ``other`` consistent across the held-out groups (a lead of
    ``margin_se`` corrected SEs, better in most groups, no group worse than :func:`loss_allowed`)? And the choice
    in words, beginning with ``kept_other`` or ``kept_fused``."""
    d = np.asarray(fused.inner) - np.asarray(other.inner)
    allowed = loss_allowed(group_rows, len(d))
    harmed = int(np.argmin(d + allowed))
    lead, wins, worst = _lead(fused, other, corrected=True), int((d > 1e-12).sum()), float(d.min())
    facts = (f"{100 * d.mean():+.2f} points over {other_name} in the inner estimate ({lead:.1f} SE), better in "
             f"{wins}/{len(d)} held-out folds, worst {100 * worst:+.2f}")
    if lead <= margin_se + 1e-9:
        return False, f"{kept_other} kept: the fusion leads by {lead:.1f} SE, under {margin_se} ({facts})"
    if wins <= MAJORITY * len(d):
        return False, f"{kept_other} kept: the fusion is better in only {wins}/{len(d)} held-out folds ({facts})"
    if d[harmed] < -allowed[harmed] - 1e-12:
        size = "" if group_rows is None else f" of {int(group_rows[harmed])} rows"
        return False, (f"{kept_other} kept: the fusion loses {100 * -d[harmed]:.2f} points in a held-out fold{size}, "
                       f"more than the {100 * allowed[harmed]:.2f} allowed ({facts})")
    return True, f"{kept_fused} kept: {facts}"


def choose(records: list[TrialRecord], rule: str = "levels", group_rows: Sequence[int] | None = None) -> Choice:
    """The trial a fold keeps, and why (``group_rows``: the rows of each held-out group of the inner estimates,
    in their order, which sets how much each may lose; see :func:`loss_allowed`).

    ``tuning-best``: highest score on the tuning rows (optimistic: the winner's curse).
    ``inner-best``: highest inner leave-one-group-out estimate.
    ``one-se``: among trials whose inner estimate is within one standard error of the best one
    (the SE of the per-group differences), the one with the fewest free parameters; ties to the
    higher inner estimate, then the earlier trial.
    ``levels``: first, per complexity level (number of free parameters), the trial with the best
    tuning score. Trials with as many fitted parameters are about equally optimistic, and the
    tuning score ranks them with less noise than cross-validation does. Then ``one-se`` among
    the fusion finalists, with the overlap-corrected SE. Speech alone is kept instead unless that
    fusion's inner estimate leads it by ``SPEECH_MARGIN_SE`` corrected SEs (a whole SE forfeits
    text that helps a little in every group), it is better in most held-out groups, and none of
    them loses more than :func:`loss_allowed`: a fusion that helps on average but hurts some
    speakers is not kept.
    Trials without inner estimates (a tuning set of one group) fall back to ``tuning-best``. Every
    rule is deterministic.
    """
    if rule not in CHOICES:
        raise InputError(f"choice '{rule}' is not one of {list(CHOICES)}")
    references = [r for r in records if _recalibrates_speech(r.config)]
    records = [r for r in records if not _recalibrates_speech(r.config)]
    if any(r.inner is None for r in records):
        return Choice(max(records, key=lambda r: (r.score, -r.number)),
                      "best tuning score (a single tuning fold: no inner estimate)")
    if rule == "tuning-best":
        return Choice(max(records, key=lambda r: (r.score, -r.number)), "best tuning score")
    if rule == "inner-best":
        return Choice(max(records, key=lambda r: (r.inner_mean, -r.number)), "best inner estimate")
    if rule == "one-se":
        return Choice(_one_se(records, corrected=False),
                      "fewest free parameters within one SE of the best inner estimate")
    speech = [r for r in records if r.config["kind"] == "speech"][:1]
    kept = _fusion_finalist(records)
    if kept is None:
        return Choice(speech[0], "speech alone: no fusion was searched")
    if kept.config["kind"] == "logistic":
        text_helps, why = _text_beyond_recalibration(kept, references[0] if references else None, group_rows)
        if not text_helps:
            simpler = choose([*references, *(r for r in records if r.config["kind"] != "logistic")], rule,
                             group_rows)
            return Choice(simpler.kept, f"{why}; then {simpler.why}")
    if _reads_several_paths(kept.config):
        simpler = choose([*references, *(r for r in records if not _reads_several_paths(r.config))], rule,
                         group_rows)
        if simpler.kept.config["kind"] != "speech":
            keep_joint, why = _consistently_better(kept, simpler.kept, PATH_MARGIN_SE, group_rows,
                                                   "the one-path fusion", "one-path fusion", "joint fusion")
            if not keep_joint:
                return Choice(simpler.kept, f"{why}; then {simpler.why}")
            return Choice(kept, f"{why}; then {simpler.why}")
    if not speech:
        return Choice(kept, "fewest free parameters within one SE of the best inner estimate (speech alone not "
                            "searched)")
    keep_fusion, why = _consistently_better(kept, speech[0], SPEECH_MARGIN_SE, group_rows, "speech alone",
                                            "speech alone", "fusion")
    evidence = _fusion_finalist([r for r in records if _divides_prior(r.config)])
    if keep_fusion and evidence is not None:
        has_evidence, evidence_why = _consistently_better(evidence, speech[0], EVIDENCE_MARGIN_SE, group_rows,
                                                          "speech alone", "speech alone", "fusion")
        if not has_evidence:
            return Choice(speech[0], "speech alone kept: the text shows no evidence beyond its own prior, so the "
                                     "fusion's gain is a shift of speech's class priors (divided by its prior, "
                                     f"{evidence_why}; as kept, {why})")
    return Choice(kept if keep_fusion else speech[0], why)


def _fusion_finalist(records: list[TrialRecord]) -> TrialRecord | None:
    """``levels`` among the fusions: per complexity level the best tuning score, then the fewest free parameters
    within one corrected SE of the best inner estimate (None without a fusion)."""
    by_level: dict[int, list[TrialRecord]] = {}
    for r in records:
        if r.config["kind"] != "speech":
            by_level.setdefault(free_parameters(r.config), []).append(r)
    finalists = [max(level, key=lambda r: (r.score, -r.number)) for level in by_level.values()]
    return _one_se(finalists, corrected=True) if finalists else None


def _recalibrates_speech(config: dict) -> bool:
    """Is this the logistic regression on speech alone (no text path)? It is never kept: it is the reference a
    logistic fusion's text must beat."""
    return config["kind"] == "logistic" and not config.get("paths")


def _text_beyond_recalibration(fused: TrialRecord, reference: TrialRecord | None,
                               group_rows: Sequence[int] | None) -> tuple[bool, str]:
    """Does a logistic fusion's text add to what the same regression learns from speech alone (``reference``;
    consistently, with ``EVIDENCE_MARGIN_SE``)? Part of what it gains is a recalibration of speech's classes, which
    needs no text."""
    if reference is None:
        return False, ("the hand-mapped choice kept: the logistic regression on speech alone was not searched, so "
                       "the logistic fusion's text shows no evidence of its own")
    return _consistently_better(fused, reference, EVIDENCE_MARGIN_SE, group_rows,
                                "the logistic regression on speech alone", "the hand-mapped choice", "logistic fusion")


def _reads_several_paths(config: dict) -> bool:
    """Does this fusion read further text paths beside the primary one (a joint fusion, a logistic one over them)?"""
    return config["kind"] == "joint" or len(config.get("paths", ())) > 1


def _divides_prior(config: dict) -> bool:
    """Does this fusion read the text divided by its own prior (its evidence beyond what it says on average)?"""
    return (config.get("text") or {}).get("prior") == "divide"
