"""ONNX export and parity, the latency protocol, lock, cache, drift guard; `paretokd latency`."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModel, AutoTokenizer

from paretokd import latency
from paretokd.cli import main
from paretokd.config import LatencySpec
from paretokd.errors import ParetokdError
from paretokd.latency import paired, protocol
from paretokd.models import student
from paretokd.records import Arch, LatencyStats

FAST = LatencySpec(seq_len=32, warmup_runs=1, min_runs=7, min_seconds=0.02)


@pytest.fixture(scope="module")
def tiny(tiny_teacher_dir: Path) -> tuple:
    return AutoModel.from_pretrained(tiny_teacher_dir), AutoTokenizer.from_pretrained(
        tiny_teacher_dir
    )


@pytest.mark.parametrize("arch", [Arch(2, 32, 2, 64), Arch(4, 64, 4, 128), Arch(1, 64, 2, 64)])
def test_onnx_matches_pytorch(
    tiny: tuple, arch: Arch, tmp_path: Path, sentences: list[str]
) -> None:
    teacher, tok = tiny
    model = student.build(arch, teacher)
    path = latency.export_onnx(model, tok.model_input_names, tmp_path / "m.onnx")
    # Real text of different lengths, so padding and the attention mask are exercised.
    batch = dict(
        tok(sentences[:6], padding=True, truncation=True, max_length=40, return_tensors="pt")
    )
    assert batch["attention_mask"].min() == 0
    assert latency.parity(model, path, batch, FAST) < 1e-4


def test_parity_detects_a_different_model(
    tiny: tuple, tmp_path: Path, sentences: list[str]
) -> None:
    teacher, tok = tiny
    path = latency.export_onnx(
        student.build(Arch(2, 32, 2, 64), teacher), tok.model_input_names, tmp_path / "m.onnx"
    )
    other = student.build(Arch(2, 32, 2, 64), teacher, teacher_init=False)
    batch = dict(tok(sentences[:2], padding=True, return_tensors="pt"))
    assert latency.parity(other, path, batch, FAST) > 1e-2


def test_measure_follows_the_protocol(tiny: tuple, tmp_path: Path) -> None:
    teacher, tok = tiny
    stats = latency.measure_model(teacher, tok.model_input_names, FAST, tmp_path / "t.onnx")
    assert stats.runs >= FAST.min_runs
    assert 0 < stats.p50_ms <= stats.p90_ms
    longer = dataclasses.replace(FAST, min_runs=1, min_seconds=0.2)
    assert latency.measure(tmp_path / "t.onnx", longer, teacher.config.vocab_size).runs > 1


def test_session_settings_are_explicit(tiny: tuple, tmp_path: Path) -> None:
    teacher, tok = tiny
    path = latency.export_onnx(teacher, tok.model_input_names, tmp_path / "t.onnx")
    sess = latency.session(path, dataclasses.replace(FAST, threads=2))
    opts = sess.get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    assert sess.get_providers() == ["CPUExecutionProvider"]


def test_fingerprint_describes_the_setup() -> None:
    fp = latency.fingerprint(FAST)
    assert fp.device == "cpu" and fp.provider == "CPUExecutionProvider"
    assert (fp.threads, fp.batch, fp.seq_len) == (1, 1, 32)
    assert fp.onnxruntime == ort.__version__ and fp.cores >= 1 and fp.hardware
    assert fp != latency.fingerprint(dataclasses.replace(FAST, seq_len=64))


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here"
)
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(ParetokdError, match="onnxruntime-gpu"):
        latency.fingerprint(dataclasses.replace(FAST, device="cuda"))


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(), reason="no CUDA provider"
)
def test_cuda_measurement_runs_on_the_gpu(tiny: tuple, tmp_path: Path) -> None:
    teacher, tok = tiny
    spec = dataclasses.replace(FAST, device="cuda")
    path = latency.export_onnx(teacher, tok.model_input_names, tmp_path / "t.onnx")
    assert latency.session(path, spec).get_providers()[0] == "CUDAExecutionProvider"
    assert latency.measure(path, spec, teacher.config.vocab_size).p50_ms > 0


# --- the protocol -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_onnx(tiny: tuple, tmp_path_factory: pytest.TempPathFactory) -> Path:
    teacher, tok = tiny
    path = tmp_path_factory.mktemp("onnx") / "t.onnx"
    return latency.export_onnx(teacher, tok.model_input_names, path, FAST)


def test_measure_reports_percentiles_and_a_ci(tiny_onnx: Path) -> None:
    stats = latency.measure(tiny_onnx, FAST)  # the vocabulary size is read from the graph
    assert stats.runs >= FAST.min_runs
    assert stats.min_ms is not None and stats.p99_ms is not None and stats.ci_ms is not None
    assert 0 < stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms
    assert stats.ci_ms[0] <= stats.p50_ms <= stats.ci_ms[1]
    assert stats.clock == "cpu" and stats.wall_p50_ms is not None and stats.wall_p50_ms > 0
    assert stats.seconds is not None and stats.measured_at is not None
    # Stored as JSON and read back, as studies and latency.json do.
    back = LatencyStats.from_json(json.loads(json.dumps(stats.to_json())))
    assert back == stats


def test_min_seconds_counts_time_on_the_chosen_clock(tiny_onnx: Path) -> None:
    for clock in ("cpu", "wall"):
        spec = dataclasses.replace(FAST, min_runs=1, min_seconds=0.15, clock=clock)
        stats = latency.measure(tiny_onnx, spec)
        assert stats.clock == clock
        assert stats.runs * stats.mean_ms >= 150


def test_blocks_slowed_by_other_load_are_dropped() -> None:
    calls = 0

    def run() -> None:  # 1 ms, but 3 ms for a stretch of runs, as when a neighbour is busy
        nonlocal calls
        calls += 1
        time.sleep(0.003 if 20 <= calls < 60 else 0.001)

    spec = dataclasses.replace(FAST, min_runs=20, min_seconds=0.15, clock="wall")
    timed = protocol._timed_runs(run, spec, on_cpu=False)
    kept = timed.kept_ms()
    assert len(kept) >= 20 and sum(kept) >= 150
    assert np.median(kept) < 1.5 and len(timed.wall_ms) - len(kept) >= 20
    assert protocol._quiet_blocks([[1.0, 1.1], [2.0, 2.2], [1.02]], 0.05) == [0, 2]
    assert protocol._quiet_blocks([[1.0], [2.0]], None) == [0, 1]


def test_timing_stops_at_max_seconds_on_a_machine_that_never_settles() -> None:
    calls = 0

    def run() -> None:  # every block slower than the last: no block ever counts as quiet
        nonlocal calls
        calls += 1
        time.sleep(0.0005 * (1 + calls // 5))

    spec = dataclasses.replace(FAST, min_runs=60, min_seconds=10.0, max_seconds=0.3)
    timed = protocol._timed_runs(run, spec, on_cpu=False)
    assert 0.3 <= timed.seconds < 1.0
    # The quietest blocks count, as many as the minimums need: here all of them.
    assert len(timed.kept_ms()) == len(timed.wall_ms)
    spec = dataclasses.replace(spec, min_runs=10, min_seconds=0.0)
    assert protocol._quietest_enough([[3.0] * 5, [1.0] * 5, [2.0] * 5], spec) == [1, 2]


def test_stats_stored_by_older_versions_still_load() -> None:
    old = {"p50_ms": 3.0, "p90_ms": 4.0, "mean_ms": 3.2, "runs": 25}
    stats = LatencyStats.from_json(old)
    assert stats.p99_ms is None and stats.ci_ms is None
    assert LatencyStats.from_json(stats.to_json()) == stats


@pytest.mark.parametrize(("n", "ranks"), [(3, (1, 3)), (6, (1, 6)), (20, (6, 15)), (100, (40, 61))])
def test_median_ci_uses_binomial_order_statistics(n: int, ranks: tuple[int, int]) -> None:
    values = np.arange(1, n + 1, dtype=float)  # the k-th order statistic is k
    assert latency.median_ci(values) == ranks


def test_median_ci_covers_the_median_at_its_level() -> None:
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        sample = np.sort(rng.lognormal(0.0, 0.3, size=30))  # true median 1.0
        lo, hi = latency.median_ci(sample)
        hits += lo <= 1.0 <= hi
    assert hits / 400 >= 0.93


def test_spinning_mode_and_optimisation_level_are_set(tiny_onnx: Path) -> None:
    sess = latency.session(tiny_onnx, FAST)
    opts = sess.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    spec = dataclasses.replace(
        FAST,
        spinning=True,
        graph_optimization="basic",
        execution_mode="parallel",
        inter_op_threads=2,
    )
    opts = latency.session(tiny_onnx, spec).get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert opts.execution_mode == ort.ExecutionMode.ORT_PARALLEL


def test_fingerprint_records_every_setting() -> None:
    fp = latency.fingerprint(FAST).to_json()
    assert {
        "hardware",
        "cores",
        "provider",
        "onnxruntime",
        "threads",
        "inter_op_threads",
        "spinning",
        "execution_mode",
        "graph_optimization",
        "graph",
        "clock",
        "batch",
        "seq_len",
    } <= set(fp)
    assert fp["clock"] == "cpu" and fp["graph"] == "torchscript-opset17-eager"
    for change in ({"spinning": True}, {"transformer_fusion": True}, {"threads": 2}):
        other = latency.fingerprint(dataclasses.replace(FAST, **change))
        assert other != latency.fingerprint(FAST), change


def test_clock_is_cpu_only_where_one_thread_does_the_work() -> None:
    assert latency.clock(FAST) == "cpu"
    assert latency.clock(dataclasses.replace(FAST, threads=2)) == "wall"
    assert latency.clock(dataclasses.replace(FAST, clock="wall")) == "wall"
    with pytest.raises(ParetokdError, match="clock cpu"):
        latency.clock(dataclasses.replace(FAST, threads=2, clock="cpu"))


# --- what is timed is what is shipped ----------------------------------------------


def test_export_restores_the_models_attention(tiny: tuple, tmp_path: Path) -> None:
    teacher, tok = tiny
    before = teacher.config._attn_implementation
    latency.export_onnx(teacher, tok.model_input_names, tmp_path / "t.onnx")
    assert teacher.config._attn_implementation == before


def test_export_leaves_the_model_in_eval_mode(
    tiny: tuple, tmp_path: Path, sentences: list[str]
) -> None:
    # The study exports its teacher to time it; a teacher left training afterwards
    # ran the finals' teacher pass with dropout on, so every final student was
    # distilled towards noisy targets.
    teacher, tok = tiny
    assert teacher.config.hidden_dropout_prob > 0
    batch = dict(tok(sentences[:4], padding=True, return_tensors="pt"))
    with torch.no_grad():
        before = teacher(**batch)[0]
    latency.export_onnx(teacher, tok.model_input_names, tmp_path / "t.onnx")
    assert not teacher.training
    with torch.no_grad():
        assert torch.equal(teacher(**batch)[0], before)


def test_transformer_fusion_fuses_attention_and_keeps_parity(
    tiny: tuple, tmp_path: Path, sentences: list[str]
) -> None:
    teacher, tok = tiny
    model = student.build(Arch(2, 64, 4, 128), teacher)
    spec = dataclasses.replace(FAST, transformer_fusion=True)
    path = latency.export_onnx(model, tok.model_input_names, tmp_path / "m.onnx", spec)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "Attention" in ops
    batch = dict(
        tok(sentences[:4], padding=True, truncation=True, max_length=40, return_tensors="pt")
    )
    assert latency.parity(model, path, batch, spec) < 1e-3
    assert latency.measure(path, spec).p50_ms > 0


# --- the host-wide lock ------------------------------------------------------------

_CHILD = """
import json, sys, time
from pathlib import Path
from paretokd import latency
from paretokd.config import LatencySpec

