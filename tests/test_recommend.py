"""Recommendation: one pick per budget from the feasible Pareto front (pure), and study points."""

from __future__ import annotations

from dataclasses import replace

import optuna
import pytest

from paretokd.config import SpaceSpec
from paretokd.records import CONSTRAINT, LOSS, Arch, LatencyStats, Pick, TrialRecord
from paretokd.search import loop
from paretokd.search.confirm import needs_confirming
from paretokd.search.recommend import pick as pick_for
from paretokd.search.recommend import trials as points
from paretokd.search.space import suggest
from paretokd.search.trial import Collected


def pick(trials: list[TrialRecord], budgets: tuple[float, ...]) -> list[Pick]:
    return pick_for(trials, budgets, LOSS)


def _stats(latency: float) -> LatencyStats:
    return LatencyStats(p50_ms=latency, p90_ms=latency * 1.2, mean_ms=latency, runs=5)


def _point(
    number: int,
    latency: float,
    loss: float,
    *,
    arch: Arch | None = None,
    feasible: bool = True,
    on_front: bool = True,
) -> TrialRecord:
    arch = arch or Arch(1 + number % 6, 128, 2, 256)
    return TrialRecord(
        number=number,
        arch=arch,
        params=1000 * (number + 1),
        value=loss,
        latency=_stats(latency),
        over_budget_ms=-1.0 if feasible else 1.0,
        on_front=on_front,
    )


def _chosen(picks: list[Pick]) -> list[int | None]:
    return [p.trial.number if p.trial else None for p in picks]


# --- pick ---------------------------------------------------------------------------------------


def test_pick_lowest_loss_under_each_budget() -> None:
    trials = [
        _point(0, latency=2.0, loss=0.9),
        _point(1, latency=6.0, loss=0.5),
        _point(2, latency=9.5, loss=0.4),
        _point(3, latency=18.0, loss=0.2),
    ]
    picks = pick(trials, (5.0, 10.0, 20.0))
    assert _chosen(picks) == [0, 2, 3]
    assert [p.budget_ms for p in picks] == [5.0, 10.0, 20.0]
    middle = picks[1]
    assert middle.reason is None
    assert middle.trial == trials[2]
    assert middle.trial is not None and middle.trial.value == 0.4
    assert middle.trial.latency_ms == 9.5


def test_pick_a_latency_equal_to_the_budget_fits() -> None:
    trials = [_point(0, latency=3.0, loss=0.8), _point(1, latency=10.0, loss=0.3)]
    assert _chosen(pick(trials, (10.0,))) == [1]
    assert _chosen(pick(trials, (9.99,))) == [0]


def test_pick_input_order_does_not_matter() -> None:
    trials = [
        _point(4, latency=18.0, loss=0.2),
        _point(0, latency=2.0, loss=0.9),
        _point(2, latency=9.5, loss=0.4),
    ]
    assert _chosen(pick(trials, (5.0, 10.0, 20.0))) == [0, 2, 4]
    assert _chosen(pick(list(reversed(trials)), (5.0, 10.0, 20.0))) == [0, 2, 4]


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_pick_tie_on_loss_goes_to_the_faster_trial(order: list[int]) -> None:
    tied = [_point(7, latency=8.0, loss=0.5), _point(3, latency=4.0, loss=0.5)]
    trials = [tied[i] for i in order]
    (only,) = pick(trials, (10.0,))
    assert _chosen([only]) == [3]
    assert only.trial is not None and only.trial.latency_ms == 4.0


def test_pick_never_takes_infeasible_or_dominated_trials() -> None:
    trials = [
        _point(0, latency=2.0, loss=0.9),
        # Dominated: slower and worse than trial 3.
        _point(1, latency=4.8, loss=0.7, on_front=False),
        # Lowest loss of all, but infeasible (never trained).
        _point(2, latency=4.0, loss=0.05, feasible=False, on_front=True),
        _point(3, latency=4.5, loss=0.6),
    ]
    assert _chosen(pick(trials, (5.0, 100.0))) == [3, 3]


