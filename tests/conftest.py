"""Shared test configuration.

Installed third-party plugins never load in tests unless a test asks for them.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("BFM_GYM_LOAD_PLUGINS", "")


def pytest_addoption(parser):
    parser.addoption("--expensive", action="store_true", default=False,
                     help="also run tests marked expensive (slow; not in CI)")


def pytest_collection_modifyitems(config, items):
    import pytest

    if config.getoption("--expensive") or os.environ.get("BFM_GYM_EXPENSIVE"):
        return
    skip = pytest.mark.skip(reason="expensive: run with --expensive or BFM_GYM_EXPENSIVE=1")
    for item in items:
        if "expensive" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    sys._called_from_test = True  # type: ignore[attr-defined]
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
