"""The logistic fusion: decisions on crafted rows, its configuration checks, the row weights that make its fit follow
the objective, what it learns, and how the search keeps it."""

from dataclasses import replace

import numpy as np
import pytest

from ser.config import EvaluateConfig, load_config
from ser.data.arrays import ScoreArrays
from ser.data.labels import DEFAULT_LABELS as L
from ser.data.schema import validate
from ser.data.synthetic import SecondPath, synthetic_scores
from ser.fusion.logistic import LogisticRule, fit_logistic, row_weights
from ser.fusion.rules import describe_config, free_parameters, rule_from_config
from ser.measures.metrics import summary
from ser.measures.objective import Objective
from ser.tuning.choice import TrialRecord, choose
from ser.tuning.per_fold import make_fold_search, tune_folds, tuned_results

ANG, HAP, NEU, SAD = range(4)
FLAT = [0.25, 0.25, 0.25, 0.25]
NEG, NEUS, POS = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]


def arrays(y, p, q, group=None, texts=None):
    return ScoreArrays.from_probs(L, np.array(y), np.array(p, float), np.array(q, float),
                                  None if group is None else np.array(group), texts)


def text_reader() -> dict:
    """Ignores speech; ang ← log q_neg, hap ← log q_pos, neu ← log q_neu, sad never (intercept −10)."""
    coef = np.zeros((4, 7))
    coef[ANG, 4], coef[HAP, 6], coef[NEU, 5] = 1.0, 1.0, 1.0
    return {"kind": "logistic", "paths": ["primary"], "coef": coef.tolist(), "intercept": [0, 0, 0, -10]}


def test_decisions_on_crafted_rows_follow_the_coefficients():
    a = arrays([ANG, HAP, NEU], [[0.7, 0.1, 0.1, 0.1]] * 3, [NEG, POS, NEUS])
    decision = rule_from_config(text_reader(), L).decide(a)
    assert decision.pred.tolist() == [ANG, HAP, NEU]
    assert decision.switched.tolist() == [False, True, True]
    speech_reader = {**text_reader(), "coef": np.hstack([np.eye(4), np.zeros((4, 3))]).tolist(),
                     "intercept": [0, 0, 0, 0]}
    assert rule_from_config(speech_reader, L).decide(a).pred.tolist() == [ANG, ANG, ANG]


def test_the_configuration_round_trips_and_is_counted_and_described():
    rule = rule_from_config(text_reader(), L)
    assert rule_from_config(rule.to_config(), L).to_config() == rule.to_config()
    assert free_parameters(text_reader()) == 3 * (4 + 3 + 1)
    two = {**text_reader(), "paths": ["primary", "llm"], "coef": np.zeros((4, 10)).tolist()}
    assert free_parameters(two) == 3 * (4 + 6 + 1)
    assert describe_config(two) == "logistic regression on speech and primary, llm text"
    alone = {**text_reader(), "paths": [], "coef": np.eye(4).tolist()}
    assert describe_config(alone) == "logistic regression on speech alone (a recalibration, no text)"
    assert free_parameters(alone) == 3 * (4 + 1)


@pytest.mark.parametrize("change, message", [
    ({"coef": np.zeros((4, 6)).tolist()}, "needs coef 4×7 and intercept of 4 values, got (4, 6)"),
    ({"intercept": [0, 0, 0]}, "got (4, 7) and (3,)"),
    ({"paths": "primary"}, "paths must be a list of text path names (empty: speech alone)"),
    ({"intercept": [0, 0, 0, float("nan")]}, "coef and intercept must be finite"),
    ({"coefs": []}, "unknown key 'coefs'; did you mean 'coef'?"),
])
def test_bad_configurations_name_the_problem(change, message):
    with pytest.raises(ValueError) as err:
        rule_from_config({**text_reader(), **change}, L, name="systems.lr")
    assert message in str(err.value) and "systems.lr" in str(err.value)


def test_a_path_the_table_lacks_is_named():
    rule = rule_from_config({**text_reader(), "paths": ["primary", "llm"], "coef": np.zeros((4, 10)).tolist()}, L)
    with pytest.raises(ValueError, match=r"text path 'llm' is not in the score table \(its paths: \['primary'\]"):
        rule.decide(arrays([ANG], [FLAT], [NEG]))


