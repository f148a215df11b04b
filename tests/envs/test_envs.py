"""Domains, tasks, ids, state restore and offline relabelling on the real simulators."""

from __future__ import annotations

import json
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import bfm_gym  # noqa: F401  (registers ids)
from bfm_gym.envs import BUILTIN_TASKS, env_id, get_task, list_tasks, make_env, register_task
from bfm_gym.envs.relabel import Relabeler

ALL_IDS = [env_id(d, t) for d, ts in BUILTIN_TASKS.items() for t in (None, *ts)] + [
    "bfm_gym/point_mass_maze-reach-v0"
]
OBS_DIMS = {"walker": 24, "cheetah": 17, "quadruped": 78, "point_mass_maze": 4}
ACT_DIMS = {"walker": 6, "cheetah": 6, "quadruped": 12, "point_mass_maze": 2}


@pytest.mark.parametrize("id_", ALL_IDS)
def test_check_env_every_id(id_: str) -> None:
    env = gym.make(id_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite obs bounds are expected for DMC
        check_env(env.unwrapped, skip_render_check=True)
    domain = id_.split("/")[1].split("-")[0]
    assert env.observation_space.shape == (OBS_DIMS[domain],)
    assert env.observation_space.dtype == np.float32
    assert env.action_space.shape == (ACT_DIMS[domain],)
    assert json.loads(env.spec.to_json())["entry_point"] == "bfm_gym.envs.dmc_env:DMCEnv"
    env.close()


def test_registered_tasks_match_id_table() -> None:
    from bfm_gym.envs import get_domain
    from bfm_gym.envs.tasks import builtin_tasks

    for domain, tasks in BUILTIN_TASKS.items():
        assert tasks == get_domain(domain).tasks  # the table is read off the domain records
        assert set(tasks) == {name for d, name, *_ in builtin_tasks() if d == domain}
        assert set(tasks) <= set(list_tasks(domain))


def test_native_observation_order_matches_dm_control_flat() -> None:
    from dm_control import suite

    raw = suite.load("walker", "run", task_kwargs={"random": 3},
                     environment_kwargs={"flat_observation": True})
    env = make_env("walker", "run")
    obs, _ = env.reset(seed=3)
    ts = raw.reset()
    np.testing.assert_array_equal(obs, ts.observation["observations"].astype(np.float32))
    a = np.linspace(-1, 1, 6)
    for _ in range(5):
        obs, r, *_ = env.step(a)
        ts = raw.step(a)
    np.testing.assert_array_equal(obs, ts.observation["observations"].astype(np.float32))
    assert r == pytest.approx(ts.reward, abs=1e-12)  # bfm_gym walker-run == dm_control run


def test_episodes_truncate_at_1000_never_terminate() -> None:
    env = make_env("point_mass_maze", "reach_top_left")
    env.reset(seed=0)
    for t in range(1000):
        _, _, terminated, truncated, _ = env.step(np.zeros(2))
        assert not terminated
        assert truncated == (t == 999)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(2))


def test_seeded_resets_are_reproducible() -> None:
    env = make_env("quadruped", "walk")
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=8)
    c, _ = env.reset(seed=7)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("domain", sorted(BUILTIN_TASKS))
def test_state_round_trip_is_bit_exact(domain: str) -> None:
    env = make_env(domain, BUILTIN_TASKS[domain][0])
    rng = np.random.default_rng(0)
    env.reset(seed=1)
    for _ in range(37):
        env.step(rng.uniform(-1, 1, env.action_space.shape))
    state = env.get_state()
    actions = rng.uniform(-1, 1, (60, *env.action_space.shape))
    first = [env.step(a)[:2] for a in actions]
    # Restore mid-episode, even after the env moved on to a new episode.
    env.reset(seed=99)
    env.reset(options={"state": state})
    second = [env.step(a)[:2] for a in actions]
    for (o1, r1), (o2, r2) in zip(first, second, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2
    # The step counter comes back with the state: 37 + 60 steps taken.
    assert env._steps == 97


@pytest.mark.parametrize(
    "domain,task", [(d, t) for d, ts in BUILTIN_TASKS.items() for t in ts]
)
def test_offline_relabel_equals_online_reward(domain: str, task: str) -> None:
    env = make_env(domain, task)
    rng = np.random.default_rng(1)
    states, online = [], []
    env.reset(seed=2)
    for _ in range(150):
        _, r, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        states.append(env.get_state())
        online.append(r)
    offline = Relabeler(domain).rewards64(np.stack(states), task)
    np.testing.assert_array_equal(offline, np.asarray(online))


def test_maze_goal_relabel_and_nonzero_reward_at_goal() -> None:
    env = make_env("point_mass_maze", goal=(0.15, 0.15))
    env.reset(seed=0)
    state = env.get_state()
    state[1:3] = (0.15, 0.15)  # qpos after time: put the mass on the goal
    env.set_state(state)
    _, r, *_ = env.step(np.zeros(2))
    assert r > 0.9
    off = Relabeler("point_mass_maze").rewards64(env.get_state()[None], None, goal=(0.15, 0.15))
    assert off[0] == r


def test_user_reward_function_works_online_and_offline() -> None:
    def height(physics) -> float:
        return float(physics.torso_height())

    env = make_env("walker", height)
    env.reset(seed=0)
    _, r, *_ = env.step(np.zeros(6))
    assert r == pytest.approx(float(env.physics.torso_height()))
    assert Relabeler("walker").rewards64(env.get_state()[None], height)[0] == r
    register_task("walker", "test_height", height, "torso height", overwrite=True)
    assert "test_height" in list_tasks("walker")
    env2 = make_env("walker", "test_height")
    env2.reset(seed=0)
    assert env2.step(np.zeros(6))[1] == r


def test_rgb_render_headless() -> None:
    env = make_env("walker", "run", render_mode="rgb_array", render_kwargs={"height": 64, "width": 80})
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (64, 80, 3) and frame.dtype == np.uint8 and frame.std() > 0


# -- bad input ------------------------------------------------------------------------


def test_unknown_domain_and_task_list_valid_names() -> None:
    with pytest.raises(ValueError, match="Valid domains: cheetah, point_mass_maze"):
        make_env("walkr")
    with pytest.raises(ValueError, match=r"Did you mean 'run'.*Valid tasks: flip, run"):
        make_env("walker", "rnu")


def test_state_from_other_domain_is_rejected() -> None:
    maze = make_env("point_mass_maze")
    maze.reset(seed=0)
    walker = make_env("walker")
    walker.reset(seed=0)
    with pytest.raises(ValueError, match="another domain"):
        walker.reset(options={"state": maze.get_state()})
    bad = walker.get_state()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        walker.set_state(bad)


def test_bad_actions_and_options() -> None:
    env = make_env("walker")
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(6))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"expects shape \(6,\)"):
        env.step(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.full(6, np.nan))
    with pytest.raises(ValueError, match="Unknown reset option"):
        env.reset(options={"stat": 1})
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def test_goal_validation() -> None:
    with pytest.raises(ValueError, match="no goal tasks"):
        make_env("walker", goal=(0, 0))
    with pytest.raises(ValueError, match="outside the maze"):
        make_env("point_mass_maze", goal=(1.0, 0))


