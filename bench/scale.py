"""Scale benchmark: what a study costs, measured piece by piece on this CPU, and projected.

Run by hand from the repository root (about 15 minutes on 2 CPU cores, over 10 of them
for the XLM-R-sized teacher):

    .venv/bin/python bench/scale.py

For each teacher size, in a fresh process (so its peak memory is its own):

- ``minilm``: the real default teacher, all-MiniLM-L6-v2 (6 layers, 384 wide);
- ``bert-base``: a BERT-base-sized encoder (12 layers, 768 wide, 12 heads, FFN
  3072, vocabulary 30522) built from a ``BertConfig``;
- ``xlmr-base``: an XLM-R-base-sized one (the same, vocabulary 250002) built
  from an ``XLMRobertaConfig``.

The two built teachers have random weights: only their cost is measured. All
three read the built-in corpus through all-MiniLM-L6-v2's tokenizer, which is
BERT-base's own vocabulary; XLM-R's sentencepiece tokenizer is not installed,
so its texts are WordPiece tokens (ids within its vocabulary, without token
type ids as XLM-R's tokenizer gives), and its token counts per text differ
somewhat from what the real tokenizer would give.

Each process runs the study's own calls, timed one by one, on the default spec
with a reduced proxy set (``--proxy-train``, ``--proxy-eval``) and the space
derived from its teacher:

- once per study: loading the teacher, ``search.context.prepare`` (the
  teacher's outputs on the proxy texts and the slicing), the teacher's export,
  its int8 graph, their calibration, the quantised teacher, one drift check;
- per trained architecture, for three students spread over the space (the
  smallest, the middle of every dimension, and the hand-crafted reference, the
  teacher with every other layer), what a trial and its int8 sibling do:
  build, export, paired timing, proxy distillation (training, then the
  held-out loss), then the int8 graph: export, quantisation, paired timing,
  and its held-out loss in ONNX Runtime (``context.graph_scores``);
- the peak resident memory of each phase (Linux ``VmHWM``, reset per phase).

The parent process then projects a whole study from those figures: its cost
against the trial count, the proxy set's size and the teacher's size, on this
CPU and on one GPU. On a machine with a GPU, each teacher is measured a second
time training there (``distill.device: cuda``) and the GPU figures are those
measurements. Without one they are a projection: ``distill.device: auto``
trains on a GPU when it finds one, so the teacher's outputs and the
distillations' training steps (and the finals' held-out scorings during
training) are projected from the FLOPs
counted in the measured work at an assumed sustained GPU throughput
(``--gpu-tflops``), plus a fixed cost per batch or step (``--gpu-batch-ms``:
kernel launches, Python) and the optimizer's memory traffic (``--gpu-tbps``).
Export, quantisation, every timing, the held-out losses after training and the
ranking of the teacher's FFN units stay on the CPU, as paretokd runs them:
latency is measured on the serving CPU.

``--project-only`` reprints the projection from the measurements saved in
``--out`` (change the GPU assumptions without measuring again).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    PretrainedConfig,
    PreTrainedModel,
    XLMRobertaConfig,
)

from paretokd import config, distill, latency
from paretokd.config import StudySpec
from paretokd.distill import device as devices
from paretokd.distill import final
from paretokd.distill.targets import Batch
from paretokd.latency.graph import reduce_precision
from paretokd.logs import quiet_libraries
from paretokd.models import data, student
from paretokd.models import teacher as teacher_mod
from paretokd.models.teacher import Teacher
from paretokd.records import FP32, Arch
from paretokd.search import context, reference, space, teacher_timing
from paretokd.search.context import Context
from paretokd.search.reference import handcrafted_arch

ROOT = Path(__file__).resolve().parents[1]
TEACHERS = {
    "minilm": "all-MiniLM-L6-v2 (real weights)",
    "bert-base": "BERT-base size (BertConfig, random weights)",
    "xlmr-base": "XLM-R-base size (XLMRobertaConfig, random weights)",
}
"""The teacher sizes measured, each in a process of its own."""
BASE_SIZES: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
}
BASE_FFN = 3072
VOCAB = {"bert-base": 30522, "xlmr-base": 250002}
OPTIMIZER_BYTES_PER_PARAM = 32
"""AdamW's memory traffic per trained parameter and step on a GPU: the parameter,
its gradient and two moments read, three written, plus clipping's read of the gradient."""


