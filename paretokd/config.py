"""Study specs: typed, strictly validated, hashed. Imports no torch.

A spec is a YAML file (see ``studies/default.yaml``) or the built-in default,
with CLI flags applied on top by :func:`override`. Unknown keys are errors, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from paretokd import strict
from paretokd.errors import ParetokdError

DEFAULT_TEACHER = "sentence-transformers/all-MiniLM-L6-v2"
BUILTIN_CORPUS = "stdlib-docstrings"
SAMPLERS = ("nsga2", "tpe", "random")

_BUDGET_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*$")


def parse_budget(text: str) -> float:
    """Parse one latency budget such as ``"10ms"`` or ``"0.02s"`` into milliseconds.

    Args:
        text: A positive number followed by the unit ``ms`` or ``s``.

    Returns:
        The budget in milliseconds.

    Raises:
        ParetokdError: If the unit is missing or the value is not positive.
    """
    match = _BUDGET_RE.match(str(text))
    if match is None:
        raise ParetokdError(
            f"invalid budget {text!r}: write a positive number with a unit, e.g. 10ms or 0.02s"
        )
    value = float(match.group(1)) * (1000.0 if match.group(2) == "s" else 1.0)
    if value <= 0:
        raise ParetokdError(f"invalid budget {text!r}: a latency budget must be above zero")
    return value


def parse_budgets(text: Any) -> tuple[float, ...]:
    """Parse a comma-separated list (or a YAML list or scalar) of budgets, sorted, de-duplicated.

    Raises:
        ParetokdError: If the list is empty or any budget is invalid.
    """
    if isinstance(text, str):
        items = text.split(",")
    elif isinstance(text, (list, tuple)):
        items = [str(item) for item in text]
    else:  # a YAML scalar such as `budgets: 10`
        items = [str(text)]
    items = [item.strip() for item in items if item.strip()]
    if not items:
        raise ParetokdError("no latency budget given: pass e.g. --budgets 10ms,20ms")
    return tuple(sorted({parse_budget(item) for item in items}))


def format_budget(ms: float) -> str:
    """Render a budget in milliseconds the way a user writes it (``10ms``, ``2.5ms``), exactly."""
    return f"{ms:f}".rstrip("0").rstrip(".") + "ms"


@dataclass(frozen=True)
class TeacherSpec:
    """Which model to distil from."""

    name: str = DEFAULT_TEACHER
    """A hub id or a local directory loadable by transformers' Auto classes."""
    trust_remote_code: bool = False


Metric = Literal["accuracy", "f1", "matthews", "spearman", "pearson"]
"""Task metrics; every one of them is better when higher."""


@dataclass(frozen=True)
class TableSpec:
    """Where a table of texts (and labels) comes from: a file or a ``datasets`` name."""

    source: str | None = None
    """A local file (txt, csv, tsv, json(l), parquet) or a datasets name. A relative
    path that does not exist here is looked up under ``$PARETOKD_DATA_ROOT``
    (``--data-root``), so specs can name shared data sets portably."""
    dataset_config: str | None = None
    split: str = "train"
    """A hub dataset's split. A local file is read whole, unless this is a slice of
    ``train``, a CSV/TSV/JSON(L)/Parquet file's one split: ``train[:9000]``, ``train[90%:]``."""
    text_columns: tuple[str, ...] | None = None
    """One column (single texts) or two (sentence pairs); ``None`` takes the first text column."""
    label_column: str | None = None
    """The gold labels: needed for task metrics, never used to train (students learn
    from the teacher)."""
    column_names: tuple[str, ...] | None = None
    """Names for the columns of a CSV/TSV file without a header row, in order; extra
    columns on a line are ignored."""
    delimiter: str | None = None
    """The field separator of a CSV/TSV file; ``null``: a tab for ``.tsv``, else a comma.
    Tab-separated fields are read without quoting (real TSVs hold stray quotes)."""


