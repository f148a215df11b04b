"""Shared base of bfm_gym's small config dataclasses (collector agents, adapters).

Frozen, keyword-only dataclasses with a docstring under each field; ``from_dict``
refuses unknown keys and names the closest valid field.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, TypeVar

__all__ = ["Config"]

_ConfigT = TypeVar("_ConfigT", bound="Config")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Base class of config dataclasses (frozen, keyword-only).

    Subclasses declare their fields with a docstring under each one, and check
    values in ``__post_init__``.
    """

    @classmethod
    def from_dict(cls: type[_ConfigT], config: dict[str, Any] | None) -> _ConfigT:
        """Builds the config from keyword arguments, refusing unknown keys.

        Args:
            config: Field name to value (None: all defaults). Missing fields take
                their defaults.

        Raises:
            ValueError: If a key is not a field of ``cls``; the message lists
                the valid fields and the closest match.
        """
        config = dict(config or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(config) - set(valid))
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, valid, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(
                f"{cls.__name__} got unknown key(s) {', '.join(hints)}; "
                f"valid fields: {', '.join(valid) if valid else '(none)'}"
            )
        return cls(**config)

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields as a JSON-able dict (the inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)
