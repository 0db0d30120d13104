import numpy as np

from ser.data.uncertainty import entropy, entropy_varentropy, varentropy


def test_uniform_has_max_entropy_and_zero_varentropy():
    p = np.full((3, 4), 0.25)
    np.testing.assert_allclose(entropy(p), np.log(4))
    np.testing.assert_allclose(varentropy(p), 0.0, atol=1e-15)


def test_one_hot_is_zero_and_safe_at_p_zero():
    p = np.eye(4)
    with np.errstate(all="raise"):
        h, v = entropy_varentropy(p)
    np.testing.assert_array_equal(h, 0.0)
    np.testing.assert_array_equal(v, 0.0)


def test_skewed_case_by_hand():
    # p = (0.5, 0.5, 0, 0): H = ln 2, every surprisal equals ln 2 → V = 0
    # p = (0.7, 0.1, 0.1, 0.1): surprisals s = (-ln .7, -ln .1 ×3)
    p = np.array([[0.5, 0.5, 0, 0], [0.7, 0.1, 0.1, 0.1]])
    s = np.array([-np.log(0.7), -np.log(0.1)])
    h2 = 0.7 * s[0] + 0.3 * s[1]
    v2 = 0.7 * (s[0] - h2) ** 2 + 0.3 * (s[1] - h2) ** 2
    np.testing.assert_allclose(entropy(p), [np.log(2), h2])
    np.testing.assert_allclose(varentropy(p), [0.0, v2], atol=1e-15)
    assert abs(h2 - 0.9404479886553263) < 1e-12
