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


def test_a_bare_family_model_is_put_behind_the_protocol(bfm: BFM) -> None:
    """The wrapper takes a family's bare ``nn.Module`` (``FBModel``, ``HILPModel``) through
    its ``as_bfm()``, without importing any family, and acts as the handle does."""
    bare = getattr(bfm, "model", None)
    if not callable(getattr(bare, "as_bfm", None)):
        pytest.skip(f"{type(bfm).__name__} exposes no bare model with as_bfm()")
    env = LatentActionWrapper(gym.make("bfm_gym/walker-run-v0", max_episode_steps=5), bare, action_map="raw")
    assert type(env.model) is type(bfm)
    obs, _ = env.reset(seed=0)
    z = bfm.sample_z(1, seed=1)[0]
    np.testing.assert_allclose(env.model.act(obs, z), bfm.act(obs, z), atol=1e-6)
    with pytest.raises(TypeError):
        LatentActionWrapper(gym.make("bfm_gym/walker-run-v0"), object())


def test_fast_features_are_optional(bfm: BFM) -> None:
    """``fast_features()`` is a capability outside the protocol: FB gives numpy phi/psi equal
    to the handle's, other families may give None, and OpTI-BFM runs either way."""
    fast = getattr(bfm, "fast_features", lambda: None)()
    if fast is None:
        return
    obs = np.linspace(-1, 1, 24, dtype=np.float32)
    z = bfm.sample_z(3, seed=2)
    np.testing.assert_allclose(fast.phi(obs), bfm.phi(obs), rtol=1e-4, atol=1e-5)
    psi = np.asarray(bfm.psi(np.repeat(obs[None], 3, 0), z))  # policy-mean actions
    np.testing.assert_allclose(fast.psi(obs, z), psi, rtol=1e-4, atol=1e-4)
