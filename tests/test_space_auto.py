"""A search space derived from the teacher (``space: auto``): rules, replay, and the spec's say."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from conftest import FAMILIES

from paretokd import config
from paretokd.cli import main
from paretokd.config import SpaceSpec, StudySpec
from paretokd.errors import ParetokdError
from paretokd.records import Arch, TrialRecord
from paretokd.search import space

MINILM = Arch(num_layers=6, hidden_size=384, num_heads=12, intermediate_size=1536)
BERT_BASE = Arch(num_layers=12, hidden_size=768, num_heads=12, intermediate_size=3072)
TINY = Arch(num_layers=4, hidden_size=64, num_heads=4, intermediate_size=128)
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("teacher", "widths", "ffn"),
    [
        (MINILM, tuple(range(32, 385, 32)), (256, 512, 768, 1024, 1280, 1536)),
        (BERT_BASE, tuple(range(64, 769, 64)), (512, 1024, 1536, 2048, 2560, 3072)),
        # 128 / 6 is not a multiple of 8: sixths rounded to multiples of 8.
        (TINY, (16, 32, 48, 64), (24, 40, 64, 88, 104, 128)),
    ],
)
def test_derived_space_follows_the_teacher(
    teacher: Arch, widths: tuple[int, ...], ffn: tuple[int, ...]
) -> None:
    derived = space.derive(SpaceSpec(), teacher)
    assert derived.resolved
    assert derived.num_layers == (1, teacher.num_layers)
    assert derived.hidden_size == widths
    assert derived.head_size == teacher.hidden_size // teacher.num_heads
    assert derived.num_heads is None
    assert derived.intermediate_size == ffn
    # The teacher's own shape is in its derived space; nothing exceeds it.
    assert space.contains(derived, teacher)
    space.check_against_teacher(derived, teacher)


def test_derived_heads_keep_the_teachers_head_size() -> None:
    derived = space.derive(SpaceSpec(), MINILM)
    archs = space.all_archs(derived)
    assert len(archs) == 6 * 12 * 6 * 2  # layers x widths x FFN x precisions
    assert {a.hidden_size // a.num_heads for a in archs} == {32}
    assert max(a.num_heads for a in archs) == MINILM.num_heads
    # Heads are no choice, so they are not a parameter: the trial samples the rest.
    assert "num_heads" not in space.distributions(derived)


def test_derived_space_samples_and_replays() -> None:
    derived = space.derive(SpaceSpec(), BERT_BASE)
    study = optuna.create_study(
        directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=3)
    )
    for _ in range(40):
        trial = study.ask()
        arch = space.suggest(trial, derived)
        study.tell(trial, [0.0, 0.0])
        assert space.contains(derived, arch)
        assert set(trial.params) == set(space.distributions(derived))
        # A pick is rebuilt from its stored params, and from its whole record.
        assert space.suggest(optuna.trial.FixedTrial(trial.params), derived) == arch
        assert space.params(arch, derived) == trial.params


def test_given_dimensions_are_kept() -> None:
    given = SpaceSpec(num_layers=(2, 3), intermediate_size=(512,), precision=("fp32",))
    derived = space.derive(given, MINILM)
    assert derived.num_layers == (2, 3)
    assert derived.intermediate_size == (512,)
    assert derived.hidden_size == tuple(range(32, 385, 32))
    explicit_heads = space.derive(SpaceSpec(hidden_size=(96, 192), num_heads=(3, 6)), MINILM)
    assert explicit_heads.num_heads == (3, 6) and explicit_heads.head_size is None
    own_head = space.derive(SpaceSpec(head_size=64), MINILM)
    assert own_head.hidden_size == (64, 128, 192, 256, 320, 384)
    assert {a.num_heads for a in space.all_archs(own_head)} == {1, 2, 3, 4, 5, 6}


def test_resolve_refuses_a_space_larger_than_the_teacher() -> None:
    spec = StudySpec()  # space: auto, MiniLM-sized numbers nowhere
    tiny = space.resolve(spec, TINY)
    assert tiny.space.num_layers == (1, 4)
    too_big = StudySpec(space=SpaceSpec(num_layers=(1, 6)))
    with pytest.raises(ParetokdError, match="space.num_layers goes up to 6 but the teacher has 4"):
        space.resolve(too_big, TINY)


def test_resolve_checks_widths_against_the_head_size() -> None:
    spec = StudySpec(space=SpaceSpec(hidden_size=(48, 96)))
    with pytest.raises(ParetokdError, match="multiple of head_size 32"):
        space.resolve(spec, MINILM)


def test_spec_refuses_heads_given_twice(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("space:\n  num_heads: [2, 4]\n  head_size: 16\n")
    with pytest.raises(ParetokdError, match="num_heads .* or head_size"):
        config.load(path)


def test_space_auto_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("space: auto\n")
    assert config.load(path).space == SpaceSpec() == StudySpec().space
    assert not SpaceSpec().resolved


def test_the_default_study_documents_its_teachers_derived_space() -> None:
    """studies/default.yaml names the space `space: auto` gives all-MiniLM-L6-v2."""
    text = (ROOT / "studies" / "default.yaml").read_text()
    assert re.search(r"^space: auto", text, re.M)
    derived = space.derive(SpaceSpec(), MINILM)
    line = space.describe(derived)
    documented = " ".join(re.findall(r"^#\s+(.*)$", text, re.M))
    assert line in documented


@pytest.mark.parametrize("family", FAMILIES)
def test_a_run_with_no_space_fits_any_family(
    family: str,
    tiny_family_teacher: Callable[[str, str], Path],
    tiny_spec_file: Path,
    corpus_file: Path,
    tmp_path: Path,
) -> None:
    """A 4-layer, 64-wide teacher of each family with `space: auto`: searched, never refused."""
    text = tiny_spec_file.read_text()
    spec_file = tmp_path / "auto.yaml"
    spec_file.write_text(text[: text.index("space:")] + text[text.index("distill:") :])
    out = tmp_path / "run"
    args = ["run", "--study", str(spec_file), "--teacher", str(tiny_family_teacher(family, "base"))]
    args += ["--data", str(corpus_file), "--budgets", "2ms,20ms", "--trials", "3", "--no-final"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "search space: layers 1-4, widths [16, 32, 48, 64], heads of 16" in result.output
    trials = [
        TrialRecord.read(t)
        for t in optuna.load_study(
            study_name="tiny", storage=f"sqlite:///{out / 'study.db'}"
        ).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    ]
    assert len(trials) >= 3
    derived = space.derive(SpaceSpec(), TINY)
    assert all(space.contains(derived, t.arch) for t in trials)
