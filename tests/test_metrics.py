import numpy as np
import pytest
from sklearn import metrics as skm

from ser._util.io import InputError
from ser.data.labels import DEFAULT_LABELS as L
from ser.measures.metrics import batched_confusion, confusion, fold_confusions, mean_std, metric_from_confusion, \
    per_class, scores_from_confusion, summary, switch_stats
from ser.measures import stats
from ser.measures.stats import _stratified_indices, bootstrap_ci, fold_mean_bootstrap, paired_bootstrap, paired_fold_test, versus_best


def test_hand_computed_case():
    # gold:  a a a h h n s s ; pred: a h a h n n s a   (a=0,h=1,n=2,s=3)
    y = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    p = np.array([0, 1, 0, 1, 2, 2, 3, 0])
    s = summary(y, p, 4)
    # recalls: a 2/3, h 1/2, n 1, s 1/2 → UA = (2/3 + 1/2 + 1 + 1/2)/4
    assert s["ua"] == pytest.approx((2 / 3 + 0.5 + 1 + 0.5) / 4)
    assert s["wa"] == pytest.approx(5 / 8)
    # F1: a 2·2/(3+3) = 2/3, h 2·1/(2+2) = 1/2, n 2·1/(1+2) = 2/3, s 2·1/(2+1) = 2/3
    f1 = np.array([2 / 3, 0.5, 2 / 3, 2 / 3])
    assert s["macro_f1"] == pytest.approx(f1.mean())
    assert s["weighted_f1"] == pytest.approx((f1 * [3, 2, 1, 2]).sum() / 8)
    pc = per_class(confusion(y, p, 4), L)
    assert pc["ang"] == {"precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3),
                         "f1": pytest.approx(2 / 3), "support": 3}


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("seed", range(8))
def test_equal_to_sklearn_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    k_true = 3 if seed % 3 == 0 else 4                   # sometimes a class is absent from gold
    y = rng.integers(0, k_true, n)
    p = np.where(rng.random(n) < 0.5, y, rng.integers(0, 4, n))  # may predict classes absent from gold
    s = summary(y, p, 4)
    assert s["ua"] == pytest.approx(skm.balanced_accuracy_score(y, p))
    assert s["wa"] == pytest.approx(skm.accuracy_score(y, p))
    assert s["macro_f1"] == pytest.approx(skm.f1_score(y, p, average="macro"))
    assert s["weighted_f1"] == pytest.approx(skm.f1_score(y, p, average="weighted"))
    np.testing.assert_array_equal(confusion(y, p, 4), skm.confusion_matrix(y, p, labels=range(4)))


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_one_metric_of_a_batch_of_confusions_is_sklearns():
    """What the search computes thousands of times: one metric over a batch of confusions, without the others."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, (6, 50))                                  # class 3 never in gold
    p = np.where(rng.random((6, 50)) < 0.6, y, rng.integers(0, 4, (6, 50)))
    c = np.stack([confusion(y[i], p[i], 4) for i in range(6)])
    sk = {"ua": skm.balanced_accuracy_score, "wa": skm.accuracy_score,
          "macro_f1": lambda a, b: skm.f1_score(a, b, average="macro"),
          "weighted_f1": lambda a, b: skm.f1_score(a, b, average="weighted")}
    for metric, score in sk.items():
        got = metric_from_confusion(c.reshape(2, 3, 4, 4), metric)
        assert got.shape == (2, 3)
        np.testing.assert_allclose(got.ravel(), [score(y[i], p[i]) for i in range(6)])
    with pytest.raises(InputError, match="unknown metric 'f2'"):
        metric_from_confusion(c, "f2")


def test_batched_confusion_matches_single():
    rng = np.random.default_rng(0)
    y, preds = rng.integers(0, 4, 50), rng.integers(0, 4, (3, 50))
    batch = batched_confusion(y, preds, 4)
    for b in range(3):
        np.testing.assert_array_equal(batch[b], confusion(y, preds[b], 4))
    np.testing.assert_allclose(scores_from_confusion(batch)["ua"], [summary(y, q, 4)["ua"] for q in preds])


def test_fold_confusions_broadcast_gold_and_folds_over_a_batch_of_predictions():
    """(B, S, n) predictions against one gold and one fold vector: each (b, s, fold) is that fold's confusion."""
    rng = np.random.default_rng(1)
    y, folds, preds = rng.integers(0, 4, 60), rng.integers(0, 3, 60), rng.integers(0, 4, (2, 3, 60))
    out = fold_confusions(y, preds, folds, 3, 4)
    assert out.shape == (2, 3, 3, 4, 4)
    for b, s, f in np.ndindex(2, 3, 3):
        np.testing.assert_array_equal(out[b, s, f], confusion(y[folds == f], preds[b, s][folds == f], 4))