@dataclass(frozen=True)
class DataSpec(TableSpec):
    """The training texts and how they are split."""

    source: str = BUILTIN_CORPUS
    """``stdlib-docstrings``, a local file (txt, csv, tsv, json(l), parquet) or a datasets name."""
    proxy_train: int = 512
    proxy_eval: int = 128
    max_length: int = 64
    """Tokens per text during distillation (latency uses ``latency.seq_len``)."""


@dataclass(frozen=True)
class EvaluationSpec(TableSpec):
    """The set every final student, the teacher and the reference are scored on.

    With ``task.kind: agnostic`` it is a sentence-pair similarity set (two text
    columns and a score): the Spearman correlation of the cosine similarity of
    mean-pooled embeddings with the gold scores. With a task, the task's metric
    on the teacher's head.
    """

    split: str = "validation"
    metric: Metric | None = None
    """``null``: accuracy for classification, Spearman for regression and similarity."""
    max_examples: int | None = None
    """Score on the first this many examples only (``null``: all)."""


@dataclass(frozen=True)
class TaskSpec:
    """What students learn: the teacher's representations, or its task head."""

    kind: Literal["agnostic", "classification", "regression"] = "agnostic"
    """``agnostic``: multi-layer hidden-state distillation of an encoder. ``classification``
    or ``regression``: the teacher has a sequence-classification head, the student gets
    the same head and learns the teacher's logits."""
    temperature: float = 2.0
    """Softens both distributions in the classification loss (KL x temperature^2)."""
    hidden_weight: float = 0.0
    """Weight of the hidden-state term added to the logit loss in task modes."""
    objective: Literal["loss", "metric"] = "loss"
    """Objective 1 of the search: the held-out distillation loss (minimised), or the
    task metric on the held-out proxy texts' gold labels (maximised; needs
    ``data.label_column``)."""
    metric: Metric | None = None
    """The task metric; ``null``: accuracy for classification, Spearman for regression."""

    @property
    def resolved_metric(self) -> Metric:
        """The metric in force (the explicit one, else the kind's default)."""
        if self.metric is not None:
            return self.metric
        return "accuracy" if self.kind == "classification" else "spearman"


@dataclass(frozen=True)
class SpaceSpec:
    """Ranges of the student search space. ``[lo, hi]`` for ints, lists for choices.

    A dimension left ``null`` is derived from the teacher when the study opens
    (``paretokd.search.space.resolve``), so ``space: auto`` (every dimension
    ``null``, the default) fits any teacher: layers from 1 to the teacher's,
    widths in steps of the teacher's head size up to its width, heads of the
    teacher's head size, and sixths of the teacher's FFN width.
    """

    num_layers: tuple[int, int] | None = None
    """``[lo, hi]``; ``null``: 1 to the teacher's layer count."""
    hidden_size: tuple[int, ...] | None = None
    """``null``: every multiple of the head size up to the teacher's width."""
    num_heads: tuple[int, ...] | None = None
    """Head counts sampled for every width (each width divisible by each count).
    ``null``: no choice, a width of ``h`` has ``h / head_size`` heads."""
    head_size: int | None = None
    """Width of one attention head when ``num_heads`` is ``null``; ``null``: the teacher's."""
    intermediate_size: tuple[int, ...] | None = None
    """FFN widths; ``null``: 1/6 to 6/6 of the teacher's, rounded to multiples of 8."""
    precision: tuple[Literal["fp32", "int8", "fp16"], ...] = ("fp32", "int8")
    """What a student may ship as: ``int8`` is ONNX Runtime's dynamic quantisation (CPU);
    with ``latency.device: cuda`` it stands for ``fp16``, the half-precision graph."""

    @property
    def resolved(self) -> bool:
        """Whether every dimension is set (the space has been derived from its teacher)."""
        sizes = (self.num_layers, self.hidden_size, self.intermediate_size)
        return all(v is not None for v in sizes) and (self.num_heads or self.head_size) is not None


