"""The study in Optuna storage: opening it, its identity (spec and hardware), loading it back."""

from __future__ import annotations

import logging
import platform
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from paretokd.config import StudySpec
from paretokd.errors import ParetokdError
from paretokd.records import Fingerprint, Objective
from paretokd.search import sampler

log = logging.getLogger(__name__)


def objective(spec: StudySpec) -> Objective:
    """Objective 1 of a study made with ``spec``: ``loss``, or the task metric's name."""
    return Objective(spec.task.resolved_metric if spec.task.objective == "metric" else "loss")


def objective_of(study: optuna.Study) -> Objective:
    """Objective 1 of a stored study, from the metric names paretokd gave it."""
    return Objective(study.metric_names[0] if study.metric_names else "loss")


def default_storage(out_dir: Path) -> str:
    """The SQLite URL of the study database inside ``out_dir``."""
    return f"sqlite:///{(out_dir / 'study.db').resolve()}"


def redact(url: str) -> str:
    """``url`` with any password replaced, for logs and reports."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "<invalid storage URL>"


GRACE_HEARTBEATS = 4
"""Heartbeats a running trial (or a claim on shared work) may miss before it is retried."""

COMPANION_ATTR = "companion_of"
"""Study user attribute of a companion study (``search.claims``): the study it serves."""


def storage(url: str, heartbeat_seconds: int = 30) -> RDBStorage:
    """An RDB storage with heartbeats, so a killed worker leaves no trial stuck RUNNING.

    A trial whose worker stops beating for four heartbeats is marked failed and
    queued again (up to three times) for the next worker that asks for a trial.

    Raises:
        ParetokdError: If the URL is malformed or the database cannot be reached.
    """
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Wait for a lock held by another process instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 60}
    try:
        with warnings.catch_warnings():
            # Heartbeats are marked experimental; we rely on them knowingly, and a
            # notebook or `paretokd recommend` should not print the notice.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_seconds,
                grace_period=GRACE_HEARTBEATS * heartbeat_seconds,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise ParetokdError(f"invalid storage URL {redact(url)!r}: {exc}") from None
    except (sqlalchemy.exc.OperationalError, ModuleNotFoundError, ImportError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise ParetokdError(f"cannot open storage {redact(url)}: {reason}") from None


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def spec_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two spec identities."""
    a, b = _flatten(stored), _flatten(current)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def versions() -> dict[str, str]:
    """Versions of the packages that decide what a trial measures."""
    names = ["paretokd", "optuna", "torch", "transformers", "onnxruntime", "onnx"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except Exception:  # not installed as a distribution (e.g. run from a checkout)
            out[name] = "unknown"
    return out


def open_study(
    spec: StudySpec,
    url: str,
    study_name: str,
    fingerprint: Fingerprint,
    worker: int = 0,
) -> optuna.Study:
    """Create the study, or load it and check that it was made by the same spec on this hardware.

    Raises:
        ParetokdError: If a stored study differs in spec identity or hardware fingerprint.
    """
    stor = storage(url, spec.search.heartbeat_seconds)
    n_existing = 0
    try:
        summary = optuna.study.get_all_study_summaries(stor)
        existing = next((s for s in summary if s.study_name == study_name), None)
        n_existing = existing.n_trials if existing else 0
    except sqlalchemy.exc.OperationalError as exc:
        raise ParetokdError(f"cannot read storage {redact(url)}: {exc.orig}") from None
    directions = [objective(spec).direction, "minimize"]
    seeded = sampler.make(spec, n_existing + 7919 * worker)
    try:
        # Creating a study is atomic: exactly one of the workers started together creates
        # it and writes what it was made with; the others load it and check against that.
        study = optuna.create_study(
            study_name=study_name, storage=stor, directions=directions, sampler=seeded
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=stor, sampler=seeded)
        # A study with trials was described long ago; a new one may be being described now.
        attrs = _made_with(study, 0.0 if n_existing else DESCRIBE_SECONDS)
        if attrs is not None:
            _check_made_with(attrs, spec, fingerprint, study_name, url)
            study.set_user_attr("spec", spec.to_dict())
            return study
        log.warning("study %r was created but never described: describing it", study_name)
    study.set_metric_names([objective(spec).name, "latency_ms"])
    study.set_user_attr("spec_hash", spec.hash)
    study.set_user_attr("fingerprint", fingerprint.to_json())
    study.set_user_attr("versions", versions())
    study.set_user_attr(_IDENTITY, spec.identity())  # last: a loader reads the others with it
    study.set_user_attr("spec", spec.to_dict())  # the latest run's full spec (budgets may change)
    return study


_IDENTITY = "spec_identity"
"""Study user attribute written last by the process that created the study: the rest is there."""

DESCRIBE_SECONDS = 30.0
"""How long a worker waits for the creator of a study to write what it was made with."""


def _made_with(study: optuna.Study, wait_seconds: float) -> dict[str, Any] | None:
    """The study's user attributes once its creator has described it; ``None`` if it never does.

    The creator writes a handful of attributes just after ``create_study``
    (milliseconds); a worker that started at the same moment waits for them.
    """
    deadline = time.monotonic() + wait_seconds
    attrs = study.user_attrs
    while _IDENTITY not in attrs:
        if time.monotonic() > deadline:
            return None  # its creator died in between: this worker describes it
        time.sleep(0.1)
        attrs = study.user_attrs
    return attrs


def _check_made_with(
    attrs: dict[str, Any], spec: StudySpec, fingerprint: Fingerprint, study_name: str, url: str
) -> None:
    """Refuse a stored study made by another spec identity or on other hardware."""
    diff = spec_differences(attrs[_IDENTITY], spec.identity())
    if diff:
        raise ParetokdError(
            f"study {study_name!r} in {redact(url)} was made with a different spec "
            f"({', '.join(diff[:5])} differ); keep the old settings or pass a new --study-name"
        )
    if attrs.get("fingerprint") != fingerprint.to_json():
        stored = attrs.get("fingerprint", {})
        diff = spec_differences(stored, fingerprint.to_json())
        raise ParetokdError(
            f"study {study_name!r} holds latencies measured on other hardware or settings "
            f"({', '.join(diff)} differ: {stored.get('hardware')}); latencies from different "
            "machines cannot share one front, so pass a new --study-name"
        )


def main_studies(stor: optuna.storages.BaseStorage) -> list[optuna.study.StudySummary]:
    """The storage's studies, without the companions (the finals' claims) that sit beside them."""
    summaries = optuna.study.get_all_study_summaries(stor)
    return [s for s in summaries if COMPANION_ATTR not in s.user_attrs]


def load_study(url: str, study_name: str | None) -> optuna.Study:
    """Load an existing study for reading; without a name, the storage's only study.

    Raises:
        ParetokdError: If the study does not exist, or no name is given and the
            storage does not hold exactly one study.
    """
    stor = storage(url)
    names = [s.study_name for s in main_studies(stor)]
    if study_name is None:
        if len(names) != 1:
            raise ParetokdError(
                f"{redact(url)} holds {len(names)} studies ({', '.join(names) or 'none'}); "
                "pass --study-name"
            )
        study_name = names[0]
    if study_name not in names:
        raise ParetokdError(
            f"no study named {study_name!r} in {redact(url)} "
            f"(it holds: {', '.join(names) or 'none'})"
        )
    return optuna.load_study(study_name=study_name, storage=stor)
