"""What every trial of a run shares, computed once: the teacher's outputs and the slicing."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import PreTrainedModel

from paretokd import distill, latency
from paretokd.config import StudySpec
from paretokd.distill import device as devices
from paretokd.distill import recipe, scoring
from paretokd.distill.recipe import Distilled, Slicing
from paretokd.latency import paired
from paretokd.latency.graph import GraphModel, graph_path, reduce_precision
from paretokd.models import student
from paretokd.models.data import Splits, Text
from paretokd.models.teacher import Teacher
from paretokd.records import FP32, Arch, Fingerprint, LatencyStats, Objective
from paretokd.search.storage import objective

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What every trial of a run shares: computed once, before the first trial."""

    spec: StudySpec
    teacher: Teacher
    proxy_train: distill.TeacherTargets
    proxy_eval: distill.TeacherTargets
    workdir: Path
    slicing: Slicing
    """How students are cut from the teacher (see :class:`paretokd.distill.recipe.Slicing`)."""
    fingerprint: Fingerprint
    """This machine and latency setup, stored with every timing."""
    out_dir: Path | None = None
    """The run's folder: trials attach their ``latency.json`` to its artifact store."""
    proxy_eval_labels: list[float] | None = None
    """Gold labels of the held-out proxy texts, in batch order (task metric objective)."""
    ladder: dict[str, tuple[paired.Anchor, ...]] = field(default_factory=dict)
    """Per precision, the anchors a graph of it is paired with: the teacher, calibrated
    for the study, and its rungs on the same scale (``teacher_timing.calibrate``). Set
    once before the first trial."""

    @property
    def objective(self) -> Objective:
        """Objective 1 of the study."""
        return objective(self.spec)


def build_student(arch: Arch, ctx: Context) -> PreTrainedModel:
    """A student of ``arch`` cut from the teacher, as every trial and final builds it."""
    return recipe.build(arch, ctx.teacher.model, ctx.spec, ctx.slicing)


def reduced_precision(spec: StudySpec) -> str:
    """The precision a quantised model ships in on the study's device: int8, or fp16 on a GPU."""
    return "fp16" if spec.latency.device == "cuda" else "int8"


def anchor_precisions(spec: StudySpec) -> tuple[str, ...]:
    """The precisions the teacher is calibrated in: fp32, the quantised teacher's, the space's."""
    return tuple(dict.fromkeys((FP32, reduced_precision(spec), *spec.space.precision)))


def anchor_onnx(ctx: Context, precision: str = FP32, rung: Arch | None = None) -> Path:
    """The teacher's graph (or the ``rung`` cut from it) in ``precision``, made once per process.

    Every graph is timed paired with an anchor in its own precision: an int8
    graph's kernels answer a change of the machine's state (a neighbour on the
    caches, a frequency change) as an int8 anchor's do, not as fp32 ones do.
    """
    name = "teacher" if rung is None else f"anchor-{rung.id}"
    path = ctx.workdir / f"{name}.onnx"
    if not path.exists():
        model = ctx.teacher.model if rung is None else student.build(rung, ctx.teacher.model)
        latency.export_onnx(model, ctx.teacher.tokenizer.model_input_names, path, ctx.spec.latency)
    reduced = graph_path(path, precision)
    # Quantising a large teacher takes seconds (BERT-base 10 s, XLM-R 37 s): once per process.
    return reduced if reduced.exists() else reduce_precision(path, precision)


def calibrate_anchor(ctx: Context, precision: str = FP32) -> dict[str, LatencyStats]:
    """Time the ladder in ``precision`` with care (``latency.paired.calibrate_ladder``).

    Returns:
        Each anchor's timing by name (``teacher`` first); sets ``ctx.ladder``.
    """
    graphs = _ladder_graphs(ctx, precision)
    out = paired.calibrate_ladder(graphs, ctx.spec.latency, ctx.teacher.config.vocab_size)
    ctx.ladder[precision] = paired.ladder(graphs, out)
    return out


def set_ladder(ctx: Context, precision: str, timings: dict[str, LatencyStats]) -> None:
    """Set ``ctx.ladder[precision]`` from the anchors' stored calibration ``timings``."""
    ctx.ladder[precision] = paired.ladder(_ladder_graphs(ctx, precision), timings)


