"""The module the entry point ``cem = "bfm_gym_cem.plugin"`` names.

bfm_gym imports it when it loads plugins and calls each hook implemented here. Keep the
import light: import the adapter inside the hook.
"""

from __future__ import annotations

from typing import Any

from bfm_gym.plugins import hookimpl


@hookimpl
def register_adapters(register: Any) -> None:
    """Makes ``bfm-gym adapt --adapter cem`` and ``adapt(..., adapter="cem")`` find CEM."""
    from bfm_gym_cem.cem import CEMAdapter

    register(CEMAdapter.name, CEMAdapter)
