"""Shared test configuration.

Installed third-party plugins never load in tests unless a test asks for them.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("BFM_GYM_LOAD_PLUGINS", "")


def pytest_configure(config):  # noqa: ANN001, ANN201
    sys._called_from_test = True  # type: ignore[attr-defined]
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
