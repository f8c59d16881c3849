"""Opening a study: the process that creates it describes it, the others check against that."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from paretokd import config
from paretokd.errors import ParetokdError
from paretokd.latency.fingerprint import ESTIMATOR
from paretokd.search import storage
from tests.factories import FINGERPRINT


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def test_a_worker_that_loads_a_study_being_described_waits_for_it(
    tmp_path: Path, tiny_spec_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers started together: the loader must not read a half-described study."""
    spec = config.load(tiny_spec_file)
    url = _url(tmp_path)
    loading = threading.Event()
    real = optuna.Study.set_user_attr

    def slow_creator(self: optuna.Study, key: str, value: Any) -> None:
        # The creator pauses in the middle of describing the study, while the other loads it.
        if key == "spec_hash" and threading.current_thread().name == "creator":
            assert loading.wait(30)
            time.sleep(0.5)
        real(self, key, value)

    monkeypatch.setattr(optuna.Study, "set_user_attr", slow_creator)
    errors: list[BaseException] = []

    def create() -> None:
        try:
            storage.open_study(spec, url, "race", FINGERPRINT)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)

    storage.storage(url)  # the tables, before two threads race to make them
    creator = threading.Thread(target=create, name="creator")
    creator.start()
    deadline = time.monotonic() + 30
    while "race" not in optuna.get_all_study_names(url):
        assert time.monotonic() < deadline, errors
        time.sleep(0.01)
    loading.set()
    loaded = storage.open_study(spec, url, "race", FINGERPRINT, worker=1)
    creator.join(30)
    assert not errors, errors
    assert loaded.user_attrs["fingerprint"] == FINGERPRINT.to_json()
    assert loaded.user_attrs["spec_identity"] == spec.identity()


def test_a_study_its_creator_never_described_is_described_by_the_next(
    tmp_path: Path, tiny_spec_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = config.load(tiny_spec_file)
    url = _url(tmp_path)
    optuna.create_study(study_name="orphan", storage=url, directions=["minimize", "minimize"])
    monkeypatch.setattr(storage, "DESCRIBE_SECONDS", 0.2)
    study = storage.open_study(spec, url, "orphan", FINGERPRINT)
    assert study.user_attrs["spec_identity"] == spec.identity()
    assert study.metric_names == ["loss", "latency_ms"]


def test_a_study_on_other_hardware_is_refused(tmp_path: Path, tiny_spec_file: Path) -> None:
    spec = config.load(tiny_spec_file)
    url = _url(tmp_path)
    storage.open_study(spec, url, "s", FINGERPRINT)
    other = FINGERPRINT.__class__(**{**FINGERPRINT.to_json(), "hardware": "another CPU"})
    with pytest.raises(ParetokdError, match="other hardware"):
        storage.open_study(spec, url, "s", other)


def test_a_study_timed_with_the_earlier_ratio_is_refused(
    tmp_path: Path, tiny_spec_file: Path
) -> None:
    # A study stored before the estimator was part of the fingerprint: its record lacks it.
    spec = config.load(tiny_spec_file)
    url = _url(tmp_path)
    earlier = {k: v for k, v in FINGERPRINT.to_json().items() if k != "estimator"}
    study = storage.open_study(spec, url, "s", FINGERPRINT)
    study.set_user_attr("fingerprint", earlier)
    now = FINGERPRINT.__class__(**{**earlier, "estimator": ESTIMATOR})
    with pytest.raises(ParetokdError, match="estimator"):
        storage.open_study(spec, url, "s", now)
