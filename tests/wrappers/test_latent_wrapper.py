"""LatentActionWrapper: the action -> z map, holds, transitions, resets, bad input, spaces."""

from __future__ import annotations

import inspect
import json
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import bfm_gym  # (also registers the ids)
from bfm_gym.envs import make_env
from bfm_gym.models.fb.fast_policy import PolicyRunner
from bfm_gym.wrappers.latent import UNSAVED_MODEL, HoldTransitions, LatentActionWrapper, wrap
from latent_testenvs import EchoEnv, double_reward, tiny_bfm


@pytest.fixture(scope="module")
def bfm():
    return tiny_bfm("walker")


# -- the action -> z map ------------------------------------------------------------------------


def test_action_space_and_projection(bfm) -> None:
    env = LatentActionWrapper(EchoEnv(), bfm)
    assert env.action_space == gym.spaces.Box(-1, 1, (8,), np.float32)
    assert env.observation_space == EchoEnv().observation_space
    rng = np.random.default_rng(0)
    for _ in range(10):
        a = rng.uniform(-1, 1, 8).astype(np.float32)
        z = env.action_to_z(a)
        np.testing.assert_allclose(z, bfm.project(a), rtol=1e-6, atol=1e-6)
        assert np.linalg.norm(z) == pytest.approx(math.sqrt(8), rel=1e-6)
        # scale invariance: the map is many-to-one
        np.testing.assert_allclose(env.action_to_z(0.3 * a), z, rtol=1e-5, atol=1e-6)


def test_inverse_on_the_sphere(bfm) -> None:
    env = LatentActionWrapper(EchoEnv(), bfm)
    for z in bfm.sample_z(20, seed=1):
        a = env.z_to_action(z)
        assert env.action_space.contains(a)
        assert np.linalg.norm(a) == pytest.approx(1.0, rel=1e-6)
        np.testing.assert_allclose(env.action_to_z(a), z, rtol=1e-5, atol=1e-5)
    # on the unit sphere of actions the map is a bijection: a -> z -> a
    a = np.random.default_rng(2).normal(size=8).astype(np.float32)
    a /= np.linalg.norm(a)
    np.testing.assert_allclose(env.z_to_action(env.action_to_z(a)), a, rtol=1e-5, atol=1e-6)


def test_zero_action_maps_to_all_ones(bfm) -> None:
    env = LatentActionWrapper(EchoEnv(), bfm)
    np.testing.assert_array_equal(env.action_to_z(np.zeros(8, np.float32)), np.ones(8))