me, path, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
(ready / me).touch()
while len(list(ready.iterdir())) < 2:  # both imported: start together
    time.sleep(0.005)
stats = latency.measure(path, LatencySpec(seq_len=32, warmup_runs=1, min_runs=5, min_seconds=0.4))
print(json.dumps(stats.to_json()))
"""


def test_measurements_of_two_processes_never_overlap(tiny_onnx: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(i), str(tiny_onnx), str(ready)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    a, b = sorted(results, key=lambda r: r["measured_at"])
    assert a["measured_at"] + a["seconds"] <= b["measured_at"]
    # They did contend: the second waited for the first's timed runs.
    assert b["lock_wait_s"] >= 0.5 * a["seconds"]


def test_the_lock_is_exclusive_within_a_process_too() -> None:
    # flock locks belong to an open file, so a second open() in the same
    # process must wait as well (what keeps two workers of one run apart).
    import fcntl

    with (
        latency.host_lock(),
        open(latency.lock_path(), "a") as other,
        pytest.raises(BlockingIOError),
    ):
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(latency.lock_path(), "a") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


# --- the drift guard ---------------------------------------------------------------


def test_check_drift_compares_with_the_stored_p50(tiny_onnx: Path) -> None:
    p50 = latency.measure(tiny_onnx, FAST).p50_ms
    assert latency.check_drift(tiny_onnx, FAST, baseline_ms=p50 / 3).drifted
    assert not latency.check_drift(tiny_onnx, FAST, baseline_ms=p50, threshold=10.0).drifted


def test_a_drifting_machine_is_logged_and_recorded_on_the_study(
    tiny: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import optuna

    from paretokd.config import StudySpec
    from paretokd.models.teacher import from_model
    from paretokd.search import context, teacher_timing

    teacher, tok = tiny
    spec = StudySpec(latency=FAST)
    # Only the spec, the teacher and the workdir matter to the drift guard.
    unused = {f.name: None for f in dataclasses.fields(context.Context)}
    ctx = context.Context(
        **{
            **unused,
            "spec": spec,
            "teacher": from_model("tiny", teacher, tok),
            "workdir": tmp_path,
            "ladder": {},
        }
    )
    study = optuna.create_study(directions=["minimize", "minimize"])
    assert teacher_timing.check_drift(study, ctx) is False  # nothing stored yet: nothing to compare
    stats = teacher_timing.calibrate(study, ctx)
    top, *below = ctx.ladder["fp32"]
    assert top.name == "teacher" and top.ms == stats.p50_ms
    # Its rungs, each on the teacher's scale: their ratio to it, timed side by side.
    rungs = study.user_attrs["anchor_ladder"]
    expected = [r.id for r in paired.rungs(ctx.teacher.dims)]
    assert expected and [a.name for a in below] == list(rungs) == expected
    for anchor in below:
        timed = LatencyStats.from_json(rungs[anchor.name])
        assert timed.anchor == "teacher" and anchor.path.is_file()
        assert anchor.ms == timed.p50_ms == pytest.approx(timed.ratio * stats.p50_ms)
        assert anchor.ms < top.ms
    # The int8 ladder too: int8 graphs are paired with it, on its own scale.
    int8 = LatencyStats.from_json(study.user_attrs["teacher_latency_int8"])
    assert ctx.ladder["int8"][0].ms == int8.p50_ms > 0
    assert [a.name for a in ctx.ladder["int8"]] == [a.name for a in ctx.ladder["fp32"]]
    assert (tmp_path / "teacher.onnx").is_file()
    # A worker (or a rerun) reads the stored ladder instead of timing it again.
    fields = {**unused, "spec": spec, "teacher": ctx.teacher, "workdir": tmp_path, "ladder": {}}
    again = context.Context(**fields)
    teacher_timing.calibrate(study, again)
    assert again.ladder == ctx.ladder
    # The study says the teacher ran 3x faster than this machine runs it now.
    study.set_user_attr("teacher_latency", {**stats.to_json(), "p50_ms": stats.p50_ms / 3})
    with caplog.at_level("WARNING", logger="paretokd"):
        assert teacher_timing.check_drift(study, ctx, trial=7) is True
    assert "latency drift" in caplog.text
    (event,) = study.user_attrs["latency_drift"]
    assert event["drifted"] and event["after_trial"] == 7 and event["ratio"] > 1.1


# --- the cache ---------------------------------------------------------------------

ONE_ARCH_SPEC = """\
name: one
budgets: [1s]
trials: 3
data: {proxy_train: 32, proxy_eval: 16, max_length: 16}
space: {num_layers: [1, 1], hidden_size: [32], num_heads: [2], intermediate_size: [64],
  precision: [fp32]}