@dataclass
class ArchCost:
    """One trained architecture's pieces, in seconds, as a trial and its int8 sibling pay them."""

    arch: str
    params: int
    build_s: float
    export_s: float
    timing_s: float
    """Paired timing of the fp32 graph with the teacher (``latency.rounds`` rounds)."""
    train_s: float
    """The proxy distillation's training steps."""
    eval_s: float
    """The held-out loss on the proxy eval texts, in PyTorch."""
    int8_export_s: float
    quantise_s: float
    int8_timing_s: float
    int8_score_s: float
    """``context.graph_scores``: the int8 graph's held-out loss in ONNX Runtime."""
    train_flops: float
    eval_flops: float
    trained_params: int
    """The student's and the distillation's projections' parameters (AdamW updates them all)."""
    steps: int
    """The proxy distillation's steps."""
    peak_rss_mb: float

    @property
    def step_s(self) -> float:
        """One training step, on this CPU."""
        return self.train_s / self.steps


@dataclass
class Measured:
    """What one teacher's process measured."""

    teacher: str
    dims: str
    params: int
    layers: int
    hidden: int
    n_train: int
    n_eval: int
    n_full_train: int
    train_batches: int
    eval_batches: int
    batch_size: int
    max_length: int
    proxy_steps: int
    final_steps: int
    rounds: int
    confirm_rounds: int
    timing_threads: int
    budgets: int
    trials: int
    tokens_per_text: float
    """Padded tokens per proxy text (as batched: texts of similar length together)."""
    trained_on: str
    """Where the teacher's outputs and the distillations ran (``distill.device``)."""
    final_evals: int
    """Held-out scorings during each final distillation (``distill.final_eval_every``), on
    the training device; one more follows on the CPU."""
    load_s: float
    prepare_s: float
    prepare_flops: float
    unit_flops: float
    """The teacher's pass over the proxy train texts: on a CPU it also ranks the FFN units;
    with the outputs on a GPU, the CPU teacher runs it again for them (``student.unit_orders``)."""
    outputs_bytes: int
    """The teacher's kept outputs on the proxy texts (every layer's states, fp16)."""
    anchor_export_s: float
    teacher_quantise_s: float
    """Quantising the teacher's graph: ``context.anchor_onnx(ctx, "int8")``."""
    calibrate_s: float
    quantised_teacher_s: float
    drift_s: float
    rss_mb: dict[str, float]
    """Peak resident memory per phase; ``process``: the whole process (ru_maxrss)."""
    archs: list[ArchCost] = field(default_factory=list)

    @staticmethod
    def from_json(raw: dict[str, Any]) -> Measured:
        archs = [ArchCost(**a) for a in raw.pop("archs")]
        return Measured(**raw, archs=archs)


# --- measuring (the child process) -----------------------------------------------------


def _rss_peak_mb(reset: bool = False) -> float:
    """This process's peak resident set since the last reset (Linux ``VmHWM``), in MiB."""
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    peak = int(found.group(1)) / 1024 if found else math.nan
    if reset:
        with contextlib.suppress(OSError):  # resets VmHWM to the current resident set
            Path("/proc/self/clear_refs").write_text("5")
    return peak


def _teacher(kind: str) -> Teacher:
    """The teacher of ``kind``: the real MiniLM, or a base-sized one built from a config."""
    spec = config.load(None)
    if kind == "minilm":
        return teacher_mod.load(spec.teacher, spec.task)
    source = teacher_mod.resolve(spec.teacher.name)
    if kind == "bert-base":
        tokenizer = AutoTokenizer.from_pretrained(source)
        cfg: PretrainedConfig = BertConfig(
            vocab_size=VOCAB[kind], intermediate_size=BASE_FFN, **BASE_SIZES
        )
    else:
        # XLM-R's tokenizer gives no token type ids; its positions count from pad + 1.
        tokenizer = AutoTokenizer.from_pretrained(
            source, model_input_names=["input_ids", "attention_mask"]
        )
        cfg = XLMRobertaConfig(
            vocab_size=VOCAB[kind],
            intermediate_size=BASE_FFN,
            max_position_embeddings=514,
            type_vocab_size=1,
            layer_norm_eps=1e-5,
            pad_token_id=tokenizer.pad_token_id,
            **BASE_SIZES,
        )
    torch.manual_seed(0)
    return teacher_mod.from_model(kind, AutoModel.from_config(cfg), tokenizer)


def _encoder_flops(layers: int, hidden: int, ffn: int, batches: list[Batch]) -> float:
    """Forward FLOPs of an encoder on ``batches``: the projections, the FFN and attention."""
    total = 0.0
    for b in batches:
        rows, length = b["input_ids"].shape
        tokens = rows * length
        per_layer = 8 * hidden**2 * tokens + 4 * hidden * ffn * tokens
        per_layer += 4 * rows * length**2 * hidden  # scores and the weighted sum
        total += layers * per_layer
    return total


