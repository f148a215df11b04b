"""Shared base of bfm_gym's small config dataclasses (collector agents, adapters).

Frozen, keyword-only dataclasses with a docstring under each field; ``from_dict``
refuses unknown keys (naming the closest valid field) and checks every value against
its field's annotation (:func:`coerce_fields`).

Values typed on the command line (``--set key=value``) arrive as :class:`SetValue`
strings and are parsed by the field's type, so ``--set k=2.5`` for an ``int`` field,
``--set lr=true`` for a ``float`` field or ``--set lr=abc`` fail with a message that
names the field and the type it expects::

    >>> from bfm_gym.adapters.opti import OptiConfig
    >>> OptiConfig.from_dict(parse_set(["beta=0.5"])).beta
    0.5
    >>> OptiConfig.from_dict(parse_set(["beta=abc"]))
    Traceback (most recent call last):
    ...
    bfm_gym.errors.UserError: OptiConfig.beta expects a float; got 'abc' (--set beta=abc).
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, Union

import numpy as np

from bfm_gym.errors import UserError, closest_hint

__all__ = ["Config", "SetValue", "coerce_fields", "coerce_value", "parse_set"]

_ConfigT = TypeVar("_ConfigT", bound="Config")


class SetValue(str):
    """The text of a ``--set key=value`` from the command line, parsed by the field's type."""


def parse_set(items: Iterable[str], *, option: str = "--set") -> dict[str, SetValue]:
    """Parses ``key=value`` strings into ``{key: SetValue(value)}`` (typed later by the config).

    Raises:
        UserError: An item without ``=`` or without a key, or a key given twice.
    """
    out: dict[str, SetValue] = {}
    for item in items:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"{option} expects KEY=VALUE (e.g. {option} seed=3); got {item!r}.")
        if key in out:
            raise UserError(f"{option} {key} is given twice ({key}={out[key]} and {key}={raw}); keep one.")
        out[key] = SetValue(raw.strip())
    return out


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(hint))
    if typing.get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) in (tuple, list):
        return "a list"
    name = getattr(hint, "__name__", str(hint))
    return {"int": "an int", "float": "a float", "bool": "a bool (true/false)", "str": "a string"}.get(name, name)


class _Mismatch(Exception):
    pass


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` converted to ``hint``; raises _Mismatch when it does not fit."""
    raw = isinstance(value, SetValue)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, (str, TypeVar)):
        return _json(value) if raw else value
    if hint is type(None):
        if value is None or (raw and value.lower() in ("null", "none")):
            return None
        raise _Mismatch
    if origin in (Union, types.UnionType):
        for arg in sorted(args, key=lambda a: a is str):  # a string member is tried last
            try:
                return _coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        for choice in args:
            if (value == choice and type(value) is type(choice)) or (raw and str(choice) == value):
                return choice
        raise _Mismatch
    if origin in (tuple, list):
        items = _json(value) if raw else value
        if raw and isinstance(items, str):
            items = [SetValue(v.strip()) for v in items.split(",") if v.strip()]
        if not isinstance(items, (list, tuple)):
            raise _Mismatch
        item_hint = args[0] if args and ((len(args) == 2 and args[1] is Ellipsis) or origin is list) else None
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(items):
                raise _Mismatch
            return tuple(_coerce(v, a) for v, a in zip(items, args, strict=True))
        return origin(_coerce(v, item_hint) if item_hint is not None else v for v in items)
    if hint is bool:
        if raw:
            text = value.lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise _Mismatch
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise _Mismatch
    if hint is int:
        parsed = _json(value) if raw else value
        if isinstance(parsed, bool):
            raise _Mismatch
        if isinstance(parsed, numbers.Integral):
            return int(parsed)
        if isinstance(parsed, numbers.Real) and float(parsed).is_integer():
            return int(parsed)
        raise _Mismatch
    if hint is float:
        if raw:
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _Mismatch
        return float(value)
    if hint is str:
        if isinstance(value, str):
            return str(value)
        raise _Mismatch
    return _json(value) if raw else value  # a type we do not check (the config's __post_init__ may)


def coerce_value(value: Any, hint: Any, *, where: str) -> Any:
    """``value`` converted to the annotation ``hint`` (``int``, ``float``, ``bool``, ``str``,
    ``Literal[...]``, ``X | None``, ``tuple[...]``); :class:`SetValue` text is parsed.

    Args:
        value: The given value.
        hint: The field's resolved annotation.
        where: ``"Class.field"`` for the message.

    Raises:
        UserError: The value does not fit; the message names ``where`` and the expected type.
    """
    try:
        return _coerce(value, hint)
    except _Mismatch:
        pass
    got = f"{value!r}" + (f" (a {type(value).__name__})" if isinstance(value, bool) else "")
    origin = f" (--set {where.rpartition('.')[2]}={value})" if isinstance(value, SetValue) else ""
    raise UserError(f"{where} expects {_type_name(hint)}; got {got}{origin}.")


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve at run time: left unchecked
        return {f.name: f.type for f in dataclasses.fields(cls) if not isinstance(f.type, str)}


def coerce_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """Every value of ``data`` converted to the type of the field of ``cls`` it sets.

    Keys that are not fields are passed through (the caller reports them).

    Raises:
        UserError: A value does not fit its field (see :func:`coerce_value`).
    """
    hints = _hints(cls)
    return {k: coerce_value(v, hints[k], where=f"{cls.__name__}.{k}") if k in hints else v
            for k, v in data.items()}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Base class of config dataclasses (frozen, keyword-only).

    Subclasses declare their fields with a docstring under each one, and check
    values in ``__post_init__``.
    """

    @classmethod
    def from_dict(cls: type[_ConfigT], config: Mapping[str, Any] | None) -> _ConfigT:
        """Builds the config from keyword arguments, refusing unknown keys.

        Args:
            config: Field name to value (None: all defaults). Missing fields take
                their defaults. Values are checked against the field types;
                :class:`SetValue` text (``--set``) is parsed by them.

        Raises:
            UserError: If a key is not a field of ``cls`` (the message lists the valid
                fields and the closest match), or a value does not fit its field.
        """
        if config is not None and not isinstance(config, Mapping):
            raise UserError(f"{cls.__name__} config must be a mapping of field -> value; "
                            f"got {type(config).__name__}.")
        config = dict(config or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(config) - set(valid), key=str)
        if unknown:
            hints = [f"{key!r}{closest_hint(key, valid)}" for key in unknown]
            raise UserError(
                f"{cls.__name__} got unknown key(s) {', '.join(hints)}; "
                f"valid fields: {', '.join(valid) if valid else '(none)'}"
            )
        return cls(**coerce_fields(cls, config))

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields as a JSON-able dict (the inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)
