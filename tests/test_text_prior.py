"""Fusion round 3: the text read divided by its own prior (``text.prior: divide``) and the do-no-harm test that asks
the text for evidence beyond that prior."""

import json

import numpy as np
import pytest

from ser.data.arrays import ScoreArrays
from ser.tuning.baselines import BASELINES
from ser.tuning.choice import TrialRecord, choose
from ser.config import load_config
from ser.fusion.rules import rule_from_config
from ser.fusion.text import TextDistribution
from ser.data.labels import DEFAULT_LABELS
from ser.data.schema import validate
from ser.tuning.search import anchor_trials, fit_trial
from ser.config.space import SearchSpace
from ser.data.synthetic import synthetic_scores

ANG, HAP, NEU, SAD = range(4)


def arrays(y, p, q, group=None):
    return ScoreArrays.from_probs(DEFAULT_LABELS, np.array(y), np.array(p, dtype=float), np.array(q, dtype=float),
                                  None if group is None else np.array(group))


def test_prior_divided_distribution_on_crafted_rows():
    """Two rows read as probs/even: q1 = (.35, .1, .2, .35), q2 = (.05, .8, .1, .05); their mean q̄ = (.2, .45, .15,
    .2). Row 1 divided: (1.75, .222, 1.333, 1.75) / 5.056; a fitted base is kept and used on other rows."""
    a = arrays([ANG, HAP], [[0.6, 0.1, 0.1, 0.2], [0.1, 0.7, 0.1, 0.1]], [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    divided = TextDistribution("probs", "even", prior="divide")
    raw = np.array([[1.75, 0.1 / 0.45, 0.2 / 0.15, 1.75], [0.25, 0.8 / 0.45, 0.1 / 0.15, 0.25]])
    np.testing.assert_allclose(divided.apply(a), raw / raw.sum(axis=1, keepdims=True))
    fitted = divided.fitted(a, ["primary"])
    assert fitted.to_config() == {"spread": "probs", "negative_split": "even", "uniform": 0.0, "prior": "divide",
                                  "base": {"primary": [0.2, 0.45, 0.15, 0.2]}}
    one = a.take(np.array([0]))                  # alone, its own mean would make it uniform; the fitted base does not
    np.testing.assert_allclose(fitted.apply(one), raw[:1] / raw[:1].sum())
    np.testing.assert_allclose(divided.apply(one), [[0.25] * 4])
    assert TextDistribution.from_config(fitted.to_config()) == fitted
    assert TextDistribution("probs", "even").to_config() == {"spread": "probs", "negative_split": "even",
                                                             "uniform": 0.0}      # as mapped: the layout of before


def test_a_constant_text_divided_by_its_prior_never_moves_speech():
    """Every row's sentiment says 'positive' with the same confidence: as mapped, a weight of .5 pushes the unsure
    rows to hap, and even the sure sad row (.8 · .05 against .05 · .85 under the square root); divided by its prior
    the text is uniform and speech's label stands for any weight."""
    p = [[0.40, 0.35, 0.15, 0.10], [0.10, 0.30, 0.45, 0.15], [0.05, 0.05, 0.10, 0.80]]
    a = arrays([ANG, NEU, SAD], p, [[0.1, 0.1, 0.8]] * 3)
    for w in (0.2, 0.5, 0.9):
        cfg = {"kind": "loglinear", "w": w, "text": {"spread": "top", "prior": "divide"}}
        assert rule_from_config(cfg, a.labels).decide(a).pred.tolist() == [ANG, NEU, SAD]
    kept = rule_from_config({"kind": "loglinear", "w": 0.5, "text": {"spread": "top"}}, a.labels).decide(a).pred
    assert kept.tolist() == [HAP, HAP, HAP]


@pytest.mark.parametrize("raw, message", [
    ({"prior": "halve"}, "text.prior 'halve' is not one of"),
    ({"prior": "divide", "base": [0.25] * 4}, "text.base must map text paths"),
    ({"prior": "divide", "base": {"primary": [0.5, 0.0, 0.25, 0.25]}}, "text.base must map each text path to positive"),
    ({"base": {"primary": [0.25] * 4}}, "with prior: divide"),
])
def test_bad_prior_settings_are_named(raw, message):
    with pytest.raises(ValueError, match=message):
        TextDistribution.from_config(raw)


def test_a_base_for_another_path_or_label_set_is_an_error():
    a = arrays([ANG], [[0.6, 0.1, 0.1, 0.2]], [[0.7, 0.2, 0.1]])
    with pytest.raises(ValueError, match="text.base has no means for text path 'primary'"):
        TextDistribution.from_config({"prior": "divide", "base": {"llm": [0.25] * 4}}).apply(a)
    with pytest.raises(ValueError, match="has 3 values for 4 classes"):
        TextDistribution.from_config({"prior": "divide", "base": {"primary": [0.3, 0.3, 0.4]}}).apply(a)


def test_the_fitted_base_reads_the_tuning_rows_text_and_no_label():
    """The base is the mean mapped text of the rows a trial is fitted on: permuting their labels leaves it as it
    was (it may move the weight), and it is recorded in the configuration the test rows are scored with."""
    a = ScoreArrays.from_table(validate(synthetic_scores(n_folds=3, per_fold=150, seed=5)))
    params = {"variant": "loglinear", "weight_gate": "none", "spread": "top", "negative_split": "ratio",
              "prior": "divide", "uniform": 0.0}
    fit = fit_trial(params, a, SearchSpace())
    shuffled = ScoreArrays.from_probs(a.labels, np.random.default_rng(0).permutation(a.y), a.p, a.q, a.group)
    base = fit.config["text"]["base"]["primary"]
    assert fit_trial(params, shuffled, SearchSpace()).config["text"]["base"]["primary"] == base
    expected = TextDistribution("top", "ratio")._mapped(a, "primary").mean(axis=0)
    np.testing.assert_allclose(base, expected, atol=1e-6)


def test_anchors_and_baselines_carry_both_readings():
    anchors = [json.dumps(t, sort_keys=True) for t in anchor_trials(SearchSpace())]
    for name in ("loglinear[top,ratio]", "loglinear[top,ratio,divide]"):
        assert json.dumps(BASELINES[name], sort_keys=True) in anchors
    assert BASELINES["loglinear[top,ratio]"]["prior"] == "keep"
    space = load_config({"tune": {"space": {"soft": {"prior": ["keep"]}}}}).tune.space
    assert all(t.get("prior", "keep") == "keep" for t in anchor_trials(space))
    with pytest.raises(ValueError, match=r"tune.space.soft.prior: unknown choice\(s\) \['halve'\]"):
        load_config({"tune": {"space": {"soft": {"prior": ["halve"]}}}})


SPEECH = {"kind": "speech"}
KEPT = {"kind": "loglinear", "w": 0.3, "weight_gate": "none", "text": {"uniform": 0.0}}
DIVIDED = {"kind": "loglinear", "w": 0.3, "weight_gate": "none", "text": {"uniform": 0.0, "prior": "divide"}}


def record(number, config, score, inner):
    return TrialRecord(number, {}, config, score, 1, inner)


def test_a_fusion_is_kept_only_if_the_text_shows_evidence_beyond_its_prior():
    """Four held-out groups. The as-mapped fusion leads speech by 2 points in every group (it passes do no harm).
    Divided by its prior the text gains 0.5, −0.3, 0.4, 0.2: a lead of 0.2 mean / 0.18 SE × √(1 + 4/3) = 0.44 SE,
    under the whole SE asked: the gain is a shift of speech's class priors, and speech alone is kept. With the
    divided fusion 1, 1.2, 0.9, 1.1 points up (about 6 corrected SE), the as-mapped fusion is kept."""
    speech = record(0, SPEECH, 0.60, [0.600, 0.600, 0.600, 0.600])
    kept = record(1, KEPT, 0.63, [0.620, 0.620, 0.620, 0.620])
    weak = record(2, DIVIDED, 0.61, [0.605, 0.597, 0.604, 0.602])
    choice = choose([speech, kept, weak])
    assert choice.kept is speech
    assert choice.why.startswith("speech alone kept: the text shows no evidence beyond its own prior")
    strong = record(2, DIVIDED, 0.61, [0.610, 0.612, 0.609, 0.611])
    assert choose([speech, kept, strong]).kept is kept
    assert choose([speech, kept]).kept is kept          # no prior-divided trial searched: the round-2 rule alone
