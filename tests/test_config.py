"""Study specs: budget parsing, YAML loading, strict validation, overrides and the spec hash."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from paretokd import config
from paretokd.config import (
    DataSpec,
    LatencySpec,
    SpaceSpec,
    StudySpec,
    TeacherSpec,
    parse_budget,
    parse_budgets,
)
from paretokd.errors import ParetokdError

REPO_ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- budgets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10ms", 10.0),
        ("2.5ms", 2.5),
        ("0.02s", 20.0),
        (" 10ms ", 10.0),
        ("1s", 1000.0),
        ("0.5ms", 0.5),
    ],
)
def test_parse_budget_valid(text: str, expected: float) -> None:
    assert parse_budget(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["10", "ms", "-5ms", "0ms", "abc", "", ",", "10 sec", "0s"])
def test_parse_budget_invalid(text: str) -> None:
    with pytest.raises(ParetokdError):
        parse_budget(text)


def test_parse_budget_error_names_the_input() -> None:
    with pytest.raises(ParetokdError, match="'abc'"):
        parse_budget("abc")


def test_parse_budgets_sorts_and_deduplicates() -> None:
    assert parse_budgets("20ms,10ms,10ms") == (10.0, 20.0)
    assert parse_budgets(" 5ms , 2.5ms ") == (2.5, 5.0)
    # The same budget in two units is one budget.
    assert parse_budgets("0.01s,10ms,30ms") == (10.0, 30.0)


def test_parse_budgets_accepts_a_list() -> None:
    assert parse_budgets(["20ms", "0.01s"]) == (10.0, 20.0)
    assert parse_budgets(["7ms"]) == (7.0,)


@pytest.mark.parametrize("text", ["", ",", " , ", [], "10ms,abc", ["10ms", "10"], "10ms,-5ms"])
def test_parse_budgets_invalid(text: str | list[str]) -> None:
    with pytest.raises(ParetokdError):
        parse_budgets(text)


# --- load -------------------------------------------------------------------------------------


def test_load_none_gives_the_defaults() -> None:
    spec = config.load(None)
    assert spec == StudySpec()
    assert spec.budgets == (10.0, 20.0)
    assert spec.teacher.name == config.DEFAULT_TEACHER
    assert spec.data.source == config.BUILTIN_CORPUS
    assert spec.search.sampler == "tpe"


def test_load_applies_overrides_and_keeps_other_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
name: small-run
budgets: [30ms, 0.005s]
trials: 7
teacher:
  name: some/teacher
space:
  num_layers: [2, 3]
  hidden_size: [64, 128]
  num_heads: [2, 4]
distill:
  learning_rate: 3e-4
latency:
  device: cuda
  min_seconds: 1
""",
    )
    spec = config.load(path)
    assert spec.name == "small-run"
    assert spec.budgets == (5.0, 30.0)
    assert spec.trials == 7
    assert spec.teacher == TeacherSpec(name="some/teacher")
    assert spec.space.num_layers == (2, 3)
    assert spec.space.hidden_size == (64, 128)
    assert spec.space.num_heads == (2, 4)
    assert spec.space.intermediate_size == SpaceSpec().intermediate_size
    # YAML reads 3e-4 (no dot) as a string; the spec still takes it as a number.
    assert spec.distill.learning_rate == pytest.approx(3e-4)
    assert isinstance(spec.latency.min_seconds, float)
    assert spec.latency.min_seconds == 1.0
    assert spec.latency.device == "cuda"
    assert spec.data == DataSpec()
    assert spec.seed == StudySpec().seed


def test_load_accepts_an_empty_file_as_the_defaults(tmp_path: Path) -> None:
    assert config.load(_write(tmp_path, "")) == StudySpec()


def test_load_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ParetokdError, match="does not exist"):
        config.load(missing)


