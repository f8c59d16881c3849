"""Finals and the teacher's pass: what computing the teacher's outputs once saves.

Run by hand from the repository root (about 8 minutes on 2 CPU cores):

    .venv/bin/python bench/finals_teacher_pass.py

With the default spec and teacher (all-MiniLM-L6-v2, the built-in corpus), it
distils the finals of a typical run (the hand-crafted student and two smaller
picks, ``--archs``) for ``--steps`` steps each with the finals' recipe, three ways:

- **per student**: each student gets its own ``TeacherTargets`` that keeps
  nothing, so each pays a whole teacher pass over its batches (what every pick
  paid when the outputs could not be kept);
- **side by side**: the students trained together (``recipe.distill_together``)
  on outputs that are not kept: one teacher pass for all (what the finals do
  now when the outputs are over ``distill.final.CACHE_LIMIT_BYTES``);
- **kept**: one ``TeacherTargets`` for all that keeps the outputs, as the finals
  build it below that limit: the first student pays the teacher's pass, the
  others read its outputs.

It prints the seconds of each way, their ratios, the teacher's pass alone (its
forward over the same batches), and the memory the kept outputs take.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from transformers import PreTrainedModel

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


def main() -> None:
    """Distil the finals three ways and print the seconds."""
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
        kept = final.training_targets(spec, teacher, splits)
        assert kept.keep, "the default finals keep the teacher's outputs: see CACHE_LIMIT_BYTES"

        def fresh() -> TeacherTargets:
            return TeacherTargets(teacher.model, kept.batches, keep=False)

        def models() -> list[PreTrainedModel]:
            return [recipe.build(arch, teacher.model, spec, ctx.slicing) for arch in archs]

        def timed(run: Callable[[], object]) -> float:
            start = time.perf_counter()
            run()
            return time.perf_counter() - start

        def distil(targets: Callable[[], TeacherTargets]) -> None:
            for model in models():
                recipe.distill_and_score(
                    model, targets(), ctx.proxy_eval, spec, ctx.slicing, args.steps, keep_best=True
                )

        seconds = {
            "per student": timed(lambda: distil(fresh)),
            "side by side": timed(
                lambda: recipe.distill_together(
                    models(), fresh(), ctx.proxy_eval, spec, ctx.slicing, args.steps, keep_best=True
                )
            ),
            "kept": timed(lambda: distil(lambda: kept)),
        }
        visited = min(args.steps, len(kept.batches))
        teacher_pass = timed(lambda: [fresh()[i] for i in range(visited)])
        kept_mib = kept.kept_bytes / 2**20
    base = seconds["per student"]
    print(
        f"finals of {len(archs)} students ({', '.join(a.id for a in archs)}), {args.steps} steps:"
    )
    for way, value in seconds.items():
        print(f"  {way:<13} {value:7.1f} s  ({value / base:.2f}x per student)")
    print(f"the teacher's pass over {visited} batches alone: {teacher_pass:.1f} s")
    print(f"the kept outputs: {kept_mib:.0f} MiB")


if __name__ == "__main__":
    main()
