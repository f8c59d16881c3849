"""The search space: Arch ids, suggest() with fixed and live trials, teacher bounds."""

from __future__ import annotations

from collections import Counter

import optuna
import pytest

from paretokd.config import SpaceSpec
from paretokd.errors import ParetokdError
from paretokd.records import Arch
from paretokd.search.space import check_against_teacher, suggest

SMALL = SpaceSpec(
    num_layers=(2, 4), hidden_size=(32, 64), num_heads=(2, 4), intermediate_size=(64, 128)
)
HEADS = SpaceSpec(
    num_layers=(1, 6),
    hidden_size=(96, 192, 288, 384),
    num_heads=(3, 6, 12),
    intermediate_size=(256, 512, 768, 1024, 1536),
)
"""A space that samples head counts for every width (a spec that names them)."""


def _params(
    layers: int, hidden: int, heads: int, ffn: int, precision: str = "fp32"
) -> dict[str, int | str]:
    return {
        "num_layers": layers,
        "hidden_size": hidden,
        "num_heads": heads,
        "intermediate_size": ffn,
        "precision": precision,
    }


# --- Arch ---------------------------------------------------------------------------------------


def test_arch_id_format() -> None:
    assert Arch(3, 256, 4, 1024).id == "L3-H256-A4-F1024"
    assert Arch(1, 128, 2, 256).id == "L1-H128-A2-F256"


def test_arch_id_distinguishes_every_field() -> None:
    base = Arch(2, 64, 4, 128)
    others = [Arch(3, 64, 4, 128), Arch(2, 32, 4, 128), Arch(2, 64, 2, 128), Arch(2, 64, 4, 64)]
    assert len({a.id for a in [base, *others]}) == 5


def test_arch_dict_round_trip() -> None:
    arch = Arch(num_layers=4, hidden_size=192, num_heads=8, intermediate_size=768)
    raw = arch.to_dict()
    assert raw == _params(4, 192, 8, 768)
    assert Arch.from_dict(raw) == arch


def test_arch_from_dict_takes_stored_values() -> None:
    # Stored params may come back as floats (JSON), carry extra keys, and, from
    # studies made before precisions existed, no precision (fp32).
    raw = {**_params(2, 64, 4, 128), "extra": "ignored"}
    raw["num_layers"] = 2.0
    del raw["precision"]
    arch = Arch.from_dict(raw)
    assert arch == Arch(2, 64, 4, 128)
    assert isinstance(arch.num_layers, int)
    int8 = Arch.from_dict(_params(2, 64, 4, 128, "int8"))
    assert int8.id == "L2-H64-A4-F128-int8" and int8.sizes == arch
    assert int8.graph_file == "model.int8.onnx" and arch.graph_file == "model.onnx"


def test_arch_is_hashable_and_frozen() -> None:
    arch = Arch(2, 64, 4, 128)
    assert {arch: 1}[Arch(2, 64, 4, 128)] == 1
    with pytest.raises(AttributeError):
        arch.num_layers = 3  # type: ignore[misc]


# --- suggest ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "params"),
    [
        (HEADS, _params(3, 288, 6, 1024)),
        (HEADS, _params(1, 96, 3, 256)),
        (HEADS, _params(6, 384, 12, 1536)),
        (SMALL, _params(4, 32, 2, 128)),
    ],
)
def test_suggest_replays_a_fixed_trial(space: SpaceSpec, params: dict[str, int | str]) -> None:
    arch = suggest(optuna.trial.FixedTrial(params), space)
    assert arch == Arch.from_dict(params)


def test_suggest_fixed_trial_categorical_outside_the_space_fails() -> None:
    with pytest.raises(ValueError):
        suggest(optuna.trial.FixedTrial(_params(2, 100, 3, 256)), HEADS)
    with pytest.raises(ValueError):
        suggest(optuna.trial.FixedTrial(_params(2, 96, 4, 256)), HEADS)
    with pytest.raises(ValueError):
        suggest(optuna.trial.FixedTrial(_params(2, 96, 3, 300)), HEADS)


def test_suggest_fixed_trial_layers_outside_the_range_only_warn() -> None:
    # Optuna's FixedTrial warns (and returns the value) for an int out of range,
    # so suggest() does not catch a replayed num_layers outside the space.
    with pytest.warns(UserWarning, match="out of the range"):
        arch = suggest(optuna.trial.FixedTrial(_params(9, 96, 3, 256)), HEADS)
    assert arch.num_layers == 9


def test_suggest_fixed_trial_missing_param_fails() -> None:
    params = _params(2, 128, 2, 256)
    del params["num_heads"]
    with pytest.raises(ValueError):
        suggest(optuna.trial.FixedTrial(params), HEADS)


@pytest.mark.parametrize(("space", "seed"), [(HEADS, 0), (HEADS, 1), (SMALL, 2)])
def test_sampled_archs_are_buildable_and_inside_the_space(space: SpaceSpec, seed: int) -> None:
    study = optuna.create_study(
        directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    archs = []
    for _ in range(200):
        trial = study.ask()
        arch = suggest(trial, space)
        study.tell(trial, [0.0, 0.0])
        archs.append(arch)
        # The trial records exactly the params that rebuild the arch.
        assert Arch.from_dict(trial.params) == arch

    lo, hi = space.num_layers
    for arch in archs:
        assert arch.hidden_size % arch.num_heads == 0
        assert lo <= arch.num_layers <= hi
        assert arch.hidden_size in space.hidden_size
        assert arch.num_heads in space.num_heads
        assert arch.intermediate_size in space.intermediate_size
    # 200 random draws reach every value of every dimension.
    assert set(Counter(a.num_layers for a in archs)) == set(range(lo, hi + 1))
    assert {a.hidden_size for a in archs} == set(space.hidden_size)
    assert {a.num_heads for a in archs} == set(space.num_heads)
    assert {a.intermediate_size for a in archs} == set(space.intermediate_size)
    assert {a.precision for a in archs} == set(space.precision)


def test_sampling_is_seeded() -> None:
    def draw(seed: int) -> list[Arch]:
        study = optuna.create_study(
            directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=seed)
        )
        out = []
        for _ in range(20):
            trial = study.ask()
            out.append(suggest(trial, HEADS))
            study.tell(trial, [0.0, 0.0])
        return out

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)


# --- check_against_teacher ---------------------------------------------------------------------

TEACHER = Arch(num_layers=6, hidden_size=384, num_heads=12, intermediate_size=1536)


def test_check_against_teacher_passes_at_equality() -> None:
    # This space tops out exactly at MiniLM-L6's sizes.
    check_against_teacher(HEADS, TEACHER)
    check_against_teacher(
        SpaceSpec(num_layers=(6, 6), hidden_size=(384,), num_heads=(2,), intermediate_size=(1536,)),
        TEACHER,
    )


def test_check_against_teacher_ignores_heads() -> None:
    # Heads do not change any weight shape, so a student may have more of them.
    check_against_teacher(SpaceSpec(num_heads=(2, 4, 8)), Arch(6, 384, 1, 1536))


@pytest.mark.parametrize(
    ("space", "key"),
    [
        (SpaceSpec(num_layers=(1, 7)), "num_layers"),
        (SpaceSpec(hidden_size=(128, 448)), "hidden_size"),
        (SpaceSpec(intermediate_size=(256, 2048)), "intermediate_size"),
    ],
)
def test_check_against_teacher_rejects_larger_students(space: SpaceSpec, key: str) -> None:
    with pytest.raises(ParetokdError, match=f"space.{key}") as info:
        check_against_teacher(space, TEACHER)
    assert str(getattr(TEACHER, key)) in str(info.value)
