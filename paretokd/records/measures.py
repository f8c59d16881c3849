"""The measured facts: an architecture, objective 1, a latency figure, the hardware it holds on."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from paretokd.errors import ParetokdError
from paretokd.metrics import WORST

UNTRAINED_LOSS = 1.0
"""The normalised distillation loss of a student that explains nothing (see
``distill.losses.normalised_mse`` and ``distill.losses.logit_loss_sums``)."""

METRIC_IDEAL = 1.0
"""The best value every task metric of :mod:`paretokd.metrics` can take."""


_ARCH_FIELDS = ("num_layers", "hidden_size", "num_heads", "intermediate_size")

FP32 = "fp32"
"""The precision a model is trained in; ``int8`` (CPU) and ``fp16`` (GPU) are what may ship."""


def graph_name(stem: str, precision: str) -> str:
    """The file name of a graph in ``precision``: ``model.onnx``, ``model.int8.onnx``."""
    return f"{stem}.onnx" if precision == FP32 else f"{stem}.{precision}.onnx"


@dataclass(frozen=True)
class Arch:
    """One student as it ships: its sizes and the precision of its graph.

    Latency depends on this alone, not on weights. Training always happens in
    fp32; an ``int8`` student ships ONNX Runtime's dynamically quantised graph,
    an ``fp16`` one its half-precision graph (GPU).
    """

    num_layers: int
    hidden_size: int
    num_heads: int
    intermediate_size: int
    precision: str = FP32

    @property
    def id(self) -> str:
        """A stable, readable id, used as a cache key and in file names."""
        n, h, a, f = self.num_layers, self.hidden_size, self.num_heads, self.intermediate_size
        sizes = f"L{n}-H{h}-A{a}-F{f}"
        return sizes if self.precision == FP32 else f"{sizes}-{self.precision}"

    @property
    def graph_file(self) -> str:
        """The file its shipped graph is written to: ``model.onnx`` or ``model.int8.onnx``."""
        return graph_name("model", self.precision)

    @property
    def sizes(self) -> Arch:
        """The same sizes in fp32: the model that is built and trained."""
        return replace(self, precision=FP32)

    def to_dict(self) -> dict[str, Any]:
        """The architecture as plain JSON-ready values (also a trial's parameters)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Arch:
        """Inverse of :meth:`to_dict`; a record without a precision is fp32."""
        sizes = {k: int(raw[k]) for k in _ARCH_FIELDS}
        return cls(**sizes, precision=str(raw.get("precision", FP32)))

    @classmethod
    def from_id(cls, text: str) -> Arch:
        """Inverse of :attr:`id`: ``L3-H384-A12-F1536`` or ``L3-H384-A12-F1536-int8``.

        Raises:
            ValueError: If ``text`` is not such an id.
        """
        found = re.fullmatch(r"L(\d+)-H(\d+)-A(\d+)-F(\d+)(?:-(\w+))?", text.strip())
        if found is None:
            raise ValueError(f"not an architecture id (L3-H384-A12-F1536[-int8]): {text!r}")
        n, h, a, f = (int(v) for v in found.groups()[:4])
        return cls(n, h, a, f, found.group(5) or FP32)


# --- objective 1 ------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """Objective 1 of a study: the proxy distillation loss, or a task metric on proxy labels.

    Objective 2 is always the latency p50 in milliseconds, minimised.
    """

    name: str
    """``loss``, or a metric of :data:`paretokd.metrics.WORST` (``accuracy``, ...)."""

    def __post_init__(self) -> None:
        if self.name != "loss" and self.name not in WORST:
            known = ", ".join(["loss", *WORST])
            raise ParetokdError(f"unknown objective {self.name!r}: expected one of {known}")

    @property
    def maximise(self) -> bool:
        """Whether higher is better (a task metric) rather than lower (the loss)."""
        return self.name != "loss"

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        """Optuna's word for :attr:`maximise`: ``maximize`` or ``minimize``."""
        return "maximize" if self.maximise else "minimize"

    @property
    def worst(self) -> float:
        """What a student that was never trained scores: the hypervolume's reference."""
        return WORST[self.name] if self.maximise else UNTRAINED_LOSS

    @property
    def ideal(self) -> float:
        """The best value it can take: the far corner of the hypervolume's box."""
        return METRIC_IDEAL if self.maximise else 0.0

    @property
    def label(self) -> str:
        """How tables and axes name it: ``proxy loss``, ``proxy accuracy``."""
        return f"proxy {self.name}"

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b``."""
        return a > b if self.maximise else a < b

    def sort_key(self, value: float) -> float:
        """A key that sorts values best first."""
        return -value if self.maximise else value

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the name and Optuna's direction."""
        return {"name": self.name, "direction": self.direction}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Objective:
        """Inverse of :meth:`to_json`."""
        return cls(str(raw["name"]))


LOSS = Objective("loss")
"""The task-agnostic default objective."""


# --- latency ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyStats:
    """Latency statistics of one model, in milliseconds.

    The first four fields are what older studies stored; the others default so
    that those still load with :meth:`from_json`.
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
    """What the figures above time: ``cpu`` or ``wall`` (see ``latency.fingerprint.clock``)."""
    wall_p50_ms: float | None = None
    """The wall-clock p50 of every run: far above ``p50_ms`` when the core was shared."""
    runs_dropped: int | None = None
    """Timed runs left out because other load slowed their block (see ``latency.measure``)."""
    ratio: float | None = None
    """Paired timing (``latency.paired``): the median of the rounds' candidate / anchor
    ratios; ``p50_ms`` is this times the anchor's calibrated latency."""
    ratio_ci: tuple[float, float] | None = None
    """A 95% interval for :attr:`ratio`; ``ci_ms`` is this times the anchor's latency."""
    rounds: int | None = None
    """Rounds of the paired timing (one candidate block and one anchor block each)."""
    raw_p50_ms: float | None = None
    """The candidate's own p50 during the pairing: the machine's state at that time."""
    anchor_p50_ms: float | None = None
    """The anchor's own p50 during the pairing."""
    anchor: str | None = None
    """The anchor of the pairing: ``teacher``, or the id of a rung of the study's ladder
    (``latency.paired.rungs``); a later timing of the same graph pairs with it again."""

    @property
    def upper_ms(self) -> float:
        """The upper bound of the p50's interval (the p50 itself without one)."""
        return self.ci_ms[1] if self.ci_ms is not None else self.p50_ms

    def __post_init__(self) -> None:
        for name in ("ci_ms", "ratio_ci"):  # JSON gives lists back
            pair = getattr(self, name)
            if pair is not None:
                object.__setattr__(self, name, (float(pair[0]), float(pair[1])))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        out = asdict(self)
        for name in ("ci_ms", "ratio_ci"):
            pair = getattr(self, name)
            out[name] = list(pair) if pair is not None else None
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LatencyStats:
        """Inverse of :meth:`to_json`."""
        return cls(**raw)


@dataclass(frozen=True)
class Fingerprint:
    """The hardware and settings a latency figure is only valid for."""

    device: str
    hardware: str
    """The CPU model, or the GPU name with ``device: cuda``."""
    instruction_sets: str
    """The CPU's features that matter to int8 and fp32 speed (VNNI, AMX, AVX-512, AVX2)."""
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
    estimator: str = "pooled-medians"
    """How a paired timing's ratio is read from its rounds (older studies: pooled medians)."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Fingerprint:
        """Inverse of :meth:`to_json`."""
        return cls(**raw)
