"""Fusion decisions on crafted rows: each variant's switch and mapping logic."""

import numpy as np
import pytest

from ser.data.arrays import ScoreArrays
from ser.config import load_config
from ser.fusion.rules import free_parameters, rule_from_config
from ser.fusion.text import TextDistribution
from ser.data.labels import DEFAULT_LABELS as L

ANG, HAP, NEU, SAD = range(4)
UNIFORMISH = [0.3, 0.28, 0.22, 0.2]   # speech says ang, uncertain: H ≈ 1.37, V ≈ 0.03
CONFIDENT = [0.94, 0.02, 0.02, 0.02]  # speech says ang, H ≈ 0.29
NEG, NEUS, POS = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]


def arrays(y, p, q):
    return ScoreArrays.from_probs(L, np.array(y), np.array(p, float), np.array(q, float))


def build(**raw):
    return rule_from_config(raw, L)


def test_speech_text_oracle():
    a = arrays([HAP, ANG, SAD], [UNIFORMISH, CONFIDENT, [0.1, 0.1, 0.5, 0.3]], [POS, POS, NEG])
    assert build(kind="speech").decide(a).pred.tolist() == [ANG, ANG, NEU]
    text = build(kind="text").decide(a)
    # neg → refer: row 2's speech rates sad (0.3) above ang (0.1)
    assert text.pred.tolist() == [HAP, HAP, SAD]
    assert text.switched.tolist() == [True, True, True]
    oracle = build(kind="oracle").decide(a)
    assert oracle.pred.tolist() == [HAP, ANG, SAD]          # row 1: speech right, text wrong → keep
    assert oracle.switched.tolist() == [True, False, True]


def test_published_gate_switches_only_uncertain_low_varentropy():
    a = arrays([HAP, HAP], [UNIFORMISH, CONFIDENT], [POS, POS])
    assert a.h[0] > 1.3 and a.v[0] < 0.05 and a.h[1] < 0.3
    d = build(kind="select", gate="hv", tau_h=1.0, tau_v=0.4).decide(a)
    assert d.pred.tolist() == [HAP, ANG] and d.switched.tolist() == [True, False]
    # raising τ_H above the uncertain row's entropy stops the switch; lowering τ_V below V too
    assert build(kind="select", gate="hv", tau_h=1.38, tau_v=0.4).decide(a).pred.tolist() == [ANG, ANG]
    assert build(kind="select", gate="hv", tau_h=1.0, tau_v=0.01).decide(a).pred.tolist() == [ANG, ANG]


def test_entropy_only_varentropy_only_and_fixed_low_rule():
    a = arrays([HAP, HAP], [UNIFORMISH, CONFIDENT], [POS, POS])
    assert build(kind="select", gate="h", tau_h=0.2).decide(a).pred.tolist() == [HAP, HAP]
    # V(CONFIDENT) ≈ 0.70 > 0.5 → only the uniform-ish row passes V ≤ 0.5
    assert a.v[1] > 0.5
    assert build(kind="select", gate="v", tau_v=0.5).decide(a).pred.tolist() == [HAP, ANG]
    # "both below 0.1" selects confident rows: neither row has H < 0.1
    assert build(kind="select", gate="low", tau_h=0.1, tau_v=0.1).decide(a).pred.tolist() == [ANG, ANG]
    # a nearly one-hot row passes the low rule: H ≈ 0.003, V ≈ 3e-4 · ln(1e4)² ≈ 0.025
    b = arrays([HAP], [[0.9997, 0.0001, 0.0001, 0.0001]], [POS])
    assert b.h[0] < 0.1 and b.v[0] < 0.1
    assert build(kind="select", gate="low", tau_h=0.1, tau_v=0.1).decide(b).pred.tolist() == [HAP]


def test_per_class_thresholds_index_by_speech_prediction():
    # row 0 predicted ang, row 1 predicted neu; both have the same (H, V)
    a = arrays([HAP, HAP], [UNIFORMISH, [0.22, 0.28, 0.3, 0.2]], [POS, POS])
    d = build(kind="select", gate="h", tau_h={"ang": 2.0, "hap": 0, "neu": 0.5, "sad": 0}).decide(a)
    assert d.pred.tolist() == [ANG, HAP]


def test_negative_mapping_refer_and_score_split_with_flip():
    # both rows: speech uncertain, says ang; sentiment negative with confidences 0.8 and 0.4
    p = [UNIFORMISH, UNIFORMISH]
    a = arrays([SAD, SAD], p, [[0.8, 0.1, 0.1], [0.4, 0.3, 0.3]])
    base = dict(kind="select", gate="h", tau_h=1.0)
    assert build(**base).decide(a).pred.tolist() == [ANG, ANG]          # refer: p_ang > p_sad
    split = dict(mode="score-split", t=0.5)
    assert build(**base, negative=split).decide(a).pred.tolist() == [SAD, ANG]     # ≤ t → ang
    assert build(**base, negative={**split, "flip": True}).decide(a).pred.tolist() == [ANG, SAD]
    per_class = {"ang": split, "hap": "refer", "neu": "refer", "sad": "refer"}
    assert build(**base, negative=per_class).decide(a).pred.tolist() == [SAD, ANG]