def _students(spec: StudySpec, teacher: Teacher) -> list[Arch]:
    """Three fp32 students of the resolved space: smallest, middle, and the reference."""
    archs = [a for a in space.all_archs(spec.space) if a.precision == FP32]
    g = space.grid(spec.space)
    lo, hi = g.num_layers
    small = min(archs, key=lambda a: (a.num_layers, a.hidden_size, a.intermediate_size))
    middle = next(
        a
        for a in archs
        if a.num_layers == (lo + hi) // 2
        and a.hidden_size == g.hidden_size[len(g.hidden_size) // 2]
        and a.intermediate_size == g.intermediate_size[len(g.intermediate_size) // 2]
    )
    return [small, middle, handcrafted_arch(teacher)]


def _measure_arch(arch: Arch, ctx: Context) -> ArchCost:
    """One trained architecture, through the calls a trial and its int8 sibling make."""
    spec, names = ctx.spec, ctx.teacher.tokenizer.model_input_names
    _rss_peak_mb(reset=True)
    t: dict[str, float] = {}

    def lap(key: str, start: float) -> float:
        t[key] = time.perf_counter() - start
        return time.perf_counter()

    start = time.perf_counter()
    model = context.build_student(arch, ctx)
    start = lap("build", start)
    # context.time_student, in its two parts: export, then the paired timing.
    with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp:
        path = latency.export_onnx(model, names, Path(tmp) / "m.onnx", spec.latency)
        start = lap("export", start)
        context.time_onnx(reduce_precision(path, FP32), ctx, FP32)
        start = lap("timing", start)
    done = context.proxy_distill(model, ctx)
    start = lap("distill", start)
    # trial.add_siblings: the trained student's int8 graph, timed, then scored.
    with context.student_graphs(done.model, ctx) as graphs:
        graphs.path(FP32)
        start = lap("int8_export", start)
        graphs.path("int8")
        start = lap("quantise", start)
        graphs.time("int8")
        start = lap("int8_timing", start)
        context.graph_scores(done, graphs, "int8")
        lap("int8_score", start)

    train_flops, eval_flops = _student_flops(model, ctx)
    dims = student.sizes(model.config)
    width = ctx.teacher.dims.hidden_size
    steps = done.result.steps
    trained = student.count_params(model) + dims.num_layers * (dims.hidden_size * width + width)
    return ArchCost(
        arch=arch.id,
        params=student.count_params(model),
        build_s=t["build"],
        export_s=t["export"],
        timing_s=t["timing"],
        train_s=done.result.seconds,
        eval_s=t["distill"] - done.result.seconds,
        int8_export_s=t["int8_export"],
        quantise_s=t["quantise"],
        int8_timing_s=t["int8_timing"],
        int8_score_s=t["int8_score"],
        train_flops=train_flops * steps,
        eval_flops=eval_flops,
        trained_params=trained,
        steps=steps,
        peak_rss_mb=_rss_peak_mb(),
    )


def _student_flops(model: PreTrainedModel, ctx: Context) -> tuple[float, float]:
    """FLOPs of one training step (a mean batch: forward and backward, 3x the forward, with
    the projections into the teacher's width) and of the held-out loss on the eval texts."""
    d = student.sizes(model.config)
    width = ctx.teacher.dims.hidden_size
    train, held_out = ctx.proxy_train.batches, ctx.proxy_eval.batches
    step = _encoder_flops(d.num_layers, d.hidden_size, d.intermediate_size, train)
    step += d.num_layers * 2 * d.hidden_size * width * _tokens(train)
    evaluation = _encoder_flops(d.num_layers, d.hidden_size, d.intermediate_size, held_out)
    evaluation += 2 * d.hidden_size * width * _tokens(held_out)  # the last layer's map only
    return 3 * step / len(train), evaluation


def _tokens(batches: list[Batch]) -> int:
    return sum(int(b["input_ids"].numel()) for b in batches)


def _study_spec(teacher: Teacher, args: argparse.Namespace) -> StudySpec:
    """The default spec with the reduced proxy set, its space derived from ``teacher``."""
    spec = config.load(None)
    sizes = {"proxy_train": args.proxy_train, "proxy_eval": args.proxy_eval}
    spec = dataclasses.replace(spec, data=dataclasses.replace(spec.data, **sizes))
    recipe: dict[str, Any] = {"device": args.device}
    if args.proxy_steps:
        recipe["proxy_steps"] = args.proxy_steps
    spec = dataclasses.replace(spec, distill=dataclasses.replace(spec.distill, **recipe))
    return space.resolve(spec, teacher.dims)


def _warm_up(teacher: Teacher, texts: list[data.Text], spec: StudySpec) -> None:
    """One forward pass, so the teacher's outputs are timed without PyTorch's first-call cost."""
    batches, _ = distill.make_batches(
        texts[: spec.distill.batch_size],
        teacher.tokenizer,
        spec.distill.batch_size,
        spec.data.max_length,
    )
    with torch.no_grad():
        teacher.model(**batches[0])


def _teacher_once(ctx: Context) -> dict[str, float]:
    """Seconds of what a study does once with its teacher's graph, in the search's order."""
    study = optuna.create_study()  # in memory: holds the study's user attributes
    steps = {
        "export": lambda: context.anchor_onnx(ctx),
        "quantise": lambda: context.anchor_onnx(ctx, "int8"),
        "calibrate": lambda: teacher_timing.calibrate(study, ctx),
        "quantised": lambda: reference.measure_quantized_teacher(study, ctx),
        "drift": lambda: teacher_timing.check_drift(study, ctx),
    }
    out = {}
    for key, call in steps.items():
        start = time.perf_counter()
        call()
        out[key] = time.perf_counter() - start
    return out


def measure(kind: str, args: argparse.Namespace) -> Measured:
    """Time a study's pieces for the teacher ``kind`` in this process."""
    torch.set_num_threads(os.cpu_count() or 1)  # as search.loop sets it for one worker
    rss: dict[str, float] = {"start": _rss_peak_mb(reset=True)}
    start = time.perf_counter()
    teacher = _teacher(kind)
    spec = _study_spec(teacher, args)
    splits = data.load_splits(spec.data, spec.seed, config.cache_dir())
    _warm_up(teacher, splits.proxy_train, spec)
    load_s = time.perf_counter() - start
    rss["teacher"] = _rss_peak_mb(reset=True)
    print(
        f"[{kind}] {teacher.dims.id}, {teacher.params / 1e6:.0f} M parameters, "
        f"loaded in {load_s:.1f} s; space: {space.describe(spec.space)}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ctx = context.prepare(spec, teacher, splits, Path(tmp), latency.fingerprint(spec.latency))
        prepare_s = time.perf_counter() - start
        rss["teacher outputs"] = _rss_peak_mb(reset=True)
        kept = sum(
            s.numel() * s.element_size()
            for targets in (ctx.proxy_train, ctx.proxy_eval)
            for i in range(len(targets))
            for s in targets[i].states
        )
        print(
            f"[{kind}] teacher outputs on {len(splits.proxy_train)} + "
            f"{len(splits.proxy_eval)} texts: {prepare_s:.1f} s, kept {kept / 2**20:.0f} MiB",
            flush=True,
        )
        once = _teacher_once(ctx)
        rss["teacher graph"] = _rss_peak_mb(reset=True)
        print(
            f"[{kind}] teacher export {once['export']:.1f} s, int8 {once['quantise']:.1f} s, "
            f"calibration "
            f"{once['calibrate']:.1f} s, quantised teacher {once['quantised']:.1f} s, "
            f"drift check {once['drift']:.1f} s",
            flush=True,
        )
        costs = []
        for arch in _students(spec, teacher):
            costs.append(_measure_arch(arch, ctx))
            _print_arch(kind, costs[-1])
        rss["trials"] = max(c.peak_rss_mb for c in costs)
    rss["process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    d = teacher.dims
    train_b, eval_b = ctx.proxy_train.batches, ctx.proxy_eval.batches
    # prepare runs the teacher once over the proxy train texts (its outputs, which
    # rank the FFN units in the same pass on a CPU) and once over the eval texts.
    unit_flops = _encoder_flops(d.num_layers, d.hidden_size, d.intermediate_size, train_b)
    flops = unit_flops + _encoder_flops(d.num_layers, d.hidden_size, d.intermediate_size, eval_b)
    every = getattr(spec.distill, "final_eval_every", 0)
    return Measured(
        teacher=kind,
        dims=d.id,
        params=teacher.params,
        layers=d.num_layers,
        hidden=d.hidden_size,
        n_train=len(splits.proxy_train),
        n_eval=len(splits.proxy_eval),
        n_full_train=len(splits.full_train),
        train_batches=len(train_b),
        eval_batches=len(eval_b),
        batch_size=spec.distill.batch_size,
        max_length=spec.data.max_length,
        proxy_steps=spec.distill.proxy_steps,
        final_steps=spec.distill.final_steps,
        rounds=spec.latency.rounds,
        confirm_rounds=spec.latency.confirm_rounds,
        timing_threads=spec.latency.threads,
        budgets=len(spec.budgets),
        trials=spec.trials,
        tokens_per_text=(_tokens(train_b) + _tokens(eval_b))
        / (len(splits.proxy_train) + len(splits.proxy_eval)),
        trained_on=devices.describe(devices.resolve(spec.distill.device)),
        final_evals=math.ceil(spec.distill.final_steps / every) if every else 0,
        load_s=load_s,
        prepare_s=prepare_s,
        prepare_flops=flops,
        unit_flops=unit_flops,
        outputs_bytes=kept,
        anchor_export_s=once["export"],
        teacher_quantise_s=once["quantise"],
        calibrate_s=once["calibrate"],
        quantised_teacher_s=once["quantised"],
        drift_s=once["drift"],
        rss_mb=rss,
        archs=costs,
    )


def _print_arch(kind: str, c: ArchCost) -> None:
    int8 = c.int8_export_s + c.quantise_s + c.int8_timing_s
    print(
        f"[{kind}] {c.arch:<20} build {c.build_s:.1f} s, export {c.export_s:.1f} s, timing "
        f"{c.timing_s:.1f} s, training {c.train_s:.1f} s, held-out {c.eval_s:.1f} s, int8 "
        f"{int8:.1f} + {c.int8_score_s:.1f} s, peak {c.peak_rss_mb:.0f} MiB",
        flush=True,
    )


# --- projecting (pure) -----------------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    """The assumptions behind the GPU projection."""

    tflops: float
    batch_ms: float
    tbps: float

    def seconds(self, flops: float, batches: float, optimizer_bytes: float = 0.0) -> float:
        """FLOPs at the sustained throughput, plus the per-batch cost and AdamW's traffic."""
        return (
            flops / (self.tflops * 1e12)
            + batches * self.batch_ms / 1e3
            + optimizer_bytes / (self.tbps * 1e12)
        )


@dataclass(frozen=True)
class Cost:
    """A study's cost, in seconds, by part."""

    fixed: float
    """Loading, the teacher's outputs, export, calibration, the quantised teacher."""
    reference: float
    trials: float
    confirm: float
    finals: float

    @property
    def search(self) -> float:
        """Everything before the finals."""
        return self.fixed + self.reference + self.trials + self.confirm

    @property
    def total(self) -> float:
        return self.search + self.finals


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def teacher_outputs_s(m: Measured, n_train: int, n_eval: int, gpu: Gpu | None) -> float:
    """``context.prepare`` on ``n_train`` + ``n_eval`` texts (linear in the teacher's passes).

    On a GPU, the teacher's outputs run there; the pass ranking its FFN units
    is then one more over the train texts on the CPU teacher, at the rate this CPU had.
    """
    scale = (n_train + n_eval) / (m.n_train + m.n_eval)
    if gpu is None:
        return m.prepare_s * scale
    on_cpu = m.prepare_s * m.unit_flops / m.prepare_flops * n_train / m.n_train
    batches = (n_train + n_eval) / m.batch_size
    return on_cpu + gpu.seconds(m.prepare_flops * scale, batches)


def arch_s(a: ArchCost, m: Measured, n_eval: int, gpu: Gpu | None) -> float:
    """One trained architecture with its int8 sibling: the CPU's parts, and the training."""
    eval_scale = n_eval / m.n_eval
    cpu = a.build_s + a.export_s + a.timing_s + a.int8_export_s + a.quantise_s + a.int8_timing_s
    cpu += a.int8_score_s * eval_scale  # the int8 graph's held-out loss, in ONNX Runtime
    cpu += a.eval_s * eval_scale  # the held-out loss: the student is back on the CPU
    if gpu is None:
        return cpu + a.train_s
    opt = a.steps * a.trained_params * OPTIMIZER_BYTES_PER_PARAM
    return cpu + gpu.seconds(a.train_flops, a.steps, opt)


def study_cost(m: Measured, trials: int, n_train: int, n_eval: int, gpu: Gpu | None) -> Cost:
    """A study of ``trials`` trials on ``n_train`` + ``n_eval`` proxy texts, every trial trained.

    Every trained architecture adds its int8 sibling as a trial of its own; the
    reference (the last measured student) and its sibling are two of the trials.
    One candidate per budget is confirmed (at most four are); the finals train
    each budget's pick and the reference for ``final_steps`` steps.
    """
    trained = max(0, math.ceil((trials - 2) / 2))
    per_arch = _mean([arch_s(a, m, n_eval, gpu) for a in m.archs])
    ref = m.archs[-1]
    fixed = m.load_s + teacher_outputs_s(m, n_train, n_eval, gpu) + m.anchor_export_s
    fixed += m.calibrate_s + m.quantised_teacher_s + m.drift_s * (trained // 8)
    timing = _mean([a.timing_s for a in m.archs]) * m.confirm_rounds / m.rounds
    confirm = m.budgets * (_mean([a.build_s + a.export_s for a in m.archs]) + timing)
    return Cost(
        fixed=fixed,
        reference=arch_s(ref, m, n_eval, gpu) + _mean([a.build_s for a in m.archs]),
        trials=trained * per_arch,
        confirm=confirm,
        finals=finals_s(m, n_eval, gpu),
    )


def finals_s(m: Measured, n_eval: int, gpu: Gpu | None) -> float:
    """Each budget's pick and the reference, trained for ``final_steps`` on the full split.

    The picks are the measured students' mean, each scored on the held-out proxy
    split :attr:`Measured.final_evals` times; the teacher's outputs on the
    batches they visit are computed once for all picks when they fit in 4 GiB
    (as ``distill.final.training_targets`` decides), else at every step of every pick.
    """
    picks = m.budgets + 1
    eval_scale = n_eval / m.n_eval
    batches = min(m.final_steps, math.ceil(m.n_full_train / m.batch_size))
    state_bytes = batches * m.batch_size * m.max_length * m.layers * m.hidden * 2
    visits = batches if state_bytes <= final.CACHE_LIMIT_BYTES else picks * m.final_steps
    per_batch_flops = m.prepare_flops / (m.train_batches + m.eval_batches)
    per_batch_s = m.prepare_s / (m.train_batches + m.eval_batches)
    steps = m.final_steps
    per_pick = []
    for a in m.archs:
        cpu = a.build_s + a.export_s + a.int8_score_s + a.timing_s * m.confirm_rounds / m.rounds
        cpu += a.eval_s * eval_scale  # the last held-out loss, on the CPU
        evals = m.final_evals * eval_scale
        if gpu is None:
            train = a.step_s * steps + a.eval_s * evals
        else:
            opt = steps * a.trained_params * OPTIMIZER_BYTES_PER_PARAM
            train = gpu.seconds(a.train_flops / a.steps * steps, steps, opt)
            train += gpu.seconds(a.eval_flops * evals, m.eval_batches * evals)
        per_pick.append(cpu + train)
    outputs = gpu.seconds(per_batch_flops * visits, visits) if gpu else visits * per_batch_s
    return picks * _mean(per_pick) + outputs


# --- printing --------------------------------------------------------------------------


def _dur(seconds: float) -> str:
    if seconds < 100:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 100 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def report(
    ms: list[Measured], gms: dict[str, Measured], args: argparse.Namespace, gpu: Gpu
) -> None:
    """Print the measured pieces, then the projections.

    Args:
        ms: One teacher's measurements each, training on the CPU.
        gms: The same, training on a GPU, by teacher (when this machine has one).
    """
    m0 = ms[0]
    print(
        f"\nMeasured on this machine ({os.cpu_count()} CPU cores: training on all of them, "
        f"timings on {m0.timing_threads} ONNX Runtime thread as the spec says). Default spec: "
        f"batch {m0.batch_size}, max_length {m0.max_length}, {m0.proxy_steps} proxy steps, "
        f"{m0.rounds} timing rounds; proxy set {m0.n_train} + {m0.n_eval} texts of the "
        f"built-in corpus (~{m0.tokens_per_text:.0f} padded tokens a text).\n"
    )
    print("Once per study (load: teacher, texts and one warm-up pass; outputs: context.prepare)")
    rows = [
        [
            f"{m.teacher} ({m.trained_on})",
            f"{m.params / 1e6:.0f} M",
            _dur(m.load_s),
            _dur(m.prepare_s),
            f"{m.prepare_flops / m.prepare_s / 1e9:.0f}",
            _dur(m.anchor_export_s),
            _dur(m.teacher_quantise_s),
            _dur(m.calibrate_s),
            _dur(m.quantised_teacher_s),
            _dur(m.drift_s),
            f"{m.outputs_bytes / 2**20:.0f}",
        ]
        for m in [*ms, *gms.values()]
    ]
    head = "teacher (trained on)|params|load|outputs|GFLOP/s|export|int8|calibrate|int8 teacher"
    _table((head + "|drift|kept MiB").split("|"), rows)
    print(
        "(export, int8: the teacher's graph and its quantisation; calibrate: the fp32 and int8 "
        "teachers timed; int8 teacher: the quantised teacher scored and timed)"
    )
    print("\nPer trained architecture: a trial and its int8 sibling (the last: the reference)")
    rows = [
        [
            f"{m.teacher} {a.arch}" + (" (GPU)" if m in gms.values() else ""),
            f"{a.params / 1e6:.1f} M",
            _dur(a.build_s),
            _dur(a.export_s),
            _dur(a.timing_s),
            _dur(a.train_s),
            f"{a.train_flops / a.train_s / 1e9:.0f}",
            _dur(a.eval_s),
            _dur(a.int8_export_s + a.quantise_s + a.int8_timing_s),
            _dur(a.int8_score_s),
            f"{a.peak_rss_mb / 1024:.1f}",
        ]
        for m in [*ms, *gms.values()]
        for a in m.archs
    ]
    head = "teacher, student|params|build|export|timing|training|GFLOP/s|held-out|int8 time"
    _table((head + "|int8 score|peak GiB").split("|"), rows)
    print(
        "(int8 time: export, quantisation, paired timing with the int8 teacher, whose graph "
        "context.anchor_onnx quantises again at each call (the int8 column above); int8 score: "
        "export, quantisation, the held-out loss in ONNX Runtime; GFLOP/s: counted from the "
        "model's sizes and the batches' padded tokens)"
    )
    print("\nPeak resident memory by phase, GiB (each phase's own peak; process: the whole run)")
    phases = list(m0.rss_mb)
    rows = [[m.teacher, *(f"{m.rss_mb[p] / 1024:.2f}" for p in phases)] for m in ms]
    _table(["teacher", *phases], rows)
    _projections(ms, gms, args, gpu)


def _variants(
    m: Measured, gms: dict[str, Measured], gpu: Gpu
) -> list[tuple[str, Measured, Gpu | None]]:
    """The CPU's figures, and the GPU's: measured when this machine has one, else projected."""
    if m.teacher in gms:
        return [("CPU", m, None), ("GPU measured", gms[m.teacher], None)]
    return [("CPU", m, None), ("GPU", m, gpu)]


def _projections(
    ms: list[Measured], gms: dict[str, Measured], args: argparse.Namespace, gpu: Gpu
) -> None:
    trials = [int(t) for t in args.trials.split(",")]
    m0 = ms[0]
    rates = [m.prepare_flops / m.prepare_s for m in ms]
    cpu_rate = max(rates + [a.train_flops / a.train_s for m in ms for a in m.archs])
    if len(gms) < len(ms):
        print(
            f"\nProjection for one GPU (distill.device: auto on a GPU machine): the teacher's "
            f"outputs and the distillations' training steps at an assumed "
            f"{gpu.tflops:g} TFLOP/s sustained in bf16 (--gpu-tflops; "
            f"{gpu.tflops * 1e12 / cpu_rate:.0f}x "
            f"the best this CPU reached above), plus {gpu.batch_ms:g} ms a batch or step "
            f"(--gpu-batch-ms) and AdamW's {OPTIMIZER_BYTES_PER_PARAM} bytes a parameter a "
            f"step at {gpu.tbps:g} TB/s (--gpu-tbps). Export, quantisation, timing, the "
            "held-out losses after training and the FFN ranking pass stay on the CPU, at this "
            "CPU's measured times."
        )
    print(
        f"\nA study of N trials: the fixed part (loading, teacher outputs, the teacher's graphs, "
        f"the reference and its sibling) + (N - 2) / 2 trained architectures at the mean of "
        f"those measured (every trial fits a budget: an over-budget one costs only build, "
        f"export and timing) + {m0.budgets} confirmations; finals: {m0.budgets} picks and the "
        f"reference, {m0.final_steps} steps each, scored {m0.final_evals} times. Not included: "
        "the evaluation stage.\n"
    )
    print(f"vs trials and teacher size (proxy set as measured, {m0.n_train} + {m0.n_eval})")
    rows = []
    for m in ms:
        for label, mm, g in _variants(m, gms, gpu):
            costs = [study_cost(mm, n, mm.n_train, mm.n_eval, g) for n in trials]
            per_arch = _mean([arch_s(a, mm, mm.n_eval, g) for a in mm.archs])
            fixed = costs[0].fixed + costs[0].reference
            rows.append(
                [f"{m.teacher} {label}", _dur(per_arch), _dur(fixed)]
                + [_dur(c.search) for c in costs]
                + [_dur(costs[0].finals)]
            )
    head = ["teacher", "per arch", "fixed"] + [f"search {n}" for n in trials] + ["finals"]
    _table(head, rows)

    sizes = [(m0.n_train, m0.n_eval)] + [
        (int(a), int(b)) for a, b in (s.split("+") for s in args.proxy_sizes.split(","))
    ]
    n = m0.trials
    print(
        f"\nvs proxy set size (train + eval texts), {n} trials, search and finals; kept: the "
        "teacher's outputs held in memory; peak: the measured peak plus the change in kept"
    )
    rows = []
    for m in ms:
        for n_train, n_eval in sizes:
            kept = m.outputs_bytes * (n_train + n_eval) / (m.n_train + m.n_eval)
            peak = m.rss_mb["process"] * 2**20 + kept - m.outputs_bytes
            row = [f"{m.teacher} {n_train}+{n_eval}"]
            for _, mm, g in _variants(m, gms, gpu):
                c = study_cost(mm, n, n_train, n_eval, g)
                row += [_dur(teacher_outputs_s(mm, n_train, n_eval, g)), _dur(c.total)]
            rows.append(row + [f"{kept / 2**30:.2f}", f"{peak / 2**30:.1f}"])
    names = "teacher, proxy set|outputs CPU|study CPU|outputs GPU|study GPU|kept GiB|peak GiB"
    _table(names.split("|"), rows)


# --- the two processes -----------------------------------------------------------------


def _child(kind: str, args: argparse.Namespace, path: Path) -> None:

    quiet_libraries()
    measured = measure(kind, args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(measured), indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-scale")
    parser.add_argument("--teachers", default=",".join(TEACHERS), help="Of: " + ", ".join(TEACHERS))
    parser.add_argument("--proxy-train", type=int, default=128)
    parser.add_argument("--proxy-eval", type=int, default=32)
    parser.add_argument("--proxy-steps", type=int, default=None, help="Default: the spec's.")
    parser.add_argument("--trials", default="16,32,64", help="Trial counts projected.")
    parser.add_argument(
        "--proxy-sizes",
        default="512+128,2048+512",
        help="Proxy sets projected (the spec's default, the BERT-base study's).",
    )
    parser.add_argument(
        "--gpu-tflops",
        type=float,
        default=25.0,
        help="Sustained GPU throughput on this training (TFLOP/s).",
    )
    parser.add_argument(
        "--gpu-batch-ms",
        type=float,
        default=15.0,
        help="Fixed GPU cost of one batch or step: launches, Python (ms).",
    )
    parser.add_argument(
        "--gpu-tbps",
        type=float,
        default=2.0,
        help="GPU memory bandwidth reached by the optimizer (TB/s).",
    )
    parser.add_argument(
        "--project-only", action="store_true", help="Reprint from the measurements saved in --out."
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    kinds = [k for k in args.teachers.split(",") if k]
    if args.child:
        _child(args.child, args, _saved(args.out, args.child, args.device))
        return
    forwarded = [
        f"--out={args.out}",
        f"--proxy-train={args.proxy_train}",
        f"--proxy-eval={args.proxy_eval}",
    ] + ([f"--proxy-steps={args.proxy_steps}"] if args.proxy_steps else [])
    # With a GPU here, each teacher is measured training there too (distill.device: cuda).
    on = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    for kind in kinds:
        if kind not in TEACHERS:
            parser.error(f"unknown teacher {kind!r}")
        for device in on if not args.project_only else []:
            start = time.perf_counter()
            child = [sys.executable, __file__, f"--child={kind}", f"--device={device}"]
            subprocess.run([*child, *forwarded], check=True)
            print(f"[{kind}] measured in {_dur(time.perf_counter() - start)}", flush=True)
    ms = [Measured.from_json(json.loads(_saved(args.out, k, "cpu").read_text())) for k in kinds]
    gms = {
        k: Measured.from_json(json.loads(_saved(args.out, k, "cuda").read_text()))
        for k in kinds
        if _saved(args.out, k, "cuda").is_file()
    }
    report(ms, gms, args, Gpu(args.gpu_tflops, args.gpu_batch_ms, args.gpu_tbps))


def _saved(out: Path, kind: str, device: str) -> Path:
    """Where the child measuring ``kind`` training on ``device`` writes its figures."""
    return out / (f"measured-{kind}.json" if device == "cpu" else f"measured-{kind}-{device}.json")


if __name__ == "__main__":
    main()
