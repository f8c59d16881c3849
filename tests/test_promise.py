"""A budget is a promise: paired timing, confirmation, the shipped check and its fallback."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from paretokd import finals, latency
from paretokd.cli import STRICT_EXIT, main
from paretokd.config import LatencySpec
from paretokd.latency.paired import (
    EXTRA_ROUNDS,
    TEACHER,
    Anchor,
    Paired,
    measure_paired,
    nearest,
    quiet_rounds,
    rungs,
)
from paretokd.latency.protocol import summarise
from paretokd.records import Arch, LatencyStats, Objective, Pick, RunRecord, TrialRecord
from paretokd.search import recommend
from paretokd.search.context import Context, time_onnx

time_final = finals.time_final


def _paired(
    cand: list[list[float]], anch: list[list[float]], kept: list[int], anchor_ms: float = 30.0
) -> Paired:
    """The rounds as timed against an anchor whose study figure is ``anchor_ms``."""
    return Paired(
        tuple(tuple(b) for b in cand),
        tuple(tuple(b) for b in anch),
        tuple(kept),
        summarise([t for i in kept for t in cand[i]]),
        summarise([t for i in kept for t in anch[i]]),
        Anchor(TEACHER, Path("teacher.onnx"), anchor_ms),
    )


def test_the_paired_ratio_is_the_median_of_the_rounds_mean_ratios_on_the_studys_scale() -> None:
    cand = [[2.0, 2.1, 1.9], [2.0, 2.2, 2.0], [2.1, 2.0, 1.9]]
    anch = [[10.0], [10.0], [9.5]]  # one teacher run fills an anchor block
    p = _paired(cand, anch, [0, 1, 2])
    # Each round: the candidate's mean run over the anchor's; the middle one is round 1's.
    assert p.round_ratios == pytest.approx([2.0 / 10.0, 6.2 / 3 / 10.0, 2.0 / 9.5])
    assert p.ratio == pytest.approx(6.2 / 3 / 10.0)
    lo, hi = p.ratio_ci
    assert lo <= p.ratio <= hi
    assert lo == pytest.approx(0.2) and hi == pytest.approx(2.0 / 9.5)  # the rounds' extremes
    stats = p.stats()  # on the scale of the teacher's calibrated p50, 30 ms
    assert stats.p50_ms == pytest.approx(6.2 / 3 * 3.0)
    assert stats.ci_ms == pytest.approx((lo * 30.0, hi * 30.0))
    assert stats.raw_p50_ms == pytest.approx(2.0) and stats.anchor_p50_ms == pytest.approx(10.0)
    assert stats.rounds == 3 and stats.ratio == pytest.approx(p.ratio)
    assert stats.anchor == TEACHER
    # Paired with a rung whose study figure is 6 ms, the same rounds read on its scale.
    assert _paired(cand, anch, [0, 1, 2], 6.0).stats().p50_ms == pytest.approx(6.2 / 3 * 0.6)


def test_the_ladder_steps_down_from_the_teacher_by_layers_then_width() -> None:
    minilm = Arch(6, 384, 12, 1536)
    assert rungs(minilm) == (Arch(1, 384, 12, 1536), Arch(1, 128, 4, 512))
    assert rungs(Arch(12, 768, 12, 3072)) == (Arch(1, 768, 12, 3072), Arch(1, 256, 4, 1024))
    # A teacher of one layer and one head has no smaller graph to offer.
    assert rungs(Arch(1, 64, 1, 128)) == ()
    assert rungs(Arch(2, 64, 2, 128)) == (Arch(1, 64, 2, 128), Arch(1, 32, 1, 64))


def test_a_candidate_is_paired_with_the_anchor_nearest_its_latency() -> None:
    ladder = [
        Anchor(TEACHER, Path("t"), 40.0),
        Anchor("mid", Path("m"), 7.0),
        Anchor("small", Path("s"), 1.1),
    ]
    assert nearest(ladder, 30.0).name == TEACHER
    assert nearest(ladder, 15.0).name == "mid"  # 40/15 = 2.7 apart, 15/7 = 2.1
    # On a log scale: 4 ms is 1.75x from 7 ms and 3.6x from 1.1 ms (2.9 ms from both).
    assert nearest(ladder, 4.0).name == "mid"
    assert nearest(ladder, 0.2).name == "small"


def test_a_hiccup_weighs_on_the_candidate_as_on_the_anchor() -> None:
    # In every round the machine stalls 4 ms once: inside one of the candidate's
    # twenty short runs, and inside the teacher's single run.
    cand = [[2.0] * 19 + [6.0] for _ in range(6)]
    anch = [[44.0] for _ in range(6)]
    p = _paired(cand, anch, list(range(6)))
    assert p.ratio == pytest.approx(2.0 / 40.0)  # as on a machine without stalls
    # (A median of the candidate's runs skips its stall: 2.0 / 44.0, 9% fast.)


def test_a_round_slowed_by_a_neighbour_does_not_move_the_ratio() -> None:
    cand = [[2.0] * 5, [2.0] * 5, [2.6] * 5, [2.0] * 5, [2.0] * 5]  # round 2: a busy neighbour
    anch = [[10.0], [10.0], [10.0], [10.0], [10.0]]
    assert _paired(cand, anch, [0, 1, 3, 4]).ratio == pytest.approx(0.2)


def test_a_machine_that_changed_state_gives_the_same_figure() -> None:
    cand = [[2.0, 2.1, 1.9], [2.0, 2.2, 2.0], [2.1, 2.0, 1.9]]
    anch = [[10.0, 10.2, 9.8], [10.0, 10.1, 9.9], [9.9, 10.0, 10.1]]
    calm = _paired(cand, anch, [0, 1, 2]).stats()
    # An hour later the whole machine runs 35% slower: both models slow alike.
    slow = [[t * 1.35 for t in b] for b in cand], [[t * 1.35 for t in b] for b in anch]
    hot = _paired(*slow, [0, 1, 2]).stats()
    assert hot.p50_ms == pytest.approx(calm.p50_ms)
    assert hot.raw_p50_ms == pytest.approx(calm.raw_p50_ms * 1.35)


def test_the_quiet_rounds_leave_out_a_slowed_round_from_the_candidates_spread() -> None:
    cand = [[2.0] * 5, [2.0] * 5, [2.6] * 5, [2.0] * 5]  # round 2: a busy neighbour
    anch = [[10.0] * 5, [10.0] * 5, [10.0] * 5, [10.0] * 5]
    assert quiet_rounds(cand, anch, 0.03) == [0, 1, 3]
    assert quiet_rounds(cand, anch, None) == [0, 1, 2, 3]
    # When most rounds are disturbed, the quietest half counts.
    noisy = [[2.0] * 5, [2.5] * 5, [2.6] * 5, [2.7] * 5]
    assert quiet_rounds(noisy, anch, 0.03) == [0, 1]


@pytest.fixture(scope="module")
def two_graphs(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A tiny teacher's graph (the anchor) and a two-layer student's (the candidate)."""
    from transformers import AutoModel, AutoTokenizer

    from paretokd.models import student
    from paretokd.records import Arch

    teacher = AutoModel.from_pretrained(tiny_teacher_dir).eval()
    names = AutoTokenizer.from_pretrained(tiny_teacher_dir).model_input_names
    folder = tmp_path_factory.mktemp("paired")
    spec = LatencySpec(seq_len=32, warmup_runs=1)
    anchor = latency.export_onnx(teacher, names, folder / "t.onnx", spec)
    candidate = student.build(Arch(2, 32, 2, 64), teacher)
    return latency.export_onnx(candidate, names, folder / "s.onnx", spec), anchor, spec


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, 4),  # exactly the rounds asked for
        (10.0, 4),  # any interval is narrow enough: no extra round
        (1e-12, 8),  # none ever is: up to twice the rounds, EXTRA_ROUNDS at a time
    ],
)
def test_a_wide_interval_gets_more_rounds_up_to_twice(
    two_graphs: tuple, target: float | None, expected: int
) -> None:
    candidate, anchor, spec = two_graphs
    spec = replace(spec, interval_target=target)
    timed = measure_paired(candidate, [Anchor(TEACHER, anchor, 1.0)], spec, rounds=4)
    assert len(timed.candidate_blocks) == len(timed.anchor_blocks) == expected
    assert EXTRA_ROUNDS % 2 == 0  # whole ABBA pairs


