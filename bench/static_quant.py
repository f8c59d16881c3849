"""Static QDQ quantisation against dynamic: which int8 graph makes the better front?

Run by hand from the repository root (about 15 minutes on 2 CPU cores):

    .venv/bin/python bench/static_quant.py --out runs/bench-static

paretokd ships int8 graphs made by ONNX Runtime's dynamic quantisation (int8
weights; each activation's range found at run time). Static quantisation
fixes the activations' ranges ahead of time, from calibration inputs, and
writes a QDQ graph: no range to compute per run, but ranges that may not fit
every input. This benchmark compares them where it matters, on the front:

1. Loads the default teacher and the STS-B study's settings (``studies/stsb.yaml``)
   on the corpus ``bench/quality.py`` writes from ``../shared/data``.
2. Distils students of a few sizes (the hand-crafted one among them) for
   ``--steps`` steps, the same recipe as a final distillation.
3. Writes, for the teacher and each student, the fp32 graph, the dynamic int8
   graph paretokd ships, and static QDQ graphs calibrated on ``--calibration``
   proxy texts (activations uint8, weights int8, the x86 pairing; every op
   ONNX Runtime quantises, or the MatMuls only; min-max or percentile ranges).
4. Times every graph paired with the fp32 teacher (``latency.paired``, the
   study's protocol, one process), and scores it on STS-B dev (Spearman of
   the cosine of mean-pooled embeddings) as a share of the fp32 teacher's.

It prints one row per graph, and per model which int8 graph is faster and
which keeps more quality.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import logging
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from paretokd import config, latency
from paretokd.distill import recipe, scoring
from paretokd.latency import paired
from paretokd.latency.graph import GraphModel, reduce_precision
from paretokd.logs import quiet_libraries
from paretokd.models import data
from paretokd.models import teacher as teacher_mod
from paretokd.records import Arch
from paretokd.search import context
from paretokd.search.reference import handcrafted_arch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ROUNDS = 40
"""Paired rounds per graph (the spec's confirmation uses fewer; this table is read closely)."""


def _quality_bench() -> object:
    """``bench/quality.py`` as a module (its corpus writer), without making ``bench`` a package."""
    loaded = importlib.util.spec_from_file_location("quality_bench", ROOT / "bench" / "quality.py")
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    sys.modules[loaded.name] = module  # its dataclasses look their module up while being made
    loaded.loader.exec_module(module)
    return module


@dataclasses.dataclass(frozen=True)
class Variant:
    """One static quantisation setting."""

    name: str
    ops: tuple[str, ...] | None
    """Op types to quantise; ``None``: every op type ONNX Runtime quantises."""
    method: str
    """``MinMax`` or ``Percentile`` (ONNX Runtime's ``CalibrationMethod``)."""


VARIANTS = (
    Variant("static-all-minmax", None, "MinMax"),
    Variant("static-matmul-minmax", ("MatMul",), "MinMax"),
    Variant("static-matmul-pct", ("MatMul",), "Percentile"),
)


class _Texts:
    """Calibration inputs for ONNX Runtime: one tokenised text at a time, as served (batch 1)."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def static_graph(
    fp32: Path, out: Path, variant: Variant, feeds: list[dict[str, np.ndarray]]
) -> Path:
    """``fp32`` quantised statically (QDQ) with ranges calibrated on ``feeds``."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, target = fp32.resolve(), out.resolve()  # before the working directory moves
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        prepared = Path(tmp) / "prepared.onnx"
        # Symbolic shape inference does not finish on these graphs; ONNX's own does.
        # It writes its scratch files into the working directory: the temporary one.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            _Texts(feeds),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(variant.ops) if variant.ops else None,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, variant.method),
            extra_options={"CalibTensorRangeSymmetric": False},
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-static")
    parser.add_argument("--steps", type=int, default=400, help="Distillation steps per student.")
    parser.add_argument("--calibration", type=int, default=128, help="Proxy texts to calibrate.")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} is missing: this benchmark needs the shared data sets")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    quiet_libraries()

    corpus, _ = _quality_bench().write_corpus(args.out)  # type: ignore[attr-defined]
    stsb = config.load(ROOT / "studies" / "stsb.yaml")
    spec = dataclasses.replace(
        stsb,
        data=config.DataSpec(source=str(corpus), proxy_train=2048, proxy_eval=256, max_length=64),
        evaluation=dataclasses.replace(
            stsb.evaluation, source=str(SHARED / "stsb" / "sts-dev.csv")
        ),
    )
    teacher = teacher_mod.load(spec.teacher, spec.task)
    splits = data.load_splits(spec.data, spec.seed, config.cache_dir())
    evalset = scoring.load(spec, teacher, config.cache_dir())
    assert evalset is not None
    work = args.out / "graphs"
    work.mkdir(parents=True, exist_ok=True)
    ctx = context.prepare(spec, teacher, splits, work, latency.fingerprint(spec.latency))
    names = teacher.tokenizer.model_input_names
    # One shape for every input (the percentile calibrator stacks them): padded as trained.
    tokenize = teacher.tokenizer
    feeds = [
        {
            k: v.astype(np.int64)
            for k, v in tokenize(
                t, padding="max_length", truncation=True, max_length=spec.data.max_length,
                return_tensors="np",
            ).items()
        }
        for t in splits.proxy_train[: args.calibration]
        if isinstance(t, str)
    ]  # fmt: skip
    feeds = [{k: f[k] for k in names if k in f} for f in feeds]

    dims = teacher.dims
    hand = handcrafted_arch(teacher)
    archs = [
        hand,
        Arch(2, dims.hidden_size, dims.num_heads, dims.intermediate_size // 2),
        Arch(1, dims.hidden_size, dims.num_heads, dims.intermediate_size // 2),
    ]
    models: dict[str, Path] = {"teacher": context.anchor_onnx(ctx)}
    for arch in archs:
        path = work / f"{arch.id}.onnx"
        if path.is_file():  # distilled by an earlier run of the bench with the same --out
            models[arch.id] = path
            continue
        model = context.build_student(arch, ctx)
        done = recipe.distill_and_score(
            model, ctx.proxy_train, ctx.proxy_eval, spec, ctx.slicing, args.steps
        )
        print(f"{arch.id}: {args.steps} steps, held-out loss {done.loss:.4f}")
        models[arch.id] = latency.export_onnx(done.model, names, path, spec.latency)

    anchor = models["teacher"]
    anchor_ms = paired.calibrate(anchor, spec.latency, teacher.config.vocab_size).p50_ms
    rows = []
    for label, fp32 in models.items():
        graphs = {"fp32": fp32, "dynamic": reduce_precision(fp32, "int8")}
        for variant in VARIANTS:
            out = fp32.with_name(f"{fp32.stem}.{variant.name}.onnx")
            graphs[variant.name] = static_graph(fp32, out, variant, feeds)
        for kind, path in graphs.items():
            top = [paired.Anchor(paired.TEACHER, anchor, anchor_ms)]  # speed-ups: the teacher's
            timed = paired.measure_paired(
                path, top, spec.latency, args.rounds, teacher.config.vocab_size
            )
            scored = scoring.score(GraphModel(path, spec.latency), teacher.tokenizer, evalset, spec)
            rows.append((label, kind, timed.ratio * anchor_ms, 1 / timed.ratio, scored.value))
            print(f"{label:<22} {kind:<22} {rows[-1][2]:6.2f} ms  {1 / timed.ratio:5.2f}x  "
                  f"spearman {scored.value:.4f}", flush=True)  # fmt: skip

    base = next(r[4] for r in rows if r[0] == "teacher" and r[1] == "fp32")
    print(f"\nfp32 teacher p50 {anchor_ms:.2f} ms, STS-B dev Spearman {base:.4f}")
    print("| model | graph | p50 ms | speed-up | Spearman | share of teacher |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, kind, ms, speed, value in rows:
        print(f"| {label} | {kind} | {ms:.2f} | {speed:.2f}x | {value:.4f} | "
              f"{100 * value / base:.1f}% |")  # fmt: skip
    print("\nper model, dynamic int8 against the best static graph:")
    for label in models:
        mine = [r for r in rows if r[0] == label]
        dyn = next(r for r in mine if r[1] == "dynamic")
        static = [r for r in mine if r[1].startswith("static")]
        fastest = min(static, key=lambda r: r[2])
        best = max(static, key=lambda r: r[4])
        print(
            f"  {label}: dynamic {dyn[2]:.2f} ms / {dyn[4]:.4f}; fastest static "
            f"{fastest[1]} {fastest[2]:.2f} ms / {fastest[4]:.4f}; most accurate static "
            f"{best[1]} {best[2]:.2f} ms / {best[4]:.4f}"
        )


if __name__ == "__main__":
    main()