@dataclass(frozen=True)
class DistillSpec:
    """The distillation recipe shared by the search and the final training."""

    batch_size: int = 16
    proxy_steps: int = 30
    final_steps: int = 200
    final_epochs: float | None = None
    """Passes over the full training split a final distillation makes. When set, it
    decides ``final_steps`` (whole batches, rounded up) once the data is read
    (:func:`paretokd.distill.final.resolve_steps`); ``null``: ``final_steps`` as given."""
    final_eval_every: int = 50
    """A final distillation scores the held-out proxy split every this many steps (and at
    its last) and keeps the best checkpoint; the curve goes into ``final.json`` and the
    report. 0: no scoring during training, the last step is kept."""
    learning_rate: float | None = None
    """``null``: each student's own rate, from its share of the teacher's weights
    (``paretokd.distill.recipe.learning_rate``, chosen by ``bench/learning_rate.py``);
    a number: that rate for every student."""
    weight_decay: float = 0.01
    teacher_init: bool = True
    """Start students from a slice of the teacher's weights instead of random ones."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the teacher's outputs and every distillation run: ``auto`` is CUDA when
    present (bf16 autocast), else the CPU. Independent of ``latency.device``: train on
    a GPU, time on the CPU that will serve. Not part of the study's identity, so
    workers with and without a GPU share one study."""


@dataclass(frozen=True)
class LatencySpec:
    """How latency is measured: the setup every number on the latency axis shares."""

    device: Literal["cpu", "cuda"] = "cpu"
    threads: int = 1
    batch: int = 1
    seq_len: int = 128
    warmup_runs: int = 5
    """Untimed runs before any timing; more follow until the timings have settled."""
    settle_tolerance: float = 0.02
    """Warm-up goes on until two consecutive blocks' medians agree within this fraction."""
    rounds: int = 12
    """Paired timing of a candidate: rounds of one candidate and one teacher block."""
    interval_target: float | None = 0.03
    """While a paired timing's 95% interval is wider than this fraction of its figure
    either side, more rounds follow, up to twice the rounds asked for (a disturbed
    machine gets more rounds, a quiet one none); ``null``: exactly the rounds asked for."""
    confirm_rounds: int = 24
    """Rounds when a pick or a candidate near a budget, or a shipped student, is timed again;
    and a rung of the anchors' ladder against the teacher, once per study."""
    calibration_rounds: int = 40
    """Blocks of the teacher's own timing once per study: the scale of every figure."""
    min_runs: int = 20
    min_seconds: float = 0.5
    max_seconds: float = 3.0
    """Stop timing after this long even if slow blocks were dropped (``min_runs`` still holds)."""
    block_tolerance: float | None = 0.03
    """Runs are timed in blocks of about 50 ms; a block whose median is more than this
    fraction above the quietest block's was slowed by other load and is dropped (and
    counted). ``null`` keeps every run."""
    inter_op_threads: int = 1
    """ONNX Runtime inter-op threads (only used with ``execution_mode: parallel``)."""
    spinning: bool = False
    """Let idle ONNX Runtime threads spin (intra- and inter-op); off, they sleep."""
    execution_mode: Literal["sequential", "parallel"] = "sequential"
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    """ONNX Runtime's graph optimisation level, applied when a session opens."""
    transformer_fusion: bool = False
    """Rewrite exported graphs with ONNX Runtime's transformer optimizer (fused attention)."""
    clock: Literal["auto", "cpu", "wall"] = "auto"
    """What a run's time is: ``cpu`` is the CPU time of the thread running the model
    (single-threaded CPU inference only; immune to other processes taking the core),
    ``wall`` the elapsed time; ``auto`` picks ``cpu`` wherever it applies."""


