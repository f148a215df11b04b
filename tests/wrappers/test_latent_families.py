"""The latent wrappers run on every registered model family (parametrised over the registry):
single env, vector env, a saved folder through gym.make, and the policy runner's actions."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from bfm_gym.models.protocol import BFM
from bfm_gym.models.registry import families
from bfm_gym.wrappers import LatentActionWrapper
from bfm_gym.wrappers.vector import LatentActionVectorEnv

FAMILIES = sorted(families())


@pytest.fixture(scope="module", params=FAMILIES)
def bfm(request: pytest.FixtureRequest) -> BFM:
    create = families()[request.param].resolve("create")
    model = create(24, 6, domain="walker", size="tiny", seed=0)
    assert isinstance(model, BFM)
    return model


def test_wrapper_steps_with_the_models_policy(bfm: BFM) -> None:
    env = LatentActionWrapper(gym.make("bfm_gym/walker-run-v0", max_episode_steps=20), bfm, z_hold=2,
                              action_map="raw")
    env.reset(seed=0)
    z = bfm.sample_z(1, seed=3)[0]
    _, _, _, _, info = env.step(z)
    tr = info["transitions"]
    assert len(tr) == 2 and np.allclose(info["z"], z, atol=1e-5)
    # the action the wrapper played is the model's policy mean at that state and z
    expected = bfm.act(np.asarray(tr.obs[0], np.float32), info["z"])
    np.testing.assert_allclose(tr.action[0], expected, atol=1e-5)


def test_vector_env_matches_single_env(bfm: BFM) -> None:
    make = [lambda: gym.make("bfm_gym/walker-run-v0", max_episode_steps=20) for _ in range(2)]
    venv = LatentActionVectorEnv(make, bfm, z_hold=3)
    single = LatentActionWrapper(gym.make("bfm_gym/walker-run-v0", max_episode_steps=20), bfm, z_hold=3)
    a = np.stack([np.full(bfm.z_dim, 0.3, np.float32), np.linspace(-1, 1, bfm.z_dim, dtype=np.float32)])
    venv.reset(seed=[5, 6])
    _, vr, *_ = venv.step(a)
    single.reset(seed=6)
    _, r, *_ = single.step(a[1])
    assert np.isclose(vr[1], r)


def test_saved_folder_through_gym_make(bfm: BFM, tmp_path: Path) -> None:
    folder = bfm.save(tmp_path / "m")
    env = gym.make("bfm_gym/walker-run-latent-v0", model=str(folder), max_episode_steps=10)
    assert type(env.unwrapped).__name__ != ""  # builds
    wrapper = env
    while not isinstance(wrapper, LatentActionWrapper):
        wrapper = wrapper.env
    assert wrapper.model.family == bfm.family
    env.reset(seed=0)
    env.step(env.action_space.sample())
