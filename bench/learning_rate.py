"""Learning-rate benchmark: which rate suits a student, by its distance from the teacher.

Run by hand from the repository root (about 3 minutes on 2 CPU cores):

    .venv/bin/python bench/learning_rate.py

With the default spec and teacher (all-MiniLM-L6-v2, the built-in corpus), or
the spec ``--study`` names (a task study: its fine-tuned teacher and data), it
distils each of ``--archs`` fp32 students spread from the smallest to the
teacher's own shape with the search's proxy recipe at every rate of
``--rates``, and prints the held-out proxy loss of each pair, the best rate per
student, and a least-squares fit of log(best rate) against log(1 - the
student's share of the teacher's encoder weights), the form of
``paretokd.distill.recipe.learning_rate`` (students of the teacher's size, whose
distance is 0, are left out of the fit: the rule's floor covers them). It then
scores the rule the package uses against the best rate and against one fixed
rate, student by student.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from paretokd import config, latency
from paretokd.distill import recipe
from paretokd.logs import quiet_libraries
from paretokd.models import data
from paretokd.models import teacher as teacher_mod
from paretokd.records import Arch
from paretokd.search import context, space

RATES = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3)
ARCHS = (
    "L1-H64-A2-F256",
    "L2-H128-A4-F512",
    "L2-H192-A6-F768",
    "L3-H256-A8-F1024",
    "L2-H384-A12-F1536",
    "L3-H384-A12-F1536",
    "L4-H320-A10-F1280",
    "L6-H384-A12-F1536",
)
"""fp32 students (``Arch`` ids), from a tiny one to the teacher's own shape."""


def main() -> None:
    """Distil every (student, rate) pair and print the table, the best rates and the fit."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--archs", nargs="+", default=list(ARCHS))
    ap.add_argument("--rates", nargs="+", type=float, default=list(RATES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--study", help="A study spec (default: the built-in one), e.g. a task's.")
    ap.add_argument("--data-root", help="Where the spec's relative data paths are read from.")
    args = ap.parse_args()
    quiet_libraries()
    if args.data_root:
        os.environ[data.DATA_ROOT_ENV] = str(Path(args.data_root).resolve())
    spec = config.override(config.load(args.study), seed=args.seed)
    teacher = teacher_mod.load(spec.teacher, spec.task)
    spec = space.resolve(spec, teacher.dims)
    splits = data.load_splits(spec.data, spec.seed, config.cache_dir())
    archs = [Arch.from_id(a) for a in args.archs]
    with tempfile.TemporaryDirectory(prefix="paretokd-lr-") as tmp:
        ctx = context.prepare(spec, teacher, splits, Path(tmp), latency.fingerprint(spec.latency))
        rows: list[tuple[Arch, float, list[float]]] = []
        print(f"{'student':<20} {'share':>6}  " + "  ".join(f"{r:>8.0e}" for r in args.rates))
        for arch in archs:
            share = recipe.teacher_share(arch, teacher.dims)
            losses = []
            for rate in args.rates:
                at = dataclasses.replace(
                    spec, distill=dataclasses.replace(spec.distill, learning_rate=rate)
                )
                model = recipe.build(arch, teacher.model, at, ctx.slicing)
                done = recipe.distill_and_score(
                    model, ctx.proxy_train, ctx.proxy_eval, at, ctx.slicing, at.distill.proxy_steps
                )
                losses.append(done.loss)
            rows.append((arch, share, losses))
            print(f"{arch.id:<20} {share:6.3f}  " + "  ".join(f"{v:8.4f}" for v in losses))
    best = [(arch, share, args.rates[int(np.argmin(losses))]) for arch, share, losses in rows]
    print("\nbest rate per student:")
    for arch, share, rate in best:
        print(f"  {arch.id:<20} share {share:6.3f}: {rate:.0e}")
    far = [(share, rate) for _, share, rate in best if share < 0.99]
    x = np.log([1 - share for share, _ in far])
    y = np.log([rate for _, rate in far])
    slope, intercept = np.polyfit(x, y, 1)
    print(
        f"\nfit: best rate = {math.exp(intercept):.2e} x (1 - share)^{slope:.2f} "
        f"(share 0.5: {math.exp(intercept) * 0.5**slope:.1e}; the package: "
        f"{recipe.RATE_FAR:.1e} x (1 - share)^{recipe.RATE_EXPONENT}, "
        f"within [{recipe.RATE_MIN:.0e}, {recipe.RATE_FAR:.0e}])"
    )
    # How much each choice loses against the best rate of the grid, student by student.
    fixed = spec.distill.learning_rate or recipe.DEFAULT_LEARNING_RATE
    print(f"\nheld-out loss: best of the grid, the package's rule, a fixed {fixed:.0e}")
    for arch, _share, losses in rows:
        rule = recipe.learning_rate(arch, teacher.dims, spec)
        nearest = int(np.argmin([abs(math.log(r / rule)) for r in args.rates]))
        fixed_i = int(np.argmin([abs(math.log(r / fixed)) for r in args.rates]))
        print(
            f"  {arch.id:<20} best {min(losses):.4f}  rule ({rule:.1e}, "
            f"grid {args.rates[nearest]:.0e}) {losses[nearest]:.4f}  fixed {losses[fixed_i]:.4f}"
        )


if __name__ == "__main__":
    main()