def test_switch_statistics():
    y = np.array([1, 1, 0, 2, 3])
    speech = np.array([0, 1, 0, 3, 3])
    fused = np.array([1, 2, 0, 0, 3])    # w→r (0→1), r→w (1→2), unchanged, w→w (3→0), unchanged
    s = switch_stats(y, speech, fused, L)
    assert (s["switched"], s["wrong_to_right"], s["right_to_wrong"], s["wrong_to_wrong"]) == (3, 1, 1, 1)
    assert s["rate"] == pytest.approx(0.6)
    assert s["transitions"]["ang->hap"] == {"n": 1, "wrong_to_right": 1, "right_to_wrong": 0, "wrong_to_wrong": 0}
    assert s["transitions"]["sad->ang"]["wrong_to_wrong"] == 1 and "neu->neu" not in s["transitions"]


def test_mean_std():
    assert mean_std([0.5, 0.7]) == (pytest.approx(0.6), pytest.approx(np.std([0.5, 0.7], ddof=1)))
    assert mean_std([0.3]) == (0.3, 0.0)


def test_paired_bootstrap_ci_brackets_true_gain_and_zero_for_identical():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    a = np.where(rng.random(2000) < 0.6, y, rng.integers(0, 4, 2000))
    b = np.where(rng.random(2000) < 0.3, y, a)          # b fixes some of a's errors
    r = paired_bootstrap(y, a, b, 4, metric="wa", n_boot=500, seed=1)
    assert r["diff"] == pytest.approx((b == y).mean() - (a == y).mean())
    assert 0 < r["ci_low"] < r["diff"] < r["ci_high"] and r["p_value"] < 0.01
    same = paired_bootstrap(y, a, a, 4, n_boot=200)
    assert same["diff"] == same["ci_low"] == same["ci_high"] == 0 and same["p_value"] == 1.0
    strat = paired_bootstrap(y, a, b, 4, metric="wa", n_boot=200, strata=np.arange(2000) % 5)
    assert strat["ci_low"] < strat["diff"] < strat["ci_high"]


def test_paired_fold_test():
    r = paired_fold_test([0.6, 0.6, 0.6, 0.6, 0.6, 0.6], [0.62, 0.63, 0.61, 0.64, 0.59, 0.65])
    assert r["improved"] == 5 and r["worse"] == 1 and r["mean_gain"] == pytest.approx(0.14 / 6)
    assert 0 < r["wilcoxon_p"] < 0.2 and 0 < r["ttest_p"] < 0.1
    assert paired_fold_test([0.5, 0.5], [0.5, 0.5])["wilcoxon_p"] is None


def test_signed_rank_p_is_scipys_wilcoxon_with_ties_zeros_and_without():
    """The exact enumeration gives scipy's p-value: its permutation test (ties or zeros, ≤ 13 folds), its exact
    distribution (neither) and, beyond 13 folds, scipy itself."""
    from scipy import stats as sps

    rng = np.random.default_rng(0)
    cases = [rng.normal(size=n) for n in range(2, 16)] + [rng.integers(-3, 4, n) * 0.01 for n in range(2, 16)] \
        + [np.round(rng.normal(size=n), 1) for n in range(2, 16)] + [np.array([0.0, 0.0, 0.02]), np.full(13, 0.01)]
    for d in cases:
        if np.any(d != 0):
            assert stats.signed_rank_p(d) == pytest.approx(float(sps.wilcoxon(d).pvalue), abs=1e-12), d
    assert stats.signed_rank_p(np.array([0.01, 0.02, -0.01, 0.03, 0.02, 0.0, 0.05, 0.01])) == 0.0625


