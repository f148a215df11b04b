"""Tests of the ``stopgo`` collector agent on Gymnasium's Reacher-v5 (real MuJoCo physics)."""

from __future__ import annotations

import numpy as np
import pytest

from bfm_gym.data.agents import make_agent

gym = pytest.importorskip("gymnasium")
pytest.importorskip("mujoco")


def _joint_speeds(agent_name: str, steps: int = 1500, **config: object) -> np.ndarray:
    env = gym.make("Reacher-v5")
    agent = make_agent(agent_name, 10, 2, 0, **config)
    speeds = []
    obs, _ = env.reset(seed=0)
    agent.reset()
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(agent.act(obs))
        speeds.append(np.abs(obs[6:8]).max())
        if terminated or truncated:
            obs, _ = env.reset()
            agent.reset()
    env.close()
    return np.asarray(speeds)


def test_stopgo_brings_the_arm_to_rest_where_random_actions_do_not() -> None:
    stopgo = _joint_speeds("stopgo", velocity_index=6)
    rand = _joint_speeds("random")
    # uniform actions keep both joints moving (about 1 % of steps under 1 rad/s);
    # stop-and-go holds the arm still for a large share of the steps and still moves fast
    assert (rand < 1.0).mean() < 0.05
    assert (stopgo < 1.0).mean() > 0.25
    assert np.percentile(stopgo, 95) > 8.0


def test_stopgo_needs_velocity_index_and_names_the_fix() -> None:
    with pytest.raises(ValueError, match="velocity_index=6 for Reacher-v5"):
        make_agent("stopgo", 10, 2, 0)
    with pytest.raises(ValueError, match="observation has 10 entries"):
        make_agent("stopgo", 10, 2, 0, velocity_index=9)


@pytest.mark.parametrize("bad", [dict(gain=0.0), dict(noise=-1.0), dict(move_min=3, move_max=2),
                                 dict(hold_min=0), dict(brake_max=0)])
def test_stopgo_rejects_bad_settings(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=f"StopGoConfig.*{next(iter(bad))}"):
        make_agent("stopgo", 10, 2, 0, velocity_index=6, **bad)