def test_merge_exclude_blocks_listed_transitions():
    a = arrays([HAP, NEU], [UNIFORMISH, UNIFORMISH], [POS, NEUS])
    base = dict(kind="select", gate="h", tau_h=1.0)
    assert build(**base).decide(a).pred.tolist() == [HAP, NEU]
    d = build(**base, merge="exclude", exclude=["ang->hap"]).decide(a)
    assert d.pred.tolist() == [ANG, NEU] and d.switched.tolist() == [False, True]


def test_soft_fusions():
    a = arrays([HAP], [[0.5, 0.4, 0.05, 0.05]], [POS])
    q4 = TextDistribution().apply(a)
    np.testing.assert_allclose(q4, [[0.05, 0.8, 0.1, 0.05]])
    assert build(kind="loglinear", w=0.0).decide(a).pred.tolist() == [ANG]
    # w = .5: ang 0.5^.5·0.05^.5 = 0.158 < hap 0.4^.5·0.8^.5 = 0.566
    assert build(kind="loglinear", w=0.5).decide(a).pred.tolist() == [HAP]
    assert build(kind="average", w=0.1).decide(a).pred.tolist() == [ANG]   # .455 vs .44
    assert build(kind="average", w=0.2).decide(a).pred.tolist() == [HAP]   # .41 vs .48
    # gated weight: H(p) ≈ 0.98 < τ_H = 1.2 → no text weight
    assert build(kind="loglinear", w=0.5, weight_gate="entropy", tau_h=1.2).decide(a).pred.tolist() == [ANG]
    assert build(kind="loglinear", w=0.9, weight_gate="scaled").decide(a).pred.tolist() == [HAP]


@pytest.mark.parametrize("spread, split, uniform, expected", [
    # p: ang .6, sad .2 (ratio 3:1); q: neg .7 (top), neu .2, pos .1
    ("probs", "even", 0.0, [0.35, 0.10, 0.20, 0.35]),
    ("probs", "ratio", 0.0, [0.525, 0.10, 0.20, 0.175]),
    ("top", "even", 0.0, [0.35 + 0.075, 0.075, 0.075, 0.35 + 0.075]),       # c = .7 on neg, (1 − c)/4 everywhere
    ("top", "ratio", 0.0, [0.525 + 0.075, 0.075, 0.075, 0.175 + 0.075]),
    ("probs", "even", 0.2, [0.8 * 0.35 + 0.05, 0.8 * 0.1 + 0.05, 0.8 * 0.2 + 0.05, 0.8 * 0.35 + 0.05]),
])
def test_text_distributions_on_a_crafted_row(spread, split, uniform, expected):
    a = arrays([ANG], [[0.6, 0.1, 0.1, 0.2]], [[0.7, 0.2, 0.1]])
    q = TextDistribution(spread, split, uniform).apply(a)
    np.testing.assert_allclose(q, [expected])
    np.testing.assert_allclose(q.sum(axis=1), 1.0)