def test_raw_map_projects_and_keeps_sphere_latents(bfm) -> None:
    env = LatentActionWrapper(EchoEnv(), bfm, action_map="raw")
    assert env.action_space == gym.spaces.Box(-np.inf, np.inf, (8,), np.float32)
    z = bfm.sample_z(1, seed=3)[0]
    np.testing.assert_allclose(env.action_to_z(z), z, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(env.action_to_z(100 * z), z, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(env.action_to_z(np.full(8, 1e30)), np.ones(8), rtol=1e-6)
    np.testing.assert_allclose(env.z_to_action(z), z, rtol=1e-6)


def test_autoregressive_model_projects_per_block() -> None:
    bfm = tiny_bfm("walker", ar_blocks=2)
    env = LatentActionWrapper(EchoEnv(), bfm)
    a = np.random.default_rng(0).uniform(-1, 1, 8).astype(np.float32)
    np.testing.assert_allclose(env.action_to_z(a), bfm.project(a), rtol=1e-6, atol=1e-6)
    for z in bfm.sample_z(5, seed=0):
        np.testing.assert_allclose(env.action_to_z(env.z_to_action(z)), z, rtol=1e-5, atol=1e-5)


# -- the policy forward --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "torch-fused"])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize(
    "size,overrides",
    [("tiny", {}), ("cpu", {}), ("tiny", {"actor_embedding_layers": 3, "actor_hidden_layers": 2}),
     ("tiny", {"ar_blocks": 2})],
    ids=["tiny", "cpu", "deeper", "autoregressive"],
)  # fmt: skip
def test_policy_runner_matches_the_actor(
    size: str, overrides: dict, batch: int, backend: str
) -> None:
    from bfm_gym.models import FBConfig, FBModel

    model = FBModel(FBConfig.preset("walker", size, **overrides), obs_dim=24, action_dim=6).eval()
    runner = PolicyRunner(model, batch, backend=backend)
    assert runner.path == backend
    assert PolicyRunner(model, batch).path == "numpy"  # auto: numpy for these small actors
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        obs = torch.randn(batch, 24, generator=gen)
        z = model.project(torch.randn(batch, model.z_dim, generator=gen))
        runner.obs[:] = obs.numpy()
        runner.z[:] = z.numpy()
        with torch.no_grad():
            expected = model.actor(obs, z).numpy()
        np.testing.assert_allclose(runner(), expected, atol=2e-6, rtol=0)


def test_inner_action_is_pi_of_projected_z(bfm) -> None:
    inner = EchoEnv()
    env = LatentActionWrapper(inner, bfm, z_hold=3)
    _obs, _ = env.reset(seed=0)
    a = np.random.default_rng(1).uniform(-1, 1, 8).astype(np.float32)
    _, _, _, _, info = env.step(a)
    z = bfm.project(a)
    np.testing.assert_allclose(info["z"], z, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(env.z, z, rtol=1e-6, atol=1e-6)
    expected = bfm.act(info["transitions"].obs, z)
    np.testing.assert_allclose(np.stack(inner.actions), expected, atol=2e-6)
    np.testing.assert_allclose(info["transitions"].action, expected, atol=2e-6)


def test_actions_rescaled_to_other_bounds(bfm) -> None:
    inner = EchoEnv(low=-2.0)
    env = LatentActionWrapper(inner, bfm)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.full(8, 0.5, np.float32))
    pi = bfm.act(info["transitions"].obs, info["z"])
    np.testing.assert_allclose(inner.actions[0], 2.0 * pi[0], atol=1e-5)


# -- holds and transitions -----------------------------------------------------------------------


def test_hold_sums_rewards_and_records_transitions(bfm) -> None:
    env = LatentActionWrapper(EchoEnv(), bfm, z_hold=4)
    obs0, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.full(8, 0.5, np.float32))
    tr = info["transitions"]
    assert isinstance(tr, HoldTransitions) and len(tr) == 4 == info["hold_steps"]
    assert reward == 1 + 2 + 3 + 4
    np.testing.assert_array_equal(tr.reward, [1, 2, 3, 4])
    np.testing.assert_array_equal(tr.obs[0], obs0)
    np.testing.assert_array_equal(tr.obs[1:], tr.next_obs[:-1])  # a chain
    np.testing.assert_array_equal(tr.next_obs[-1], obs)
    assert tr.obs.dtype == np.float32 and tr.action.shape == (4, 6)
    assert not tr.terminated.any() and not tr.truncated.any()
    assert not terminated and not truncated
    assert info["t"] == 4  # the inner env's info of the last low-level step


@pytest.mark.parametrize("z_hold", [1, 3])
def test_recorded_actions_replay_the_trajectory_in_the_bare_env(bfm, z_hold: int) -> None:
    # the recorded actions are exactly what the simulator received: replayed in the env
    # alone from the same reset they give the wrapper's observations and rewards bit for bit
    # (benchmarks/wrapper_throughput.py times the wrapper against such a replay)
    env = LatentActionWrapper(make_env("walker", "run"), bfm, z_hold=z_hold)
    env.reset(seed=3)
    latents = np.random.default_rng(4).uniform(-1, 1, (20, bfm.z_dim)).astype(np.float32)
    holds = [env.step(z)[4]["transitions"] for z in latents]
    bare = make_env("walker", "run")
    bare.reset(seed=3)
    for tr in holds:
        for a, r, next_obs in zip(tr.action, tr.reward, tr.next_obs, strict=True):
            obs, reward, *_ = bare.step(a)
            np.testing.assert_array_equal(obs, next_obs)
            assert reward == r


@pytest.mark.parametrize("end", ["terminate_at", "truncate_at"])
def test_hold_stops_early_at_episode_end(bfm, end: str) -> None:
    env = LatentActionWrapper(EchoEnv(**{end: 6}), bfm, z_hold=4)
    env.reset(seed=0)
    _, r1, *_ = env.step(np.zeros(8, np.float32))
    _, r2, terminated, truncated, info = env.step(np.zeros(8, np.float32))
    assert r1 == 10 and r2 == 5 + 6
    assert len(info["transitions"]) == 2
    assert (terminated, truncated) == ((True, False) if end == "terminate_at" else (False, True))
    flags = (
        info["transitions"].terminated if end == "terminate_at" else info["transitions"].truncated
    )
    np.testing.assert_array_equal(flags, [False, True])
    with pytest.raises(gym.error.ResetNeeded, match="after the episode ended"):
        env.step(np.zeros(8, np.float32))


