"""Tabular sampler benchmark: NSGA-II vs TPE vs random search on precomputed students.

Two steps, run by hand:

    # (a) build (or resume) the table: real latency and real proxy distillation (~50 min)
    .venv/bin/python bench/sampler_table.py --build 360 --proxy-steps 30
    # (b) compare the samplers on it (a lookup, no training: ~2 min for 200 seeds)
    .venv/bin/python bench/sampler_table.py --compare --trials 30 --seeds 200

The table (``bench/data/sampler_table.json``) holds, per architecture of the
default space, the p50 latency (ONNX Runtime, a shortened protocol) and the
held-out proxy loss of the search's own recipe on the default teacher
(all-MiniLM-L6-v2) and corpus. As in the search, an architecture over the
largest budget is not trained: it is infeasible and scores loss 1.0. Rows are
written one by one, so an interrupted build resumes where it stopped.

The comparison runs each sampler on a lookup objective with the search's
constraint, and reports the median hypervolume of the feasible front after
``--trials`` trials and its ratio to random search's: as the search runs them
(wrapped so that no trial repeats an architecture), and bare (``+rep``:
repeats allowed). With all 360 architectures of the default space in the
table, every proposal is looked up exactly; a smaller table answers with the
nearest row.

Two box corners (see :func:`corners`): the table's own Pareto front
gives the one that judges the samplers, following Ishibuchi et al. (2018,
"How to specify a reference point in hypervolume calculation for fair
performance comparison", Evolutionary Computation 26(3)): the nadir of the
true front, moved out by 1/(N-1) of the front's range for N = ``--trials``
points. The report's own reference (an untrained student, loss 1.0, at the
largest budget) is printed beside it: no student of the table scores worse
than 0.75, so a quarter of its box is won by any feasible trial and every
ratio is squeezed towards 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from paretokd.config import DistillSpec, SpaceSpec
from paretokd.records import CONSTRAINT, UNTRAINED_LOSS
from paretokd.report.hypervolume import hypervolume_2d

ROOT = Path(__file__).resolve().parent
TABLE = ROOT / "data" / "sampler_table.json"
TABLE_SPACE = SpaceSpec(
    num_layers=(1, 6),
    hidden_size=(96, 192, 288, 384),
    num_heads=(3, 6, 12),
    intermediate_size=(256, 512, 768, 1024, 1536),
)
"""The space the stored table measures (the default space before spaces were derived)."""
BUDGET_MS = 20.0
"""The default spec's largest budget: the constraint and the reference point's latency."""


def _save(path: Path, table: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n")
    os.replace(tmp, path)


def build(n: int, proxy_steps: int, seed: int, path: Path) -> None:
    """Measure and distil up to ``n`` architectures of the default space, resuming ``path``."""
    import torch

    from paretokd import config, latency
    from paretokd.logs import quiet_libraries
    from paretokd.models import data
    from paretokd.models import teacher as teacher_mod
    from paretokd.search import context, proxy

    quiet_libraries()
    lat = dataclasses.replace(
        config.LatencySpec(), warmup_runs=2, min_runs=10, min_seconds=0.2, max_seconds=1.0
    )
    base = config.StudySpec(space=TABLE_SPACE)
    spec = dataclasses.replace(
        base, latency=lat, distill=dataclasses.replace(base.distill, proxy_steps=proxy_steps)
    )
    table: dict[str, Any] = (
        json.loads(path.read_text())
        if path.exists()
        else {
            "teacher": spec.teacher.name,
            "corpus": spec.data.source,
            "proxy_steps": proxy_steps,
            "budget_ms": max(spec.budgets),
            "latency": dataclasses.asdict(lat),
            "distill": dataclasses.asdict(spec.distill),
            "rows": [],
        }
    )
    if table["proxy_steps"] != proxy_steps:
        sys.exit(f"{path} was built with --proxy-steps {table['proxy_steps']}; use that")
    done = {r["arch_id"] for r in table["rows"]}
    todo = [a for a in proxy.sample_archs(spec.space, n, seed) if a.id not in done]
    print(f"table: {len(done)} rows; {len(todo)} to add", flush=True)
    if not todo:
        return
    # One thread: on a shared, oversubscribed machine two OpenMP threads spin-wait
    # on each other and a 10-step distillation took 75 s instead of a few.
    torch.set_num_threads(1)
    teacher = teacher_mod.load(spec.teacher)
    splits = data.load_splits(spec.data, spec.seed, config.cache_dir())
    budget = max(spec.budgets)
    with tempfile.TemporaryDirectory(prefix="paretokd-table-") as tmp:
        ctx = context.prepare(spec, teacher, splits, Path(tmp), latency.fingerprint(spec.latency))
        for i, arch in enumerate(todo, 1):
            t0 = time.perf_counter()
            model = context.build_student(arch, ctx)
            stats = context.time_student(model, ctx)
            ms = stats.p50_ms
            t1 = time.perf_counter()
            trained = ms <= budget
            loss = (
                context.proxy_distill(model, ctx, proxy_steps).loss if trained else UNTRAINED_LOSS
            )
            table["rows"].append(
                {
                    "arch_id": arch.id,
                    "arch": arch.to_dict(),
                    "latency_ms": ms,
                    "proxy_loss": loss,
                    "trained": trained,
                    "latency_s": t1 - t0,
                    "lock_wait_s": stats.lock_wait_s,
                    "distill_s": time.perf_counter() - t1,
                }
            )
            _save(path, table)
            print(
                f"{len(done) + i:4d} {arch.id:<20} p50 {ms:6.2f} ms  loss {loss:.4f}  "
                f"(latency {t1 - t0:.1f} s, lock wait {stats.lock_wait_s or 0:.1f} s, "
                f"distil {time.perf_counter() - t1:.1f} s)",
                flush=True,
            )


def _lookup(table: dict[str, Any]) -> tuple[Any, Any]:
    """A function arch → (loss, latency): exact row, else the nearest row (scaled grid distance)."""
    from paretokd.search import space

    s = TABLE_SPACE
    keys = ("num_layers", "hidden_size", "num_heads", "intermediate_size")
    archs = space.all_archs(s)
    scale = {k: max(getattr(a, k) for a in archs) - min(getattr(a, k) for a in archs) for k in keys}
    rows = {r["arch_id"]: r for r in table["rows"]}

    def find(arch: Any) -> dict[str, Any]:
        if arch.id in rows:
            return rows[arch.id]
        a = arch.to_dict()
        return min(
            table["rows"],
            key=lambda r: sum(((r["arch"][k] - a[k]) / scale[k]) ** 2 for k in keys),
        )

    return find, s


def corners(table: dict[str, Any], trials: int) -> dict[str, tuple[float, float]]:
    """The reference points (loss, latency) the comparison reports, by name.

    ``front``: the nadir of the table's feasible Pareto front plus 1/(trials-1)
    of the front's range on each axis (Ishibuchi et al. 2018, for ``trials``
    points in two objectives). ``untrained``: the report's reference (loss 1.0
    at the largest budget, ``report.default_corner``).
    """
    budget = float(table["budget_ms"])
    feasible = sorted(
        (r["latency_ms"], r["proxy_loss"]) for r in table["rows"] if r["latency_ms"] <= budget
    )
    front: list[tuple[float, float]] = []
    for ms, loss in feasible:  # by latency: on the front if it beats every faster student
        if not front or loss < front[-1][1]:
            front.append((ms, loss))
    (fast_ms, worst_loss), (slow_ms, best_loss) = front[0], front[-1]
    margin = 1 / max(1, trials - 1)
    return {
        "front": (
            worst_loss + margin * (worst_loss - best_loss),
            slow_ms + margin * (slow_ms - fast_ms),
        ),
        "untrained": (UNTRAINED_LOSS, budget),
    }


SamplerName = Literal["random", "nsga2", "tpe"]


def run_sampler(
    table: dict[str, Any], sampler: SamplerName, trials: int, seed: int, distinct: bool = True
) -> list[tuple[float, float]]:
    """The feasible (loss, latency) points one sampler finds in ``trials`` lookups.

    ``distinct=False`` runs the bare Optuna sampler, which may repeat architectures.
    """
    import optuna

    from paretokd.config import SearchSpec, StudySpec
    from paretokd.search import sampler as sampler_mod
    from paretokd.search import space

    find, s = _lookup(table)
    budget = float(table["budget_ms"])

    # The search's own sampler construction (NSGA-II population 8, multivariate TPE);
    # the constraint reaches the samplers as in the search, via trial.set_constraint.
    spec = dataclasses.replace(
        StudySpec(seed=seed, space=TABLE_SPACE),
        search=dataclasses.replace(SearchSpec(), sampler=sampler),
    )
    wrapped = sampler_mod.make(spec)
    smp = wrapped if distinct else wrapped.base

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        row = find(space.suggest(trial, s))
        ms = row["latency_ms"]
        trial.set_user_attr("violation", ms - budget)
        trial.set_constraint(CONSTRAINT, ms - budget)
        return (row["proxy_loss"] if ms <= budget else UNTRAINED_LOSS), ms

    study = optuna.create_study(directions=["minimize", "minimize"], sampler=smp)
    study.optimize(objective, n_trials=trials)
    return [
        (t.values[0], t.values[1])
        for t in study.trials
        if t.values is not None and t.user_attrs["violation"] <= 0
    ]


def compare(path: Path, trials: int, seeds: int) -> None:
    """Print, per reference point, each sampler's median hypervolume and its ratio to random."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    table = json.loads(path.read_text())
    rows = table["rows"]
    budget = float(table["budget_ms"])
    feasible = [(r["proxy_loss"], r["latency_ms"]) for r in rows if r["latency_ms"] <= budget]
    refs = corners(table, trials)
    print(
        f"table: {len(rows)} architectures ({len(feasible)} within {budget:g} ms), "
        f"proxy_steps {table['proxy_steps']}; {trials} trials x {seeds} seeds"
    )
    fronts: dict[str, list[list[tuple[float, float]]]] = {}
    names: tuple[SamplerName, ...] = ("random", "nsga2", "tpe")
    for name in names:
        fronts[name] = [run_sampler(table, name, trials, seed) for seed in range(seeds)]
        fronts[f"{name}+rep"] = [
            run_sampler(table, name, trials, seed, distinct=False) for seed in range(seeds)
        ]
    for ref_name, ref in refs.items():
        best = hypervolume_2d(feasible, ref)
        hvs = {label: [hypervolume_2d(f, ref) for f in runs] for label, runs in fronts.items()}
        base = statistics.median(hvs["random"])
        print(
            f"\nreference point {ref_name}: loss {ref[0]:.4f}, latency {ref[1]:.2f} ms; "
            f"hypervolume of the whole table {best:.4f}"
        )
        print(f"{'sampler':<10} {'median HV':>10} {'of table':>9} {'vs random':>10}  min..max")
        for label, values in hvs.items():
            med = statistics.median(values)
            print(
                f"{label:<10} {med:>10.4f} {med / best:>8.1%} {med / base:>9.3f}x  "
                f"{min(values):.4f}..{max(values):.4f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=int, metavar="N", help="Add up to N architectures.")
    parser.add_argument(
        "--proxy-steps", type=int, default=DistillSpec().proxy_steps, help="Default: the search's."
    )
    parser.add_argument("--compare", action="store_true", help="Run the samplers on the table.")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="Order in which archs are sampled.")
    parser.add_argument("--table", type=Path, default=TABLE)
    args = parser.parse_args()
    if args.build:
        build(args.build, args.proxy_steps, args.seed, args.table)
    if args.compare:
        compare(args.table, args.trials, args.seeds)
    if not (args.build or args.compare):
        parser.print_help()


if __name__ == "__main__":
    main()
