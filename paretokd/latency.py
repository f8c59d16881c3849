"""ONNX export, ONNX–PyTorch parity, and latency measured in an ONNX Runtime session.

What is timed is what is shipped: the same exporter (:func:`export_onnx`, with
the study's :class:`~paretokd.config.LatencySpec`) writes the search-time
candidates and the final ``model.onnx``.

The protocol (:func:`measure`): a session with every setting that affects speed
set explicitly (threads, spinning, execution mode, graph optimisation level),
warm-up runs, then timed runs until both a minimum count and a minimum duration
are reached, under a host-wide lock so that two paretokd processes on one
machine never time at the same moment. It reports p50, p90, p99 and a 95%
confidence interval for p50 from order statistics, so every figure says how
noisy it was.

Two measures keep figures repeatable on a shared machine:

- The clock. The wall-clock time of a run mostly measures who else wants the
  core: with two busy processes on this project's 2-core machine a 5 ms student
  timed 16 ms (p50) and the 31 ms teacher 163 ms. Single-threaded CPU inference
  runs entirely on the calling thread, so its CPU time
  (``CLOCK_THREAD_CPUTIME_ID``) is the time the model holds a core, whoever else
  runs; it matched the wall clock within 1% on an idle machine and moved 6-8%
  under that load. It is the default (``clock: auto``) wherever it applies; the
  wall-clock p50 is recorded next to it to show the contention.
- Quiet blocks. Even in CPU time, a busy neighbour (shared caches, memory, the
  host) slows every run by 5-15% for a second or more at a time. Runs are timed
  in blocks of about 50 ms; blocks whose median is more than
  ``block_tolerance`` above the quietest block's are dropped (and counted), and
  timing goes on until the quiet blocks hold enough runs, or ``max_seconds``.
  On this machine, under other developers' load, that took the median
  coefficient of variation of p50 over repeated measurements from 6.9% to 1.9%
  (``bench/latency_stability.py``).
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import platform
import shutil
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from paretokd.config import LatencySpec, cache_dir
from paretokd.errors import ParetokdError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

try:  # POSIX only; elsewhere measurements are simply not serialised across processes.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_MODES = {
    "sequential": ort.ExecutionMode.ORT_SEQUENTIAL,
    "parallel": ort.ExecutionMode.ORT_PARALLEL,
}

OPSET = 17
EXPORT_ATTENTION = "eager"
"""Attention implementation the graph is exported with.

