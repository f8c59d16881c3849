"""Corpora → deterministic text splits.

A study needs two small sets of sentences for the search (``proxy_train`` to
distil each trial on, ``proxy_eval`` to score it) and a larger one for the final
distillation (``full_train``). The text comes from one of three places:

- the built-in corpus ``stdlib-docstrings``: English prose harvested at run time
  from the docstrings of the Python standard library installed on the machine,
  so the repository ships no third-party text and the tool works offline;
- a local file (``.txt``, ``.csv``, ``.tsv``, ``.json``, ``.jsonl``, ``.parquet``);
- a ``datasets`` hub name.

A text is one string, or a pair of strings for sentence-pair tasks; tables
may carry gold labels too (the evaluation set, and the proxy texts when the
search scores a task metric). Splitting is a pure function of the texts and
the seed, so a study that is resumed, or re-run on another machine with the
same corpus, scores its trials on the same sentences. This module imports no
torch; ``datasets`` is imported only when a file or hub dataset needs it.
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paretokd.config import BUILTIN_CORPUS, DataSpec, TableSpec
from paretokd.errors import ParetokdError
from paretokd.models import corpus

# Local file suffix → the ``datasets`` builder that reads it (None: read here, one text a line).
_FILE_BUILDERS: dict[str, str | None] = {
    ".txt": None,
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
}
_SUPPORTED = ", ".join(_FILE_BUILDERS)
DATA_ROOT_ENV = "PARETOKD_DATA_ROOT"

Text = str | tuple[str, str]
"""One text, or a sentence pair."""


@dataclass(frozen=True)
class Table:
    """Texts read from a corpus, with their gold labels when a label column was named."""

    texts: list[Text]
    labels: list[Any] | None
    """One label per text, as stored (a class name, an index or a score); ``None`` if unlabelled."""
    description: str
    """Where it came from: a path and columns, a dataset name, or the built-in corpus."""


@dataclass(frozen=True)
class Splits:
    """The texts of one study, split once and reused by every trial."""

    proxy_train: list[Text]
    """Texts each trial is distilled on during the search."""
    proxy_eval: list[Text]
    """Held-out texts each trial is scored on; never trained on."""
    full_train: list[Text]
    """Every text that is not in ``proxy_eval`` (so it includes ``proxy_train``)."""
    source: str
    """Where the text came from: a path, a dataset name, or the built-in corpus and its cache."""
    proxy_eval_labels: list[Any] | None = None
    """Gold labels of ``proxy_eval`` (when the corpus has a label column)."""


def resolve_source(source: str) -> str:
    """Where a table's ``source`` points: itself, or a path under ``$PARETOKD_DATA_ROOT``.

    A relative path that does not exist in the working directory is looked up
    under the data root, so a study spec can name ``sst2/train.tsv`` and run on
    any machine that has the data sets somewhere (``--data-root``).
    """
    root = os.environ.get(DATA_ROOT_ENV)
    path = Path(source).expanduser()
    if root and not path.is_absolute() and not path.exists():
        under = Path(root).expanduser() / path
        if under.exists():
            return str(under)
    return source


def load_table(spec: TableSpec, cache_dir: Path) -> Table:
    """Load the table named by ``spec.source``.

    ``spec.source`` is tried in this order: the built-in corpus
    (``stdlib-docstrings``), an existing local file (also under
    ``$PARETOKD_DATA_ROOT``, see :func:`resolve_source`), a ``datasets`` hub name.
    ``spec.dataset_config`` applies to hub datasets only. ``spec.split`` names a
    hub dataset's split; a local file is read whole, unless the split is a
    slice of ``train``, the one split of a CSV/TSV/JSON(L)/Parquet file
    (``train[:9000]``, ``train[90%:]``): a training and an evaluation set
    from one file.

    Args:
        spec: Where the text comes from and which columns hold texts and labels.
        cache_dir: Folder for files derived from the corpus: the built-in
            corpus's sentence cache and the Arrow cache ``datasets`` builds from a
            local file. Hub datasets stay in the usual Hugging Face cache, which
            is shared between studies.

    Returns:
        The texts (stripped; rows with an empty text or label dropped; in corpus
        order, duplicates kept), their labels if a label column was named, and a
        human-readable description of where they came from.

    Raises:
        ParetokdError: If the file is missing, unreadable or of an unsupported
            kind, the dataset cannot be loaded, a column does not exist or
            holds the wrong kind of values, or the corpus is empty.
    """
    if spec.source is None:
        raise ParetokdError("no data source given")
    if spec.source == BUILTIN_CORPUS:
        if spec.label_column is not None or spec.text_columns is not None:
            raise ParetokdError(f"the built-in corpus {BUILTIN_CORPUS!r} has no columns to name")
        texts, description = corpus.load_builtin(cache_dir)
        return Table(list(texts), None, description)
    source = resolve_source(spec.source)
    path = Path(source).expanduser()
    if path.exists():
        table = _load_file(path, spec, cache_dir)
    elif _looks_like_path(source):
        # Asking the hub about "data/train.csv" would only fail slowly (retries
        # without network) with a message about the hub, not about the typo.
        root = os.environ.get(DATA_ROOT_ENV)
        where = f" (nor under the data root {root!r})" if root else ""
        raise ParetokdError(
            f"data file {source!r} does not exist{where} (supported files: {_SUPPORTED}; "
            f"or use the built-in corpus {BUILTIN_CORPUS!r} or a datasets name)"
        )
    else:
        table = _load_hub(spec)
    if not table.texts:
        raise ParetokdError(f"the corpus {table.description} holds no text")
    return table


def split(
    texts: list[Text],
    spec: DataSpec,
    seed: int,
    *,
    source: str = "given texts",
    labels: list[Any] | None = None,
) -> Splits:
    """Split texts into the proxy and full sets, deterministically.

    Duplicates are dropped (keeping the first occurrence and its label) so that
    no text can sit in both ``proxy_eval`` and a training set. The distinct
    texts are shuffled with ``random.Random(seed)``; ``proxy_eval`` takes the
    first ``spec.proxy_eval``, ``proxy_train`` the next ``spec.proxy_train``, and
    ``full_train`` everything but ``proxy_eval``.

    Args:
        texts: The corpus, e.g. :attr:`Table.texts`.
        spec: Gives the sizes ``proxy_eval`` and ``proxy_train``.
        seed: The study's seed.
        source: Description stored in :attr:`Splits.source`.
        labels: One gold label per text, or ``None``.

    Returns:
        The splits; the same ``(texts, seed)`` always gives the same splits.

    Raises:
        ParetokdError: If there are fewer distinct texts than
            ``spec.proxy_eval + spec.proxy_train``.
    """
    first: dict[Text, Any] = {}
    for index, text in enumerate(texts):
        first.setdefault(text, labels[index] if labels is not None else None)
    distinct = list(first)
    needed = spec.proxy_eval + spec.proxy_train
    if len(distinct) < needed:
        raise ParetokdError(
            f"the corpus holds {len(distinct)} distinct texts but data.proxy_eval "
            f"({spec.proxy_eval}) + data.proxy_train ({spec.proxy_train}) need {needed}: "
            "lower data.proxy_eval or data.proxy_train, or use a larger corpus"
        )
    random.Random(seed).shuffle(distinct)
    n_eval = spec.proxy_eval
    return Splits(
        proxy_train=distinct[n_eval:needed],
        proxy_eval=distinct[:n_eval],
        full_train=distinct[n_eval:],
        source=source,
        proxy_eval_labels=[first[t] for t in distinct[:n_eval]] if labels is not None else None,
    )


def load_splits(spec: DataSpec, seed: int, cache_dir: Path) -> Splits:
    """Load the corpus named by ``spec`` and split it; see :func:`load_table` and :func:`split`.

    Raises:
        ParetokdError: On any problem with the corpus or if it is too small.
    """
    table = load_table(spec, cache_dir)
    return split(table.texts, spec, seed, source=table.description, labels=table.labels)


def encode_labels(
    labels: list[Any], kind: str, label2id: dict[str, int], num_labels: int, where: str
) -> list[float]:
    """Map gold labels onto the teacher head's outputs: class indices, or scores.

    Args:
        labels: As stored in the table: class names, indices (ints or digit
            strings) or, for regression and similarity, numbers.
        kind: ``classification``, or anything else for numeric scores.
        label2id: The teacher config's class names.
        num_labels: The teacher head's number of outputs.
        where: Names the table in errors.

    Raises:
        ParetokdError: For a label the head does not have, or a score that is
            not a number.
    """
    out: list[float] = []
    for value in labels:
        if kind != "classification":
            try:
                out.append(float(value))
            except (TypeError, ValueError):
                raise ParetokdError(f"{where}: label {value!r} is not a number") from None
            continue
        index: int | None
        if isinstance(value, str) and value in label2id:
            index = label2id[value]
        elif isinstance(value, (int, str)) and str(value).strip().lstrip("-").isdigit():
            index = int(value)
        else:
            index = None
        if index is None or not 0 <= index < num_labels:
            names = ", ".join(map(repr, label2id)) or f"0..{num_labels - 1}"
            raise ParetokdError(
                f"{where}: label {value!r} is not one of the teacher head's {num_labels} "
                f"classes ({names}); is this the data the teacher was fine-tuned on?"
            )
        out.append(float(index))
    return out


# --- local files and hub datasets -------------------------------------------------------------


def _looks_like_path(source: str) -> bool:
    """True for names that can only be meant as files (hub ids are ``name`` or ``owner/name``)."""
    return (
        source.startswith(("/", ".", "~"))
        or source.count("/") > 1
        or (os.sep != "/" and os.sep in source)
        or Path(source).suffix.lower() in _FILE_BUILDERS
    )


def _load_file(path: Path, spec: TableSpec, cache_dir: Path) -> Table:
    if path.is_dir():
        raise ParetokdError(
            f"data source {str(path)!r} is a directory; give one file ({_SUPPORTED})"
        )
    suffix = path.suffix.lower()
    if suffix not in _FILE_BUILDERS:
        raise ParetokdError(
            f"data file {str(path)!r} has an unsupported extension {suffix or '(none)'!r}; "
            f"supported: {_SUPPORTED}"
        )
    if path.stat().st_size == 0:
        # pandas and pyarrow fail on empty files with messages about parsing, not emptiness.
        raise ParetokdError(f"the corpus {str(path)!r} holds no text (the file is empty)")
    builder = _FILE_BUILDERS[suffix]
    part = spec.split if spec.split.startswith("train[") else "train"  # else: the whole file
    if builder is None and part != "train":
        raise ParetokdError(
            f"split {spec.split!r}: {str(path)!r} is a plain text file, read whole; slices "
            "are for CSV/TSV/JSON(L)/Parquet files"
        )
    if builder is None:
        keys = ("text_columns", "label_column", "column_names", "delimiter")
        named = [k for k in keys if getattr(spec, k)]
        if named:
            raise ParetokdError(
                f"{', '.join(named)} set, but {str(path)!r} is a plain text file "
                "(one text per line) with no columns; remove them"
            )
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ParetokdError(f"data file {str(path)!r} is not UTF-8 text: {exc}") from None
        except OSError as exc:
            raise ParetokdError(f"cannot read data file {str(path)!r}: {exc.strerror}") from None
        return Table(list(_clean(content.splitlines())), None, f"{path} (one text per line)")

    import datasets  # slow to import; only file and hub corpora need it

    kwargs: dict[str, Any] = {}
    if builder != "csv" and (spec.column_names is not None or spec.delimiter is not None):
        raise ParetokdError(
            f"column_names and delimiter are for CSV/TSV files; {str(path)!r} names its own columns"
        )
    delimiter = spec.delimiter or ("\t" if suffix == ".tsv" else ",")
    if delimiter == "\t":
        # Real TSVs (SST-2, STS-B) hold unbalanced quote characters inside the
        # text; with CSV quoting those would swallow the tabs and newlines after them.
        kwargs = {"delimiter": delimiter, "quoting": csv.QUOTE_NONE}
    elif builder == "csv":
        kwargs = {"delimiter": delimiter}
    if spec.column_names is not None:
        # Lines with more fields than names (STS-B's source notes) keep the named ones.
        names = list(spec.column_names)
        kwargs |= {"header": None, "column_names": names, "usecols": list(range(len(names)))}
    try:
        dataset = datasets.load_dataset(
            builder,
            data_files=str(path),
            split=part,
            cache_dir=str(cache_dir / "datasets"),
            **kwargs,
        )
    except Exception as exc:  # any parser failure is a problem with the user's file
        if "corresponds to no data" in str(exc):
            # How datasets reports a file with a header and no rows.
            raise ParetokdError(f"the corpus {str(path)!r} holds no text (no rows)") from None
        raise ParetokdError(f"cannot read data file {str(path)!r}: {_first_line(exc)}") from None
    return _table(dataset, spec, str(path) if part == "train" else f"{path} {part}")


def _load_hub(spec: TableSpec) -> Table:
    import datasets

    assert spec.source is not None
    name = spec.source + (f" ({spec.dataset_config})" if spec.dataset_config else "")
    try:
        dataset = datasets.load_dataset(spec.source, spec.dataset_config, split=spec.split)
    except Exception as exc:  # network, a missing name, bad config or split alike
        raise ParetokdError(
            f"the dataset {name!r} could not be loaded: it is neither an existing local file "
            f"nor a reachable datasets name ({_first_line(exc)})"
        ) from None
    if not isinstance(dataset, datasets.Dataset):  # e.g. an IterableDataset from a custom script
        raise ParetokdError(
            f"the dataset {name!r} did not load as one table for split {spec.split!r}"
        )
    table = _table(dataset, spec, name)
    return Table(table.texts, table.labels, f"datasets:{table.description} split {spec.split!r}")


def _table(dataset: Any, spec: TableSpec, where: str) -> Table:
    """Read the text column(s) and the label column of a loaded dataset.

    Rows whose text (either text of a pair) is empty or whose label is missing
    are dropped: neither can be distilled on or scored.
    """
    columns = _text_columns(dataset, spec.text_columns, where)
    if spec.label_column is not None and spec.label_column not in dataset.features:
        raise ParetokdError(
            f"label_column {spec.label_column!r} is not a column of {where!r}; "
            f"available: {', '.join(map(repr, dataset.features))}"
        )
    texts: list[Text] = []
    labels: list[Any] | None = [] if spec.label_column is not None else None
    values = [dataset[c] for c in columns]
    gold = dataset[spec.label_column] if spec.label_column is not None else None
    for row, parts in enumerate(zip(*values, strict=True)):
        cleaned = _clean(parts)
        if len(cleaned) != len(parts):
            continue
        if gold is not None:
            if gold[row] is None or str(gold[row]).strip() == "":
                continue
            assert labels is not None
            labels.append(gold[row])
        texts.append(cleaned[0] if len(cleaned) == 1 else (cleaned[0], cleaned[1]))
    described = " + ".join(map(repr, columns))
    if spec.label_column is not None:
        described += f", labels {spec.label_column!r}"
    return Table(texts, labels, f"{where} (column {described})")


def _text_columns(dataset: Any, wanted: tuple[str, ...] | None, where: str) -> list[str]:
    """The columns to read: ``wanted`` if given, else the first string column."""
    import datasets

    features = dataset.features

    def is_text(feature: Any) -> bool:
        return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")

    if wanted is not None:
        for column in wanted:
            if column not in features:
                raise ParetokdError(
                    f"text column {column!r} is not a column of {where!r}; "
                    f"available: {', '.join(map(repr, features))}"
                )
            if not is_text(features[column]):
                raise ParetokdError(
                    f"text column {column!r} of {where!r} holds {features[column]}, not text"
                )
        return list(wanted)
    for name, feature in features.items():
        if is_text(feature):
            return [str(name)]
    raise ParetokdError(
        f"{where!r} has no text column (columns: {', '.join(map(repr, features)) or 'none'}); "
        "if the file has no header row, name its columns with column_names"
    )


def _clean(values: Any) -> list[str]:
    """Strip texts and drop empty ones (and missing CSV cells, which arrive as None)."""
    return [text for value in values if value is not None and (text := str(value).strip())]


def _first_line(exc: BaseException) -> str:
    """The first line of an error, and of its root cause when that says more.

    ``datasets`` wraps parser errors in "An error occurred while generating the
    dataset"; the pandas or pyarrow error underneath is the one that helps.
    """

    def first(error: BaseException) -> str:
        text = str(error).strip()
        return text.splitlines()[0] if text else type(error).__name__

    root = exc
    while (inner := root.__cause__ or root.__context__) is not None and inner is not root:
        root = inner
    if root is exc:
        return first(exc)
    return f"{first(exc)} ({type(root).__name__}: {first(root)})"
