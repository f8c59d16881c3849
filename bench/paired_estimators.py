"""Paired-estimator benchmark: which reading of a paired timing's rounds survives a busy machine?

Run by hand from the repository root (about 11 minutes on 2 CPU cores):

    .venv/bin/python bench/paired_estimators.py

Times four students of the default teacher (all-MiniLM-L6-v2), from one layer
of width 96 to the hand-crafted three layers, in fp32 and int8, under five
neighbours in turn: none, a spinning process, a process that spins 20 ms and
sleeps 30 ms, one that copies 64 MB over and over, and a one-thread training
job. Each timing is made twice, paired with the teacher and paired with the
nearest anchor of the teacher's ladder (calibrated once on the quiet machine,
as a study's is), and read three ways:

- ``nearest anchor`` (what paretokd does): paired with the ladder's anchor
  nearest the student's latency; each round's candidate mean run time over the
  anchor's, the median over every round, times the anchor's figure;
- ``teacher, round means`` (what it did before): the same, always paired with
  the teacher;
- ``teacher, pooled medians`` (what it did first): the candidate's median run
  over the teacher's, pooled over the rounds
  :func:`paretokd.latency.paired.quiet_rounds` keeps.

For each student and reading it prints the median figure with no neighbour
(the reference), the median shift under each neighbour, and the p50, p95 and
maximum of |figure / reference - 1| over every timing. The reading whose
figures stay nearest the quiet machine's keeps a search figure nearest the one
a student ships with.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from paretokd import config, latency
from paretokd.latency import paired
from paretokd.latency.graph import reduce_precision
from paretokd.logs import quiet_libraries
from paretokd.models import student
from paretokd.models import teacher as teacher_mod
from paretokd.records import Arch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from budget_promise import NEIGHBOURS as PROMISE_NEIGHBOURS  # noqa: E402
from budget_promise import anchors  # noqa: E402

NEIGHBOURS = {
    **PROMISE_NEIGHBOURS,
    "burst": (
        "import time\n"
        "while True:\n"
        "    t = time.perf_counter()\n"
        "    while time.perf_counter() - t < 0.02: pass\n"
        "    time.sleep(0.03)\n"
    ),
    "memory": (
        "import numpy as np, time\n"
        "a = np.ones(64 * 2**20 // 8)\n"
        "while True:\n"
        "    b = a.copy(); time.sleep(0.01)\n"
    ),
}
"""What runs beside the timings: the promise bench's neighbours, bursts, and memory traffic."""

STUDENTS = (Arch(1, 96, 3, 768), Arch(1, 256, 8, 768), Arch(2, 192, 6, 768), Arch(3, 384, 12, 1536))
"""One-layer students of width 96 and 256, a two-layer one, and the hand-crafted student."""

Timings = tuple[paired.Paired, paired.Paired]
"""One student timed paired with the teacher, then paired with its nearest anchor."""


def pooled_medians(timed: paired.Paired) -> float:
    """The first reading: pooled medians over the quiet rounds."""
    k = timed.kept
    cand = np.median([t for i in k for t in timed.candidate_blocks[i]])
    anch = np.median([t for i in k for t in timed.anchor_blocks[i]])
    return float(cand / anch)


ESTIMATORS: dict[str, Callable[[Timings], float]] = {
    # Over the teacher's calibrated figure (the anchor of the first timing).
    "nearest anchor": lambda t: t[1].stats().p50_ms / t[0].against.ms,
    "teacher, round means": lambda t: t[0].ratio,
    "teacher, pooled medians": lambda t: pooled_medians(t[0]),
}
"""Each reading of a student's figure, in units of the teacher's calibrated latency."""


def collect(
    ladder: tuple[paired.Anchor, ...], graphs: dict[str, Path], spec: config.LatencySpec, reps: int
) -> dict[tuple[str, str], list[Timings]]:
    """Every student timed ``reps`` times beside each neighbour in turn, both ways."""
    out: dict[tuple[str, str], list[Timings]] = {}
    for neighbour, code in NEIGHBOURS.items():
        proc = subprocess.Popen([sys.executable, "-c", code]) if code else None
        try:
            time.sleep(1.0 if proc else 0.0)
            for _ in range(reps):
                for name, path in graphs.items():
                    top = paired.measure_paired(path, ladder[:1], spec)
                    near = paired.measure_paired(path, ladder, spec)
                    out.setdefault((name, neighbour), []).append((top, near))
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()
        print(f"timed beside {neighbour}", flush=True)
    return out


def report(timings: dict[tuple[str, str], list[Timings]], names: list[str]) -> None:
    """Print each reading's shift and spread per student against its quiet-machine figure."""
    for name in names:
        near = sorted({t[1].against.name for nb in NEIGHBOURS for t in timings[(name, nb)]})
        print(f"\n{name} (its nearest anchor: {', '.join(near)})")
        for label, read in ESTIMATORS.items():
            by = {nb: [read(t) for t in timings[(name, nb)]] for nb in NEIGHBOURS}
            ref = float(np.median(by["quiet"]))
            dev = np.abs(np.array([v for vs in by.values() for v in vs]) / ref - 1) * 100
            shifts = " ".join(f"{nb} {np.median(v) / ref - 1:+.1%}" for nb, v in by.items())
            print(
                f"  {label:24} ratio {ref:.4f}  |dev| p50 {np.median(dev):4.1f}% "
                f"p95 {np.percentile(dev, 95):4.1f}% max {dev.max():4.1f}%   {shifts}"
            )


def main() -> None:
    """Parse the flags, build the graphs, time them beside each neighbour, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="timings per student and neighbour")
    args = parser.parse_args()
    quiet_libraries()
    spec = config.load(None)
    teacher = teacher_mod.load(spec.teacher)
    names = teacher.tokenizer.model_input_names
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        teacher_onnx = latency.export_onnx(teacher.model, names, folder / "t.onnx", spec.latency)
        graphs = {}
        for arch in STUDENTS:
            model = student.build(arch, teacher.model)
            fp32 = latency.export_onnx(model, names, folder / f"{arch.id}.onnx", spec.latency)
            graphs[arch.id] = fp32
            graphs[f"{arch.id}-int8"] = reduce_precision(fp32, "int8")
        timings: dict[tuple[str, str], list[Timings]] = {}
        for precision in ("fp32", "int8"):
            ladder = anchors(teacher, teacher_onnx, folder, spec.latency, precision)
            int8 = precision == "int8"
            chosen = {k: v for k, v in graphs.items() if k.endswith("-int8") == int8}
            timings |= collect(ladder, chosen, spec.latency, args.reps)
    report(timings, list(graphs))


if __name__ == "__main__":
    main()
