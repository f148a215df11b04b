"""Value checks for frozen config dataclasses, called from their ``__post_init__``.

Each check raises ``ValueError`` naming ``<Class>.<field>``, the rule and the value found,
e.g. ``FBConfig.gamma must be in (0, 1), got 1.0``.

Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class Cfg:
    ...     width: int = 8
    ...     rate: float = 0.5
    ...     def __post_init__(self) -> None:
    ...         check_ints(self, ("width",))
    ...         check_range(self, ("rate",), "(0, 1]")
    >>> Cfg(rate=1.5)
    Traceback (most recent call last):
    ...
    ValueError: Cfg.rate must be in (0, 1], got 1.5
"""

from __future__ import annotations

import operator
import typing
from collections.abc import Callable, Iterable
from typing import Any, Literal

__all__ = ["check_choices", "check_even", "check_ints", "check_range"]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _fail(obj: Any, name: str, rule: str, shown: str) -> ValueError:
    return ValueError(f"{type(obj).__name__}.{name} must be {rule}, got {shown}")


def check_ints(obj: Any, names: Iterable[str], minimum: int = 1, why: str = "") -> None:
    """Each field is an ``int`` (not a bool) ``>= minimum``.

    Args:
        obj: The dataclass instance.
        names: Fields to check.
        minimum: Smallest value allowed; 1 reads "a positive int".
        why: Appended to the rule, e.g. ``" (the FB loss needs off-diagonal pairs)"``.
    """
    rule = ("a positive int" if minimum == 1 else f"an int >= {minimum}") + why
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _fail(obj, name, rule, repr(value))


def check_range(obj: Any, names: Iterable[str], rule: str) -> None:
    """Each field lies in ``rule``: an interval (``"(0, 1)"``, ``"[0, 1]"``, ``"(0, 1]"``...)
    or a bound (``"> 0"``, ``">= 0"``, ``">= 1"``...). NaN fails every rule."""
    if rule[0] in "([":
        low, high = (float(v) for v in rule[1:-1].split(","))
        lower = operator.gt if rule[0] == "(" else operator.ge
        upper = operator.lt if rule[-1] == ")" else operator.le

        def ok(v: Any) -> bool:
            return lower(v, low) and upper(v, high)

        text = f"in {rule}"
    else:
        op, bound = rule.split()
        compare, limit = _COMPARE[op], float(bound)

        def ok(v: Any) -> bool:
            return compare(v, limit)

        text = rule
    for name in names:
        value = getattr(obj, name)
        if not ok(value):
            raise _fail(obj, name, text, str(value))


def check_even(obj: Any, names: Iterable[str], why: str = "") -> None:
    """Each field is even (``why`` is appended to the rule)."""
    for name in names:
        if getattr(obj, name) % 2:
            raise _fail(obj, name, "even" + why, str(getattr(obj, name)))


def check_choices(obj: Any) -> None:
    """Every field annotated ``Literal[...]`` holds one of its values."""
    hints = typing.get_type_hints(type(obj))
    for name, hint in hints.items():
        if typing.get_origin(hint) is Literal and hasattr(obj, name):
            choices = typing.get_args(hint)
            if getattr(obj, name) not in choices:
                raise _fail(obj, name, f"one of {choices}", repr(getattr(obj, name)))