def _noisy(y, accuracy, rng):
    return np.where(rng.random(len(y)) < accuracy, y, rng.integers(0, 4, len(y)))


def test_fold_mean_bootstrap_equals_a_plain_loop_over_resamples_and_folds(monkeypatch):
    monkeypatch.setattr(stats, "CHUNK_ELEMENTS", 3 * 90 * 7)        # three resamples per chunk
    assert stats.resample_chunks(7, 90 * 7) == [3, 3, 1]
    rng = np.random.default_rng(3)
    y, folds = rng.integers(0, 4, 90), np.repeat([0, 1, 2], 30)
    preds = np.stack([_noisy(y, 0.5, rng), _noisy(y, 0.7, rng)])
    fast = fold_mean_bootstrap(y, preds, folds, 4, metric="macro_f1", n_boot=7, seed=5)
    idx = _stratified_indices(np.random.default_rng(5), folds, 7)            # the same draws, in one go
    for b in range(7):
        for s in range(2):
            per_fold = [summary(y[i], preds[s][i], 4)["macro_f1"] for i in (idx[b][folds[idx[b]] == f] for f in range(3))]
            assert fast[s, b] == pytest.approx(np.mean(per_fold))


def test_versus_best_picks_the_best_candidate_and_brackets_the_difference():
    rng = np.random.default_rng(0)
    y, folds = rng.integers(0, 4, 1200), np.repeat(np.arange(4), 300)
    weak, strong = _noisy(y, 0.4, rng), _noisy(y, 0.8, rng)
    system = np.where(rng.random(1200) < 0.5, y, strong)                  # fixes half of strong's errors
    r = versus_best(y, system, np.stack([weak, strong]), folds, 4, metric="wa", n_boot=300)
    assert r["best"] == 1
    assert r["diff"] == pytest.approx((system == y).mean() - (strong == y).mean())    # equal folds: mean = pooled
    assert 0 < r["ci_low"] < r["diff"] < r["ci_high"]
    assert r["selection_bias"] == 0                    # strong is the best candidate in every resample
    same = versus_best(y, strong, np.stack([weak, strong]), folds, 4, metric="wa", n_boot=100)
    assert same["diff"] == same["ci_low"] == same["ci_high"] == 0


def test_versus_best_measures_how_much_picking_among_equals_flatters_the_pick():
    rng = np.random.default_rng(1)
    y, folds = rng.integers(0, 4, 400), np.repeat(np.arange(4), 100)
    equals = np.stack([_noisy(y, 0.6, rng) for _ in range(5)])             # same quality, different errors
    r = versus_best(y, equals[0], equals, folds, 4, metric="wa", n_boot=300)
    assert r["selection_bias"] > 0.004            # the best of five equals looks better than any one of them is
    lone = versus_best(y, equals[0], equals[:1], folds, 4, metric="wa", n_boot=300)
    assert lone["selection_bias"] == 0


@pytest.mark.parametrize("strata", [None, np.repeat([0, 1, 2], 40)])
def test_bootstraps_give_the_same_resamples_whatever_the_chunk_size(monkeypatch, strata):
    """Memory is bounded by drawing resamples in chunks; the figures must not depend on the chunking."""
    rng = np.random.default_rng(8)
    y = rng.integers(0, 4, 120)
    a, b = _noisy(y, 0.5, rng), _noisy(y, 0.7, rng)
    whole = (paired_bootstrap(y, a, b, 4, n_boot=50, seed=2, strata=strata), bootstrap_ci(y, np.stack([a, b]), 4,
                                                                                           n_boot=50, seed=2))
    monkeypatch.setattr(stats, "CHUNK_ELEMENTS", 1)                 # one resample per chunk
    chunked = (paired_bootstrap(y, a, b, 4, n_boot=50, seed=2, strata=strata), bootstrap_ci(y, np.stack([a, b]), 4,
                                                                                             n_boot=50, seed=2))
    assert chunked[0] == whole[0]
    np.testing.assert_array_equal(chunked[1], whole[1])