@dataclass(frozen=True)
class SearchSpec:
    """The Optuna sampler."""

    sampler: Literal["nsga2", "tpe", "random"] = "tpe"
    """Multivariate TPE. Whichever is named, a trial never repeats an architecture the
    study holds (``sampler.DistinctSampler``). On a table of real measurements of all
    360 architectures of the default space (``bench/sampler_table.py``, 30 trials,
    200 seeds), its median hypervolume was 1.051x random search's with the reference
    point set by the table's front (NSGA-II 1.001x; bare TPE 1.044x), 1.022x with the
    report's looser one; no TPE setting tried (start-up trials, candidates, prior
    weight, gamma, ordinal encodings) beat the defaults on held-out seeds."""
    population_size: int = 8
    """NSGA-II generation size; small, because a study has tens of trials, not thousands."""
    heartbeat_seconds: int = 30
    """How often a running trial reports it is alive; silent for 4x this, it is retried."""


@dataclass(frozen=True)
class StudySpec:
    """Everything a study needs; the single source of truth for a run."""

    name: str = "default"
    budgets: tuple[float, ...] = (10.0, 20.0)
    trials: int = 16
    seed: int = 0
    teacher: TeacherSpec = field(default_factory=TeacherSpec)
    data: DataSpec = field(default_factory=DataSpec)
    space: SpaceSpec = field(default_factory=SpaceSpec)
    distill: DistillSpec = field(default_factory=DistillSpec)
    latency: LatencySpec = field(default_factory=LatencySpec)
    search: SearchSpec = field(default_factory=SearchSpec)
    task: TaskSpec = field(default_factory=TaskSpec)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the spec (budgets as strings, as a user writes them)."""
        out = _to_jsonable(dataclasses.asdict(self))
        out["budgets"] = [format_budget(b) for b in self.budgets]
        return out

    def identity(self) -> dict[str, Any]:
        """The part of the spec that decides what a trial measures.

        Budgets, the trial count, the sampler, the final-training length, the
        training device and the evaluation set may change between runs of one
        study; everything else may not, because it would put incomparable trials
        on one front.
        """
        out = self.to_dict()
        for key in ("name", "budgets", "trials", "search", "evaluation"):
            out.pop(key)
        out["distill"].pop("final_steps")
        out["distill"].pop("final_epochs")
        out["distill"].pop("final_eval_every")
        out["distill"].pop("device")
        return out

    @property
    def hash(self) -> str:
        """A short stable hash of :meth:`identity`."""
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


def _space(value: Any) -> SpaceSpec:
    """``space:`` as YAML gives it; ``auto`` derives every dimension from the teacher."""
    return SpaceSpec() if value == "auto" else strict.build(SpaceSpec, value, "space", _PARSERS)


_PARSERS: dict[str, Callable[[Any], Any]] = {"budgets": parse_budgets, "space": _space}
"""The keys that YAML gives in a form of their own: budgets with units, ``space: auto``."""


def validate(spec: StudySpec) -> StudySpec:
    """Check the ranges a type cannot express; return the spec unchanged.

    Raises:
        ParetokdError: Naming the first field out of range.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", spec.name):
        raise ParetokdError(f"study name {spec.name!r}: use letters, digits, '.', '_' and '-' only")
    if spec.trials < 1:
        raise ParetokdError(f"trials must be at least 1, got {spec.trials}")
    positive = {
        "data.proxy_train": spec.data.proxy_train,
        "data.proxy_eval": spec.data.proxy_eval,
        "data.max_length": spec.data.max_length,
        "distill.batch_size": spec.distill.batch_size,
        "distill.proxy_steps": spec.distill.proxy_steps,
        "distill.final_steps": spec.distill.final_steps,
        "latency.threads": spec.latency.threads,
        "latency.batch": spec.latency.batch,
        "latency.seq_len": spec.latency.seq_len,
        "latency.min_runs": spec.latency.min_runs,
        "latency.inter_op_threads": spec.latency.inter_op_threads,
        "search.population_size": spec.search.population_size,
        "search.heartbeat_seconds": spec.search.heartbeat_seconds,
    }
    for key, value in positive.items():
        if value < 1:
            raise ParetokdError(f"{key} must be at least 1, got {value}")
    if spec.search.population_size < 2:
        raise ParetokdError("search.population_size must be at least 2")
    rate = spec.distill.learning_rate
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise ParetokdError("distill.learning_rate must be a number above zero")
    epochs = spec.distill.final_epochs
    if epochs is not None and not (math.isfinite(epochs) and epochs > 0):
        raise ParetokdError(f"distill.final_epochs must be a number above zero, got {epochs}")
    non_negative = {
        "distill.weight_decay": spec.distill.weight_decay,
        "distill.final_eval_every": spec.distill.final_eval_every,
        "latency.warmup_runs": spec.latency.warmup_runs,
        "latency.min_seconds": spec.latency.min_seconds,
        "latency.max_seconds": spec.latency.max_seconds,
        "latency.block_tolerance": spec.latency.block_tolerance or 0.0,
        "latency.interval_target": spec.latency.interval_target or 0.0,
    }
    for key, number in non_negative.items():
        if not (math.isfinite(number) and number >= 0):
            raise ParetokdError(f"{key} must be a number of at least 0, got {number}")
    _validate_space(spec.space)
    spec = _validate_precision(spec)
    _validate_task(spec)
    return spec