def test_load_malformed_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: [unclosed\ntrials: 3\n")
    with pytest.raises(ParetokdError, match="not valid YAML"):
        config.load(path)


def test_load_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ParetokdError, match="mapping"):
        config.load(_write(tmp_path, "- 10ms\n- 20ms\n"))


def test_load_unknown_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(ParetokdError, match="'trails'"):
        config.load(_write(tmp_path, "trails: 5\n"))


def test_load_unknown_nested_key_names_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "space:\n  num_layer: [1, 2]\n")
    with pytest.raises(ParetokdError, match="num_layer") as info:
        config.load(path)
    # The message says where the key was and what is allowed instead.
    assert "space" in str(info.value)
    assert "num_layers" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("trials: ten\n", "trials"),
        ("trials: true\n", "trials"),
        ("seed: 1.5\n", "seed"),
        ("distill:\n  batch_size: '16'\n", "distill.batch_size"),
        ("distill:\n  teacher_init: 1\n", "distill.teacher_init"),
        ("distill:\n  learning_rate: fast\n", "distill.learning_rate"),
        ("distill:\n  learning_rate: false\n", "distill.learning_rate"),
        ("name: 12\n", "name"),
        ("space:\n  num_layers: 3\n", "space.num_layers"),
        ("space:\n  hidden_size: [64, big]\n", "space.hidden_size"),
        ("teacher: some/model\n", "teacher"),
    ],
)
def test_load_wrong_types(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ParetokdError, match=key.replace(".", r"\.")):
        config.load(_write(tmp_path, text))


@pytest.mark.parametrize(
    "text",
    ["search:\n  sampler: cmaes\n", "latency:\n  device: tpu\n", "search:\n  sampler: [tpe]\n"],
)
def test_load_invalid_literal(tmp_path: Path, text: str) -> None:
    with pytest.raises(ParetokdError, match="is not one of"):
        config.load(_write(tmp_path, text))


@pytest.mark.parametrize("text", ["trials: 0\n", "trials: -3\n"])
def test_load_trials_must_be_positive(tmp_path: Path, text: str) -> None:
    with pytest.raises(ParetokdError, match="trials"):
        config.load(_write(tmp_path, text))


def test_load_hidden_not_divisible_by_heads_names_the_pair(tmp_path: Path) -> None:
    path = _write(tmp_path, "space:\n  hidden_size: [128, 100]\n  num_heads: [2, 8]\n")
    with pytest.raises(ParetokdError, match="100/8"):
        config.load(path)


@pytest.mark.parametrize("layers", ["[3, 1]", "[0, 2]", "[1, 2, 3]", "[4]", "[]"])
def test_load_bad_num_layers_range(tmp_path: Path, layers: str) -> None:
    with pytest.raises(ParetokdError, match="num_layers"):
        config.load(_write(tmp_path, f"space:\n  num_layers: {layers}\n"))


@pytest.mark.parametrize(
    "text",
    [
        "space:\n  num_heads: [2, 2]\n",
        "space:\n  intermediate_size: [0, 256]\n",
        "distill:\n  learning_rate: 0\n",
        "distill:\n  batch_size: 0\n",
        "latency:\n  threads: 0\n",
        "search:\n  population_size: 1\n",
        "name: 'has space'\n",
        "budgets: [10ms, fast]\n",
    ],
)
def test_load_other_out_of_range_values(tmp_path: Path, text: str) -> None:
    with pytest.raises(ParetokdError):
        config.load(_write(tmp_path, text))


@pytest.mark.parametrize("value", ["10", "[10]", "10.5", "true"])
def test_load_budgets_without_a_unit_is_a_user_error(tmp_path: Path, value: str) -> None:
    # A bare YAML number (not iterable) must give the one-line error, not a TypeError.
    with pytest.raises(ParetokdError, match="budget"):
        config.load(_write(tmp_path, f"budgets: {value}\n"))


def test_load_budgets_as_a_single_string(tmp_path: Path) -> None:
    assert config.load(_write(tmp_path, "budgets: 15ms\n")).budgets == (15.0,)


