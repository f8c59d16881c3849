"""The run's Optuna artifact store, and files attached to a running trial (for the dashboard)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

ARTIFACT_DIR = "artifacts"
"""The artifact store's folder inside a run's output folder."""


def artifact_store(out_dir: Path) -> FileSystemArtifactStore:
    """The run's artifact store, ``out_dir/artifacts`` (created if missing)."""
    path = Path(out_dir) / ARTIFACT_DIR
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(path)


def attach_to_trial(trial: optuna.Trial, name: str, content: dict[str, Any], out_dir: Path) -> str:
    """Upload ``content`` as the JSON file ``name`` to a running trial.

    Finished trials cannot take artifacts, so this must run inside the
    objective, e.g. ``attach_to_trial(trial, "latency.json", stats.to_json(), out_dir)``.

    Returns:
        The artifact id.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        return upload_artifact(
            artifact_store=artifact_store(out_dir), file_path=str(path), study_or_trial=trial
        )
