"""How far the latency axis can be trusted: rank stability, repeatability and cost.

Run by hand (not a test); it prints figures:

    .venv/bin/python bench/latency_stability.py                  # 20 architectures x 5 rounds
    .venv/bin/python bench/latency_stability.py --archs 8 --repeats 3 --train-archs 0
    .venv/bin/python bench/latency_stability.py --fusion        # fused vs plain graphs

Architectures are spread evenly, by estimated compute, over the default
search space (derived from the default teacher) and built from it
(all-MiniLM-L6-v2, resolved offline), exactly as the search builds students.
Every measurement is one in-process ``paretokd latency`` call
(:func:`paretokd.measure.measure_target`): build, export, time. Rounds visit the
architectures in different orders (round 1 as listed, round 2 reversed, later
rounds shuffled), so slow drift of the machine shows up as disagreement rather
than cancelling out.

Figures:

- Kendall's tau between round 1's and round 2's p50 (the issue asks >= 0.95);
- per architecture, the coefficient of variation of p50 over all rounds, and
  its median (the issue asks <= 3%);
- how often a re-measurement differs from the first one by more than 5% (what
  a pick re-measured after its final distillation would see);
- the cost of a measurement (export + timing) per architecture, and its share of
  a trial's wall time, with the distillation time of a trial measured by
  running ``distill.train`` for the default ``proxy_steps`` on a few of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path

from paretokd import config
from paretokd.config import SpaceSpec, StudySpec, TeacherSpec
from paretokd.measure import measure_target
from paretokd.metrics import kendall_tau
from paretokd.models import student
from paretokd.models import teacher as teacher_mod
from paretokd.records import FP32, Arch
from paretokd.search import space as search_space


def spread(space: SpaceSpec, n: int) -> list[Arch]:
    """``n`` architectures of ``space`` evenly spaced by estimated compute, smallest to largest."""
    grid = [a for a in search_space.all_archs(space) if a.precision == FP32]

    def flops(a: Arch) -> float:  # per token, projections and FFN (attention is small at 128)
        return a.num_layers * (4 * a.hidden_size**2 + 2 * a.hidden_size * a.intermediate_size)

    grid.sort(key=lambda a: (flops(a), a.id))
    picks = [grid[round(i * (len(grid) - 1) / (n - 1))] for i in range(n)] if n > 1 else grid[:1]
    return list(dict.fromkeys(picks))


def cv(values: list[float]) -> float:
    """Coefficient of variation (sample standard deviation over mean)."""
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def orders(n: int, rounds: int, seed: int) -> list[list[int]]:
    """Round 1 in order, round 2 reversed, later rounds shuffled."""
    rng = random.Random(seed)
    out = [list(range(n)), list(reversed(range(n)))]
    for _ in range(rounds - 2):
        order = list(range(n))
        rng.shuffle(order)
        out.append(order)
    return out[:rounds]


def distill_seconds(archs: list[Arch], spec: StudySpec, teacher: teacher_mod.Teacher) -> dict:
    """Seconds of a trial's proxy distillation and evaluation, per architecture."""
    import tempfile

    import torch

    from paretokd import latency
    from paretokd.models import data
    from paretokd.search import context

    splits = data.load_splits(spec.data, spec.seed, config.cache_dir())
    torch.set_num_threads(os.cpu_count() or 1)  # as search.loop.run trains
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = context.prepare(spec, teacher, splits, Path(tmp), latency.fingerprint(spec.latency))
        for arch in archs:
            t0 = time.perf_counter()
            context.proxy_distill(context.build_student(arch, ctx), ctx)
            out[arch.id] = time.perf_counter() - t0
    return out