def _validate_space(space: SpaceSpec) -> None:
    """Check the dimensions a spec gives; those left ``null`` are the teacher's to fill."""
    layers = space.num_layers
    if layers is not None and (len(layers) != 2 or not 1 <= layers[0] <= layers[1]):
        raise ParetokdError(
            f"space.num_layers must be [lo, hi] with 1 <= lo <= hi, got {list(layers)}"
        )
    for key in ("hidden_size", "num_heads", "intermediate_size"):
        values = getattr(space, key)
        if values is not None and (min(values) < 1 or len(set(values)) != len(values)):
            raise ParetokdError(f"space.{key} must list distinct positive integers")
    if space.head_size is not None:
        if space.head_size < 1:
            raise ParetokdError(f"space.head_size must be at least 1, got {space.head_size}")
        if space.num_heads is not None:
            raise ParetokdError(
                "space: give num_heads (head counts to sample) or head_size (heads of one "
                "width), not both"
            )
    # Every sampled (hidden, heads) pair must be buildable, so the space is
    # static and every sampler can use every trial.
    if space.hidden_size is not None and space.num_heads is not None:
        bad = [(h, a) for h in space.hidden_size for a in space.num_heads if h % a]
        if bad:
            pairs = ", ".join(f"{h}/{a}" for h, a in bad[:4])
            raise ParetokdError(
                "space: every hidden_size must be divisible by every num_heads "
                f"(not so for {pairs}); e.g. use multiples of 64 with heads 2, 4 or 8"
            )
    if space.hidden_size is not None and space.head_size is not None:
        bad_widths = [h for h in space.hidden_size if h % space.head_size]
        if bad_widths:
            raise ParetokdError(
                f"space: every hidden_size must be a multiple of head_size {space.head_size} "
                f"(not so for {', '.join(map(str, bad_widths[:4]))})"
            )


def _validate_precision(spec: StudySpec) -> StudySpec:
    """The space's precisions, with ``int8`` read as ``fp16`` on a GPU (its reduced precision)."""
    allowed = ("fp32", "fp16") if spec.latency.device == "cuda" else ("fp32", "int8")
    wanted = tuple(
        "fp16" if p == "int8" and spec.latency.device == "cuda" else p for p in spec.space.precision
    )
    bad = [p for p in wanted if p not in allowed]
    if not wanted or bad or len(set(wanted)) != len(wanted):
        raise ParetokdError(
            f"space.precision must list distinct values of {', '.join(allowed)} on "
            f"latency.device {spec.latency.device}, got {list(spec.space.precision)}"
        )
    return dataclasses.replace(spec, space=dataclasses.replace(spec.space, precision=wanted))


_CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews")
_REGRESSION_METRICS = ("spearman", "pearson")