The eager (matmul + softmax) attention exports to a smaller graph than SDPA
(no NaN guards, fewer shape ops) and ran 3–4% faster in ONNX Runtime on CPU
(all-MiniLM-L6-v2, batch 1 x 128, 1 thread); it is also the form ONNX
Runtime's transformer optimizer recognises, should ``transformer_fusion`` be
switched on. The PyTorch model keeps its own implementation for training.
"""

CI_LEVEL = 0.95
"""Coverage of the confidence interval reported for p50."""


@dataclass(frozen=True)
class Fingerprint:
    """The hardware and settings a latency figure is only valid for."""

    device: str
    hardware: str
    """The CPU model, or the GPU name with ``device: cuda``."""
    cores: int
    provider: str
    onnxruntime: str
    threads: int
    inter_op_threads: int
    spinning: bool
    execution_mode: str
    graph_optimization: str
    graph: str
    """How the timed graph was made (exporter, opset, attention form, fusions)."""
    clock: str
    """``cpu`` (the model thread's CPU time) or ``wall``."""
    batch: int
    seq_len: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return asdict(self)

    @property
    def key(self) -> str:
        """A compact string that is equal exactly when two fingerprints are."""
        return "|".join(str(v) for v in asdict(self).values())


@dataclass(frozen=True)
class LatencyStats:
    """Latency statistics of one model, in milliseconds.

    The first four fields are what older studies stored; the others default so
    that those still load with ``LatencyStats(**stored)``.
    """

    p50_ms: float
    p90_ms: float
    mean_ms: float
    runs: int
    p99_ms: float | None = None
    ci_ms: tuple[float, float] | None = None
    """A 95% confidence interval for p50 (order statistics of the timed runs)."""
    min_ms: float | None = None
    seconds: float | None = None
    """Wall time of the timed runs (warm-up excluded)."""
    measured_at: float | None = None
    """Unix time at which the timed runs started."""
    lock_wait_s: float | None = None
    """Time spent waiting for another process's measurement to finish."""
    clock: str | None = None
    """What the figures above time: ``cpu`` or ``wall`` (see :func:`clock`)."""
    wall_p50_ms: float | None = None
    """The wall-clock p50 of every run: far above ``p50_ms`` when the core was shared."""
    runs_dropped: int | None = None
    """Timed runs left out because other load slowed their block (see :func:`measure`)."""

    def __post_init__(self) -> None:
        if self.ci_ms is not None:  # JSON gives a list back
            object.__setattr__(self, "ci_ms", (float(self.ci_ms[0]), float(self.ci_ms[1])))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        out = asdict(self)
        out["ci_ms"] = list(self.ci_ms) if self.ci_ms is not None else None
        return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_name() -> str:
    # onnxruntime-gpu works with the CPU build of torch, so torch may not see the GPU.
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name", "--format=csv,noheader", "--id=0"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
            if out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    return "unknown CUDA device"


def graph_kind(spec: LatencySpec) -> str:
    """A short description of the graph :func:`export_onnx` writes under ``spec``."""
    kind = f"torchscript-opset{OPSET}-{EXPORT_ATTENTION}"
    return kind + "+ort-fusion" if spec.transformer_fusion else kind


def _single_thread(spec: LatencySpec) -> bool:
    return spec.device == "cpu" and spec.threads == 1 and spec.execution_mode == "sequential"


def clock(spec: LatencySpec) -> str:
    """The clock runs are timed with: ``cpu`` where the model runs on the calling thread alone.

    Raises:
        ParetokdError: If ``spec`` asks for ``cpu`` where other threads do part of the work.
    """
    if spec.clock == "auto":
        return "cpu" if _single_thread(spec) else "wall"
    if spec.clock == "cpu" and not _single_thread(spec):
        raise ParetokdError(
            "latency.clock cpu times the calling thread only: it needs device cpu, threads 1 "
            "and execution_mode sequential; use clock wall (or auto) for this setup"
        )
    return spec.clock


def check_device(spec: LatencySpec) -> None:
    """Raise a clear error when ``spec`` asks for a provider this machine lacks.

    Raises:
        ParetokdError: If ``spec`` asks for CUDA and no CUDA provider is available.
    """
    provider = _PROVIDERS[spec.device]
    if provider not in ort.get_available_providers():
        raise ParetokdError(
            f"latency.device is {spec.device!r} but onnxruntime offers only "
            f"{', '.join(ort.get_available_providers())}; install onnxruntime-gpu on a CUDA "
            "machine, or measure with --device cpu"
        )


def fingerprint(spec: LatencySpec) -> Fingerprint:
    """Describe this machine and the measurement settings of ``spec``.

    Raises:
        ParetokdError: If ``spec`` asks for CUDA and no CUDA provider is available.
    """
    check_device(spec)
    clock(spec)
    return Fingerprint(
        device=spec.device,
        hardware=_gpu_name() if spec.device == "cuda" else _cpu_name(),
        cores=os.cpu_count() or 1,
        provider=_PROVIDERS[spec.device],
        onnxruntime=ort.__version__,
        threads=spec.threads,
        inter_op_threads=spec.inter_op_threads,
        spinning=spec.spinning,
        execution_mode=spec.execution_mode,
        graph_optimization=spec.graph_optimization,
        graph=graph_kind(spec),
        clock=clock(spec),
        batch=spec.batch,
        seq_len=spec.seq_len,
    )


# --- export and parity ---------------------------------------------------------
# torch is imported where it is used: timing an ONNX file needs only onnxruntime.


def _first_output(model: PreTrainedModel, input_names: list[str]) -> torch.nn.Module:
    """The model with positional inputs and one output: its first (``last_hidden_state``, or
    ``logits`` for a model with a task head), whatever the family."""
    import torch

    class FirstOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(input_names, inputs, strict=True)))[0]

    return FirstOutput()


