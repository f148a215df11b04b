"""GymEnv: any Gymnasium env with Box actions, its spaces, tasks and simulator state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from bfm_gym.envs.gym_env import check_spaces, make_gym_env

from byoe_tasks import hopper_forward


class SpacesEnv(gym.Env):
    """A tiny env with configurable spaces (observations are zeros, episodes last 5 steps)."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self._t += 1
        return self._obs(), 1.0, False, self._t >= 5, {}

    def _obs(self) -> Any:
        space = self.observation_space
        if isinstance(space, gym.spaces.Dict):
            return {k: np.arange(s.shape[0], dtype=np.float32) + 10 * i
                    for i, (k, s) in enumerate(space.spaces.items())}
        return np.zeros(space.shape, space.dtype)


BOX_OBS = gym.spaces.Box(-1, 1, (3,), np.float32)
BOX_ACT = gym.spaces.Box(-1, 1, (2,), np.float32)


@pytest.mark.parametrize(("obs_space", "act_space", "match"), [
    (BOX_OBS, gym.spaces.Discrete(4), r"Discrete action space.*Box action space"),
    (BOX_OBS, gym.spaces.MultiDiscrete([3, 3]), r"MultiDiscrete action space.*continuous-control"),
    (BOX_OBS, gym.spaces.Dict({"a": BOX_ACT}), r"Dict action space.*Box action space"),
    (BOX_OBS, gym.spaces.Box(-np.inf, np.inf, (2,)), r"unbounded actions.*RescaleAction"),
    (gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), BOX_ACT, r"image observations.*\(64, 64, 3\)"),
    (gym.spaces.Dict({"pixels": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)}), BOX_ACT,
     r"image observations"),
    (gym.spaces.Discrete(5), BOX_ACT, r"Discrete observation space.*Box"),
])
def test_unsupported_spaces_name_what_is_supported(obs_space: gym.Space, act_space: gym.Space,
                                                   match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_spaces(obs_space, act_space, what="env 'X'")
    with pytest.raises(ValueError, match=match):
        make_gym_env(env=SpacesEnv(obs_space, act_space))


def test_dict_observations_flatten_in_a_recorded_order() -> None:
    space = gym.spaces.Dict({"velocity": gym.spaces.Box(-1, 1, (2,)), "position": gym.spaces.Box(-1, 1, (3,))})
    env = make_gym_env(env=SpacesEnv(space, BOX_ACT))
    assert env.info.obs_keys == ["position", "velocity"]  # Gymnasium's Dict sorts its keys
    assert env.observation_space.shape == (5,) and env.observation_space.dtype == np.float32
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0, 1, 2, 10, 11])
    again = make_gym_env(env=SpacesEnv(space, BOX_ACT), obs_keys=["velocity", "position"])
    np.testing.assert_array_equal(again.reset(seed=0)[0], [10, 11, 0, 1, 2])
    with pytest.raises(ValueError, match=r"do not match the env's keys"):
        make_gym_env(env=SpacesEnv(space, BOX_ACT), obs_keys=["velocity", "height"])


def test_shimmy_dm_control_flattens_in_native_order() -> None:
    env = make_gym_env("dm_control/walker-walk-v0")
    assert env.info.obs_keys == ["orientations", "height", "velocity"]
    assert env.observation_space.shape == (24,)
    env.close()


def test_unknown_id_suggests_the_closest() -> None:
    with pytest.raises(ValueError, match=r"'Hoper-v5' is not a registered Gymnasium id.*'Hopper-v5'"):
        make_gym_env("Hoper-v5")


