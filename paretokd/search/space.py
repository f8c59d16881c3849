"""The student search space: what an architecture is and how a trial samples one."""

from __future__ import annotations

import itertools

import optuna

from paretokd.config import SpaceSpec
from paretokd.errors import ParetokdError
from paretokd.records import Arch


def suggest(trial: optuna.trial.BaseTrial, space: SpaceSpec) -> Arch:
    """Sample an architecture. Every combination the space allows is buildable.

    Works with a live trial and with ``optuna.trial.FixedTrial`` (to rebuild a pick
    from its stored params).
    """
    lo, hi = space.num_layers
    return Arch(
        num_layers=trial.suggest_int("num_layers", lo, hi),
        hidden_size=trial.suggest_categorical("hidden_size", list(space.hidden_size)),
        num_heads=trial.suggest_categorical("num_heads", list(space.num_heads)),
        intermediate_size=trial.suggest_categorical(
            "intermediate_size", list(space.intermediate_size)
        ),
        # One precision is no choice: such a space samples exactly as before it existed.
        precision=(
            trial.suggest_categorical("precision", list(space.precision))
            if len(space.precision) > 1
            else space.precision[0]
        ),
    )


def distributions(space: SpaceSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """The distributions :func:`suggest` samples from, by parameter name (the whole space)."""
    lo, hi = space.num_layers
    cat = optuna.distributions.CategoricalDistribution
    return {
        "num_layers": optuna.distributions.IntDistribution(lo, hi),
        "hidden_size": cat(list(space.hidden_size)),
        "num_heads": cat(list(space.num_heads)),
        "intermediate_size": cat(list(space.intermediate_size)),
        **({"precision": cat(list(space.precision))} if len(space.precision) > 1 else {}),
    }


def all_archs(space: SpaceSpec) -> list[Arch]:
    """Every architecture the space allows, built through :func:`suggest`."""
    lo, hi = space.num_layers
    grid = itertools.product(
        range(lo, hi + 1),
        space.hidden_size,
        space.num_heads,
        space.intermediate_size,
        space.precision,
    )
    names = ("num_layers", "hidden_size", "num_heads", "intermediate_size", "precision")
    return [
        suggest(optuna.trial.FixedTrial(dict(zip(names, values, strict=True))), space)
        for values in grid
    ]


def check_against_teacher(space: SpaceSpec, teacher_dims: Arch) -> None:
    """Refuse a space that asks for a student larger than its teacher in any dimension.

    Teacher-initialised students are slices of the teacher, so no dimension may
    exceed the teacher's.

    Raises:
        ParetokdError: Naming the first dimension out of bounds.
    """
    limits = {
        "num_layers": (max(space.num_layers), teacher_dims.num_layers),
        "hidden_size": (max(space.hidden_size), teacher_dims.hidden_size),
        "intermediate_size": (max(space.intermediate_size), teacher_dims.intermediate_size),
    }
    for key, (asked, limit) in limits.items():
        if asked > limit:
            raise ParetokdError(
                f"space.{key} goes up to {asked} but the teacher has {limit}: "
                "a student cannot be larger than its teacher"
            )
