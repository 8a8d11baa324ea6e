"""Modality-bias math: linear CKA, cosine matrices, pooling, relative CER."""

import numpy as np
import pytest
import torch

from espnet_avsr.eval.bias import (
    cka_matrix,
    cosine_matrix,
    diagonal_contrast,
    linear_cka,
    pooled_mean,
    relative_cer,
)
from espnet_avsr.eval.similarity import parse_layer_pairs


def _orthogonal(d, rng):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return q


@pytest.mark.parametrize("n,d", [(50, 8), (10, 32)])  # both the feature and the Gram branch
def test_cka_self_is_one_and_invariances(n, d):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, x @ _orthogonal(d, rng)) == pytest.approx(1.0)
    assert linear_cka(x, 7.5 * x) == pytest.approx(1.0)
    assert linear_cka(x, x + 3.0) == pytest.approx(1.0)  # centring removes offsets
    y = x @ _orthogonal(d, rng) * 0.1
    z = rng.standard_normal((n, d + 5))
    assert linear_cka(x, z) == pytest.approx(linear_cka(y, z))


def test_cka_of_unrelated_data_is_low_and_partial_relation_in_between():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 16))
    unrelated = rng.standard_normal((200, 16))
    mixed = x + rng.standard_normal((200, 16))
    c_unrelated, c_mixed = linear_cka(x, unrelated), linear_cka(x, mixed)
    assert 0.0 <= c_unrelated < 0.25
    assert c_unrelated < c_mixed < 1.0
    assert linear_cka(x, mixed) == pytest.approx(linear_cka(mixed, x))


def test_cka_not_invariant_to_anisotropic_scaling_and_accepts_torch():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((100, 6))
    scaled = x * np.array([10.0, 1, 1, 1, 1, 0.1])
    assert linear_cka(x, scaled) < 0.99
    assert linear_cka(torch.from_numpy(x).float(), torch.from_numpy(x).float()) == pytest.approx(1.0, abs=1e-6)


def test_cka_errors_and_matrix():
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match="same samples"):
        linear_cka(rng.standard_normal((5, 2)), rng.standard_normal((6, 2)))
    with pytest.raises(ValueError, match="constant"):
        linear_cka(np.ones((5, 2)), rng.standard_normal((5, 2)))
    layers = [rng.standard_normal((20, 4)) for _ in range(3)]
    m = cka_matrix(layers, layers[:2])
    assert m.shape == (3, 2)
    assert m[0, 0] == pytest.approx(1.0) and m[1, 1] == pytest.approx(1.0) and m[2, 0] < 1.0


def test_cosine_matrix_shape_and_diagonal():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((6, 5))
    m = cosine_matrix(a, a)
    assert m.shape == (6, 6)
    assert np.allclose(np.diag(m), 1.0)
    assert np.allclose(m, m.T) and (np.abs(m) <= 1 + 1e-9).all()
    b = rng.standard_normal((4, 5))
    m2 = cosine_matrix(a, b)
    assert m2.shape == (6, 4)
    assert m2[2, 3] == pytest.approx(a[2] @ b[3] / np.linalg.norm(a[2]) / np.linalg.norm(b[3]))
    assert np.allclose(np.diag(cosine_matrix(a, 3 * a)), 1.0)
    assert np.allclose(np.diag(cosine_matrix(a, -a)), -1.0)
    with pytest.raises(ValueError, match="feature sizes"):
        cosine_matrix(a, rng.standard_normal((6, 3)))


def test_diagonal_contrast():
    m = np.full((4, 4), 0.2)
    np.fill_diagonal(m, 0.9)
    assert diagonal_contrast(m) == pytest.approx(0.7)


def test_pooled_mean_ignores_padding():
    x = torch.zeros(2, 4, 3)
    x[0, :2] = torch.tensor([1.0, 2.0, 3.0])
    x[0, 2:] = 100.0  # padding must not leak in
    x[1] = torch.arange(4.0)[:, None].expand(4, 3)
    p = pooled_mean(x, torch.tensor([2, 4]))
    assert p.shape == (2, 3)
    assert np.allclose(p[0], [1, 2, 3])
    assert np.allclose(p[1], [1.5, 1.5, 1.5])
    with pytest.raises(ValueError, match="lengths"):
        pooled_mean(x, torch.tensor([0, 4]))


def test_relative_cer_of_identical_hypotheses_is_zero():
    hyps = {"u1": "今天天气很好", "u2": "我们出去玩"}
    assert relative_cer(hyps, dict(hyps)).total.cer == 0.0
    assert relative_cer(hyps, {"u1": "今天天气很好", "u2": "我们去玩"}).total.cer == pytest.approx(1 / 11)


def test_parse_layer_pairs():
    assert parse_layer_pairs(["output", "encoders.5:shared.2"]) == [("output", "output"), ("encoders.5", "shared.2")]
    with pytest.raises(ValueError):
        parse_layer_pairs(["a:b:c"])
