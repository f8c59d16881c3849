"""The study in optuna-dashboard: artifacts, the recommendations note, our figures, the server.

:func:`publish` runs at the end of ``paretokd run``. It uploads each pick's
``model.onnx`` and ``latency.json`` and the report to Optuna's artifact store
(``<out>/artifacts``, see :mod:`paretokd.search.artifacts`), then, when
optuna-dashboard is installed, writes the recommendations (and the evaluation
scores, when the run has them) as the study's markdown note and saves the
report's plotly figures on the study page. :func:`serve` backs ``paretokd dashboard``.

Optuna refuses artifacts on finished trials (``UpdateFinishedTrialError``), and
the picks are only known once the search is over, so pick files are study
artifacts named after their budget (``50ms-model.onnx``); the note says which
trial each came from.

optuna-dashboard is optional (the ``dashboard`` extra): without it the
artifacts are still uploaded (they need only Optuna), the note and figures are
skipped, and :func:`serve` says how to install it. Optuna itself is imported
when a function runs, so that importing the report stays cheap.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretokd.errors import ParetokdError
from paretokd.records import RunRecord
from paretokd.report.common import ReportFigure
from paretokd.report.note import markdown_note

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts import FileSystemArtifactStore

log = logging.getLogger(__name__)

ARTIFACTS_ATTR = "artifacts"
"""Study user attribute: uploaded file key → ``artifact_id``, ``filename``, ``sha256``."""
ARTIFACT_DIR_ATTR = "artifact_dir"
"""Study user attribute: the artifact store's absolute path (``paretokd dashboard`` reads it)."""
_ARTIFACTS_NOTE = (
    "\nThe files, and `report.html`, are under *Study Artifacts* on the study's page, "
    "below the report's figures.\n"
)


@dataclass
class Published:
    """What :func:`publish` did."""

    artifacts: dict[str, str] = field(default_factory=dict)
    """File key (e.g. ``students/50ms/model.onnx``) → artifact id."""
    uploaded: list[str] = field(default_factory=list)
    """Keys whose content was written to the store this time (new or changed)."""
    note: bool = False
    """Whether the study note was written (False: unchanged, or no optuna-dashboard)."""
    figures: list[str] = field(default_factory=list)
    """Graph ids saved on the study page (empty without optuna-dashboard)."""


def publish(
    study: optuna.Study,
    out_dir: Path,
    run: RunRecord,
    figures: list[ReportFigure],
    report_path: Path | None,
) -> Published:
    """Upload the run's files as artifacts and put the recommendations on the study page.

    Idempotent: each file has one artifact, found again on a rerun through the
    study's ``artifacts`` user attribute; unchanged files are not uploaded again
    and a changed file (a new pick for the budget) replaces the stored content
    under the same artifact id.

    Args:
        study: The finished study.
        out_dir: The run's output folder; the store is ``out_dir/artifacts``.
        run: The run's record: picks, final students, evaluation.
        figures: The report's figures (:func:`paretokd.report.figures`).
        report_path: ``report.html``, uploaded as a study artifact.

    Returns:
        What was uploaded and saved.
    """
    from paretokd.search.artifacts import ARTIFACT_DIR

    study.set_user_attr(ARTIFACT_DIR_ATTR, str((Path(out_dir) / ARTIFACT_DIR).resolve()))
    uploads, links = _pick_files(run)
    if report_path is not None:
        uploads.insert(0, ("report.html", Path(report_path), "report.html"))
    published = _upload_all(study, out_dir, uploads)
    import optuna_dashboard

    note = markdown_note(run, links) + _ARTIFACTS_NOTE
    if optuna_dashboard.get_note(study) != note:
        optuna_dashboard.save_note(study, note)
        published.note = True
    for f in figures:
        optuna_dashboard.save_plotly_graph_object(study, f.titled(), graph_object_id=f.id)
        published.figures.append(f.id)
    return published


def _pick_files(run: RunRecord) -> tuple[list[tuple[str, Path, str]], dict[str, str]]:
    """Each final student's graph and latency file (key, path, artifact name), and the
    note's files column per budget."""
    uploads: list[tuple[str, Path, str]] = []
    links: dict[str, str] = {}
    for pk in run.picks:
        final = run.final_of(pk)
        if pk.trial is None or final is None:
            continue
        names = []
        for path in (final.onnx, final.dir / "latency.json"):
            if path.is_file():
                names.append(f"{pk.budget}-{path.name}")
                uploads.append((f"students/{pk.budget}/{path.name}", path, names[-1]))
        links[pk.budget] = ", ".join(f"`{n}`" for n in names) or "—"
    return uploads, links


def _upload_all(
    study: optuna.Study, out_dir: Path, uploads: list[tuple[str, Path, str]]
) -> Published:
    from optuna.artifacts import get_all_artifact_meta

    from paretokd.search.artifacts import artifact_store

    store = artifact_store(out_dir)
    published = Published()
    recorded: dict[str, Any] = dict(study.user_attrs.get(ARTIFACTS_ATTR, {}))
    known = {m.artifact_id for m in get_all_artifact_meta(study)}
    for key, path, name in uploads:
        entry, changed = _upload(study, store, path, name, recorded.get(key), known)
        recorded[key] = entry
        published.artifacts[key] = entry["artifact_id"]
        if changed:
            published.uploaded.append(key)
    study.set_user_attr(ARTIFACTS_ATTR, recorded)
    return published