def _ladder_graphs(ctx: Context, precision: str) -> dict[str, Path]:
    """The teacher's graph, then its rungs' (``latency.paired.rungs``), by anchor name."""
    graphs = {paired.TEACHER: anchor_onnx(ctx, precision)}
    graphs.update({r.id: anchor_onnx(ctx, precision, r) for r in paired.rungs(ctx.teacher.dims)})
    return graphs


def time_onnx(
    path: Path, ctx: Context, precision: str, rounds: int | None = None, anchor: str | None = None
) -> LatencyStats:
    """Time the ``precision`` graph at ``path`` paired with an anchor, on the study's scale.

    ``rounds`` defaults to the spec's ``latency.rounds`` (a search trial); a
    confirmation or a shipped student asks for ``latency.confirm_rounds``, and
    names the ``anchor`` its search trial was paired with.
    """
    assert precision in ctx.ladder, "the anchors are calibrated before any timing"
    vocab = ctx.teacher.config.vocab_size
    ladder = ctx.ladder[precision]
    return paired.measure_paired(path, ladder, ctx.spec.latency, rounds, vocab, anchor).stats()


class StudentGraphs:
    """A student's graphs in a scratch folder: exported once, reduced once per precision.

    A trained student is timed and scored in every precision of the space; each
    export takes about a second on a CPU and each int8 quantisation half of one,
    so a trial makes each graph once.
    """

    def __init__(self, model: PreTrainedModel, ctx: Context, folder: Path) -> None:
        self.model = model
        self.ctx = ctx
        self.folder = folder
        self._fp32: Path | None = None

    def path(self, precision: str) -> Path:
        """The student's ``precision`` graph, made on first use."""
        if self._fp32 is None:
            names = self.ctx.teacher.tokenizer.model_input_names
            self._fp32 = latency.export_onnx(
                self.model, names, self.folder / "m.onnx", self.ctx.spec.latency
            )
        reduced = graph_path(self._fp32, precision)
        return reduced if reduced.exists() else reduce_precision(self._fp32, precision)

    def time(
        self, precision: str, rounds: int | None = None, anchor: str | None = None
    ) -> LatencyStats:
        """Its ``precision`` graph timed paired with an anchor (:func:`time_onnx`)."""
        return time_onnx(self.path(precision), self.ctx, precision, rounds, anchor)

    def run(self, precision: str) -> GraphModel:
        """Its ``precision`` graph in ONNX Runtime, called like the model."""
        return GraphModel(self.path(precision), self.ctx.spec.latency)


@contextmanager
def student_graphs(model: PreTrainedModel, ctx: Context) -> Iterator[StudentGraphs]:
    """``model``'s graphs (:class:`StudentGraphs`), deleted when the block ends."""
    with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp:
        yield StudentGraphs(model, ctx, Path(tmp))


def time_student(
    model: PreTrainedModel,
    ctx: Context,
    precision: str = FP32,
    rounds: int | None = None,
    anchor: str | None = None,
) -> LatencyStats:
    """Export ``model`` (in ``precision``) to a scratch file and time it (:func:`time_onnx`)."""
    with student_graphs(model, ctx) as graphs:
        return graphs.time(precision, rounds, anchor)


def graph_scores(
    done: Distilled, graphs: StudentGraphs, precision: str
) -> tuple[float, float | None]:
    """The held-out loss (and proxy metric, with labels) of ``done``'s ``precision`` graph.

    Objective 1 of a reduced-precision candidate comes from what ships: its
    graph's own outputs in ONNX Runtime, not the fp32 model it was made from.
    ``graphs`` are ``done.model``'s.
    """
    ctx = graphs.ctx
    graph = graphs.run(precision)
    loss = recipe.graph_loss(graph, done, ctx.proxy_eval, ctx.spec)
    if ctx.proxy_eval_labels is None:
        return loss, None
    logits = torch.cat([graph(**b).logits.float() for b in ctx.proxy_eval.batches])
    task = ctx.spec.task
    metric = scoring.metric_of(logits, ctx.proxy_eval_labels, task.kind, task.resolved_metric)
    return loss, metric