def test_episode_hold_runs_one_z_per_episode(bfm) -> None:
    env = LatentActionWrapper(EchoEnv(truncate_at=1500), bfm, z_hold="episode")
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(np.full(8, -0.2, np.float32))
    assert truncated and not terminated
    assert len(info["transitions"]) == 1500  # grows past the initial 1024 rows
    assert reward == sum(range(1, 1501))
    np.testing.assert_array_equal(info["transitions"].reward, np.arange(1, 1501))


def test_reward_fn_replaces_reward_and_is_recorded_by_name(bfm) -> None:
    env = LatentActionWrapper(EchoEnv(), bfm, z_hold=2, reward_fn=double_reward)
    assert env._saved_kwargs["reward_fn"] == "latent_testenvs:double_reward"
    env.reset(seed=0)
    _, reward, *_, info = env.step(np.zeros(8, np.float32))
    assert reward == 2 * (1 + 2)
    np.testing.assert_array_equal(info["transitions"].reward, [2, 4])
    by_name = LatentActionWrapper(EchoEnv(), bfm, reward_fn="latent_testenvs:double_reward")
    by_name.reset(seed=0)
    assert by_name.step(np.zeros(8, np.float32))[1] == 2.0
    with pytest.raises(TypeError, match="reward_fn must be callable"):
        LatentActionWrapper(EchoEnv(), bfm, reward_fn=3)


def test_without_transitions(bfm) -> None:
    env = LatentActionWrapper(EchoEnv(), bfm, z_hold=2, record_transitions=False)
    env.reset(seed=0)
    info = env.step(np.zeros(8, np.float32))[-1]
    assert "transitions" not in info and info["hold_steps"] == 2


# -- state reset --------------------------------------------------------------------------------


def test_state_reset_reproduces_a_trajectory(bfm) -> None:
    env = LatentActionWrapper(make_env("walker", "run"), bfm, z_hold=3, record_state=True)
    assert env.supports_state_reset
    _, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (8, 8)).astype(np.float32)
    states, outs = [], []
    for a in actions:
        states.append(env.get_state())
        obs, r, *_, info = env.step(a)
        outs.append((obs, r, info["transitions"]))
        assert info["transitions"].next_state.shape == (3, env.unwrapped.state_size)
        np.testing.assert_array_equal(info["state"], info["transitions"].next_state[-1])
    for start in (0, 4):
        obs, _ = env.reset(options={"state": states[start]})
        for a, (o, r, tr) in zip(actions[start:], outs[start:], strict=True):
            o2, r2, *_, info = env.step(a)
            np.testing.assert_array_equal(o2, o)
            assert r2 == r
            assert info["transitions"] == tr


def test_state_reset_refused_when_unsupported(bfm) -> None:
    env = LatentActionWrapper(EchoEnv(), bfm)
    assert not env.supports_state_reset
    with pytest.raises(ValueError, match="supports_state_reset is False"):
        env.reset(options={"state": np.zeros(3)})
    with pytest.raises(ValueError, match="get_state"):
        LatentActionWrapper(EchoEnv(), bfm, record_state=True)


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action,match",
    [
        (np.full(8, np.nan, np.float32), "NaN or inf"),
        (np.array([0.5] * 3 + [np.nan] + [0.5] * 4, np.float32), "NaN or inf"),  # one NaN, in box
        (np.array([-np.inf] + [0.0] * 7, np.float32), "NaN or inf"),
        (np.array([np.inf] + [0.0] * 7), "NaN or inf"),
        (np.zeros(7, np.float32), r"shape \(7,\) received; expected shape \(8,\)"),
        (np.zeros((1, 8), np.float32), r"shape \(1, 8\) received"),
        (np.array(["a"] * 8), "dtype <U1 received; expected real numbers"),
        (np.zeros(8, np.complex64), "dtype complex64 received"),
        ("fast", "dtype <U4 received"),
    ],
    ids=["nan", "one_nan", "minus_inf_float32", "inf", "short", "batched", "strings", "complex", "str"],
)
def test_bad_actions_raise_value_error(bfm, action, match: str) -> None:
    env = LatentActionWrapper(EchoEnv(), bfm)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match) as err:
        env.step(action)
    assert "Box(-1.0, 1.0, (8,), float32)" in str(err.value)  # says what is expected


def test_other_dtypes_are_accepted(bfm) -> None:
    env = LatentActionWrapper(EchoEnv(), bfm)
    env.reset(seed=0)
    z64 = env.step(np.full(8, 0.5))[-1]["z"]
    zint = env.step([1, 0, 0, 0, 0, 0, 0, 0])[-1]["z"]
    np.testing.assert_allclose(z64, np.ones(8), rtol=1e-6)
    np.testing.assert_allclose(zint, [math.sqrt(8)] + [0] * 7, rtol=1e-6)


