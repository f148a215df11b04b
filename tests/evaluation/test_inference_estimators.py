"""``benchmarks/inference_estimators.py`` on the shipped maze model: its baseline row is the
library's zero-shot latent (so every other row is paired with it), its critic value agrees with
the model's Q, and the refinement keeps the latent the critic values most."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from benchmark_script import load_benchmark


@pytest.fixture(scope="module")
def estimators() -> ModuleType:
    return load_benchmark("inference_estimators")


def test_rows_pair_with_the_zero_shot_latent_and_the_critic_is_the_models(estimators: ModuleType) -> None:
    import bfm_gym
    from bfm_gym.evaluation.zero_shot import task_z

    bfm = bfm_gym.load("point_mass_maze")
    rows = estimators.task_latents(bfm, "reach_top_left", candidates=6, seed=0)
    assert list(rows)[: len(estimators.WEIGHTINGS)] == list(estimators.WEIGHTINGS)
    assert {"least squares", "critic refinement"} <= set(rows)
    shipped = rows["E[r B] (shipped)"]
    np.testing.assert_allclose(shipped["z"], task_z(bfm, bfm.samples, "reach_top_left"), rtol=1e-4, atol=1e-4)
    assert shipped["cosine_to_z_r"] == pytest.approx(1.0)
    for name, row in rows.items():
        assert np.linalg.norm(row["z"]) == pytest.approx(np.sqrt(bfm.z_dim), rel=1e-4), name
    refined = rows["critic refinement"]
    assert refined["critic_value"] >= refined["critic_value_of_z_r"]

    # the critic value with w = z is the model's own Q(s, pi(s, z), z), min over its heads
    states = np.asarray(bfm.samples.next_obs[:64], dtype=np.float32)
    z = shipped["z"].astype(np.float32)
    value = estimators.critic_value(bfm, states, z[None], z)[0]
    zs = np.repeat(z[None], len(states), 0)
    q = np.asarray(bfm.q(states, bfm.act(states, zs), zs, reduce="min"))
    assert value == pytest.approx(float(q.mean()), rel=1e-4)


def test_top_states_of_a_sparse_reward_are_rewarding_ones(estimators: ModuleType) -> None:
    r = np.zeros(1000)
    r[:30] = np.linspace(0.1, 1.0, 30)  # 3 % of the states are rewarding
    top10 = estimators.WEIGHTINGS["top 10 % of states"](r)
    assert set(np.flatnonzero(top10)) == set(range(30))  # not the zero-reward 7 %
    top2 = estimators.WEIGHTINGS["top 2 % of states"](r)
    assert top2[:30].sum() == 20 and top2[30:].sum() == 0