# --- override ---------------------------------------------------------------------------------


def test_override_top_level_and_dotted_keys() -> None:
    base = config.load(None)
    spec = config.override(
        base,
        trials=3,
        seed=None,
        budgets=(5.0,),
        **{"teacher.name": "my/teacher", "search.sampler": "tpe", "data.source": None},
    )
    assert spec.trials == 3
    assert spec.budgets == (5.0,)
    assert spec.teacher.name == "my/teacher"
    assert spec.teacher.trust_remote_code == base.teacher.trust_remote_code
    assert spec.search.sampler == "tpe"
    assert spec.search.population_size == base.search.population_size
    # None means "not given": the spec's own values stay.
    assert spec.seed == base.seed
    assert spec.data == base.data
    # The input spec is frozen and untouched.
    assert base.trials == StudySpec().trials


def test_override_with_nothing_given_is_the_same_spec() -> None:
    base = config.load(None)
    assert config.override(base, trials=None, **{"teacher.name": None}) == base


@pytest.mark.parametrize(
    "flags",
    [{"trials": 0}, {"name": "bad name!"}, {"space.num_layers": (3, 1)}, {"latency.batch": 0}],
)
def test_override_result_is_validated(flags: dict[str, object]) -> None:
    with pytest.raises(ParetokdError):
        config.override(config.load(None), **flags)


# --- hash, to_dict, from_dict -----------------------------------------------------------------


def _replace(spec: StudySpec, section: str | None = None, **changes: object) -> StudySpec:
    if section is None:
        return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]
    part = dataclasses.replace(getattr(spec, section), **changes)
    return dataclasses.replace(spec, **{section: part})  # type: ignore[arg-type]


def test_hash_is_stable_for_equal_specs() -> None:
    a = config.load(None)
    b = StudySpec()
    assert a is not b
    assert a.hash == b.hash
    assert a.hash == a.hash
    assert len(a.hash) == 16
    assert int(a.hash, 16) >= 0  # hex


@pytest.mark.parametrize(
    ("section", "changes"),
    [
        (None, {"budgets": (1.0, 2.0, 3.0)}),
        (None, {"trials": 99}),
        (None, {"name": "another"}),
        ("search", {"sampler": "random"}),
        ("search", {"population_size": 20}),
        ("distill", {"final_steps": 5000}),
    ],
)
def test_hash_ignores_what_may_change_between_runs(
    section: str | None, changes: dict[str, object]
) -> None:
    base = StudySpec()
    changed = _replace(base, section, **changes)
    assert changed != base
    assert changed.hash == base.hash


@pytest.mark.parametrize(
    ("section", "changes"),
    [
        ("teacher", {"name": "other/teacher"}),
        ("data", {"source": "corpus.txt"}),
        ("data", {"max_length": 32}),
        ("space", {"num_layers": (1, 4)}),
        ("space", {"hidden_size": (128, 256)}),
        ("latency", {"threads": 4}),
        ("latency", {"seq_len": 64}),
        ("latency", {"device": "cuda"}),
        ("distill", {"proxy_steps": 10}),
        (None, {"seed": 1}),
    ],
)
def test_hash_changes_with_what_a_trial_measures(
    section: str | None, changes: dict[str, object]
) -> None:
    base = StudySpec()
    assert _replace(base, section, **changes).hash != base.hash


def test_to_dict_is_json_ready_with_budgets_as_written() -> None:
    out = StudySpec(budgets=(2.5, 10.0), space=SpaceSpec(num_layers=(1, 6))).to_dict()
    assert out["budgets"] == ["2.5ms", "10ms"]
    assert out["space"]["num_layers"] == [1, 6]
    assert out["space"]["hidden_size"] is None  # left to the teacher
    assert isinstance(out["latency"], dict)


