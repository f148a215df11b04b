"""End to end: a tiny FB trained on reward-free point transitions reaches goals zero-shot."""

from __future__ import annotations

import numpy as np
import torch

from bfm_gym.models.fb import BFM, FBConfig, FBTrainer, OfflineReplay

from fb_testdata import point_transitions


def _final_distance(
    bfm: BFM, z: np.ndarray, start: np.ndarray, goal: np.ndarray, steps: int = 25
) -> float:
    s = start[None]
    for _ in range(steps):
        s = np.clip(s + 0.2 * bfm.act(s, z), -1, 1)  # the same dynamics as the dataset
    return float(np.linalg.norm(s[0] - goal))


def test_goal_and_reward_inference_reach_goals() -> None:
    replay = OfflineReplay(**point_transitions(8192))
    trainer = FBTrainer(
        FBConfig.preset("point_mass_maze", "tiny", gamma=0.9),
        2,
        2,
        device="cpu",
        seed=0,
        threads=None,
    )
    untrained = trainer.snapshot(replay)
    trainer.train(replay, 800, progress=False)
    bfm = trainer.snapshot(replay)

    rng = np.random.default_rng(1)
    goals = rng.uniform(-0.8, 0.8, (12, 2)).astype(np.float32)
    starts = rng.uniform(-1, 1, (12, 2)).astype(np.float32)
    next_obs = replay.next_obs.numpy()
    result = {}
    for name, model in (("untrained", untrained), ("trained", bfm)):
        goal_d = [
            _final_distance(model, model.goal_z(g), s, g)
            for s, g in zip(starts, goals, strict=True)
        ]
        reward_d = []
        for s, g in zip(starts, goals, strict=True):
            rewards = np.exp(-np.sum((next_obs - g) ** 2, axis=1) / 0.1)  # reward on the next state
            reward_d.append(_final_distance(model, model.infer_z(next_obs, rewards), s, g))
        result[name] = (np.mean(goal_d), np.mean(reward_d))
    start_d = float(np.linalg.norm(starts - goals, axis=1).mean())
    assert result["untrained"][0] > 0.9 * start_d  # an untrained policy does not head for the goal
    for inferred in (0, 1):  # goal inference, reward inference
        assert result["trained"][inferred] < 0.75 * start_d, result
        assert result["trained"][inferred] < 0.5 * result["untrained"][inferred], result
    assert torch.isfinite(torch.as_tensor(bfm.cov)).all()
