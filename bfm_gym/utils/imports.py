"""``module:function`` strings: how a callable is named in configs, env specs and the CLI."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["resolve_callable"]


def resolve_callable(spec: str, *, what: str = "function") -> Callable[..., Any]:
    """Imports ``"package.module:name"`` (``name`` may be dotted: ``Class.method``).

    Args:
        spec: ``MODULE:QUALNAME``.
        what: What the callable is for, used in error messages (``"reward function"``).

    Returns:
        The callable.

    Raises:
        ValueError: ``spec`` has no ``:``, its module cannot be imported, it names nothing in
            that module, or what it names is not callable.

    Example:
        >>> resolve_callable("math:sqrt")(9.0)
        3.0
        >>> resolve_callable("math")
        Traceback (most recent call last):
        ...
        ValueError: function 'math' must be 'module:function' (e.g. 'my_pkg.rewards:upright').
    """
    module, sep, qualname = spec.partition(":")
    if not sep or not module or not qualname:
        raise ValueError(f"{what} {spec!r} must be 'module:function' (e.g. 'my_pkg.rewards:upright').")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"{what} {spec!r}: cannot import module {module!r} ({exc}); check the "
                         "name and that it is on the Python path.") from exc
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ValueError(f"{what} {spec!r}: module {module!r} has no {qualname!r}.") from exc
    if not callable(obj):
        raise ValueError(f"{what} {spec!r} is not callable ({type(obj).__name__}).")
    return obj
