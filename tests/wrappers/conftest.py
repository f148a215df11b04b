"""Fixtures for the latent-action wrapper tests: tiny untrained models of every domain.

Untrained weights are enough here: the wrapper's contract (spaces, projection, holds,
transitions, resets, vectorisation) does not depend on what the policy learned.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bfm_gym.wrappers import register_latent_envs
from latent_testenvs import DIMS, tiny_bfm

register_latent_envs()  # idempotent; bfm_gym/__init__ registers them too


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved tiny model folder per domain."""
    root = tmp_path_factory.mktemp("models")
    return {domain: tiny_bfm(domain).save(root / domain) for domain in DIMS}


@pytest.fixture
def shipped(model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Makes the tiny models the 'shipped' models of their domains for one test."""
    from bfm_gym.plugins import load_plugins

    for domain, path in model_dirs.items():
        monkeypatch.setitem(load_plugins().models, domain, (path, "test"))
    return model_dirs