def _over_budget(path: Path, ctx: Context, precision: str, anchor: str | None) -> LatencyStats:
    """A shipped-graph timer that reads every student far over any budget of the tests."""
    real = time_onnx(path, ctx, precision, ctx.spec.latency.confirm_rounds, anchor)
    return replace(real, p50_ms=999.0, ci_ms=(990.0, 1010.0))


@pytest.fixture()
def tiny_args(tiny_teacher_dir: Path, corpus_file: Path, tiny_spec_file: Path) -> list[str]:
    return [
        "run",
        "--study",
        str(tiny_spec_file),
        "--teacher",
        str(tiny_teacher_dir),
        "--data",
        str(corpus_file),
        "--budgets",
        "50ms",
        "--quiet",
    ]


def test_a_student_over_budget_falls_back_to_the_next_candidate_that_fits(
    tiny_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    calls: list[Path] = []

    def timer(path: Path, ctx: Context, precision: str, anchor: str | None) -> LatencyStats:
        # The first student shipped reads over budget twice: when it is exported and
        # when it is timed again.
        calls.append(path)
        if len(calls) <= 2:
            return _over_budget(path, ctx, precision, anchor)
        return time_final(path, ctx, precision, anchor)

    monkeypatch.setattr(finals, "time_final", timer)
    result = CliRunner().invoke(main, [*tiny_args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    rec = RunRecord.read(out / "recommendations.json")
    (pick,) = rec.picks
    assert pick.trial is not None and pick.fallback is not None
    assert "over 50ms when timed twice" in pick.fallback
    final = rec.final_of(pick)
    assert final is not None and final.within_budget and final.trial == pick.trial.number
    # The shipped graph was paired with the anchor its search trial was paired with.
    assert final.latency.anchor is not None and final.latency.anchor == pick.trial.timing.anchor
    assert "fallback:" in result.output
    assert "WARNING" not in result.output


def test_a_budget_no_candidate_keeps_is_loud_and_fails_under_strict(
    tiny_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(finals, "time_final", _over_budget)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [*tiny_args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "WARNING: budget 50ms is not kept" in result.output
    rec = RunRecord.read(out / "recommendations.json")
    (pick,) = rec.picks
    assert pick.trial is None and pick.reason is not None
    assert pick.reason.startswith("budget 50ms cannot be kept")
    assert pick.reason.count("when timed twice") == finals.MAX_FALLBACKS + 1
    assert not (out / "students" / "50ms").exists()  # no broken promise is shipped
    assert "is not kept" in (out / "report.html").read_text()
    # The same, resumed under --strict, ends with its own status.
    strict = CliRunner().invoke(main, [*tiny_args, "--out", str(out), "--strict"])
    assert strict.exit_code == STRICT_EXIT, strict.output
    assert "WARNING: budget 50ms is not kept" in strict.output


def test_a_pick_of_the_references_shape_falling_back_leaves_the_reference_its_own_student(
    tiny_args: list[str],
    tiny_spec_file: Path,
    sentences: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With an evaluation set the hand-crafted student ships too. When the pick is
    # its architecture and falls back, the budget's folder then holds another
    # student: the reference must not be copied from it.
    pairs = tmp_path / "pairs.tsv"
    rows = [f"{a}\t{b}\t{len(a) % 5}" for a, b in zip(sentences[:30], sentences[1:31], strict=True)]
    pairs.write_text("one\ttwo\tscore\n" + "\n".join(rows) + "\n")
    tiny_spec_file.write_text(
        tiny_spec_file.read_text()
        + f"evaluation: {{source: {pairs}, text_columns: [one, two], label_column: score}}\n"
    )
    real_pick_one = recommend.pick_one

    def reference_of(trials: list[TrialRecord]) -> TrialRecord:
        return next(t for t in trials if t.cached_from == "reference")

    def the_reference(
        trials: list[TrialRecord], budgets: tuple[float, ...], objective: Objective
    ) -> list[Pick]:
        return [Pick(b, reference_of(trials)) for b in budgets]

    def other_shapes(
        trials: list[TrialRecord], budget: float, objective: Objective, exclude: set[int]
    ) -> Pick:
        same = {t.number for t in trials if t.arch.sizes == reference_of(trials).arch.sizes}
        return real_pick_one(trials, budget, objective, {*exclude, *same})

    monkeypatch.setattr(recommend, "pick", the_reference)
    monkeypatch.setattr(recommend, "pick_one", other_shapes)
    calls: list[Path] = []

    def timer(path: Path, ctx: Context, precision: str, anchor: str | None) -> LatencyStats:
        calls.append(path)
        if len(calls) <= 2:  # the pick, when exported and when timed again
            return _over_budget(path, ctx, precision, anchor)
        return time_final(path, ctx, precision, anchor)

    monkeypatch.setattr(finals, "time_final", timer)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [*tiny_args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    rec = RunRecord.read(out / "recommendations.json")
    (pick,) = rec.picks
    assert pick.trial is not None and pick.fallback is not None
    assert rec.reference is not None and pick.trial.arch.sizes != rec.reference.arch.sizes
    reference = rec.reference_final
    assert reference is not None and reference.arch == rec.reference.arch
    # Its files are its own architecture's, not the fallback's.
    shipped = json.loads((reference.dir / "config.json").read_text())
    assert shipped["num_hidden_layers"] == rec.reference.arch.num_layers
    assert shipped["intermediate_size"] == rec.reference.arch.intermediate_size
    assert shipped["hidden_size"] == rec.reference.arch.hidden_size
    assert reference.latency.p50_ms != 999.0
