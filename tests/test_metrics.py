"""Task metrics and rank correlations against hand-computed values."""

from __future__ import annotations

import pytest

from paretokd import metrics


def test_perfect_agreement() -> None:
    x = [0.1, 0.5, 0.3, 0.9]
    y = [1.0, 5.0, 3.0, 9.0]
    assert metrics.kendall_tau(x, y) == pytest.approx(1.0)
    assert metrics.spearman(x, y) == pytest.approx(1.0)


def test_reversed() -> None:
    x = [1, 2, 3, 4, 5]
    y = [50, 40, 30, 20, 10]
    assert metrics.kendall_tau(x, y) == pytest.approx(-1.0)
    assert metrics.spearman(x, y) == pytest.approx(-1.0)


def test_hand_example() -> None:
    # y ranks: 1, 3, 2, 4 -> one discordant pair (2,3) of 6: tau = (5 - 1) / 6.
    # d = 0, -1, 1, 0: rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    x = [1.0, 2.0, 3.0, 4.0]
    y = [10.0, 30.0, 20.0, 40.0]
    assert metrics.kendall_tau(x, y) == pytest.approx(4 / 6)
    assert metrics.spearman(x, y) == pytest.approx(0.8)


def test_ties() -> None:
    # tau-b: (C, D) = (5, 0); 1 pair tied in x only -> 5 / sqrt((5 + 1) * 5).
    x = [1.0, 1.0, 2.0, 3.0]
    y = [1.0, 2.0, 3.0, 4.0]
    assert metrics.kendall_tau(x, y) == pytest.approx(5 / (6 * 5) ** 0.5)
    # Ranks of x: 1.5, 1.5, 3, 4 against 1, 2, 3, 4.
    assert metrics.spearman(x, y) == pytest.approx(0.9486832980505138)
    assert metrics.kendall_tau([1, 1, 1], [1, 2, 3]) == 0.0


def test_pearson() -> None:
    assert metrics.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    # x centred: -1, 0, 1; y centred: -1, 2, -1 -> covariance 0.
    assert metrics.pearson([1, 2, 3], [1, 4, 1]) == pytest.approx(0.0)
    assert metrics.pearson([1, 1, 1], [1, 2, 3]) == 0.0


def test_accuracy_f1_matthews_binary() -> None:
    gold = [1, 1, 1, 0, 0, 0, 0, 1]
    pred = [1, 1, 0, 0, 0, 1, 0, 1]
    # tp 3, fp 1, fn 1, tn 3.
    assert metrics.accuracy(pred, gold) == pytest.approx(6 / 8)
    assert metrics.f1(pred, gold) == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = 8 / 16.
    assert metrics.matthews(pred, gold) == pytest.approx(0.5)
    assert metrics.matthews([1, 1], [1, 1]) == 0.0  # undefined: one class only


def test_multiclass_f1_is_macro_and_matthews_general() -> None:
    gold = [0, 1, 2, 2]
    pred = [0, 2, 2, 2]
    # Class 0: f1 1; class 1: 0; class 2: tp 2 fp 1 fn 0 -> 0.8.
    assert metrics.f1(pred, gold) == pytest.approx((1 + 0 + 0.8) / 3)
    # Gorodkin: c=3, s=4, t=(1,1,2), p=(1,0,3): (12 - 7) / sqrt((16 - 10) * (16 - 6)).
    assert metrics.matthews(pred, gold) == pytest.approx(5 / (6 * 10) ** 0.5)


def test_score_dispatch_and_worst() -> None:
    assert metrics.score("accuracy", [1.0, 0.0], [1.0, 1.0]) == 0.5
    assert metrics.score("spearman", [0.1, 0.2, 0.3], [1.0, 2.0, 3.0]) == pytest.approx(1.0)
    for name, worst in metrics.WORST.items():
        assert worst <= metrics.score(name, [0.0, 1.0, 1.0], [1.0, 0.0, 1.0])  # type: ignore[arg-type]