@pytest.mark.parametrize(
    "spec",
    [
        StudySpec(),
        StudySpec(
            name="x.y_z-1",
            budgets=(2.5, 12.0, 40.0),
            trials=3,
            seed=7,
            teacher=TeacherSpec(name="a/b", trust_remote_code=True),
            data=DataSpec(source="data.csv", dataset_config="cfg", text_columns=("text",)),
            space=SpaceSpec(
                num_layers=(2, 2),
                hidden_size=(32, 64),
                num_heads=(2, 4),
                precision=("fp32", "fp16"),
            ),
            latency=LatencySpec(device="cuda", min_seconds=0.25),
        ),
    ],
)
def test_to_dict_from_dict_round_trip(spec: StudySpec) -> None:
    back = config.from_dict(spec.to_dict())
    assert back == spec
    assert back.hash == spec.hash


def test_from_dict_rejects_unknown_keys() -> None:
    raw = StudySpec().to_dict()
    raw["latency"]["repeats"] = 3
    with pytest.raises(ParetokdError, match="repeats"):
        config.from_dict(raw)


def test_default_study_file_matches_the_builtin_default() -> None:
    path = REPO_ROOT / "studies" / "default.yaml"
    if not path.exists():
        pytest.skip("studies/default.yaml is absent")
    assert config.load(path) == config.load(None)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("task:\n  kind: agnostic\n  objective: metric\n", "need a task head"),
        ("task:\n  kind: regression\n  metric: accuracy\n", "does not score regression"),
        ("task:\n  kind: classification\n  metric: pearson\n", "does not score classification"),
        ("task:\n  kind: classification\n  objective: metric\n", "data.label_column"),
        ("task:\n  kind: classification\n  temperature: 0\n", "temperature"),
        ("task:\n  kind: classification\n  hidden_weight: -1\n", "hidden_weight"),
        ("task:\n  metric: f2\n", "is not one of"),
        ("data:\n  text_columns: [a, b, c]\n", "one column .texts. or two"),
        ("data:\n  delimiter: '::'\n", "one character"),
        ("evaluation:\n  source: dev.csv\n  text_columns: [a]\n  label_column: y\n", "two"),
        ("evaluation:\n  source: dev.csv\n  text_columns: [a, b]\n", "label_column"),
        ("evaluation:\n  max_examples: 0\n", "max_examples"),
        (
            "evaluation:\n  source: d.csv\n  text_columns: [a, b]\n  label_column: y\n"
            "  metric: accuracy\n",
            "spearman or pearson",
        ),
    ],
)
def test_task_and_evaluation_rules(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ParetokdError, match=match):
        config.load(_write(tmp_path, text))


def test_task_metric_defaults_and_identity() -> None:
    assert config.TaskSpec(kind="classification").resolved_metric == "accuracy"
    assert config.TaskSpec(kind="regression").resolved_metric == "spearman"
    base = config.StudySpec()
    scored = dataclasses.replace(
        base, evaluation=dataclasses.replace(base.evaluation, source="dev.tsv")
    )
    # The evaluation set may change between runs of a study; the task may not.
    assert scored.hash == base.hash
    task = dataclasses.replace(base, task=config.TaskSpec(temperature=4.0))
    assert task.hash != base.hash


def test_final_epochs_set_the_final_steps() -> None:
    from paretokd.distill.final import resolve_steps
    from paretokd.models.data import Splits

    texts = [f"text {i}" for i in range(100)]
    splits = Splits(proxy_train=texts[:10], proxy_eval=[], full_train=texts, source="test")
    spec = config.from_dict({"distill": {"batch_size": 16, "final_epochs": 1.5}})
    assert resolve_steps(spec, splits).distill.final_steps == 11  # 1.5 x 7 batches, rounded up
    assert resolve_steps(spec, splits).hash == spec.hash  # the search is the same study
    plain = config.from_dict({"distill": {"final_steps": 42}})
    assert resolve_steps(plain, splits) is plain
    with pytest.raises(ParetokdError, match="final_epochs"):
        config.from_dict({"distill": {"final_epochs": 0}})