def fusion_table(
    archs: list[Arch], spec: StudySpec, teacher: teacher_mod.Teacher, rounds: int = 3
) -> None:
    """Print p50 and parity of the plain and fused graphs, exported from SDPA and eager attention.

    The variants are timed in turns, ``rounds`` times, in one process, so they
    see the same machine.
    """
    import tempfile

    from paretokd import latency
    from paretokd.latency import export

    texts = ["A short one.", "A somewhat longer sentence, so that the batch needs padding."]
    batch = dict(teacher.tokenizer(texts, padding=True, return_tensors="pt"))
    plain = spec.latency
    fused = dataclasses.replace(plain, transformer_fusion=True)
    variants = {"sdpa": ("sdpa", plain), "eager": ("eager", plain)}
    variants |= {"sdpa+fusion": ("sdpa", fused), "eager+fusion": ("eager", fused)}
    print(f"\n{'architecture':<20} " + " ".join(f"{v:>14}" for v in variants) + "  (p50 ms)")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            model = (
                teacher.model
                if arch == teacher.dims
                else student.build(arch, teacher.model, spec.distill.teacher_init)
            )
            paths, diffs = {}, {}
            for name, (attention, lat) in variants.items():
                exported = export.EXPORT_ATTENTION
                export.EXPORT_ATTENTION = attention  # what export_onnx switches the model to
                try:
                    path = Path(tmp) / f"{arch.id}-{name}.onnx"
                    paths[name] = latency.export_onnx(
                        model, teacher.tokenizer.model_input_names, path, lat
                    )
                finally:
                    export.EXPORT_ATTENTION = exported
                diffs[name] = latency.parity(model, paths[name], batch, lat)
            p50: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, (_, lat) in variants.items():
                    p50[name].append(latency.measure(paths[name], lat).p50_ms)
            label = arch.id + (" (teacher)" if arch == teacher.dims else "")
            print(
                f"{label:<20} " + " ".join(f"{statistics.median(p50[n]):>14.2f}" for n in variants)
            )
            print(f"{'  parity':<20} " + " ".join(f"{diffs[n]:>14.1e}" for n in variants))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=20, help="architectures (default 20)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds over all (default 5)")
    parser.add_argument("--train-archs", type=int, default=3, help="distilled for the cost share")
    parser.add_argument("--study", help="study spec whose latency settings to use")
    parser.add_argument("--clock", choices=["auto", "cpu", "wall"], help="override latency.clock")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument(
        "--fusion", action="store_true", help="also compare fused and plain graphs, then stop"
    )
    args = parser.parse_args()
    if args.repeats < 2 or args.archs < 2:
        parser.error("need at least 2 architectures and 2 repeats")

    logging.disable(logging.WARNING)
    spec = config.load(args.study)
    if args.clock:
        spec = dataclasses.replace(
            spec, latency=dataclasses.replace(spec.latency, clock=args.clock)
        )
    teacher = teacher_mod.load(TeacherSpec())
    spec = search_space.resolve(spec, teacher.dims)
    archs = spread(spec.space, args.archs)
    print(f"{len(archs)} architectures of the default space, {args.repeats} rounds; teacher")
    print(f"{teacher.name} {teacher.dims.id}; latency setup {spec.latency}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    if args.fusion:
        fusion_table([archs[0], archs[len(archs) // 2], teacher.dims], spec, teacher)
        return

    runs: dict[str, list[dict]] = {a.id: [] for a in archs}
    start = time.perf_counter()
    for r, order in enumerate(orders(len(archs), args.repeats, args.seed)):
        for i in order:
            arch = archs[i]
            got = measure_target(json.dumps(arch.to_dict()), spec, teacher)
            runs[arch.id].append(got)
        print(f"  round {r + 1} done at {time.perf_counter() - start:.0f} s", file=sys.stderr)
    fingerprint = next(iter(runs.values()))[0]["fingerprint"]

    p50 = {a.id: [m["p50_ms"] for m in runs[a.id]] for a in archs}
    wall = {a.id: [m["wall_p50_ms"] for m in runs[a.id]] for a in archs}
    cost = {a.id: statistics.fmean(m["cost_s"] for m in runs[a.id]) for a in archs}
    export = {a.id: statistics.fmean(m["export_s"] for m in runs[a.id]) for a in archs}
    cvs = {a.id: cv(p50[a.id]) for a in archs}
    step = (len(archs) - 1) / max(args.train_archs - 1, 1)
    trained = list(dict.fromkeys(archs[round(i * step)] for i in range(args.train_archs)))
    train = distill_seconds(trained, spec, teacher) if trained else {}

    print()
    print(
        f"{'architecture':<20} {'params':>7} {'p50 ms (rounds)':<44} {'CV':>6} {'wall p50':>9} "
        f"{'CI width':>8} {'cost s':>7} {'export':>6}"
    )
    for a in archs:
        first = runs[a.id][0]
        ci = first["ci_ms"]
        print(
            f"{a.id:<20} {first['params'] / 1e6:>6.1f}M "
            f"{' '.join(f'{v:7.2f}' for v in p50[a.id]):<44} {100 * cvs[a.id]:>5.1f}% "
            f"{statistics.median(wall[a.id]):>8.2f} "
            f"{100 * (ci[1] - ci[0]) / first['p50_ms']:>7.1f}% "
            f"{cost[a.id]:>7.2f} {export[a.id]:>6.2f}"
        )

    tau = kendall_tau([p50[a.id][0] for a in archs], [p50[a.id][1] for a in archs])
    taus = [
        kendall_tau([p50[a.id][i] for a in archs], [p50[a.id][j] for a in archs])
        for i, j in itertools.combinations(range(args.repeats), 2)
    ]
    wall_tau = kendall_tau([wall[a.id][0] for a in archs], [wall[a.id][1] for a in archs])
    over = [abs(v / p50[a.id][0] - 1) > 0.05 for a in archs for v in p50[a.id][1:]]
    teacher_size = [
        a
        for a in archs
        if a.num_layers * a.hidden_size * a.intermediate_size
        <= teacher.dims.num_layers * teacher.dims.hidden_size * teacher.dims.intermediate_size
    ]
    median_cv, max_cv = statistics.median(cvs.values()), max(cvs.values())
    biggest = max(cost[a.id] for a in teacher_size)
    print()
    print(f"fingerprint: {json.dumps(fingerprint)}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report = {
        "Kendall's tau, round 1 vs 2 (p50)": f"{tau:.3f}  (same runs, wall clock: {wall_tau:.3f})",
        "Kendall's tau, all pairs of rounds": f"min {min(taus):.3f}, median "
        f"{statistics.median(taus):.3f}",
        f"median CV of p50 over {args.repeats} rounds": f"{100 * median_cv:.2f}%  "
        f"(max {100 * max_cv:.2f}%)",
        "re-measurements > 5% from the first": f"{sum(over)}/{len(over)}",
        "measurement cost (export + timing)": f"mean {statistics.fmean(cost.values()):.2f} s, "
        f"max up to the teacher's size {biggest:.2f} s "
        f"(export {statistics.fmean(export.values()):.2f} s of it on average)",
    }
    for label, value in report.items():
        print(f"{label + ':':<40} {value}")
    for arch_id, seconds in train.items():
        share = cost[arch_id] / (cost[arch_id] + seconds)
        print(
            f"  {arch_id:<20} proxy distillation + eval {seconds:6.1f} s; "
            f"measurement {cost[arch_id]:.2f} s = {100 * share:.0f}% of the trial"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "train_s": train}, indent=1))


if __name__ == "__main__":
    main()
