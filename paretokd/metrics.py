"""Task metrics and rank correlations: pure functions of predictions and gold labels.

Every metric here is better when higher; :data:`WORST` is what a model that
could not be scored (e.g. never trained) gets. scipy and scikit-learn are not
dependencies, so the few formulas needed are written out and unit-tested
against hand-computed values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from paretokd.config import Metric

WORST: dict[str, float] = {
    "accuracy": 0.0,
    "f1": 0.0,
    "matthews": -1.0,
    "spearman": -1.0,
    "pearson": -1.0,
}
"""The lowest value each metric can take."""


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b between two paired lists (ties in either list accounted for).

    Returns:
        A value in [-1, 1]; 0.0 when either list is constant (undefined otherwise).
    """
    if len(x) != len(y):
        raise ValueError("kendall_tau needs two lists of one length")
    concordant = discordant = ties_x = ties_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0 and dy == 0:
            continue  # tied in both: counts in neither denominator term
        if dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif (dx > 0) == (dy > 0):
            concordant += 1
        else:
            discordant += 1
    denom = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denom if denom else 0.0


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: the Pearson correlation of the (tie-averaged) ranks.

    Returns:
        A value in [-1, 1]; 0.0 when either list is constant (undefined otherwise).
    """
    if len(x) != len(y):
        raise ValueError("spearman needs two lists of one length")
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else 0.0


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's correlation coefficient; 0.0 when either list is constant."""
    if len(x) != len(y):
        raise ValueError("pearson needs two lists of one length")
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    var = (sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)) ** 0.5
    return cov / var if var else 0.0


def accuracy(predicted: Sequence[int], gold: Sequence[int]) -> float:
    """The fraction of predictions equal to the gold class."""
    if len(predicted) != len(gold) or not gold:
        raise ValueError("accuracy needs two non-empty lists of one length")
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)


def f1(predicted: Sequence[int], gold: Sequence[int]) -> float:
    """F1 of class 1 for two classes (as GLUE reports it), else the macro average over classes."""
    classes = sorted(set(gold) | set(predicted))
    positive = [1] if set(classes) <= {0, 1} else classes
    scores = []
    for c in positive:
        tp = sum(p == c and g == c for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == c and g != c for p, g in zip(predicted, gold, strict=True))
        fn = sum(p != c and g == c for p, g in zip(predicted, gold, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def matthews(predicted: Sequence[int], gold: Sequence[int]) -> float:
    """Matthews' correlation coefficient, in its multi-class form (Gorodkin's R_K)."""
    classes = sorted(set(gold) | set(predicted))
    n = len(gold)
    correct = sum(p == g for p, g in zip(predicted, gold, strict=True))
    t = {c: sum(g == c for g in gold) for c in classes}
    p = {c: sum(q == c for q in predicted) for c in classes}
    cov = correct * n - sum(t[c] * p[c] for c in classes)
    denom = math.sqrt(
        (n * n - sum(v * v for v in p.values())) * (n * n - sum(v * v for v in t.values()))
    )
    return cov / denom if denom else 0.0


def score(metric: Metric, predicted: Sequence[float], gold: Sequence[float]) -> float:
    """``metric`` of ``predicted`` against ``gold``: class indices, or scores for correlations."""
    if metric in ("spearman", "pearson"):
        return (spearman if metric == "spearman" else pearson)(predicted, gold)
    classes_p, classes_g = [int(v) for v in predicted], [int(v) for v in gold]
    return {"accuracy": accuracy, "f1": f1, "matthews": matthews}[metric](classes_p, classes_g)