def test_out_of_box_actions_are_clipped_with_one_warning(bfm) -> None:
    env = LatentActionWrapper(EchoEnv(), bfm)
    env.reset(seed=0)
    big = np.array([3.0, -2.0, 0, 0, 0, 0, 0, 0], np.float32)
    with pytest.warns(UserWarning, match="clipping to") as record:
        z = env.step(big)[-1]["z"]
        env.step(big)
    assert len(record) == 1
    np.testing.assert_allclose(z, bfm.project(np.clip(big, -1, 1)), rtol=1e-6)
    strict = LatentActionWrapper(EchoEnv(), bfm, strict=True)
    strict.reset(seed=0)
    with pytest.raises(ValueError, match=r"max \|a\| = 3.*strict=True"):
        strict.step(big)


def test_lifecycle_errors(bfm) -> None:
    env = LatentActionWrapper(make_env("walker", "run"), bfm)
    with pytest.raises(gym.error.ResetNeeded, match="before reset"):
        env.step(np.zeros(8, np.float32))
    env.reset(seed=0)
    env.close()
    with pytest.raises(RuntimeError, match="has been closed"):
        env.step(np.zeros(8, np.float32))
    with pytest.raises(RuntimeError, match="has been closed"):
        env.reset()
    inner = make_env("walker", "run")
    env = LatentActionWrapper(inner, bfm)
    env.reset(seed=0)
    inner.close()  # closed underneath the wrapper
    with pytest.raises(RuntimeError, match="closed"):
        env.step(np.zeros(8, np.float32))


def test_bad_construction_arguments(bfm) -> None:
    for hold in (0, -2, 1.5, True, "forever"):
        with pytest.raises(ValueError, match="z_hold must be"):
            LatentActionWrapper(EchoEnv(), bfm, z_hold=hold)
    with pytest.raises(ValueError, match="action_map must be one of"):
        LatentActionWrapper(EchoEnv(), bfm, action_map="cube")
    with pytest.raises(TypeError, match="model must be"):
        LatentActionWrapper(EchoEnv(), 42)
    with pytest.raises(ValueError, match=r"shipped models: .*Pass model="):
        LatentActionWrapper(EchoEnv(), "no-such-model")


# -- spaces ---------------------------------------------------------------------------------------


def test_mismatched_spaces_name_both(bfm) -> None:
    with pytest.raises(ValueError) as err:
        LatentActionWrapper(make_env("cheetah", "run"), bfm)
    msg = str(err.value)
    assert "Box(-inf, inf, (17,), float32)" in msg and "Box(-inf, inf, (24,), float32)" in msg
    with pytest.raises(ValueError) as err:
        LatentActionWrapper(EchoEnv(action_dim=3), bfm)
    assert "Box(-1.0, 1.0, (3,), float32)" in str(err.value)
    assert "Box(-1.0, 1.0, (6,), float32)" in str(err.value)
    with pytest.raises(
        ValueError, match=r"observation space Box\(.*\(4,\), float32\) does not match"
    ):
        LatentActionWrapper(gym.make("CartPole-v1"), bfm)
    discrete = EchoEnv()
    discrete.action_space = gym.spaces.Discrete(3)
    with pytest.raises(
        ValueError, match=r"action space Discrete\(3\) does not match .* acts in Box"
    ):
        LatentActionWrapper(discrete, bfm)


def test_model_of_another_domain_is_refused() -> None:
    impostor = tiny_bfm("walker")
    object.__setattr__(impostor.metadata, "domain", "cheetah")
    with pytest.raises(ValueError, match="'walker' env but the model was trained on 'cheetah'"):
        LatentActionWrapper(make_env("walker", "run"), impostor)


# -- spec, wrap, render ---------------------------------------------------------------------------


def test_recorded_args_match_the_signature(bfm, model_dirs) -> None:
    env = LatentActionWrapper(make_env("walker", "run"), str(model_dirs["walker"]), z_hold=2)
    params = set(inspect.signature(LatentActionWrapper.__init__).parameters) - {"self", "env"}
    assert set(env._saved_kwargs) == params
    assert env._saved_kwargs["model"] == str(model_dirs["walker"])
    json.dumps(env._saved_kwargs)
    in_memory = LatentActionWrapper(make_env("walker", "run"), bfm)
    assert in_memory._saved_kwargs["model"] == UNSAVED_MODEL
    json.dumps(in_memory._saved_kwargs)


