"""A read-only ``Mapping`` over one table of the plugin registry (domains, agents)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["RegistryView"]

_V = TypeVar("_V")


class RegistryView(Mapping[str, _V]):
    """Read-only view of the entries registered through one ``register_*`` hook.

    Args:
        table: Attribute of the loaded plugin registry (``"domains"``, ``"agents"``).
        label: Name shown by ``repr``.
    """

    def __init__(self, table: str, label: str) -> None:
        self._table_name, self._label = table, label

    def _table(self) -> dict[str, tuple[Any, str]]:
        from bfm_gym.plugins import load_plugins

        return getattr(load_plugins(), self._table_name)

    def __getitem__(self, name: str) -> _V:
        return self._table()[name][0]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._table()))

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return f"{self._label}({sorted(self)})"