@contextlib.contextmanager
def _attention(model: PreTrainedModel, implementation: str) -> Iterator[None]:
    previous = getattr(model.config, "_attn_implementation", None)
    try:
        model.set_attn_implementation(implementation)
    except (AttributeError, ValueError, ImportError):
        previous = None  # a family without switchable attention: export it as it is
    try:
        yield
    finally:
        if previous is not None and previous != implementation:
            model.set_attn_implementation(previous)


def export_onnx(
    model: PreTrainedModel,
    input_names: list[str],
    path: Path,
    spec: LatencySpec | None = None,
) -> Path:
    """Export ``model`` to ONNX with dynamic batch and sequence axes.

    Args:
        model: An encoder, bare or with a task head. The graph's one output is
            the model's first: ``last_hidden_state``, or the head's ``logits``. Its attention
            implementation is switched to :data:`EXPORT_ATTENTION` for the export
            and restored afterwards.
        input_names: The tokenizer's ``model_input_names`` (the inputs users will feed).
        path: Where to write the ``.onnx`` file.
        spec: The latency setup; with ``transformer_fusion`` the graph is
            rewritten by ONNX Runtime's transformer optimizer (fused attention,
            layer norms, GELU) for the model's heads and hidden size.
    """
    import torch

    model.eval()
    # Token type 1 does not exist in RoBERTa's one-row table: every input other
    # than the ids and the mask is zeros.
    example = {
        name: torch.ones(1, 8, dtype=torch.long)
        if name in ("input_ids", "attention_mask")
        else torch.zeros(1, 8, dtype=torch.long)
        for name in input_names
    }
    with torch.no_grad():
        output, value = next(iter(model(**example).items()))
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    # A sequence classifier's logits have no sequence axis.
    axes[output] = {0: "batch", 1: "sequence"} if value.dim() == 3 else {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad(), _attention(model, EXPORT_ATTENTION):
        # The TorchScript exporter takes about 1 s per student where the dynamo
        # exporter takes 5 s or more; over a study that is minutes. Its
        # deprecation warning is expected.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _first_output(model, input_names),
            tuple(example.values()),
            str(path),
            input_names=input_names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    if spec is not None and spec.transformer_fusion:
        _fuse(path, model, spec)
    return path


def _fuse(path: Path, model: PreTrainedModel, spec: LatencySpec) -> None:
    # Off by default: on CPU (1 thread, batch 1 x 128) the fused graph of
    # all-MiniLM-L6-v2 and of students ran 6-12% slower than ONNX Runtime's
    # own online optimisations of the plain graph. It is here for GPUs, where
    # the fused Attention kernel is the usual win.
    from onnxruntime.transformers.optimizer import optimize_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = optimize_model(
            str(path),
            model_type="bert",
            num_heads=model.config.num_attention_heads,
            hidden_size=model.config.hidden_size,
            use_gpu=spec.device == "cuda",
        )
    fused.save_model_to_file(str(path))


def parity(
    model: PreTrainedModel, path: Path, batch: dict[str, torch.Tensor], spec: LatencySpec
) -> float:
    """Largest absolute difference between PyTorch's and ONNX Runtime's outputs on ``batch``.

    The first output is compared (``last_hidden_state``, or a head's ``logits``),
    at padding positions too: both runtimes must agree everywhere.
    """
    import torch

    model.eval()
    with torch.no_grad():
        expected = model(**batch)[0].numpy()
    sess = session(path, spec)
    feed = {inp.name: batch[inp.name].numpy() for inp in sess.get_inputs()}
    got = sess.run(None, feed)[0]
    return float(np.abs(got - expected).max())


# --- sessions ---------------------------------------------------------------------


def session(path: Path, spec: LatencySpec) -> ort.InferenceSession:
    """An ONNX Runtime session with every setting that affects speed set explicitly.

    Raises:
        ParetokdError: If the requested provider is missing or silently fell back to another.
    """
    check_device(spec)
    options = ort.SessionOptions()
    options.intra_op_num_threads = spec.threads
    options.inter_op_num_threads = spec.inter_op_threads
    options.execution_mode = _MODES[spec.execution_mode]
    options.graph_optimization_level = _OPT_LEVELS[spec.graph_optimization]
    # Spinning workers burn a core while they wait for work; on a shared
    # machine that steals time from (and is disturbed by) other processes.
    spin = "1" if spec.spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    provider = _PROVIDERS[spec.device]
    sess = ort.InferenceSession(str(path), options, providers=[provider])
    if sess.get_providers()[0] != provider:
        raise ParetokdError(f"onnxruntime fell back from {provider} to {sess.get_providers()[0]}")
    return sess


def onnx_vocab_size(path: Path) -> int | None:
    """The vocabulary size of the embedding that ``input_ids`` indexes, read from the graph."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dims = {init.name: list(init.dims) for init in graph.initializer}
    for node in graph.node:
        if "input_ids" in node.input:
            for name in node.input:
                if len(dims.get(name, [])) == 2:
                    return int(dims[name][0])
    return None


def _timing_inputs(
    sess: ort.InferenceSession, spec: LatencySpec, vocab_size: int
) -> dict[str, np.ndarray]:
    # Token ids do not change the work an encoder does; fixed random ones keep
    # every measurement identical.
    rng = np.random.default_rng(0)
    shape = (spec.batch, spec.seq_len)
    feed: dict[str, np.ndarray] = {}
    for inp in sess.get_inputs():
        if inp.name == "input_ids":
            feed[inp.name] = rng.integers(0, vocab_size, size=shape, dtype=np.int64)
        elif inp.name == "attention_mask":
            feed[inp.name] = np.ones(shape, dtype=np.int64)
        else:
            feed[inp.name] = np.zeros(shape, dtype=np.int64)
    return feed


def _runner(
    sess: ort.InferenceSession, feed: dict[str, np.ndarray], spec: LatencySpec
) -> Callable[[], None]:
    """One inference, as a deployment would run it on ``spec.device``."""
    if spec.device == "cpu":
        return lambda: sess.run(None, feed)
    # On a GPU, copying inputs in and outputs out each run would time PCIe
    # transfers, not the model: inputs live on the device, bound once, and
    # outputs are allocated there.
    binding = sess.io_binding()
    on_device = [ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0) for arr in feed.values()]
    for name, value in zip(feed, on_device, strict=True):
        binding.bind_ortvalue_input(name, value)
    for out in sess.get_outputs():
        binding.bind_output(out.name, "cuda", 0)
    binding.synchronize_inputs()

    def run() -> None:
        sess.run_with_iobinding(binding)
        binding.synchronize_outputs()
        _ = on_device  # keep the device buffers alive as long as the binding

    return run


# --- the host-wide lock -------------------------------------------------------------


def lock_path() -> Path:
    """The file every paretokd process on this host locks while it times a model."""
    return cache_dir() / "latency.lock"


@contextlib.contextmanager
def host_lock() -> Iterator[Callable[[], float]]:
    """Hold the host-wide measurement lock; yields a function giving the seconds waited.

    ``flock`` is released by the kernel when the holder dies, so a killed
    worker never leaves the lock stuck.
    """
    start = time.perf_counter()
    if fcntl is None:  # pragma: no cover
        yield lambda: 0.0
        return
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        waited = time.perf_counter() - start
        try:
            yield lambda: waited
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- the protocol ---------------------------------------------------------------------


def median_ci(sorted_ms: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """A distribution-free confidence interval for the median of ``sorted_ms``.

    The number of runs below the true median is Binomial(n, 1/2), so
    ``[x_(l), x_(n-l+1)]`` covers it with probability ``1 - 2 P(B <= l-1)``;
    ``l`` is the largest rank keeping that at or above ``level``. With too few
    runs for the level, the interval is ``[min, max]``.
    """
    n = len(sorted_ms)
    tail = (1.0 - level) / 2.0
    log_half = n * math.log(0.5)
    lgn = math.lgamma(n + 1)
    cumulative, rank = 0.0, 0
    for k in range(n):
        cumulative += math.exp(lgn - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half)
        if cumulative > tail:
            break
        rank = k + 1
    rank = max(rank, 1)
    return float(sorted_ms[rank - 1]), float(sorted_ms[n - rank])


def summarise(times_ms: list[float] | np.ndarray, **extra: Any) -> LatencyStats:
    """:class:`LatencyStats` of the timed runs ``times_ms``."""
    arr = np.sort(np.asarray(times_ms, dtype=float))
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return LatencyStats(
        p50_ms=float(p50),
        p90_ms=float(p90),
        mean_ms=float(arr.mean()),
        runs=len(arr),
        p99_ms=float(p99),
        ci_ms=median_ci(arr),
        min_ms=float(arr[0]),
        **extra,
    )


BLOCK_SECONDS = 0.05
BLOCK_MIN_RUNS = 5
"""Runs are grouped into blocks of at least this many runs and this much timed time."""


@dataclass
class _Timed:
    blocks: list[list[float]] = field(default_factory=list)
    """Each run's time on the chosen clock, in ms, block by block."""
    wall_ms: list[float] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    """Indices of the blocks that count (see :func:`_quiet_blocks`)."""
    started: float = 0.0
    seconds: float = 0.0

    def kept_ms(self) -> list[float]:
        return [t for i in self.kept for t in self.blocks[i]]


def _quiet_blocks(blocks: list[list[float]], tolerance: float | None) -> list[int]:
    """The blocks whose median is within ``tolerance`` of the quietest block's median.

    Other load on the machine (a neighbour on the shared caches, memory or host)
    slows every run for a second or more at a time; within a block of about
    50 ms, runs are either all disturbed or all not, so a disturbed block's
    median stands out from the quietest one.
    """
    if tolerance is None:
        return list(range(len(blocks)))
    medians = [float(np.median(b)) for b in blocks]
    limit = min(medians) * (1.0 + tolerance)
    return [i for i, m in enumerate(medians) if m <= limit]


def _quietest_enough(blocks: list[list[float]], spec: LatencySpec) -> list[int]:
    """The quietest blocks (lowest median first) that together hold both minimums."""
    chosen: list[int] = []
    runs, total = 0, 0.0
    for i in sorted(range(len(blocks)), key=lambda i: float(np.median(blocks[i]))):
        chosen.append(i)
        runs, total = runs + len(blocks[i]), total + sum(blocks[i])
        if runs >= spec.min_runs and total >= 1000.0 * spec.min_seconds:
            break
    return sorted(chosen)


def _timed_runs(run: Callable[[], None], spec: LatencySpec, on_cpu: bool) -> _Timed:
    """Time blocks of runs until the quiet ones hold ``min_runs`` runs and ``min_seconds``.

    Time is counted on the chosen clock, not elapsed, so the number of runs
    does not depend on how busy the machine is. After ``max_seconds`` elapsed
    (and at least ``min_runs`` runs) timing stops anyway, and the quietest
    blocks that together hold both minimums count.
    """
    out = _Timed(started=time.time())
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a timed run is noise, not the model
    try:
        start = time.perf_counter()
        while True:
            block: list[float] = []
            block_seconds = 0.0
            while len(block) < BLOCK_MIN_RUNS or block_seconds < BLOCK_SECONDS:
                c0, w0 = time.thread_time(), time.perf_counter()
                run()
                wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
                taken = cpu if on_cpu else wall
                block.append(taken * 1000.0)
                block_seconds += taken
                out.wall_ms.append(wall * 1000.0)
            out.blocks.append(block)
            out.kept = _quiet_blocks(out.blocks, spec.block_tolerance)
            kept = out.kept_ms()
            if len(kept) >= spec.min_runs and sum(kept) >= 1000.0 * spec.min_seconds:
                break
            elapsed = time.perf_counter() - start
            if elapsed >= spec.max_seconds and len(out.wall_ms) >= spec.min_runs:
                out.kept = _quietest_enough(out.blocks, spec)
                break
        out.seconds = time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return out


def measure(path: Path, spec: LatencySpec, vocab_size: int | None = None) -> LatencyStats:
    """Time the ONNX model at ``path`` under ``spec``'s protocol.

    The session is built first (graph optimisation is not timed). Then, under
    the host-wide lock: ``warmup_runs`` untimed runs, then timed runs in blocks
    of about 50 ms on the clock :func:`clock` picks, until the blocks not slowed
    by other load hold ``min_runs`` runs and ``min_seconds`` of time (or
    ``max_seconds`` have passed). The statistics are those of the runs in
    those blocks; ``runs_dropped`` counts the others, and ``wall_p50_ms`` is
    the wall-clock p50 of every run.

    Args:
        path: The ``.onnx`` file.
        spec: The latency setup.
        vocab_size: Upper bound of the random token ids; read from the graph when omitted.

    Raises:
        ParetokdError: If the device is unavailable or the provider fell back.
    """
    which = clock(spec)
    sess = session(path, spec)
    if vocab_size is None:
        vocab_size = onnx_vocab_size(path) or 1
    run = _runner(sess, _timing_inputs(sess, spec, vocab_size), spec)
    with host_lock() as waited:
        for _ in range(spec.warmup_runs):
            run()
        timed = _timed_runs(run, spec, on_cpu=which == "cpu")
    kept = timed.kept_ms()
    return summarise(
        kept,
        seconds=timed.seconds,
        measured_at=timed.started,
        lock_wait_s=waited(),
        clock=which,
        wall_p50_ms=float(np.median(timed.wall_ms)),
        runs_dropped=len(timed.wall_ms) - len(kept),
    )


def measure_model(
    model: PreTrainedModel, input_names: list[str], spec: LatencySpec, path: Path
) -> LatencyStats:
    """Export ``model`` to ``path`` (as :func:`export_onnx` ships it) and time it there."""
    export_onnx(model, input_names, path, spec)
    return measure(path, spec, model.config.vocab_size)


# --- drift -------------------------------------------------------------------------------

DRIFT_THRESHOLD = 0.10
"""Relative change of the reference model's p50 that counts as the machine drifting."""


@dataclass(frozen=True)
class DriftCheck:
    """One re-measurement of the reference model against its stored p50."""

    baseline_ms: float
    p50_ms: float
    ci_ms: tuple[float, float] | None
    threshold: float
    at: float = field(default_factory=time.time)

    @property
    def ratio(self) -> float:
        """Current p50 over the stored one (above 1: the machine got slower)."""
        return self.p50_ms / self.baseline_ms

    @property
    def drifted(self) -> bool:
        """Whether the change exceeds the threshold."""
        return abs(self.ratio - 1.0) > self.threshold

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {
            "baseline_ms": self.baseline_ms,
            "p50_ms": self.p50_ms,
            "ci_ms": list(self.ci_ms) if self.ci_ms else None,
            "ratio": self.ratio,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "at": self.at,
        }


def check_drift(
    reference: Path,
    spec: LatencySpec,
    baseline_ms: float,
    vocab_size: int | None = None,
    threshold: float = DRIFT_THRESHOLD,
) -> DriftCheck:
    """Re-measure the reference model at ``reference`` and compare with ``baseline_ms``."""
    stats = measure(reference, spec, vocab_size)
    return DriftCheck(baseline_ms, stats.p50_ms, stats.ci_ms, threshold)
