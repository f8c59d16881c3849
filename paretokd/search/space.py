"""The student search space: derived from the teacher, and how a trial samples an architecture."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import optuna

from paretokd.config import SpaceSpec, StudySpec, validate
from paretokd.errors import ParetokdError
from paretokd.records import Arch

FFN_STEPS = 6
"""A derived space's FFN widths: 1/6, 2/6, ... 6/6 of the teacher's (MiniLM: 256 to 1536)."""

ROUND_TO = 8
"""Derived FFN widths are multiples of this (matrix kernels favour them)."""


def derive(space: SpaceSpec, teacher_dims: Arch) -> SpaceSpec:
    """``space`` with every dimension it leaves ``null`` taken from the teacher's sizes.

    Layers from 1 to the teacher's; widths every head size up to the teacher's
    width; heads of the teacher's head size (so a student's heads are whole
    teacher heads, and at full width it has the teacher's count); FFN widths
    at sixths of the teacher's. Dimensions the spec gives are kept as given.
    """
    t = teacher_dims
    head = space.head_size or t.hidden_size // t.num_heads
    widths = tuple(range(head, t.hidden_size + 1, head))
    ffn = sorted(
        {
            max(ROUND_TO, round(t.intermediate_size * k / FFN_STEPS / ROUND_TO) * ROUND_TO)
            for k in range(1, FFN_STEPS + 1)
        }
    )
    return dataclasses.replace(
        space,
        num_layers=space.num_layers or (1, t.num_layers),
        hidden_size=space.hidden_size or widths,
        head_size=None if space.num_heads else head,
        intermediate_size=space.intermediate_size or tuple(ffn),
    )


def resolve(spec: StudySpec, teacher_dims: Arch) -> StudySpec:
    """The spec with its space derived from the teacher (:func:`derive`) and checked against it.

    Raises:
        ParetokdError: If the space asks for a student larger than the teacher,
            or a width the derived head size does not divide.
    """
    derived = derive(spec.space, teacher_dims)
    check_against_teacher(derived, teacher_dims)
    # Validated again: the checks across dimensions need every one of them.
    return validate(dataclasses.replace(spec, space=derived))


@dataclass(frozen=True)
class Grid:
    """A resolved space's values, dimension by dimension."""

    num_layers: tuple[int, int]
    hidden_size: tuple[int, ...]
    num_heads: tuple[int, ...] | None
    """Head counts sampled for every width; ``None``: ``hidden_size // head_size``."""
    head_size: int | None
    intermediate_size: tuple[int, ...]
    precision: tuple[str, ...]


def grid(space: SpaceSpec) -> Grid:
    """The values of a resolved space (see :func:`resolve`)."""
    assert space.resolved, "the space is derived from the teacher before it is sampled"
    assert space.num_layers and space.hidden_size and space.intermediate_size
    return Grid(
        space.num_layers,
        space.hidden_size,
        space.num_heads,
        space.head_size,
        space.intermediate_size,
        tuple(space.precision),
    )


def suggest(trial: optuna.trial.BaseTrial, space: SpaceSpec) -> Arch:
    """Sample an architecture. Every combination the space allows is buildable.

    Works with a live trial and with ``optuna.trial.FixedTrial`` (to rebuild a pick
    from its stored params).
    """
    g = grid(space)
    lo, hi = g.num_layers
    hidden = trial.suggest_categorical("hidden_size", list(g.hidden_size))
    return Arch(
        num_layers=trial.suggest_int("num_layers", lo, hi),
        hidden_size=hidden,
        # Heads of a fixed size are no choice: the width decides them.
        num_heads=(
            trial.suggest_categorical("num_heads", list(g.num_heads))
            if g.num_heads is not None
            else hidden // (g.head_size or 1)
        ),
        intermediate_size=trial.suggest_categorical("intermediate_size", list(g.intermediate_size)),
        # One precision is no choice: such a space samples exactly as before it existed.
        precision=(
            trial.suggest_categorical("precision", list(g.precision))
            if len(g.precision) > 1
            else g.precision[0]
        ),
    )


def distributions(space: SpaceSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """The distributions :func:`suggest` samples from, by parameter name (the whole space)."""
    g = grid(space)
    lo, hi = g.num_layers
    cat = optuna.distributions.CategoricalDistribution
    return {
        "num_layers": optuna.distributions.IntDistribution(lo, hi),
        "hidden_size": cat(list(g.hidden_size)),
        **({"num_heads": cat(list(g.num_heads))} if g.num_heads is not None else {}),
        "intermediate_size": cat(list(g.intermediate_size)),
        **({"precision": cat(list(g.precision))} if len(g.precision) > 1 else {}),
    }


def params(arch: Arch, space: SpaceSpec) -> dict[str, int | str]:
    """The trial parameters that make ``arch`` in ``space`` (those :func:`suggest` samples)."""
    names = distributions(space)
    return {k: v for k, v in arch.to_dict().items() if k in names}


def all_archs(space: SpaceSpec) -> list[Arch]:
    """Every architecture the space allows, built through :func:`suggest`."""
    g = grid(space)
    lo, hi = g.num_layers
    grid_values = itertools.product(
        range(lo, hi + 1),
        g.hidden_size,
        g.num_heads or (None,),
        g.intermediate_size,
        g.precision,
    )
    names = ("num_layers", "hidden_size", "num_heads", "intermediate_size", "precision")
    return [
        suggest(optuna.trial.FixedTrial(dict(zip(names, values, strict=True))), space)
        for values in grid_values
    ]


def contains(space: SpaceSpec, arch: Arch) -> bool:
    """Whether ``space`` can sample ``arch`` (sizes and precision)."""
    g = grid(space)
    heads_ok = (
        arch.num_heads in g.num_heads
        if g.num_heads is not None
        else arch.num_heads * (g.head_size or 0) == arch.hidden_size
    )
    return (
        g.num_layers[0] <= arch.num_layers <= g.num_layers[1]
        and arch.hidden_size in g.hidden_size
        and heads_ok
        and arch.intermediate_size in g.intermediate_size
        and arch.precision in g.precision
    )


def describe(space: SpaceSpec) -> str:
    """One line naming a resolved space's values, for the log."""
    g = grid(space)
    heads = f"heads {list(g.num_heads)}" if g.num_heads is not None else f"heads of {g.head_size}"
    return (
        f"layers {g.num_layers[0]}-{g.num_layers[1]}, widths {list(g.hidden_size)}, {heads}, "
        f"FFN {list(g.intermediate_size)}, precision {list(g.precision)} "
        f"({len(all_archs(space))} architectures)"
    )


def check_against_teacher(space: SpaceSpec, teacher_dims: Arch) -> None:
    """Refuse a space that asks for a student larger than its teacher in any dimension.

    Teacher-initialised students are slices of the teacher, so no dimension may
    exceed the teacher's. Dimensions left to the teacher are not checked.

    Raises:
        ParetokdError: Naming the first dimension out of bounds.
    """
    limits = {
        "num_layers": (space.num_layers, teacher_dims.num_layers),
        "hidden_size": (space.hidden_size, teacher_dims.hidden_size),
        "intermediate_size": (space.intermediate_size, teacher_dims.intermediate_size),
    }
    for key, (values, limit) in limits.items():
        if values is not None and max(values) > limit:
            raise ParetokdError(
                f"space.{key} goes up to {max(values)} but the teacher has {limit}: "
                "a student cannot be larger than its teacher"
            )
