"""The plugin module named by the entry point ``sb3 = "bfm_gym_sb3.plugin"``.

Importing it is cheap: SB3 and torch load only when bfm_gym asks for the adapters.
"""

from __future__ import annotations

from typing import Any

from bfm_gym.plugins import hookimpl


@hookimpl
def register_adapters(register: Any) -> None:
    from bfm_gym_sb3.adapters import (
        PPOLatentAdapter,
        SACFinetuneAdapter,
        SACLatentAdapter,
        TD3FinetuneAdapter,
        TD3LatentAdapter,
    )

    for cls in (TD3FinetuneAdapter, SACFinetuneAdapter, SACLatentAdapter, TD3LatentAdapter,
                PPOLatentAdapter):
        register(cls.name, cls)
