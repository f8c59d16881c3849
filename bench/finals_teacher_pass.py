"""Finals and the teacher's pass: what sharing the teacher's outputs between picks saves.

Run by hand from the repository root (about 8 minutes on 2 CPU cores):

    .venv/bin/python bench/finals_teacher_pass.py

With the default spec and teacher (all-MiniLM-L6-v2, the built-in corpus), it
distils the finals of a typical run (the hand-crafted student and two smaller
picks, ``--archs``) for ``--steps`` steps each with the finals' recipe, twice,
alternately per student so both settings see the same machine:

- **per pick**: each student gets its own ``TeacherTargets`` that keeps
  nothing, so each pays a whole teacher pass over its batches (what every pick
  pays when the outputs cannot be kept: over ``distill.final.CACHE_LIMIT_BYTES``);
- **shared**: one ``TeacherTargets`` for all, as ``finals`` builds it
  (``final.training_targets``): the first student pays the teacher's pass, the
  others read its outputs.

It prints each student's seconds both ways, the totals and their ratio, the
teacher's pass alone (its forward over the same batches), and the memory the
shared outputs take.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from paretokd import config, latency
from paretokd.distill import final, recipe
from paretokd.distill.targets import TeacherTargets
from paretokd.logs import quiet_libraries
from paretokd.models import data
from paretokd.models import teacher as teacher_mod
from paretokd.records import Arch
from paretokd.search import context, space
from paretokd.search.reference import handcrafted_arch

ARCHS = ("L2-H256-A8-F512", "L3-H256-A8-F1024")
"""The two picks beside the hand-crafted student (``Arch`` ids)."""


def train_seconds(arch: Arch, targets: TeacherTargets, ctx: context.Context, steps: int) -> float:
    """Seconds to distil ``arch`` for ``steps`` steps with the finals' recipe on ``targets``."""
    model = recipe.build(arch, ctx.teacher.model, ctx.spec, ctx.slicing)
    start = time.perf_counter()
    recipe.distill_and_score(
        model, targets, ctx.proxy_eval, ctx.spec, ctx.slicing, steps, keep_best=True
    )
    return time.perf_counter() - start


def main() -> None:
    """Distil the finals per pick and shared, alternately, and print the seconds."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--archs", nargs="+", default=list(ARCHS))
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    quiet_libraries()
    spec = config.load(None)
    spec = dataclasses.replace(
        spec, distill=dataclasses.replace(spec.distill, final_steps=args.steps)
    )
    teacher = teacher_mod.load(spec.teacher, spec.task)
    spec = space.resolve(spec, teacher.dims)
    splits = data.load_splits(spec.data, spec.seed, config.cache_dir())
    archs = [handcrafted_arch(teacher)] + [Arch.from_id(text) for text in args.archs]
    with tempfile.TemporaryDirectory(prefix="paretokd-pass-") as tmp:
        ctx = context.prepare(spec, teacher, splits, Path(tmp), latency.fingerprint(spec.latency))
        shared = final.training_targets(spec, teacher, splits)
        assert shared.keep, "the default finals keep the teacher's outputs: see CACHE_LIMIT_BYTES"
        per_pick: list[float] = []
        together: list[float] = []
        for arch in archs:
            alone = TeacherTargets(teacher.model, shared.batches, keep=False)
            per_pick.append(train_seconds(arch, alone, ctx, args.steps))
            together.append(train_seconds(arch, shared, ctx, args.steps))
            print(
                f"{arch.id:<20} per pick {per_pick[-1]:6.1f} s, shared {together[-1]:6.1f} s",
                flush=True,
            )
        # The teacher's pass alone: its forward over the batches the finals visited.
        start = time.perf_counter()
        visited = min(args.steps, len(shared.batches))
        fresh = TeacherTargets(teacher.model, shared.batches, keep=False)
        for i in range(visited):
            fresh[i]
        teacher_pass = time.perf_counter() - start
        kept = shared.kept_bytes
    before, after = sum(per_pick), sum(together)
    print(
        f"\nfinals of {len(archs)} students, {args.steps} steps each: per pick {before:.1f} s, "
        f"shared {after:.1f} s ({after / before:.2f}x, {before - after:.1f} s saved)"
    )
    print(
        f"the teacher's pass over {visited} batches: {teacher_pass:.1f} s; "
        f"the shared outputs kept: {kept / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
