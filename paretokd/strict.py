"""Strict YAML to frozen dataclasses: unknown keys and wrong types are errors, named by key.

Generic over the dataclass; :mod:`paretokd.config` builds the study spec with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from paretokd.errors import ParetokdError

_T = TypeVar("_T")


def build(cls: type[_T], raw: Any, where: str, parsers: Mapping[str, Callable[[Any], Any]]) -> _T:
    """Build dataclass ``cls`` from a YAML mapping, rejecting unknown keys and wrong types.

    Args:
        cls: A dataclass whose fields are dataclasses, optionals, literals, tuples,
            bools, ints, floats or strings.
        raw: The mapping YAML read (``None`` reads as empty).
        where: The dotted key of ``raw`` in the file, for errors (``""`` at the top).
        parsers: Dotted keys whose values are read by a function of their own.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParetokdError(
            f"{where or 'study spec'}: expected a mapping, got {type(raw).__name__}"
        )
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParetokdError(
            f"{where or 'study spec'}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, value in raw.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(hints[name], value, key, parsers)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str, parsers: Mapping[str, Callable[[Any], Any]]) -> Any:
    args = get_args(hint)
    if type(None) in args:  # an optional field: None, or a value of the other type
        if value is None:
            return None
        (hint,) = (a for a in args if a is not type(None))
    origin = get_origin(hint)
    if key in parsers:
        return parsers[key](value)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key, parsers)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in get_args(hint):
            raise ParetokdError(f"{key}: {value!r} is not one of {', '.join(get_args(hint))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not value:
            raise ParetokdError(f"{key}: expected a non-empty list, got {value!r}")
        item_type = get_args(hint)[0]
        return tuple(_coerce(item_type, v, key, parsers) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ParetokdError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParetokdError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ParetokdError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)  # YAML reads 3e-4 as a string
        except ValueError:
            raise ParetokdError(f"{key}: expected a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ParetokdError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {hint!r} for {key}")  # a bug, not user input