def test_row_weights_equalize_classes_and_groups_as_the_objective_asks():
    a = arrays([ANG, ANG, ANG, HAP], [FLAT] * 4, [NEUS] * 4, group=[0, 0, 0, 1])
    # classes: 3 ang and 1 hap → 4 / (2 · 3) and 4 / (2 · 1); groups: 3 rows and 1 row → 4 / (2 · 3) and 4 / (2 · 1)
    assert np.allclose(row_weights(a, Objective("macro_f1", "pooled")), [2 / 3, 2 / 3, 2 / 3, 2])
    assert np.allclose(row_weights(a, Objective("wa", "fold-mean")), [2 / 3, 2 / 3, 2 / 3, 2])
    both = np.array([4 / 9, 4 / 9, 4 / 9, 4.0])
    assert np.allclose(row_weights(a, Objective("ua", "fold-mean")), both * 4 / both.sum())
    assert np.allclose(row_weights(a, Objective("wa", "pooled")), 1.0)


def test_it_learns_a_speech_bias_and_the_text_beside_it():
    """Speech says neu for every hap row (and for neu rows); the text's positive sentiment marks the hap rows. The
    speech argmax never predicts hap; the fitted fusion recovers it from the text."""
    rng = np.random.default_rng(0)
    y = np.repeat([ANG, HAP, NEU, SAD], 50)
    p = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.3, 0.5, 0.1], [0.1, 0.2, 0.6, 0.1], [0.1, 0.1, 0.1, 0.7]])[y]
    p = p * rng.uniform(0.9, 1.1, p.shape)
    q = np.where((y == HAP)[:, None], POS, NEUS)
    a = arrays(y, p / p.sum(axis=1, keepdims=True), q, group=np.arange(200) % 4)
    rule = fit_logistic(a)
    assert summary(a.y, a.speech, 4)["macro_f1"] < 0.7
    assert summary(a.y, rule.decide(a).pred, 4)["macro_f1"] == 1.0
    assert np.all(np.isfinite(rule.coef)) and rule.paths == ("primary",)


def test_classes_missing_from_the_tuning_rows_are_never_predicted():
    two = arrays([ANG, SAD, ANG, SAD], [[0.6, 0.1, 0.1, 0.2], [0.2, 0.1, 0.1, 0.6]] * 2, [NEG] * 4)
    rule = fit_logistic(two)
    assert rule.decide(two).pred.tolist() == [ANG, SAD, ANG, SAD]
    assert rule.intercept[HAP] == rule.intercept[NEU] == -1e6
    one = fit_logistic(arrays([NEU, NEU], [FLAT, [0.7, 0.1, 0.1, 0.1]], [NEG, POS]))
    assert one.decide(arrays([ANG], [[0.9, 0.05, 0.03, 0.02]], [NEG])).pred.tolist() == [NEU]


def _tune(df):
    cfg = load_config(None)
    tune = replace(cfg.tune, engine="optuna", trials=24)
    return tuned_results(df, cfg.label_set, tune_folds(df, cfg.label_set, tune, make_fold_search(tune), 0), tune,
                         EvaluateConfig(bootstrap=200), 0)


def test_the_default_search_keeps_it_where_speech_is_biased():
    """Speech that under-rates hap (its probability cut to 0.3 of itself): the logistic fusion learns the bias
    beside the text, most folds keep it, and the result beats every hand-mapped baseline."""
    df = synthetic_scores(n_folds=5, per_fold=300, seed=0)
    speech = [f"speech_{c}" for c in L.classes]
    df["speech_hap"] *= 0.3
    df[speech] = df[speech].div(df[speech].sum(axis=1), axis=0)
    r = _tune(validate(df))
    kept = [f for f in r.folds if f.best.config["kind"] == "logistic"]
    assert len(kept) >= 4 and all(f.best.config["paths"] == ["primary"] for f in kept)
    assert all(f.best.why.startswith("fusion kept: ") for f in kept)
    assert r.baselines.verdict.versus_best.ci_low > 0


