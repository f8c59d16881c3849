"""Every study spec in studies/ loads, validates and points at data that exists where it can."""

from __future__ import annotations

from pathlib import Path

import pytest

from paretokd import config
from paretokd.errors import ParetokdError
from paretokd.models import data
from paretokd.models import teacher as teacher_mod

STUDIES = Path(__file__).parents[1] / "studies"
SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"
SPECS = sorted(STUDIES.glob("*.yaml"))


def test_the_specs_the_issue_names_exist() -> None:
    names = {p.stem for p in SPECS}
    assert {"default", "sst2", "stsb", "mnli-bert-base", "xlmr-multilingual"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_loads_and_is_named_after_its_file(path: Path) -> None:
    spec = config.load(path)
    assert spec.name == path.stem
    assert spec.hash == config.from_dict(spec.to_dict()).hash


def test_task_settings() -> None:
    sst2 = config.load(STUDIES / "sst2.yaml")
    assert sst2.task.kind == "classification" and sst2.task.resolved_metric == "accuracy"
    assert sst2.evaluation.label_column == "label"
    mnli = config.load(STUDIES / "mnli-bert-base.yaml")
    assert mnli.task.kind == "classification" and mnli.latency.device == "cuda"
    assert mnli.data.text_columns == ("premise", "hypothesis")  # sentence pairs
    xlmr = config.load(STUDIES / "xlmr-multilingual.yaml")
    assert xlmr.task.kind == "agnostic" and xlmr.teacher.name.endswith("xlm-roberta-base")
    stsb = config.load(STUDIES / "stsb.yaml")
    assert stsb.task.kind == "agnostic" and stsb.evaluation.metric == "spearman"


@pytest.mark.parametrize("name", ["mnli-bert-base", "xlmr-multilingual"])
def test_hub_teachers_fail_cleanly_offline(name: str) -> None:
    # conftest puts huggingface_hub offline: the hub teacher is not in the cache here.
    spec = config.load(STUDIES / f"{name}.yaml")
    with pytest.raises(ParetokdError, match="cannot load teacher"):
        teacher_mod.load(spec.teacher, spec.task)


@pytest.mark.parametrize("name", ["sst2", "stsb", "agnews"])
def test_shared_data_specs_read_their_data(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    monkeypatch.setenv(data.DATA_ROOT_ENV, str(SHARED_DATA))
    spec = config.load(STUDIES / f"{name}.yaml")
    splits = data.load_splits(spec.data, spec.seed, tmp_path)
    assert len(splits.proxy_eval) == spec.data.proxy_eval
    evalset = data.load_table(spec.evaluation, tmp_path)
    assert evalset.labels is not None and len(evalset.texts) >= 1000
    if spec.evaluation.source == spec.data.source:  # AG News: two slices of one file
        assert not set(evalset.texts) & set(splits.full_train + splits.proxy_eval)
    if spec.task.kind == "agnostic":  # similarity pairs
        assert all(isinstance(t, tuple) for t in evalset.texts)
    else:
        assert splits.proxy_eval_labels is not None


def test_relative_data_without_a_root_names_the_root(tmp_path: Path) -> None:
    spec = config.load(STUDIES / "sst2.yaml")
    with pytest.raises(ParetokdError, match="does not exist"):
        data.load_table(spec.data, tmp_path)