def test_a_pick_must_fit_with_its_interval_and_a_confirmation_decides() -> None:
    def with_ci(number: int, p50: float, hi: float, loss: float) -> TrialRecord:
        stats = LatencyStats(p50_ms=p50, p90_ms=p50, mean_ms=p50, runs=5, ci_ms=(p50 * 0.9, hi))
        return TrialRecord(number, Arch(2, 64, 4, 128), 10, loss, stats, -1.0)

    near = with_ci(0, 9.5, 10.4, 0.3)  # p50 within 10 ms, its interval not
    safe = with_ci(1, 6.0, 6.3, 0.5)
    assert _chosen(pick([near, safe], (10.0,))) == [1]
    # Timed again with more rounds, its interval narrows below the budget: it wins.
    tight = LatencyStats(p50_ms=9.5, p90_ms=9.6, mean_ms=9.5, runs=60, ci_ms=(9.4, 9.7))
    confirmed = [replace(near, confirmed=tight), safe]
    assert _chosen(pick(confirmed, (10.0,))) == [0]
    # Nothing fits 9.6 ms with margin: the reason names the candidate and its bound.
    (none,) = pick([near], (9.6,))
    assert none.trial is None and none.reason is not None
    assert "with margin" in none.reason and "10.40 ms" in none.reason


def test_every_pick_is_confirmed_and_so_are_candidates_near_the_budget() -> None:
    def with_ci(p50: float, hi: float, feasible: bool = True) -> TrialRecord:
        stats = LatencyStats(p50_ms=p50, p90_ms=p50, mean_ms=p50, runs=5, ci_ms=(p50 * 0.9, hi))
        return TrialRecord(0, Arch(2, 64, 4, 128), 10, 0.3, stats, -1.0 if feasible else 1.0)

    far = with_ci(5.0, 5.2)  # fits 10 ms with room to spare: still timed again, it is the pick
    near = with_ci(9.5, 10.4)  # does not fit yet: timed again, it may
    assert needs_confirming(far, 10.0) and needs_confirming(near, 10.0)
    # Neither near the budget nor able to serve it (never trained): nothing to confirm.
    assert not needs_confirming(with_ci(5.0, 5.2, feasible=False), 10.0)
    # Timed again once is enough.
    assert not needs_confirming(replace(far, confirmed=_stats(5.1)), 10.0)


def test_pick_budget_nothing_fits_names_the_fastest() -> None:
    fastest = Arch(1, 128, 2, 256)
    trials = [
        _point(0, latency=7.0, loss=0.5, arch=Arch(2, 192, 4, 512)),
        # The fastest measured trial, even when infeasible or dominated, is the one named.
        _point(5, latency=3.456, loss=0.9, arch=fastest, on_front=False),
        _point(2, latency=12.0, loss=0.3, arch=Arch(4, 256, 4, 1024)),
    ]
    (small, big) = pick(trials, (2.0, 20.0))
    assert small.trial is None
    assert small.trial is None
    assert small.reason is not None
    assert "3.46 ms" in small.reason
    assert fastest.id in small.reason
    assert "trial 5" in small.reason
    assert "2ms" in small.reason
    assert _chosen([big]) == [2]
    assert big.reason is None


def test_pick_with_no_trials_gives_a_reason_for_every_budget() -> None:
    picks = pick([], (20.0, 5.0, 10.0))
    assert [p.budget_ms for p in picks] == [20.0, 5.0, 10.0]
    assert all(p.trial is None for p in picks)
    assert all(p.reason for p in picks)
    assert "20ms" in picks[0].reason  # type: ignore[operator]
    assert "5ms" in picks[1].reason  # type: ignore[operator]


def test_pick_keeps_the_budget_order_given() -> None:
    trials = [
        _point(0, latency=2.0, loss=0.9),
        _point(1, latency=9.0, loss=0.4),
        _point(2, latency=19.0, loss=0.2),
    ]
    picks = pick(trials, (20.0, 1.0, 10.0, 3.0))
    assert [p.budget_ms for p in picks] == [20.0, 1.0, 10.0, 3.0]
    assert _chosen(picks) == [2, None, 1, 0]


# --- points -------------------------------------------------------------------------------------

SPACE = SpaceSpec(
    num_layers=(1, 4), hidden_size=(32, 64), num_heads=(2, 4), intermediate_size=(64, 128)
)
LARGEST_BUDGET = 20.0

