"""Finals shared between workers: claimed through the study's storage, retaken when one dies.

The claims are real Optuna trials in a real storage (SQLite; PostgreSQL too when
PARETOKD_TEST_POSTGRES_URL is set, as `.ci/run` does), and the other workers are
real processes, killed with SIGKILL. Heartbeats are 1 s, so a dead claim is
retaken after about 4 s.

Run as a script, this file is one claiming worker (see :func:`_claim_all`); it
imports torch only inside the tests that need it, so such a worker starts at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import TINY_SPEC
from factories import latency
from optuna.trial import TrialState

from paretokd import config
from paretokd.errors import ParetokdError
from paretokd.records import Arch, Pick, RunRecord, TrialRecord
from paretokd.search import claims, storage

PG = os.environ.get("PARETOKD_TEST_POSTGRES_URL")

UNITS = ("10ms", "20ms", "reference")
KIND = "finals"


def _study(url: str, name: str) -> optuna.Study:
    stor = storage.storage(url, heartbeat_seconds=1)
    return optuna.create_study(study_name=name, storage=stor, load_if_exists=True)


def _unit(unit: str, seconds: float) -> dict[str, Any]:
    """A unit of work that takes ``seconds`` and says who did it, and when."""
    start = time.time()
    time.sleep(seconds)
    return {"unit": unit, "pid": os.getpid(), "start": start, "end": time.time()}


def _claim_all(url: str, name: str, seconds: float) -> dict[str, Any]:
    """One worker: join (or start) the study's round of finals, and work until all is done."""
    rnd = claims.open_round(_study(url, name), KIND, "plan", "family", {"units": 3}, UNITS)
    return claims.work(rnd, lambda unit: _unit(unit, seconds), poll_seconds=0.2)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'claims.db'}"
    if not PG:
        pytest.skip("PARETOKD_TEST_POSTGRES_URL is not set")
    return PG


@pytest.fixture()
def study_name(url: str) -> Iterator[str]:
    name = f"claims-{uuid.uuid4().hex[:8]}"
    yield name
    for each in optuna.get_all_study_names(url):
        if each == name or each.startswith(f"{name}.{KIND}."):
            with contextlib.suppress(KeyError):
                optuna.delete_study(study_name=each, storage=url)


def _round(url: str, name: str, number: int = 1) -> optuna.Study:
    return optuna.load_study(study_name=f"{name}.{KIND}.{number}", storage=url)


def _claims_of(url: str, name: str, pid: int, state: TrialState) -> list[optuna.trial.FrozenTrial]:
    try:
        trials = _round(url, name).get_trials(deepcopy=False, states=(state,))
    except KeyError:  # the round is not there yet
        return []
    return [t for t in trials if t.user_attrs.get(claims.WORKER_ATTR, "").endswith(f":{pid}")]