def test_text_distribution_top_positive_and_ratio_without_negative_mass():
    a = arrays([HAP, SAD], [[0.0, 0.5, 0.5, 0.0], [0.0, 0.5, 0.5, 0.0]], [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    q = TextDistribution("top", "ratio").apply(a)
    np.testing.assert_allclose(q[0], [0.075, 0.775, 0.075, 0.075])
    np.testing.assert_allclose(q[1], [0.3 + 0.1, 0.1, 0.1, 0.3 + 0.1])     # p_ang = p_sad = 0: split evenly


def test_soft_rule_uses_its_text_distribution():
    # speech says neu, leaning sad over ang (.3 vs .05); text says negative with confidence .6:
    # split evenly, sad gets q = .3 + .1 and neu keeps its label; in the 6:1 ratio, sad gets .614 and wins
    a = arrays([SAD], [[0.05, 0.05, 0.6, 0.3]], [[0.6, 0.3, 0.1]])
    even = build(kind="loglinear", w=0.3, text={"spread": "top", "negative_split": "even"}).decide(a).pred
    ratio = build(kind="loglinear", w=0.3, text={"spread": "top", "negative_split": "ratio"}).decide(a).pred
    assert even.tolist() == [NEU] and ratio.tolist() == [SAD]


def test_free_parameters_count_what_was_fitted():
    assert free_parameters({"kind": "speech"}) == 0
    assert free_parameters({"kind": "loglinear", "w": 0.3, "text": {"uniform": 0.0}}) == 1
    assert free_parameters({"kind": "average", "w": 0.3, "weight_gate": "entropy", "tau_h": 1.0,
                            "text": {"uniform": 0.2}}) == 3
    assert free_parameters({"kind": "select", "gate": "h", "tau_h": 1.0}) == 1
    per_class = {c: 1.0 for c in L.classes}
    split = {"mode": "score-split", "t": 0.3, "flip": False}
    assert free_parameters({"kind": "select", "gate": "hv", "tau_h": per_class, "tau_v": per_class,
                            "negative": {"ang": split, "hap": "refer", "neu": split, "sad": "refer"},
                            "merge": "exclude", "exclude": []}) == 8 + 2 + 1


@pytest.mark.parametrize("raw, message", [
    ({"kind": "loglinear", "w": 0.3, "text": {"spread": "toop"}}, "text.spread 'toop' is not one of"),
    ({"kind": "loglinear", "w": 0.3, "text": {"negative": "even"}}, "text: unknown key 'negative'; did you mean 'negative_split'?"),
    ({"kind": "selekt"}, "unknown kind 'selekt'"),
    ({"kind": "select", "tau_h": 1, "tau_v": 1, "tauh": 2}, "unknown key 'tauh'; did you mean 'tau_h'?"),
    ({"kind": "select", "gate": "hv", "tau_h": 1}, "missing key 'tau_v'"),
    ({"kind": "select", "gate": "xx", "tau_h": 1}, "gate 'xx' is not one of"),
    ({"kind": "select", "gate": "h", "tau_h": {"ang": 1}}, "missing ['hap', 'neu', 'sad']"),
    ({"kind": "select", "gate": "h", "tau_h": 1, "merge": "exclude", "exclude": ["ang->fru"]}, "unknown class 'fru'"),
    ({"kind": "loglinear", "w": 1.5}, "w must be in [0, 1]"),
    ({"kind": "text", "negative": {"mode": "score-split", "t": 2}}, "t must be in [0, 1]"),
])
def test_bad_rule_configs_name_the_problem(raw, message):
    with pytest.raises(ValueError) as err:
        rule_from_config(raw, L, name="systems.x")
    assert message in str(err.value) and "systems.x" in str(err.value)


def test_a_fusion_rule_added_with_one_registration_works_wherever_configs_name_it():
    """A toy rule (always one class): registered once, it is a system in ``ser.evaluate``, checked for its keys,
    counted and described like the built-in rules, and, with its two search hooks, a variant ``ser.tune`` samples
    (which class) and keeps per fold."""
    from dataclasses import dataclass
    from typing import ClassVar

    import ser
    from ser.fusion.rules import RULES, Decision, describe_config, register_rule
    from ser.tuning.search import TrialResult
    from ser.data.synthetic import synthetic_scores

    @dataclass(frozen=True)
    class Always:
        index: int
        kind: ClassVar[str] = "always"
        keys: ClassVar[frozenset[str]] = frozenset({"label"})

        @classmethod
        def from_config(cls, raw, labels):
            return cls(labels.index(raw["label"]))

        @staticmethod
        def free_parameters(config):
            return 0

        @staticmethod
        def describe(config):
            return f"always {config['label']}"

        def decide(self, a):
            pred = np.full(len(a), self.index)
            return Decision(pred, pred != a.speech)

        @staticmethod
        def search_sample(trial, space):
            return {"label": trial.suggest_categorical("label", ["neu", "sad"])}

        @staticmethod
        def search_fit(params, a, space, objective):
            config = {"kind": "always", "label": params["label"]}
            pred = Always.from_config(config, a.labels).decide(a).pred
            return TrialResult(config, objective.score(a.y, pred, a.group, a.labels.k), 1)

    register_rule(Always)
    try:
        with pytest.raises(ValueError, match="'always' is already registered"):
            register_rule(Always)
        run = ser.evaluate(synthetic_scores(3, 60, seed=2), {"systems": {"neu": {"kind": "always", "label": "neu"}},
                                                             "evaluate": {"bootstrap": 20}})
        assert all(ua == 0.25 for ua in run.result.fold_values("neu", "ua"))      # one class's recall is 1
        assert set(run.predictions["pred_neu"]) == {"neu"}
        assert describe_config({"kind": "always", "label": "neu"}) == "always neu"
        assert free_parameters({"kind": "always", "label": "neu"}) == 0
        with pytest.raises(ValueError, match=r"unknown key 'lable'.*did you mean 'label'"):
            rule_from_config({"kind": "always", "lable": "neu"}, L, "neu")
        tuned = ser.tune(synthetic_scores(3, 60, seed=2), {"tune": {"engine": "optuna", "trials": 4, "space": {
            "variants": ["always"], "anchors": False}}, "evaluate": {"bootstrap": 20}})
        assert {f.best.config["label"] for f in tuned.result.folds} <= {"neu", "sad"}
        assert set(tuned.trials["variant"]) == {"always"}
        assert all(f.best.description.startswith("always ") for f in tuned.result.folds)
    finally:
        RULES.pop("always")
    with pytest.raises(ValueError, match=r"tune.space.variants: unknown choice\(s\) \['always'\]"):
        load_config({"tune": {"space": {"variants": ["always"]}}})
    with pytest.raises(ValueError, match="unknown kind 'always'"):
        rule_from_config({"kind": "always", "label": "neu"}, L)


def test_every_built_in_search_variant_has_its_sampler_and_fit():
    from ser.tuning.search import BUILTIN_VARIANTS
    from ser.config.space import VARIANTS

    assert tuple(BUILTIN_VARIANTS) == VARIANTS
