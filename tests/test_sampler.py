"""The search's sampler: every named sampler, seeded, never repeating an architecture."""

from __future__ import annotations

import dataclasses

import optuna
import pytest

from paretokd.config import SearchSpec, SpaceSpec, StudySpec
from paretokd.search import sampler, space

# 2 x 2 x 2 x 2 = 16 architectures: small enough to exhaust.
SMALL = SpaceSpec(
    num_layers=(2, 3),
    hidden_size=(32, 64),
    num_heads=(2, 4),
    intermediate_size=(64, 128),
    precision=("fp32",),
)
SIZE = 16


def _spec(name: str, seed: int = 0) -> StudySpec:
    return dataclasses.replace(
        StudySpec(seed=seed),
        space=SMALL,
        search=dataclasses.replace(SearchSpec(), sampler=name, population_size=4),  # type: ignore[arg-type]
    )


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    # Bigger is better and slower: a real trade-off, so no sampler settles at once.
    arch = space.suggest(trial, SMALL)
    size = arch.num_layers * arch.hidden_size * arch.intermediate_size
    trial.set_constraint("over", 0.0)
    return 1.0 / size, float(size + arch.num_heads)


def _study(name: str, seed: int = 0) -> optuna.Study:
    return optuna.create_study(
        directions=["minimize", "minimize"], sampler=sampler.make(_spec(name, seed))
    )


def test_distributions_are_the_ones_suggest_uses() -> None:
    study = optuna.create_study(directions=["minimize", "minimize"])
    trial = study.ask()
    space.suggest(trial, SMALL)
    assert trial.distributions == space.distributions(SMALL)


@pytest.mark.parametrize("name", ["tpe", "nsga2", "random"])
def test_no_architecture_repeats_until_the_space_is_exhausted(name: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _study(name)
    study.optimize(_objective, n_trials=SIZE)
    seen = [space.suggest(optuna.trial.FixedTrial(t.params), SMALL).id for t in study.trials]
    assert len(set(seen)) == SIZE
    # Exhausted: the wrapped sampler's proposal stands, a repeat, not an error.
    study.optimize(_objective, n_trials=2)
    assert len(study.trials) == SIZE + 2


def test_bare_tpe_repeats_where_the_wrapper_does_not() -> None:
    # The reason for the wrapper: multivariate TPE on a small space proposes
    # architectures it has already tried.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    bare = optuna.create_study(
        directions=["minimize", "minimize"],
        sampler=optuna.samplers.TPESampler(seed=0, multivariate=True, n_startup_trials=4),
    )
    bare.optimize(_objective, n_trials=12)
    keys = [tuple(sorted(t.params.items())) for t in bare.trials]
    assert len(set(keys)) < len(keys)


def test_queued_architectures_are_not_proposed_again() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _study("random")
    queued = {"num_layers": 3, "hidden_size": 64, "num_heads": 4, "intermediate_size": 128}
    study.enqueue_trial(queued)
    # The queued trial runs first, fixed; nothing after it may repeat it.
    study.optimize(_objective, n_trials=SIZE)
    assert study.trials[0].params == queued
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == SIZE


@pytest.mark.parametrize("name", ["tpe", "nsga2", "random"])
def test_sampling_is_seeded(name: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runs = []
    for _ in range(2):
        study = _study(name, seed=3)
        study.optimize(_objective, n_trials=10)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]