def serve(
    *,
    out_dir: Path | None,
    storage: str | None,
    study_name: str | None,
    host: str,
    port: int,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve the storage's studies in optuna-dashboard until interrupted.

    The artifact store is ``out_dir/artifacts``, or without ``out_dir`` the one
    :func:`publish` recorded on the study.

    Raises:
        ParetokdError: If the study cannot be found or the port cannot be bound.
    """
    import optuna_dashboard

    from paretokd.search.storage import default_storage, main_studies

    if storage is None:
        if out_dir is None:
            raise ParetokdError("pass --out DIR (a run's folder) or --storage URL")
        storage = default_storage(Path(out_dir))
    stor = _open_storage(storage)
    summaries = main_studies(stor)  # the finals' claim studies are not for the dashboard
    names = [s.study_name for s in summaries]
    if study_name is not None and study_name not in names:
        raise ParetokdError(
            f"no study named {study_name!r} (the storage holds: {', '.join(names) or 'none'})"
        )
    chosen = next((s for s in summaries if s.study_name == study_name), None)
    if chosen is None and len(summaries) == 1:
        chosen = summaries[0]
    store_dir = _store_dir(out_dir, chosen.user_attrs if chosen is not None else {})
    _announce(echo, host, port, names, store_dir)
    store = _file_store(store_dir)
    try:
        optuna_dashboard.run_server(stor, host=host, port=port, artifact_store=store)
    except OSError as exc:
        raise ParetokdError(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}; pass --port or --host"
        ) from None


def _store_dir(out_dir: Path | None, study_attrs: dict[str, Any]) -> Path | None:
    """The artifact folder: ``out_dir``'s, else the one the study recorded; None if absent."""
    from paretokd.search.artifacts import ARTIFACT_DIR

    store_dir: Path | None = None
    if out_dir is not None:
        store_dir = Path(out_dir) / ARTIFACT_DIR
    elif study_attrs.get(ARTIFACT_DIR_ATTR):
        store_dir = Path(study_attrs[ARTIFACT_DIR_ATTR])
    return store_dir if store_dir is not None and store_dir.is_dir() else None


def _file_store(store_dir: Path | None) -> FileSystemArtifactStore | None:
    from optuna.artifacts import FileSystemArtifactStore

    return FileSystemArtifactStore(store_dir) if store_dir is not None else None


def _announce(
    echo: Callable[[str], None], host: str, port: int, names: list[str], store_dir: Path | None
) -> None:
    if host not in ("127.0.0.1", "localhost", "::1"):
        echo(
            f"warning: serving on {host}: optuna-dashboard has no login, anyone who can "
            "reach this address can read and change the study"
        )
    shown = f"[{host}]" if ":" in host else host
    studies = ", ".join(names) or "an empty storage"
    echo(f"optuna-dashboard for {studies}: http://{shown}:{port}/dashboard/")
    echo(
        f"artifacts: {store_dir}"
        if store_dir is not None
        else "artifacts: none found (run `paretokd run` or pass --out DIR)"
    )
    echo("stop with Ctrl-C")


def _open_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage of ``paretokd.search.storage.storage``, refusing to create a missing file.

    Opening a SQLite URL creates the database; a dashboard on a mistyped path
    would serve an empty one instead of saying the run is not there.
    """
    from paretokd.search.storage import storage

    prefix = "sqlite:///"
    if url.startswith(prefix) and not Path(url[len(prefix) :]).is_file():
        raise ParetokdError(
            f"no study database at {url[len(prefix) :]}; pass --out DIR or --storage URL"
        )
    return storage(url)


def _upload(
    study: optuna.Study,
    store: FileSystemArtifactStore,
    path: Path,
    name: str,
    entry: dict[str, Any] | None,
    known: set[str],
) -> tuple[dict[str, Any], bool]:
    """Upload ``path`` as the study artifact ``name`` unless ``entry`` already holds it."""
    from optuna.artifacts import upload_artifact

    digest = _sha256(path)
    if entry is not None and entry.get("artifact_id") in known and entry.get("filename") == name:
        if entry.get("sha256") == digest and _stored(store, entry["artifact_id"]):
            return entry, False
        # Same file key, new content: replace the stored bytes under the same id.
        with path.open("rb") as fh:
            store.write(entry["artifact_id"], fh)
        return {**entry, "sha256": digest}, True
    # upload_artifact names the artifact after the file: give it the name through a link.
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / name
        try:
            os.symlink(path.resolve(), named)
        except OSError:
            shutil.copyfile(path, named)
        artifact_id = upload_artifact(
            artifact_store=store, file_path=str(named), study_or_trial=study
        )
    return {"artifact_id": artifact_id, "filename": name, "sha256": digest}, True


def _stored(store: FileSystemArtifactStore, artifact_id: str) -> bool:
    from optuna.artifacts.exceptions import ArtifactNotFound

    try:
        store.open_reader(artifact_id).close()
    except ArtifactNotFound:
        return False
    return True


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
