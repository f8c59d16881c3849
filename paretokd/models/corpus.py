"""The built-in corpus: English prose harvested from the installed Python standard library.

The repository ships no third-party text and the tool works offline: the
sentences are cut at run time from the docstrings of the standard library on
the machine (parsed, never imported), kept only when they read as prose, and
cached once per Python version.
"""

from __future__ import annotations

import ast
import os
import re
import sys
import sysconfig
import warnings
from collections.abc import Iterator
from pathlib import Path

from paretokd.config import BUILTIN_CORPUS
from paretokd.files import write_text


def load_builtin(cache_dir: Path) -> tuple[list[str], str]:
    # The harvest depends on the installed stdlib, so the cache is keyed by the
    # Python version that produced it.
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    cache = cache_dir / f"{BUILTIN_CORPUS}-py{version}.txt"
    description = (
        f"{BUILTIN_CORPUS} (docstrings of the Python {version} standard library, cached in {cache})"
    )
    if cache.is_file():
        # Split on "\n" only: splitlines() would also break on characters such as \x1c.
        texts = [line for line in cache.read_text(encoding="utf-8").split("\n") if line]
        if texts:
            return texts, description
    texts = stdlib_sentences()
    write_text(cache, "".join(f"{text}\n" for text in texts))
    return texts, description


def stdlib_sentences() -> list[str]:
    """Harvest the built-in corpus: prose sentences from the standard library's docstrings.

    Every ``*.py`` file of the installed standard library (tests and third-party
    packages excluded) is parsed with :mod:`ast`, never imported, because
    importing stdlib modules has side effects (``antigravity`` opens a browser,
    ``this`` prints). Module, class and function docstrings are cut into
    sentences, and only those that read as English prose are kept.

    Returns:
        Distinct sentences in a fixed order (sorted file order, then source order),
        each on one line, starting with a capital letter and ending with ``.``.
        Computed afresh on each call; :func:`load_builtin` caches the result.
    """
    seen: dict[str, None] = {}  # an insertion-ordered set, so the first occurrence wins
    for docstring in _stdlib_docstrings():
        for sentence in _sentences(docstring):
            if _is_prose(sentence):
                seen.setdefault(sentence, None)
    return list(seen)


# Directories whose docstrings are not documentation: tests describe test cases
# ("Test that ... works"), and site-packages holds third-party code.
_SKIP_DIRS = frozenset(
    {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test", "testmock"}
)


def _stdlib_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith("test_")]
        files.extend(Path(folder, name) for name in names if name.endswith(".py"))
    # Sort by path components, not by os.walk order, which depends on the file system.
    return sorted(files, key=lambda p: p.relative_to(root).parts)


