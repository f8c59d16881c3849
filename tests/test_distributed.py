"""Two workers on one PostgreSQL study, one of them killed mid-trial.

Needs a real PostgreSQL server: `.ci/run` starts one and sets
PARETOKD_TEST_POSTGRES_URL; without it these tests skip.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

PG = os.environ.get("PARETOKD_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not PG, reason="PARETOKD_TEST_POSTGRES_URL is not set")

# Slow enough trials (about a second) that a worker can be killed inside one.
SPEC = """\
name: dist
budgets: [50ms, 100ms]
trials: 6
seed: 3
data: {proxy_train: 64, proxy_eval: 32, max_length: 32}
space: {num_layers: [1, 4], hidden_size: [32, 64], num_heads: [2, 4], intermediate_size: [64, 128]}
distill: {batch_size: 8, proxy_steps: 100, final_steps: 6}
latency: {seq_len: 32, warmup_runs: 1, rounds: 3, confirm_rounds: 4, calibration_rounds: 4,
          min_runs: 5, min_seconds: 0.02}
search: {population_size: 4, heartbeat_seconds: 1}
"""


@pytest.fixture()
def study_name() -> object:
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=PG)


def _command(tmp_path: Path, name: str, teacher: Path, corpus: Path, out: str) -> list[str]:
    spec = tmp_path / "dist.yaml"
    spec.write_text(SPEC)
    return [
        sys.executable, "-m", "paretokd.cli", "run", "--study", str(spec),
        "--teacher", str(teacher), "--data", str(corpus), "--storage", str(PG),
        "--study-name", name, "--out", str(tmp_path / out), "--no-final", "--quiet",
    ]  # fmt: skip


def _states(name: str) -> dict[TrialState, int]:
    study = optuna.load_study(study_name=name, storage=PG)
    counts: dict[TrialState, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state] = counts.get(t.state, 0) + 1
    return counts


REFERENCE_ID = "L2-H64-A4-F128"
"""The tiny teacher's hand-crafted student: its trial reuses stored figures and ends at once."""


def _running_trial_of(name: str, pid: int) -> bool:
    """Whether worker ``pid`` is in a trial that takes long enough to be killed in."""
    try:
        study = optuna.load_study(study_name=name, storage=PG)
    except KeyError:
        return False
    return any(
        t.user_attrs.get("worker", "").endswith(f":{pid}")
        and t.user_attrs.get("arch_id") not in (None, REFERENCE_ID)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    )


def test_a_killed_worker_loses_nothing(
    tmp_path: Path, study_name: str, tiny_teacher_dir: Path, corpus_file: Path
) -> None:
    cmd_a = _command(tmp_path, study_name, tiny_teacher_dir, corpus_file, "a")
    cmd_b = _command(tmp_path, study_name, tiny_teacher_dir, corpus_file, "b")
    log_a = tmp_path / "a.log"  # what A printed, should it end before it is killed
    with log_a.open("w") as sink:
        a = subprocess.Popen(cmd_a, stdout=sink, stderr=subprocess.STDOUT)
    b = subprocess.Popen(cmd_b, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not _running_trial_of(study_name, a.pid):
        assert time.monotonic() < deadline, "worker A never started a trial"
        assert a.poll() is None, f"worker A ended before it could be killed:\n{log_a.read_text()}"
        time.sleep(0.1)
    a.send_signal(signal.SIGKILL)
    a.wait()
    out_b, _ = b.communicate(timeout=300)
    assert b.returncode == 0, out_b

    # After the grace period (4 heartbeats), the next run fails A's stale trial,
    # retries it, and tops the study up to exactly its total.
    time.sleep(5)
    again = subprocess.run(cmd_b, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    states = _states(study_name)
    assert states.get(TrialState.COMPLETE) == 6, states
    assert states.get(TrialState.RUNNING, 0) == 0, states
    assert states.get(TrialState.WAITING, 0) == 0, states
    assert states.get(TrialState.FAIL, 0) >= 1, states  # A's trial, failed then retried


def test_workers_share_the_total(
    tmp_path: Path, study_name: str, tiny_teacher_dir: Path, corpus_file: Path
) -> None:
    cmd = _command(tmp_path, study_name, tiny_teacher_dir, corpus_file, "w")
    # 12 trials, not the spec's 6: the second worker starts a fresh interpreter
    # (about 8 s, more on a loaded machine) while the first, already warm, needs
    # about a second a trial; with 6 the first once finished them all alone.
    cmd += ["--trials", "12", "--workers", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    study = optuna.load_study(study_name=study_name, storage=PG)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 12
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both worked


def test_workers_started_together_measure_the_references_once(
    tmp_path: Path, study_name: str, tiny_teacher_dir: Path, corpus_file: Path
) -> None:
    """Two runs started at once: the hand-crafted student and the int8 teacher, measured once."""
    procs = [
        subprocess.Popen(
            _command(tmp_path, study_name, tiny_teacher_dir, corpus_file, out),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for out in ("a", "b")
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    study = optuna.load_study(study_name=study_name, storage=PG)
    archs = [t.user_attrs["arch_id"] for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert len(archs) == len(set(archs)), archs  # the reference's int8 sibling joined once
    claims = optuna.load_study(study_name=f"{study_name}.references.1", storage=PG)
    done = claims.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.user_attrs["unit"] for t in done) == ["quantized teacher", "reference"]