def test_spec_round_trip_through_make(model_dirs) -> None:
    env = gym.make("bfm_gym/walker-run-v0")
    env = LatentActionWrapper(env, str(model_dirs["walker"]), z_hold=2)
    spec = json.loads(env.spec.to_json())
    assert spec["additional_wrappers"][-1]["kwargs"]["z_hold"] == 2
    again = gym.make(env.spec)
    assert isinstance(again.env, LatentActionWrapper) or "LatentActionWrapper" in str(again)
    a, _ = env.reset(seed=0)
    b, _ = again.reset(seed=0)
    np.testing.assert_array_equal(a, b)
    act = np.full(8, 0.3, np.float32)
    np.testing.assert_array_equal(env.step(act)[0], again.step(act)[0])


def test_wrap_defaults_to_the_domain_model(shipped) -> None:
    env = wrap(make_env("point_mass_maze", "reach_top_left"))
    assert env.model.metadata.domain == "point_mass_maze"
    assert env._saved_kwargs["model"] == "point_mass_maze"
    with pytest.raises(ValueError, match="cannot tell which model"):
        wrap(EchoEnv())


def test_render_passes_through(bfm) -> None:
    inner = make_env("walker", "run", render_mode="rgb_array",
                     render_kwargs={"height": 48, "width": 64})  # fmt: skip
    env = LatentActionWrapper(inner, bfm)
    assert env.render_mode == "rgb_array"
    env.reset(seed=0)
    env.step(np.zeros(8, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8


def test_numpy_policy_rows_are_batch_independent() -> None:
    """A row's action is bitwise the same alone or in a batch (what makes the vector env
    reproduce single-env trajectories exactly)."""
    from bfm_gym.models import FBConfig, FBModel

    model = FBModel(FBConfig.preset("walker", "cpu"), obs_dim=24, action_dim=6).eval()
    one, many = PolicyRunner(model, 1), PolicyRunner(model, 6)
    rng = np.random.default_rng(0)
    many.obs[:] = rng.normal(size=(6, 24))
    many.z[:] = model.project(torch.randn(6, 50)).numpy()
    batched = many().copy()
    for i in range(6):
        one.obs[:], one.z[:] = many.obs[i], many.z[i]
        np.testing.assert_array_equal(one()[0], batched[i])


def test_large_actor_uses_torch() -> None:
    from bfm_gym.models import FBConfig, FBModel

    model = FBModel(FBConfig.preset("walker", "paper"), obs_dim=24, action_dim=6).eval()
    assert PolicyRunner(model, 1).path == "torch-fused"


def test_shipped_512_wide_walker_runs_the_numpy_path_and_agrees_with_its_actor() -> None:
    """The shipped walker (512 wide, ~5.8e5 actor weights) is under the numpy limit; its
    fused numpy forward matches ``model.actor`` to float32 rounding, one row or a batch."""
    handle = bfm_gym.load("walker")
    model = handle._model
    assert sum(p.numel() for p in model.actor.parameters()) > 1 << 19
    rng = np.random.default_rng(0)
    for batch in (1, 8):
        runner = handle.policy_runner(batch=batch)
        assert runner.path == "numpy"
        obs = rng.normal(size=(batch, model.obs_dim)).astype(np.float32)
        z = model.project(torch.randn(batch, model.z_dim)).numpy()
        runner.obs[:], runner.z[:] = obs, z
        with torch.inference_mode():
            ref = model.actor(torch.as_tensor(obs), torch.as_tensor(z)).numpy()
        np.testing.assert_allclose(runner(), ref, atol=1e-4, rtol=0)


def test_spec_of_an_in_memory_model_asks_for_a_path(bfm) -> None:
    env = LatentActionWrapper(gym.make("bfm_gym/walker-run-v0"), bfm)
    json.loads(env.spec.to_json())  # serialises
    with pytest.raises(ValueError, match=r"in-memory BFM.*bfm\.save\(path\)"):
        gym.make(env.spec)


def test_policy_path_returns_benchmark_plays_each_path_reproducibly() -> None:
    """benchmarks/policy_path_returns.py: a path replays the same episode bit for bit, the
    numpy and torch paths are the ones asked for, and Welch's t is the textbook one."""
    from benchmark_script import load_benchmark

    bench = load_benchmark("policy_path_returns")
    handle = bfm_gym.load("walker")
    z = np.asarray(handle.project(np.ones(handle.z_dim, np.float32)), np.float32)
    one = bench.play(handle, "walker", "stand", z, "numpy", 1, 7)
    assert one == bench.play(handle, "walker", "stand", z, "numpy", 1, 7)
    assert len(bench.play(handle, "walker", "stand", z, "torch-fused", 1, 7)) == 1
    assert bench.welch_t([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.0
    assert bench.welch_t([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]) == pytest.approx(1 / math.sqrt(2 / 3))