def _stdlib_docstrings() -> Iterator[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in _stdlib_files(root):
        try:
            source = path.read_bytes()
            with warnings.catch_warnings():
                # Old stdlib files trigger SyntaxWarnings (invalid escapes) on newer Pythons.
                warnings.simplefilter("ignore")
                tree = ast.parse(source, filename=str(path))
        except (OSError, SyntaxError, ValueError, UnicodeDecodeError, RecursionError):
            continue
        yield from _docstrings(tree)


def _docstrings(node: ast.AST) -> Iterator[str]:
    """Docstrings of a module and its classes and functions, in source order."""
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        docstring = ast.get_docstring(node, clean=True)
        if docstring:
            yield docstring
    for child in ast.iter_child_nodes(node):
        yield from _docstrings(child)


# "Args:", "Returns:", "Example:": section headers of Google/NumPy-style docstrings.
_SECTION_RE = re.compile(r"^[A-Z][A-Za-z ]{0,30}:$")
# A run of 2+ spaces inside a line, not after a sentence end: the columns of a table or of a
# "name    description" list (many stdlib docstrings put two spaces after a full stop).
_TABLE_RE = re.compile(r"[^\s.!?:]\s{2,}\S")
# reST inline markup, replaced by its text: :role:`~x.y`, ``code``, `title`, *em*, **strong**.
_ROLE_RE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")
_LITERAL_RE = re.compile(r"``([^`]+)``|`([^`]+)`")
_EMPHASIS_RE = re.compile(r"(?<![\w*])\*{1,2}([^\s*][^*]*?)\*{1,2}(?![\w*])")
# A sentence ends at . ! or ? followed by a space and a capital letter.
_BOUNDARY_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
# A fragment ending in one of these did not end a sentence ("e.g. Foo", "J. Smith").
_ABBREVIATION_RE = re.compile(
    r"(?:\b(?:e\.g|i\.e|etc|vs|cf|viz|approx|resp|al|No|Mr|Dr)|\b[A-Z])\.$"
)


def _paragraphs(docstring: str) -> Iterator[str]:
    """Blocks of prose lines, each joined into one line; code, doctests and tables removed."""
    lines: list[str] = []
    indent = 0
    skip_deeper_than: int | None = None  # inside a literal block or a directive's body
    in_doctest = False

    def flush() -> Iterator[str]:
        if lines:
            yield " ".join(" ".join(lines).split())
            lines.clear()

    for raw in docstring.splitlines():
        line = raw.strip()
        depth = len(raw) - len(raw.lstrip())
        if skip_deeper_than is not None:
            if not line or depth > skip_deeper_than:
                continue
            skip_deeper_than = None
        if not line:
            yield from flush()
            in_doctest = False  # doctest output runs up to the next blank line
            continue
        if in_doctest:
            continue
        if line.startswith(">>>"):
            yield from flush()
            in_doctest = True
            continue
        if line.endswith("::") or line.startswith(".. "):
            # "Example::" introduces a literal (code) block; ".. note::" a directive.
            yield from flush()
            skip_deeper_than = depth
            continue
        if lines and depth != indent:
            # An indentation change ends a paragraph: a parameter list, a quoted
            # block or code starts or stops here.
            yield from flush()
        if (
            _SECTION_RE.match(line)
            or _TABLE_RE.search(line)
            or line.startswith(("...", "$ ", "% ", "#", "|", "+-", "=", "--", "~~", "__"))
        ):
            yield from flush()
            continue
        if line.startswith(("- ", "* ", "+ ")):
            yield from flush()  # a bullet starts a paragraph of its own
            line = line[2:]
        lines.append(line)
        indent = depth
    yield from flush()


def _sentences(docstring: str) -> Iterator[str]:
    for paragraph in _paragraphs(docstring):
        text = _ROLE_RE.sub(r"\1", paragraph)
        text = _LITERAL_RE.sub(lambda m: m.group(1) or m.group(2), text)
        text = _EMPHASIS_RE.sub(r"\1", text)
        pieces: list[str] = []
        for piece in _BOUNDARY_RE.split(text):
            if pieces and _ABBREVIATION_RE.search(pieces[-1]):
                pieces[-1] += " " + piece
            else:
                pieces.append(piece)
        yield from pieces


_URL_RE = re.compile(r"https?://|www\.|\w@\w", re.IGNORECASE)
_CODE_CHARS = frozenset("=(){}[]_/\\<>*|#$%^~@`")
# A call such as get_close_matches() or os.getcwd(): documentation English names a few.
_CALL_RE = re.compile(r"\b[A-Za-z_][\w.]*\(\)")
# Dotted names such as os.path.join; two letters on each side so "e.g." does not count.
_DOTTED_RE = re.compile(r"[A-Za-z_]\w+\.[A-Za-z_]\w+")


def _is_prose(sentence: str) -> bool:
    """Whether a sentence reads as English prose rather than code, a signature or a table."""
    if not 30 <= len(sentence) <= 300:
        return False
    if not (sentence[0].isupper() and sentence.endswith(".") and not sentence.endswith("..")):
        return False
    words = sentence.split()
    # Four words, not five: short summaries ("Single-dispatch generic function decorator.")
    # are good prose, and the corpus needs them to stay above 10,000 sentences.
    if len(words) < 4 or words[0].endswith(":"):  # "Raises: ValueError ...", "Note: ..."
        return False
    if _URL_RE.search(sentence) or "::" in sentence or "->" in sentence or "()." in sentence:
        return False
    if len(_DOTTED_RE.findall(sentence)) > 1:
        return False
    # Allow one trace of code (a call like close(), an underscore, a slash) besides
    # one pair of parentheses around words; more than that reads as code.
    calls = len(_CALL_RE.findall(sentence))
    rest = _CALL_RE.sub("f", sentence)
    parens = rest.count("(") + rest.count(")")
    if calls + sum(char in _CODE_CHARS for char in rest) - min(parens, 2) > 1:
        return False
    letters = sum(char.isalpha() or char == " " for char in sentence)
    return letters / len(sentence) >= 0.88