distill: {batch_size: 8, proxy_steps: 2, final_steps: 2}
latency: {seq_len: 32, warmup_runs: 1, rounds: 3, confirm_rounds: 4, calibration_rounds: 4,
  min_runs: 5, min_seconds: 0.02}
search: {sampler: random, population_size: 2}
"""


def test_an_architecture_is_measured_once_per_study_across_runs(
    tmp_path: Path, tiny_teacher_dir: Path, corpus_file: Path
) -> None:
    import optuna

    spec_file = tmp_path / "one.yaml"
    spec_file.write_text(ONE_ARCH_SPEC)
    out = tmp_path / "run"
    args = ["run", "--study", str(spec_file), "--teacher", str(tiny_teacher_dir)]
    args += ["--data", str(corpus_file), "--out", str(out), "--no-final", "--quiet"]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert CliRunner().invoke(main, [*args, "--trials", "4"]).exit_code == 0  # a second run

    study = optuna.load_study(study_name="one", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 4
    first, *later = sorted(trials, key=lambda t: t.number)
    assert "latency_s" in first.user_attrs["timings"]
    for t in later:
        assert t.user_attrs["cached_from"] == f"trial {first.number}"
        assert "latency_s" not in t.user_attrs["timings"]
        assert t.user_attrs["latency"] == first.user_attrs["latency"]
        assert t.values == first.values


# --- paretokd latency --------------------------------------------------------------


def _latency_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["latency", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


ARCH = '{"num_layers": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64}'
QUICK = ["--seq-len", "32", "--threads", "1", "--batch", "1"]


def test_latency_command_measures_an_architecture(tiny_teacher_dir: Path) -> None:
    code, out, err = _latency_cli(ARCH, "--teacher", str(tiny_teacher_dir), *QUICK)
    assert code == 0, err
    got = json.loads(out)
    assert got["kind"] == "architecture" and got["arch"]["num_layers"] == 2
    assert 0 < got["p50_ms"] <= got["p90_ms"] <= got["p99_ms"]
    assert got["ci_ms"][0] <= got["p50_ms"] <= got["ci_ms"][1]
    assert got["runs"] >= 20
    assert got["fingerprint"]["seq_len"] == 32 and got["fingerprint"]["threads"] == 1


def test_latency_command_measures_a_model_dir_and_an_onnx_file(
    tiny_teacher_dir: Path, tiny_onnx: Path, tiny_spec_file: Path
) -> None:
    code, out, err = _latency_cli(str(tiny_teacher_dir), "--study", str(tiny_spec_file))
    assert code == 0, err
    got = json.loads(out)
    assert got["kind"] == "model" and got["params"] > 0
    assert got["fingerprint"]["seq_len"] == 32  # from the study spec
    code, out, err = _latency_cli(str(tiny_onnx), "--seq-len", "16", "--batch", "2")
    assert code == 0, err
    got = json.loads(out)
    assert got["kind"] == "onnx" and got["fingerprint"]["batch"] == 2


@pytest.mark.parametrize(
    ("target", "flags", "message"),
    [
        ('{"num_layers": 2}', [], "not valid"),
        (
            '{"num_layers": 2, "hidden_size": 30, "num_heads": 4, "intermediate_size": 8}',
            [],
            "divisible",
        ),
        ("missing.onnx", [], "does not exist"),
        ("no-such-thing", [], "neither"),
        (ARCH, ["--seq-len", "4096"], "max_position_embeddings"),
        (ARCH, ["--threads", "0"], "threads"),
    ],
)
def test_latency_command_user_errors_are_one_line(
    tiny_teacher_dir: Path, target: str, flags: list[str], message: str
) -> None:
    code, out, err = _latency_cli(target, "--teacher", str(tiny_teacher_dir), *flags)
    assert code == 2 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here"
)
def test_latency_command_says_why_cuda_is_unavailable(tiny_onnx: Path) -> None:
    code, _, err = _latency_cli(str(tiny_onnx), "--device", "cuda")
    assert code == 2 and "onnxruntime-gpu" in err


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(), reason="no CUDA provider"
)
def test_cuda_measurement_binds_io_on_the_device(tiny_onnx: Path) -> None:
    spec = dataclasses.replace(FAST, device="cuda")
    stats = latency.measure(tiny_onnx, spec)
    assert stats.clock == "wall" and stats.p50_ms > 0
    assert latency.fingerprint(spec).provider == "CUDAExecutionProvider"
