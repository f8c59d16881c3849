"""The hand-crafted reference student (every other teacher layer): measured once per study and enqueued first."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any

import optuna

from paretokd.models import student
from paretokd.models.teacher import Teacher
from paretokd.search import space

log = logging.getLogger(__name__)



def handcrafted_arch(teacher: Teacher) -> space.Arch:
    """The DistilBERT-style reference: the teacher with every other layer kept."""
    d = teacher.dims
    return space.Arch(max(1, d.num_layers // 2), d.hidden_size, d.num_heads, d.intermediate_size)


def enqueue_reference(study: optuna.Study, ctx: Context) -> bool:
    """Make the hand-crafted student the first trial of a new study, if the space holds it.

    The search then starts from the DistilBERT-style baseline, so no pick at its
    latency can be worse than it.

    Returns:
        True if it was enqueued.
    """
    arch = handcrafted_arch(ctx.teacher)
    sp = ctx.spec.space
    in_space = (
        sp.num_layers[0] <= arch.num_layers <= sp.num_layers[1]
        and arch.hidden_size in sp.hidden_size
        and arch.num_heads in sp.num_heads
        and arch.intermediate_size in sp.intermediate_size
    )
    if not in_space or study.get_trials(deepcopy=False):
        return False
    study.enqueue_trial(arch.to_dict())
    return True


def measure_reference(study: optuna.Study, ctx: Context) -> dict[str, Any]:
    """Measure and proxy-distil the hand-crafted student under the trials' own settings.

    Stored in the study (``reference``), so every pick can be shown against it
    and a rerun does not pay for it again.
    """
    stored = study.user_attrs.get("reference")
    if stored is not None:
        return dict(stored)
    arch = handcrafted_arch(ctx.teacher)
    model = build_student(arch, ctx)
    stats = time_student(model, ctx)
    _, loss = proxy_distill(model, ctx)
    reference = {
        "name": "every other teacher layer",
        "arch": arch.to_dict(),
        "arch_id": arch.id,
        "params": student.count_params(model),
        "proxy_loss": loss,
        "latency_ms": stats.p50_ms,
        "latency": stats.to_dict(),
    }
    if ctx.proxy_eval_labels is not None:
        reference["proxy_metric"] = proxy_metric(model, ctx)
    study.set_user_attr("reference", reference)
    return reference


def clean_workdir(path: Path) -> None:
    """Remove a process's scratch folder (exports of trials that were timed and dropped).

    Its parent goes too once no other worker uses it.
    """
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()