def _validate_task(spec: StudySpec) -> None:
    task, data, evaluation = spec.task, spec.data, spec.evaluation
    for key, columns in (
        ("data.text_columns", data.text_columns),
        ("evaluation.text_columns", evaluation.text_columns),
    ):
        if columns is not None and len(columns) not in (1, 2):
            raise ParetokdError(f"{key} must name one column (texts) or two (sentence pairs)")
    for key, delimiter in (
        ("data.delimiter", data.delimiter),
        ("evaluation.delimiter", evaluation.delimiter),
    ):
        if delimiter is not None and len(delimiter) != 1:
            raise ParetokdError(
                f'{key} must be one character (write a tab as "\\t"), got {delimiter!r}'
            )
    if not (math.isfinite(task.temperature) and task.temperature > 0):
        raise ParetokdError("task.temperature must be a number above zero")
    if not (math.isfinite(task.hidden_weight) and task.hidden_weight >= 0):
        raise ParetokdError("task.hidden_weight must be a number of at least 0")
    if evaluation.max_examples is not None and evaluation.max_examples < 1:
        raise ParetokdError("evaluation.max_examples must be at least 1")
    if task.kind == "agnostic":
        if task.objective == "metric" or task.metric is not None:
            raise ParetokdError(
                "task.objective: metric and task.metric need a task head (task.kind "
                "classification or regression); task-agnostic studies minimise the loss"
            )
        if evaluation.source is not None:
            if evaluation.text_columns is None or len(evaluation.text_columns) != 2:
                raise ParetokdError(
                    "evaluation: a task-agnostic study is scored on sentence-pair similarity; "
                    "name the two sentence columns in evaluation.text_columns"
                )
            if evaluation.metric not in (None, *_REGRESSION_METRICS):
                raise ParetokdError(
                    f"evaluation.metric {evaluation.metric!r}: similarity is scored with "
                    "spearman or pearson"
                )
    else:
        allowed = _CLASSIFICATION_METRICS if task.kind == "classification" else _REGRESSION_METRICS
        for key, metric in (("task.metric", task.metric), ("evaluation.metric", evaluation.metric)):
            if metric is not None and metric not in allowed:
                raise ParetokdError(
                    f"{key} {metric!r} does not score {task.kind}; use one of {', '.join(allowed)}"
                )
        if task.objective == "metric" and data.label_column is None:
            raise ParetokdError(
                "task.objective: metric scores the proxy texts against gold labels; "
                "name them in data.label_column"
            )
    if evaluation.source is not None and evaluation.label_column is None:
        raise ParetokdError("evaluation.label_column: name the column of gold labels or scores")


def load(path: str | Path | None) -> StudySpec:
    """Load and validate a study spec from YAML, or the built-in default when ``path`` is None.

    Raises:
        ParetokdError: If the file is missing, is not YAML, or does not validate.
    """
    if path is None:
        return validate(StudySpec())
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParetokdError(f"study file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise ParetokdError(f"cannot read study file {str(path)!r}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise ParetokdError(f"study file {str(path)!r} is not valid YAML: {first}") from None
    return validate(strict.build(StudySpec, raw, "", _PARSERS))


def override(spec: StudySpec, **flags: Any) -> StudySpec:
    """Apply CLI flags on top of a spec; ``None`` means "not given".

    Dotted names (``teacher.name``) reach into sections.

    Raises:
        ParetokdError: If the result does not validate.
    """
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in flags.items():
        if value is None:
            continue
        if "." in key:
            section, name = key.split(".", 1)
            sections.setdefault(section, {})[name] = value
        else:
            top[key] = value
    for section, changes in sections.items():
        top[section] = dataclasses.replace(getattr(spec, section), **changes)
    return validate(dataclasses.replace(spec, **top))


def from_dict(raw: dict[str, Any]) -> StudySpec:
    """Rebuild a spec from :meth:`StudySpec.to_dict` output (e.g. one stored in a study)."""
    return validate(strict.build(StudySpec, raw, "", _PARSERS))


def cache_dir() -> Path:
    """Where built corpora are cached: ``$PARETOKD_CACHE`` or ``~/.cache/paretokd``."""
    return Path(os.environ.get("PARETOKD_CACHE") or Path.home() / ".cache" / "paretokd")
