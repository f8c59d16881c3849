"""Tests for paretokd.models.data and corpus: loading corpora and splitting them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from paretokd.config import BUILTIN_CORPUS, DataSpec, EvaluationSpec
from paretokd.errors import ParetokdError
from paretokd.models import corpus, data

SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"

# Made-up sentences, written for these tests.
SENTENCES = [
    "The kettle whistled twice before anyone noticed.",
    'A "quoted" word, a comma, and a tab-free line.',
    "Seven paper boats drifted past the old mill.",
    "Nobody expected the parade to start at dawn.",
    "Her notebook held maps of imaginary islands.",
]


def _texts(n: int) -> list[str]:
    return [f"Sentence number {i} is here." for i in range(n)]


def _spec(source: str = BUILTIN_CORPUS, **kwargs: object) -> DataSpec:
    return DataSpec(source=source, **kwargs)  # type: ignore[arg-type]


# --- split ------------------------------------------------------------------------------------


def test_split_is_deterministic_and_seeded() -> None:
    spec = _spec(proxy_train=20, proxy_eval=10)
    texts = _texts(100)
    first = data.split(texts, spec, seed=3)
    assert first == data.split(list(texts), spec, seed=3)
    assert first != data.split(texts, spec, seed=4)


def test_split_sizes_and_disjointness() -> None:
    spec = _spec(proxy_train=20, proxy_eval=10)
    texts = _texts(100)
    splits = data.split(texts, spec, seed=0, source="made up")
    assert len(splits.proxy_eval) == 10
    assert len(splits.proxy_train) == 20
    assert len(splits.full_train) == 90
    assert not set(splits.proxy_eval) & set(splits.full_train)
    assert not set(splits.proxy_eval) & set(splits.proxy_train)
    assert set(splits.proxy_train) <= set(splits.full_train)
    assert set(splits.proxy_eval) | set(splits.full_train) == set(texts)
    assert splits.source == "made up"


def test_split_drops_duplicates() -> None:
    spec = _spec(proxy_train=3, proxy_eval=2)
    texts = _texts(5) * 3  # only 5 distinct texts
    splits = data.split(texts, spec, seed=0)
    everything = splits.proxy_eval + splits.full_train
    assert sorted(everything) == sorted(_texts(5))


def test_split_too_small_says_what_to_lower() -> None:
    spec = _spec(proxy_train=4, proxy_eval=3)
    with pytest.raises(ParetokdError) as info:
        data.split(_texts(5) + _texts(5), spec, seed=0)
    message = str(info.value)
    assert "5 distinct" in message and "need 7" in message
    assert "data.proxy_train" in message and "data.proxy_eval" in message


# --- local files ------------------------------------------------------------------------------


def _load(path: Path, tmp_path: Path, **kwargs: object) -> tuple[list[data.Text], str]:
    table = data.load_table(_spec(str(path), **kwargs), tmp_path / "cache")
    return table.texts, table.description


def test_txt_one_text_per_non_empty_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(SENTENCES[:2]) + "\n\n   \n  " + SENTENCES[2] + "  \n")
    texts, description = _load(path, tmp_path)
    assert texts == SENTENCES[:3]
    assert str(path) in description


def test_csv_picks_first_text_column(tmp_path: Path) -> None:
    path = tmp_path / "corpus.csv"
    rows = "".join(f'{i},"{s.replace(chr(34), chr(34) * 2)}",x\n' for i, s in enumerate(SENTENCES))
    path.write_text("id,sentence,tag\n" + rows)
    texts, description = _load(path, tmp_path)
    assert texts == SENTENCES
    assert "'sentence'" in description


def test_tsv_keeps_quotes_and_honours_text_column(tmp_path: Path) -> None:
    path = tmp_path / "corpus.tsv"
    # An unbalanced quote, as in real movie-review TSVs, must not swallow the lines after it.
    lines = ['He said "wait\tshort one'] + [f"{s}\tother {i}" for i, s in enumerate(SENTENCES)]
    path.write_text("first\tsecond\n" + "\n".join(lines) + "\n")
    texts, _ = _load(path, tmp_path)
    assert texts == ['He said "wait'] + SENTENCES
    texts, description = _load(path, tmp_path, text_columns=("second",))
    assert texts == ["short one"] + [f"other {i}" for i in range(len(SENTENCES))]
    assert "'second'" in description


def test_json_jsonl_and_parquet(tmp_path: Path) -> None:
    records = [{"label": i, "text": s} for i, s in enumerate(SENTENCES)] + [
        {"label": 9, "text": " "}
    ]
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert _load(jsonl, tmp_path)[0] == SENTENCES
    array = tmp_path / "corpus.json"
    array.write_text(json.dumps(records))
    assert _load(array, tmp_path)[0] == SENTENCES

    import datasets

    parquet = tmp_path / "corpus.parquet"
    datasets.Dataset.from_list(records).to_parquet(str(parquet))
    assert _load(parquet, tmp_path, text_columns=("text",))[0] == SENTENCES


def test_missing_column_lists_available_ones(tmp_path: Path) -> None:
    path = tmp_path / "corpus.csv"
    path.write_text("sentence,label\nA made-up line of text.,1\n")
    with pytest.raises(ParetokdError, match=r"'body'.*available: 'sentence', 'label'"):
        _load(path, tmp_path, text_columns=("body",))


def test_non_text_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "corpus.csv"
    path.write_text("sentence,label\nA made-up line of text.,1\n")
    with pytest.raises(ParetokdError, match="not text"):
        _load(path, tmp_path, text_columns=("label",))
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("a,b\n1,2\n")
    with pytest.raises(ParetokdError, match="no text column"):
        _load(numbers, tmp_path)


@pytest.mark.parametrize("name", ["empty.txt", "empty.csv", "blank.txt", "header.csv"])
def test_empty_corpus_is_an_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text({"blank.txt": "\n  \n", "header.csv": "sentence,label\n"}.get(name, ""))
    with pytest.raises(ParetokdError, match="holds no text"):
        _load(path, tmp_path)


def test_unsupported_extension_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "corpus.xlsx"
    path.write_text("whatever")
    with pytest.raises(ParetokdError, match=r"unsupported extension '\.xlsx'.*\.jsonl"):
        _load(path, tmp_path)
    with pytest.raises(ParetokdError, match="directory"):
        _load(tmp_path, tmp_path)


def test_missing_file_is_reported_without_asking_the_hub(tmp_path: Path) -> None:
    with pytest.raises(ParetokdError, match="does not exist"):
        _load(tmp_path / "nope.csv", tmp_path)
    with pytest.raises(ParetokdError, match="does not exist"):
        data.load_table(_spec("corpora/mine/train"), tmp_path)


def test_unreachable_dataset_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No network here: offline mode makes datasets fail at once instead of retrying.
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ParetokdError, match="could not be loaded.*neither an existing local file"):
        data.load_table(_spec("no-such-dataset-paretokd"), tmp_path)


# --- the built-in corpus ----------------------------------------------------------------------


def test_stdlib_corpus_builds_caches_and_reloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = data.load_table(_spec(), tmp_path)
    texts, description = table.texts, table.description
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    cache = tmp_path / f"stdlib-docstrings-py{version}.txt"
    assert cache.is_file() and str(cache) in description
    assert len(texts) >= 10_000
    assert len(set(texts)) == len(texts)
    for text in texts:
        assert text[0].isupper() and text.endswith("."), text
        assert 30 <= len(text) <= 300 and "\n" not in text and ">>>" not in text, text
        assert "://" not in text, text
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed away

    def boom() -> list[str]:
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(corpus, "stdlib_sentences", boom)
    again = data.load_table(_spec(), tmp_path)
    assert again.texts == texts and again.description == description

    splits = data.load_splits(_spec(), seed=0, cache_dir=tmp_path)
    assert len(splits.proxy_eval) == DataSpec().proxy_eval
    assert splits.source == description


def test_sentence_splitting_and_filters() -> None:
    doc = (
        "Summary line of a made-up function.\n\n"
        "Use it with care, e.g. Tuesdays only.  It returns a value.\n"
        "    indented code = 1\n\n"
        ">>> frobnicate(3)\n"
        "Some doctest output that is long enough to pass.\n\n"
        "Example::\n\n"
        "    The literal block is skipped entirely here.\n\n"
        "Args:\n"
        "    x: The thing to frobnicate today.\n"
        "See https://example.org for the full story of it."
    )
    sentences = [s for s in corpus._sentences(doc) if corpus._is_prose(s)]
    assert sentences == [
        "Summary line of a made-up function.",
        "Use it with care, e.g. Tuesdays only.",
    ]
    assert not corpus._is_prose("Return dict(a=1, b=[2, 3]) for {x}.")


# --- real data (skipped where ../shared/data is absent) ---------------------------------------


def test_sst2_dev_tsv(tmp_path: Path) -> None:
    path = SHARED_DATA / "sst2" / "dev.tsv"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    texts, description = _load(path, tmp_path)
    assert len(texts) > 6000
    assert "'sentence'" in description


def test_sst2_with_labels_and_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (SHARED_DATA / "sst2" / "dev.tsv").is_file():
        pytest.skip("../shared/data is not available")
    monkeypatch.setenv(data.DATA_ROOT_ENV, str(SHARED_DATA))
    table = data.load_table(_spec("sst2/dev.tsv", label_column="label"), tmp_path)
    assert table.labels is not None and len(table.labels) == len(table.texts) > 6000
    assert set(table.labels) == {0, 1}
    assert str(SHARED_DATA) in table.description


def test_stsb_pairs_from_a_headerless_tsv(tmp_path: Path) -> None:
    path = SHARED_DATA / "stsb" / "sts-dev.csv"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    # sts-dev.csv is a headerless TSV despite its name; some lines carry extra columns.
    names = ("genre", "file", "year", "id", "score", "sentence1", "sentence2")
    spec = EvaluationSpec(
        source=str(path),
        column_names=names,
        delimiter="\t",
        text_columns=("sentence1", "sentence2"),
        label_column="score",
    )
    table = data.load_table(spec, tmp_path)
    assert len(table.texts) == 1500
    assert all(isinstance(t, tuple) and len(t) == 2 for t in table.texts)
    assert table.labels is not None and min(table.labels) == 0 and max(table.labels) == 5


def test_headerless_tsv_pairs_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text(
        f"a\t4.5\t{SENTENCES[0]}\t{SENTENCES[1]}\textra\tcolumns\n"
        f"b\t1.0\t{SENTENCES[2]}\t{SENTENCES[3]}\n"
        f"c\t\t{SENTENCES[3]}\t{SENTENCES[4]}\n"  # no score: dropped
    )
    spec = EvaluationSpec(
        source=str(path),
        column_names=("id", "score", "one", "two"),
        text_columns=("one", "two"),
        label_column="score",
    )
    table = data.load_table(spec, tmp_path)
    assert table.texts == [(SENTENCES[0], SENTENCES[1]), (SENTENCES[2], SENTENCES[3])]
    assert table.labels == [4.5, 1.0]


def test_missing_label_column_and_columns_on_text_files(tmp_path: Path) -> None:
    path = tmp_path / "corpus.csv"
    path.write_text("sentence,label\nA made-up line of text.,1\n")
    with pytest.raises(ParetokdError, match=r"label_column 'gold'.*available: 'sentence'"):
        _load(path, tmp_path, label_column="gold")
    txt = tmp_path / "corpus.txt"
    txt.write_text(SENTENCES[0] + "\n")
    with pytest.raises(ParetokdError, match="label_column set, but .*plain text file"):
        _load(txt, tmp_path, label_column="label")


def test_split_keeps_the_labels_of_proxy_eval() -> None:
    spec = _spec(proxy_train=20, proxy_eval=10)
    texts = _texts(50) + _texts(5)  # duplicates keep their first label
    labels = [i % 3 for i in range(50)] + [9] * 5
    splits = data.split(texts, spec, seed=0, labels=labels)
    assert splits.proxy_eval_labels is not None
    for text, label in zip(splits.proxy_eval, splits.proxy_eval_labels, strict=True):
        assert label == texts.index(text) % 3


def test_encode_labels() -> None:
    label2id = {"negative": 0, "positive": 1}
    assert data.encode_labels(["positive", 0, "1"], "classification", label2id, 2, "t") == [
        1.0,
        0.0,
        1.0,
    ]
    with pytest.raises(ParetokdError, match=r"label 'neutral' is not one of .*2 classes"):
        data.encode_labels(["neutral"], "classification", label2id, 2, "t")
    with pytest.raises(ParetokdError, match="label 3 is not one of"):
        data.encode_labels([3], "classification", label2id, 2, "t")
    assert data.encode_labels(["4.5", 2], "regression", {}, 1, "t") == [4.5, 2.0]
    with pytest.raises(ParetokdError, match="not a number"):
        data.encode_labels(["high"], "regression", {}, 1, "t")


def test_a_slice_of_a_file_trains_and_another_evaluates(tmp_path: Path) -> None:
    path = tmp_path / "news.tsv"
    path.write_text("".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES[:5])))
    names = {"column_names": ("text", "label"), "label_column": "label"}
    train = data.load_table(DataSpec(source=str(path), split="train[:3]", **names), tmp_path)
    held = data.load_table(EvaluationSpec(source=str(path), split="train[3:]", **names), tmp_path)
    assert train.texts == SENTENCES[:3] and held.texts == SENTENCES[3:5]
    assert held.labels == [1, 0]
    assert "train[3:]" in held.description
    # Any other split name reads a file whole, as before (evaluation's default is "validation").
    whole = data.load_table(EvaluationSpec(source=str(path), **names), tmp_path)
    assert whole.texts == SENTENCES[:5]
    txt = tmp_path / "corpus.txt"
    txt.write_text(SENTENCES[0] + "\n")
    with pytest.raises(ParetokdError, match="plain text file, read whole"):
        data.load_table(DataSpec(source=str(txt), split="train[:1]"), tmp_path)