def _holding_a_claim(url: str, name: str, proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
    """``proc`` (another worker), once it holds a claim of the study's first round."""
    deadline = time.monotonic() + 120
    while not _claims_of(url, name, proc.pid, TrialState.RUNNING):
        assert time.monotonic() < deadline, "timed out waiting for the worker to claim"
        assert proc.poll() is None, f"the worker ended before it claimed: {proc.communicate()[0]}"
        time.sleep(0.05)
    return proc


def _worker(url: str, name: str, seconds: float) -> subprocess.Popen[str]:
    """A claiming worker in its own process (this file run as a script), once it holds a claim."""
    cmd = [sys.executable, __file__, url, name, str(seconds)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return _holding_a_claim(url, name, proc)


def test_two_workers_distil_different_units_at_once(url: str, study_name: str) -> None:
    _study(url, study_name)
    other = _worker(url, study_name, 2.0)
    mine = _claim_all(url, study_name, 2.0)
    theirs = other.communicate(timeout=120)[0]
    assert other.returncode == 0, theirs

    assert set(mine) == set(UNITS)
    by = {unit: result["pid"] for unit, result in mine.items()}
    assert set(by.values()) == {os.getpid(), other.pid}  # both worked
    # Each unit was claimed once, and the two workers held theirs at the same time.
    complete = _round(url, study_name).get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.user_attrs[claims.UNIT_ATTR] for t in complete) == sorted(UNITS)
    ours = [r for r in mine.values() if r["pid"] == os.getpid()]
    others = [r for r in mine.values() if r["pid"] == other.pid]
    assert any(a["start"] < b["end"] and b["start"] < a["end"] for a in ours for b in others)


def test_a_killed_workers_claim_expires_and_is_retaken(url: str, study_name: str) -> None:
    _study(url, study_name)
    doomed = _worker(url, study_name, 600.0)
    (held,) = _claims_of(url, study_name, doomed.pid, TrialState.RUNNING)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()

    # This worker takes the units left, then waits out the dead claim's grace period
    # (4 heartbeats), and retakes it when the storage queues it again.
    results = _claim_all(url, study_name, 0.1)
    assert set(results) == set(UNITS)
    assert {r["pid"] for r in results.values()} == {os.getpid()}
    unit = held.user_attrs[claims.UNIT_ATTR]
    tries = [t for t in _round(url, study_name).trials if t.user_attrs.get("unit") == unit]
    assert [t.state for t in tries] == [TrialState.FAIL, TrialState.COMPLETE]


def test_rounds_are_read_back_joined_or_started_anew(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    study = _study(url, "s")

    def untouched(unit: str) -> dict[str, Any]:
        raise AssertionError(f"{unit} was done again")

    first = claims.open_round(study, KIND, "k1", "f1", {"plan": 1}, ["a", "b"])
    assert first.started_here and first.number == 1
    assert claims.work(first, lambda u: {"by": "first", "unit": u}) == {
        "a": {"by": "first", "unit": "a"},
        "b": {"by": "first", "unit": "b"},
    }
    # The same plan again (a rerun): the finished round is read back, nothing is redone.
    again = claims.open_round(study, KIND, "k1", "f1", {"plan": 1}, ["a", "b"])
    assert not again.started_here and again.number == 1
    assert claims.work(again, untouched)["b"] == {"by": "first", "unit": "b"}
    # Other budgets: a new round.
    other = claims.open_round(study, KIND, "k2", "f2", {"plan": 2}, ["c"])
    assert other.started_here and other.number == 2
    # While it is open, a worker of the same run with a slightly different plan follows it.
    follower = claims.open_round(study, KIND, "k3", "f2", {"plan": 3}, ["d"])
    assert not follower.started_here and follower.number == 2
    assert follower.plan == {"plan": 2} and follower.units == ("c",)
    # A companion study is not a study to pick from.
    assert storage.load_study(url, None).study_name == "s"

    # A unit that fails: its worker's error goes up, and any worker still waiting on it
    # is told, instead of waiting for ever.
    def boom(unit: str) -> dict[str, Any]:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        claims.work(other, boom)
    with pytest.raises(ParetokdError, match="c failed in every worker"):
        claims.work(follower, untouched)
    # A rerun of that plan starts over in a new round.
    retry = claims.open_round(study, KIND, "k2", "f2", {"plan": 2}, ["c"])
    assert retry.started_here and retry.number == 3

    # A worker stopped with Ctrl-C gives its unit back for the next one.
    def interrupted(unit: str) -> dict[str, Any]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        claims.work(retry, interrupted)
    assert claims.work(retry, lambda u: {"unit": u}) == {"c": {"unit": "c"}}


def test_the_plan_claims_each_architecture_once() -> None:
    from paretokd.records.finals_round import Plan

    def trial(number: int, arch: Arch) -> TrialRecord:
        return TrialRecord(number, arch, 1000, 0.5, latency(1.0), -1.0)

    small, big = Arch(1, 32, 2, 64), Arch(2, 64, 4, 128)
    trials = [trial(3, small), trial(5, big)]
    picks = [
        Pick(1.0, None, "nothing fits 1ms"),
        Pick(2.0, trials[0]),
        Pick(5.0, trials[1]),
        Pick(9.0, trials[1]),  # two budgets, one architecture: distilled once
    ]
    spec = config.StudySpec()
    plan = Plan.make(spec, picks, reference=big)
    assert plan.unit_keys() == ["2ms", "5ms+9ms+reference"]
    # What the round stores is enough to rebuild the plan from the study's trials.
    assert Plan.from_json(plan.to_json(), trials) == plan
    # Workers of one run follow each other's plan; other budgets make another family.
    other_view = Plan.make(spec, [*picks[:3], Pick(9.0, trials[0])], reference=big)
    assert other_view.key != plan.key and other_view.family == plan.family
    assert Plan.make(spec, picks[:3], reference=big).family != plan.family
    # Without a pick to compare with, the reference is not distilled.
    assert Plan.make(spec, picks[:1], reference=big).units() == []
    # The same sizes in two precisions are one unit: trained once, shipped in each.
    int8 = trial(7, dataclasses.replace(small, precision="int8"))
    both = Plan.make(spec, [Pick(1.5, int8), Pick(2.0, trials[0])], reference=None)
    assert both.unit_keys() == ["1.5ms+2ms"]
    # Teacher outputs too large to keep: one unit, every shape side by side.
    together = Plan.make(spec, picks, reference=big, together=True)
    assert together.unit_keys() == ["2ms+5ms+9ms+reference"]
    assert together.units()[0].sizes_id == f"{small.id}+{big.id}"
    assert Plan.from_json(together.to_json(), trials) == together


def test_a_worker_killed_mid_final_leaves_every_pick(
    tmp_path: Path, tiny_teacher_dir: Path, corpus_file: Path
) -> None:
    # Imported here: a claiming worker runs this file as a script, and starts in a blink.
    import torch

    from paretokd import pipeline

    raw = yaml.safe_load(TINY_SPEC)
    raw.update(name="killed", trials=3, teacher={"name": str(tiny_teacher_dir)})
    raw["data"]["source"] = str(corpus_file)
    raw["distill"]["final_steps"] = 60  # long enough to be killed in (a second or so)
    raw["latency"]["max_seconds"] = 0.3  # a busy machine would otherwise time 3 s per student
    raw["search"]["heartbeat_seconds"] = 1
    spec_file = tmp_path / "killed.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    spec = config.load(str(spec_file))
    out = tmp_path / "run"
    url = storage.default_storage(out)
    # The search first, here (a fresh interpreter would spend its seconds importing torch)...
    pipeline.run(spec, out=out, do_final=False, show_progress=False)
    # ...then a worker that reaches the finals first, and is killed inside its claim.
    cmd = [sys.executable, "-m", "paretokd.cli", "run", "--study", str(spec_file),
           "--out", str(out), "--quiet"]  # fmt: skip
    doomed = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _holding_a_claim(url, "killed", doomed)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()

    # One thread: the search set every core, and two OpenMP threads on a busy 2-core
    # machine spin-wait on each other (a final then takes ten times as long).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = pipeline.run(spec, out=out, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    rec = result.record
    assert rec == RunRecord.read(out / "recommendations.json")
    assert [p.budget_ms for p in rec.picks] == [50.0, 100.0]
    for pick in rec.picks:
        final = rec.final_of(pick)
        assert pick.trial is not None and final is not None, pick
        assert final.within_budget and final.steps == 60
        assert (final.dir / "model.safetensors").is_file() and final.onnx.is_file()
    assert not list(out.glob("students/*.partial"))  # the killed worker's half-written folder
    # The killed worker's claim expired (failed by the heartbeat rules) and was retaken here.
    claimed = _round(url, "killed").get_trials(deepcopy=False)
    dead = [t for t in claimed if t.state == TrialState.FAIL]
    assert dead and all(t.user_attrs[claims.WORKER_ATTR].endswith(f":{doomed.pid}") for t in dead)
    assert all(
        t.user_attrs[claims.WORKER_ATTR].endswith(f":{os.getpid()}")
        for t in claimed
        if t.state == TrialState.COMPLETE
    )


if __name__ == "__main__":
    _claim_all(sys.argv[1], sys.argv[2], float(sys.argv[3]))