def proxy_distill(model: PreTrainedModel, ctx: Context, steps: int | None = None) -> Distilled:
    """The search's distillation on the proxy split, then the held-out loss.

    ``steps`` defaults to the spec's ``proxy_steps`` (``validate-proxy`` asks for more).
    """
    steps = steps or ctx.spec.distill.proxy_steps
    return recipe.distill_and_score(
        model, ctx.proxy_train, ctx.proxy_eval, ctx.spec, ctx.slicing, steps
    )


def proxy_metric(model: PreTrainedModel, ctx: Context) -> float:
    """The task metric of ``model`` on the held-out proxy texts' gold labels."""
    assert ctx.proxy_eval_labels is not None, "the metric objective needs data.label_column"
    logits = distill.predict(model, ctx.proxy_eval.batches)
    task = ctx.spec.task
    return scoring.metric_of(logits, ctx.proxy_eval_labels, task.kind, task.resolved_metric)


def _targets_key(spec: StudySpec, teacher: Teacher, texts: list[Text]) -> str:
    """Names the teacher's outputs on ``texts``: changes with the teacher, texts or batching."""
    blob = json.dumps(
        [
            2,  # the file's layout: a dict of states (and logits) per batch
            teacher.name,
            teacher.config.to_json_string(),
            spec.distill.batch_size,
            spec.data.max_length,
            hashlib.sha256(json.dumps(texts).encode()).hexdigest(),
        ]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prepare(
    spec: StudySpec,
    teacher: Teacher,
    splits: Splits,
    workdir: Path,
    fingerprint: Fingerprint,
    out_dir: Path | None = None,
) -> Context:
    """Tokenise the proxy splits and get the teacher's outputs on them once.

    The same pass ranks the teacher's FFN units for slicing
    (:class:`paretokd.models.student.UnitImportance`); outputs read back from
    disk leave that to a pass of its own.

    With ``out_dir`` (the run's folder), the outputs are kept on disk in
    ``out_dir/teacher/``, so a rerun or another worker of the study reads them
    back instead of running the teacher again.
    """
    cache = out_dir / "teacher" if out_dir is not None else None
    device = devices.resolve(spec.distill.device)
    start = time.perf_counter()

    def proxy_targets(
        name: str, texts: list[Text]
    ) -> tuple[distill.TeacherTargets, bool, list[int]]:
        batches, order = distill.make_batches(
            texts, teacher.tokenizer, spec.distill.batch_size, spec.data.max_length
        )
        targets = distill.TeacherTargets(teacher.model, batches, keep=True, device=device)
        path = cache / f"{name}-{_targets_key(spec, teacher, texts)}.pt" if cache else None
        return targets, targets.precompute(path), order

    # The teacher's pass over the proxy training texts also ranks its FFN units.
    with student.UnitImportance(teacher.model) as units:
        train, train_read, _ = proxy_targets("proxy_train", splits.proxy_train)
    held_out, held_out_read, eval_order = proxy_targets("proxy_eval", splits.proxy_eval)
    log.info(
        "teacher outputs on %d + %d proxy texts %s in %.1f s",
        len(splits.proxy_train),
        len(splits.proxy_eval),
        "read from disk" if train_read and held_out_read else "computed",
        time.perf_counter() - start,
    )
    if units.batches == len(train):
        unit_order = units.orders()
    else:
        # Read from disk (or computed on the GPU's copy of the teacher): a pass of its
        # own, not kept on disk (a few seconds, against every FFN unit's activations).
        start = time.perf_counter()
        unit_order = student.unit_orders(teacher.model, train.batches)
        log.info("FFN unit importance measured in %.1f s", time.perf_counter() - start)
    labels = None
    if spec.task.kind != "agnostic" and splits.proxy_eval_labels is not None:
        encoded = teacher.encode_labels(splits.proxy_eval_labels, spec.task, "data.label_column")
        labels = [encoded[i] for i in eval_order]
    return Context(
        spec,
        teacher,
        proxy_train=train,
        proxy_eval=held_out,
        workdir=workdir,
        slicing=Slicing(distill.residual_order(train), unit_order),
        fingerprint=fingerprint,
        out_dir=out_dir,
        proxy_eval_labels=labels,
    )