# arch -> (loss, p50 ms); trials over the largest budget are infeasible.
ROWS: dict[Arch, tuple[float, float]] = {
    Arch(1, 32, 2, 64): (0.90, 2.0),  # front
    Arch(2, 32, 2, 64): (0.60, 6.0),  # front
    Arch(2, 64, 2, 64): (0.70, 8.0),  # dominated by the one above
    Arch(3, 64, 4, 128): (0.30, 15.0),  # front
    Arch(4, 64, 4, 128): (0.10, 25.0),  # infeasible: over the largest budget
    Arch(4, 32, 4, 64): (0.05, 21.0),  # infeasible, though the lowest loss of all
}
PRUNED = Arch(1, 64, 2, 128)


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    arch = suggest(trial, SPACE)
    if arch == PRUNED:
        raise optuna.TrialPruned()
    loss, latency = ROWS[arch]
    stats = LatencyStats(p50_ms=latency, p90_ms=latency * 1.5, mean_ms=latency, runs=5)
    params = 100 * arch.num_layers * arch.hidden_size
    TrialRecord(trial.number, arch, params, loss, stats, latency - LARGEST_BUDGET).write(trial)
    return loss, latency


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    study = optuna.create_study(
        directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0)
    )
    archs = list(ROWS)
    for arch in [*archs[:3], PRUNED, *archs[3:]]:
        study.enqueue_trial(arch.to_dict())
    study.optimize(_objective, n_trials=len(ROWS) + 1)
    return study


def test_points_cover_complete_trials_in_order(study: optuna.Study) -> None:
    pts = points(study)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == len(ROWS)
    assert [p.number for p in pts] == [t.number for t in complete]
    assert [p.number for p in pts] == [0, 1, 2, 4, 5, 6]  # trial 3 was pruned
    for p in pts:
        arch = p.arch
        loss, latency = ROWS[arch]
        assert p.value == loss
        assert p.latency_ms == latency
        assert p.latency.p90_ms == pytest.approx(latency * 1.5)
        assert p.params == 100 * arch.num_layers * arch.hidden_size


def test_points_flags_agree_with_the_study(study: optuna.Study) -> None:
    pts = {p.number: p for p in points(study)}
    front = {t.number for t in study.best_trials}
    assert front == {0, 1, 4}
    assert {n for n, p in pts.items() if p.on_front} == front
    assert {n for n, p in pts.items() if not p.feasible} == {5, 6}
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        assert pts[t.number].feasible == (t.constraints[CONSTRAINT] <= 0)


def test_points_then_pick(study: optuna.Study) -> None:
    picks = pick(points(study), (1.0, 5.0, 10.0, LARGEST_BUDGET))
    assert _chosen(picks) == [None, 0, 1, 4]
    assert picks[0].reason is not None
    assert "2.00 ms" in picks[0].reason
    assert Arch(1, 32, 2, 64).id in picks[0].reason


def test_spend_counts_the_time_of_never_pickable_trials() -> None:
    import datetime

    study = optuna.create_study(directions=["minimize", "minimize"])
    start = datetime.datetime(2026, 1, 1)
    for seconds, over in ((4.0, -1.0), (1.0, 3.0), (5.0, -2.0)):
        study.add_trial(
            optuna.trial.FrozenTrial(
                number=0,
                state=optuna.trial.TrialState.COMPLETE,
                value=None,
                values=[0.5, 1.0],
                datetime_start=start,
                datetime_complete=start + datetime.timedelta(seconds=seconds),
                params={},
                distributions={},
                user_attrs=_attrs(over),
                system_attrs={"constraints": [over]},
                intermediate_values={},
                trial_id=0,
            )
        )
    spent = loop.spend(study)
    assert (spent.trials, spent.never_pickable) == (3, 1)
    assert spent.seconds == pytest.approx(10.0)
    assert spent.never_pickable_seconds == pytest.approx(1.0)
    assert spent.never_pickable_share == pytest.approx(0.1)


def _attrs(over: float) -> dict[str, object]:
    """A trial's user attributes as ``TrialRecord.write`` stores them."""
    collected = Collected()
    TrialRecord(0, Arch(1, 32, 2, 64), 10, 0.5, _stats(1.0), over).write(collected)
    return collected.user_attrs
