"""The search's sampler: Optuna's NSGA-II, TPE or random search, never repeating an architecture.

Optuna's samplers may propose parameters a study has already tried; on a
small discrete space TPE does so often once it has settled (4 of 30 trials
in one quality-benchmark run). A repeat costs little here (its figures are
reused) but it takes one of the study's trials and adds nothing to the
front. :class:`DistinctSampler` asks the wrapped sampler again, and after
:data:`TRIES` repeats draws an architecture the study has not seen, uniformly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from paretokd.config import SpaceSpec, StudySpec
from paretokd.search import space

TRIES = 16
"""Proposals asked of the wrapped sampler before drawing an unseen architecture at random."""

_TAKEN = (TrialState.COMPLETE, TrialState.RUNNING)
"""Trials whose architecture is taken: done, or being measured (by any worker). A queued
trial (the reference) holds no parameters until it runs, and it runs first."""


def make(spec: StudySpec, seed_offset: int = 0) -> DistinctSampler:
    """The sampler the spec names, seeded from the spec, wrapped in :class:`DistinctSampler`.

    ``seed_offset`` (derived from the trials already in the study and the
    worker's index) keeps a resumed run or a second worker from replaying the
    same random proposals.
    """
    seed = spec.seed + seed_offset
    base: BaseSampler
    if spec.search.sampler == "nsga2":
        base = optuna.samplers.NSGAIISampler(population_size=spec.search.population_size, seed=seed)
    elif spec.search.sampler == "tpe":
        base = optuna.samplers.TPESampler(seed=seed, multivariate=True)
    else:
        base = optuna.samplers.RandomSampler(seed=seed)
    return DistinctSampler(base, spec.space, seed)


def _key(params: dict[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    return tuple(params.get(n) for n in names)


class DistinctSampler(BaseSampler):
    """Wraps a sampler so that no trial repeats an architecture its study holds.

    Every parameter of the space is sampled jointly (relative sampling), so a
    whole architecture can be checked before the trial uses it. When the
    wrapped sampler proposes nothing (its random start-up trials), an unseen
    architecture is drawn uniformly, as Optuna's own start-up sampling would
    draw one. When every architecture has been seen, the wrapped sampler's
    proposal stands.

    Args:
        base: The sampler that proposes.
        space_spec: The search space.
        seed: Seeds the uniform draws.
    """

    def __init__(self, base: BaseSampler, space_spec: SpaceSpec, seed: int | None) -> None:
        self.base = base
        self._space = space.distributions(space_spec)
        self._names = sorted(self._space)
        self._all = [_key(a.to_dict(), self._names) for a in space.all_archs(space_spec)]
        self._rng = np.random.default_rng(seed)

    def reseed_rng(self) -> None:  # noqa: D102 (Optuna's interface)
        self.base.reseed_rng()
        self._rng = np.random.default_rng()

    def infer_relative_search_space(  # noqa: D102
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self._space)

    def sample_relative(  # noqa: D102
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        taken = {
            _key(t.params, self._names)
            for t in study.get_trials(deepcopy=False, states=_TAKEN)
            if t.number != trial.number
        }
        inner = self.base.infer_relative_search_space(study, trial)
        proposal: dict[str, Any] = {}
        for _ in range(TRIES):
            proposal = self.base.sample_relative(study, trial, inner)
            if set(proposal) != set(self._names):
                break  # a start-up trial: nothing proposed
            if _key(proposal, self._names) not in taken:
                return proposal
        unseen = [combo for combo in self._all if combo not in taken]
        if not unseen:
            return proposal  # every architecture seen: a repeat is all there is
        return dict(zip(self._names, unseen[self._rng.integers(len(unseen))], strict=True))

    def sample_independent(  # noqa: D102
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        # Reached only for a parameter outside the space (none today).
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:  # noqa: D102
        self.base.before_trial(study, trial)

    def after_trial(  # noqa: D102
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.base.after_trial(study, trial, state, values)