@pytest.mark.parametrize("domain", ["point_mass_maze", "walker", "cheetah", "quadruped"])
def test_fast_observation_equals_flattened_task_observation(domain: str) -> None:
    """Each built-in domain's ``observe`` gives dm_control's own observation bit for bit: after
    a reset, along random steps, after a state restore, and on a second env of the domain."""
    from bfm_gym.envs.domains import get_domain

    assert get_domain(domain).observe is not None

    def flat(env: Any) -> np.ndarray:
        values = env._dm_task.get_observation(env.physics).values()
        return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values]).astype(np.float32)

    rng = np.random.default_rng(0)
    env, other = make_env(domain), make_env(domain)
    obs, _ = env.reset(seed=4)
    other.reset(seed=5)
    np.testing.assert_array_equal(obs, flat(env))
    states = []
    for _ in range(30):
        obs, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        assert obs.dtype == np.float32
        np.testing.assert_array_equal(obs, flat(env))
        states.append(env.get_state())
        other_obs, *_ = other.step(rng.uniform(-1, 1, other.action_space.shape))
        np.testing.assert_array_equal(other_obs, flat(other))
    obs, _ = env.reset(options={"state": states[10]})
    np.testing.assert_array_equal(obs, flat(env))


@pytest.mark.parametrize("domain,task", [("walker", "stand"), ("walker", "walk"), ("walker", "run"),
                                         ("cheetah", "run"), ("quadruped", "walk"), ("quadruped", "run")])
def test_tasks_named_after_dm_control_tasks_give_its_reward(domain: str, task: str) -> None:
    """Where dm_control's suite has a task of the same name, our reward equals its reward."""
    from dm_control import suite

    env = suite.load(domain, task, task_kwargs={"random": 3})
    reward_fn = get_task(domain, task).reward
    rng = np.random.default_rng(0)
    spec = env.action_spec()
    env.reset()
    for _ in range(60):
        timestep = env.step(rng.uniform(spec.minimum, spec.maximum))
        assert reward_fn(env.physics) == pytest.approx(timestep.reward, abs=1e-9)


def test_diverged_simulation_raises_physics_error_naming_the_warning() -> None:
    """A step whose MuJoCo integration warns (here: NaN velocities) raises dm_control's
    PhysicsError naming the warning, and a reset (which clears MuJoCo's counters) makes the
    env usable again."""
    from dm_control.rl.control import PhysicsError

    env = make_env("walker", "run")
    env.reset(seed=0)
    env.unwrapped.physics.data.qvel[:] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(PhysicsError, match="mjWARN_BAD"):
            env.step(np.zeros(6))
    env.reset(seed=0)
    assert not env.unwrapped._warnings.any()
    assert np.isfinite(env.step(np.zeros(6))[0]).all()
    env.close()


def test_cheetah_builds_without_the_settotalmass_notice() -> None:
    """dm_control's cheetah.xml uses MuJoCo's deprecated ``settotalmass``; the notice MuJoCo logs
    through absl on every build is dropped, other absl messages still pass."""
    import logging

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    absl_logger = logging.getLogger("absl")
    handler = Keep()
    absl_logger.addHandler(handler)
    try:
        make_env("cheetah", "run").reset(seed=0)
        absl_logger.warning("another absl warning")
    finally:
        absl_logger.removeHandler(handler)
    assert not any("settotalmass" in m for m in seen)
    assert "another absl warning" in seen