def _rollout(env: Any, seed: int, n: int) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out: dict[str, list] = {"obs": [obs], "state": [env.get_state()], "action": [], "reward": [],
                            "done": []}
    for _ in range(n):
        a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, r, term, trunc, _ = env.step(a)
        for key, value in (("obs", obs), ("state", env.get_state()), ("action", a), ("reward", r),
                           ("done", term or trunc)):
            out[key].append(value)
        if term or trunc:
            break
    return out


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Reacher-v5"])
def test_state_reset_replays_exactly(env_id: str, hopper_tasks: list[str]) -> None:
    task = "height" if env_id == "Hopper-v5" else None
    env = make_gym_env(env_id, task)
    ref = _rollout(env, seed=3, n=40)
    assert env.supports_state_reset and env.state_size == ref["state"][0].shape[0]
    k = 4
    obs, _ = env.reset(options={"state": ref["state"][k]})
    if env_id == "Hopper-v5":  # its observation is qpos/qvel: the restored one is identical
        np.testing.assert_array_equal(obs, ref["obs"][k])
    for t in range(k, len(ref["action"])):
        obs, r, term, trunc, _ = env.step(ref["action"][t])
        np.testing.assert_array_equal(obs, ref["obs"][t + 1])
        np.testing.assert_array_equal(env.get_state(), ref["state"][t + 1])
        assert r == ref["reward"][t] and (term or trunc) == ref["done"][t]
    with pytest.raises(ValueError, match="captured on another env"):
        env.reset(options={"state": np.zeros(3)})
    env.close()


def test_envs_without_state_say_what_needs_it() -> None:
    env = make_gym_env("Pendulum-v1")
    assert not env.supports_state_reset and not hasattr(env, "get_state")
    with pytest.raises(ValueError, match=r"needs simulator state access.*not a MuJoCo env"):
        env.reset(options={"state": np.zeros(3)})
    with pytest.raises(ValueError, match=r"fn\(env\).*fn\(obs, action, next_obs\)"):
        make_gym_env("Pendulum-v1", lambda env: 1.0)


def test_task_kinds_and_online_rewards(hopper_tasks: list[str]) -> None:
    from bfm_gym.envs import get_task, list_tasks

    assert list_tasks("Hopper-v5")[0] == "native" and set(hopper_tasks) <= set(list_tasks("Hopper-v5"))
    assert [get_task("Hopper-v5", t).inputs for t in ("native", "height", "forward")] == [
        "native", "simulator", "transition"]
    native, height, forward = (make_gym_env("Hopper-v5", t) for t in (None, "height", "forward"))
    runs = [_rollout(e, seed=1, n=10) for e in (native, height, forward)]
    np.testing.assert_array_equal(runs[0]["obs"], runs[1]["obs"])  # the task changes the reward only
    np.testing.assert_array_equal(runs[0]["obs"], runs[2]["obs"])
    raw = gym.make("Hopper-v5")
    raw.reset(seed=1)
    assert runs[0]["reward"] == [raw.step(a)[1] for a in runs[0]["action"]]  # native: the env's own
    # the state vector is (time, qpos, ...): qpos[1] is entry 2
    assert runs[1]["reward"] == [float(s[2]) for s in runs[1]["state"][1:]]
    expected = [hopper_forward(o, a.astype(np.float64), o2) for o, a, o2 in
                zip(runs[2]["obs"][:-1], runs[2]["action"], runs[2]["obs"][1:], strict=True)]
    assert runs[2]["reward"] == expected


def test_bad_task_values_are_refused(tmp_path: Path) -> None:
    from bfm_gym.data.collection import collect
    from bfm_gym.envs import register_task

    register_task("InvertedPendulum-v5", "broken", lambda o, a, o2: float("nan"), overwrite=True)
    try:
        with pytest.raises(ValueError, match=r"Task 'broken' returned nan.*finite"):
            collect("InvertedPendulum-v5", tmp_path / "d", agent="random", steps=50, progress=False)
        assert not (tmp_path / ".d.partial").exists(), "checked before any work is done"
        register_task("InvertedPendulum-v5", "broken", lambda o, a, o2: o2, overwrite=True)
        env = make_gym_env("InvertedPendulum-v5", "broken")
        env.reset(seed=0)
        with pytest.raises(ValueError, match=r"shape \(4,\).*one float"):
            env.step(np.zeros(1, np.float32))
    finally:
        from bfm_gym.plugins import load_plugins

        load_plugins().tasks.pop(("InvertedPendulum-v5", "broken"), None)
    from bfm_gym.envs import register_task as reg

    with pytest.raises(ValueError, match="reserved"):
        reg("InvertedPendulum-v5", "native", lambda o, a, o2: 0.0)