def test_a_logistic_fusion_of_several_paths_must_earn_them_like_a_joint_one():
    """A strong independent second path: most folds keep a fusion of both paths (joint or logistic), each having
    passed the test against the fold's one-path choice."""
    r = _tune(validate(synthetic_scores(n_folds=5, per_fold=300, seed=1, second=SecondPath("llm", 0.6, 0.0))))
    several = [f for f in r.folds if f.best.config["kind"] == "joint" or f.best.config.get("paths") == ["primary", "llm"]]
    assert len(several) >= 4
    assert all(f.best.why.startswith("joint fusion kept: ") for f in several)


def test_text_that_says_nothing_keeps_speech_alone_whatever_the_logistic_fit_gains():
    """The useless-text profile: a logistic fit recalibrates speech and gains on the tuning rows, but the text shows
    no evidence beyond its prior, so no fold keeps a fusion that needs it."""
    r = _tune(validate(synthetic_scores(n_folds=5, per_fold=300, seed=0, profile="useless-text")))
    gains = [f.systems["tuned"]["macro_f1"] - f.systems["speech"]["macro_f1"] for f in r.folds]
    assert min(gains) >= -0.01


def _record(number, config, inner):
    return TrialRecord(number, {}, config, float(np.mean(inner)) + 0.01, 1, list(inner))


def test_a_logistic_fusion_is_kept_only_if_its_text_beats_the_same_regression_on_speech_alone():
    """Part of a logistic fusion's gain is a recalibration of speech's classes, which needs no text; its text must
    add to the regression on speech alone as the prior-divided text must add to speech. The recalibration itself is
    never kept, whatever the rule."""
    speech = _record(0, {"kind": "speech"}, [0.60] * 4)
    divided = _record(1, {"kind": "loglinear", "w": 0.3, "text": {"prior": "divide"}}, [0.62, 0.625, 0.62, 0.625])
    alone = {**text_reader(), "paths": []}
    recalibrated = _record(2, alone, [0.65, 0.655, 0.65, 0.655])
    no_text = _record(3, text_reader(), [0.652, 0.654, 0.652, 0.654])       # ±0.1 point around the recalibration
    with_text = _record(4, text_reader(), [0.67, 0.675, 0.67, 0.675])       # +2 points in every group
    kept = choose([speech, divided, recalibrated, no_text])
    assert kept.kept is divided
    assert kept.why.startswith("the hand-mapped choice kept: the fusion leads by ")
    assert "over the logistic regression on speech alone" in kept.why and "; then fusion kept: " in kept.why
    assert choose([speech, divided, recalibrated, with_text]).kept is with_text
    assert choose([speech, divided, with_text]).why.startswith(
        "the hand-mapped choice kept: the logistic regression on speech alone was not searched")
    for rule in ("levels", "one-se", "inner-best", "tuning-best"):
        assert choose([speech, recalibrated], rule).kept is speech


def test_the_one_path_logistic_fusion_stays_eligible_when_the_several_path_one_is_refused():
    """A logistic fusion over two paths that does not beat the one-path choice by a whole SE: the fold falls back to
    the one-path logistic fusion, still held against the regression on speech alone."""
    speech = _record(0, {"kind": "speech"}, [0.60] * 4)
    divided = _record(1, {"kind": "loglinear", "w": 0.3, "text": {"prior": "divide"}}, [0.62, 0.625, 0.62, 0.625])
    recalibrated = _record(2, {**text_reader(), "paths": []}, [0.65, 0.655, 0.65, 0.655])
    one_path = _record(3, text_reader(), [0.67, 0.675, 0.67, 0.675])
    both = {**text_reader(), "paths": ["primary", "llm"], "coef": np.zeros((4, 10)).tolist()}
    two_paths = _record(4, both, [0.73, 0.735, 0.6699, 0.6749])        # +6 points in 2 groups, -0.01 in 2
    kept = choose([speech, divided, recalibrated, one_path, two_paths])
    assert kept.kept is one_path
    assert kept.why.startswith("one-path fusion kept: ")
