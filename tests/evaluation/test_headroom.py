"""Latent headroom (:mod:`bfm_gym.evaluation.headroom`) on the shipped ``walker-256`` model,
episodes cut to 30 steps (its 256-wide actor runs on the numpy path, whose rows are bitwise the
same alone or in a batch, so equal latents give equal returns; the 512-wide ``walker``'s batched
torch path rounds per batch): the search keeps the zero-shot z in its first population, scores
every candidate on the same start states, and validates on start states it never searched on."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from bfm_gym.evaluation.rollout import rollout_returns

STEPS = 30


@pytest.fixture(scope="module")
def walker():  # type: ignore[no-untyped-def]
    import bfm_gym
    from bfm_gym.envs.gym_env import env_info_of, make_task_env
    from bfm_gym.evaluation.zero_shot import task_z

    bfm = bfm_gym.load("walker-256")

    def make() -> gym.Env:
        return gym.wrappers.TimeLimit(make_task_env("walker", "run", env_info=env_info_of(bfm)), STEPS)

    return bfm, make, task_z(bfm, bfm.samples, "run")


def test_rollout_returns_resets_each_episode_with_its_seed(walker) -> None:  # type: ignore[no-untyped-def]
    bfm, make, z0 = walker
    zs = np.repeat(z0[None], 3, axis=0)
    together = rollout_returns(make, lambda obs: bfm.act(obs, zs[: len(obs)]), 3, seeds=[7, 0, 7])
    alone = [rollout_returns(make, lambda obs: bfm.act(obs, zs[:1]), 1, seeds=[s])[0] for s in (7, 0)]
    np.testing.assert_allclose(together, [alone[0], alone[1], alone[0]], rtol=1e-4)
    assert together[0] != together[1]  # different start states, different returns
    with pytest.raises(ValueError, match="one per episode"):
        rollout_returns(make, lambda obs: obs, 2, seeds=[1])


def test_latent_returns_pairs_every_latent_with_every_start(walker) -> None:  # type: ignore[no-untyped-def]
    from bfm_gym.evaluation.headroom import latent_returns

    bfm, make, z0 = walker
    zs = np.concatenate([z0[None], bfm.sample_z(2, seed=3)]).astype(np.float32)
    table = latent_returns(bfm, make, zs, [4, 9])
    assert table.shape == (3, 2)
    for i, z in enumerate(zs):
        for j, s in enumerate((4, 9)):
            one = rollout_returns(make, lambda obs, z=z: bfm.act(obs, z[None]), 1, seeds=[s])[0]
            assert table[i, j] == pytest.approx(one, rel=1e-4)
    with pytest.raises(ValueError, match=r"zs must be \(n, 50\)"):
        latent_returns(bfm, make, zs[:, :10], [0])


def test_latent_returns_runs_many_episodes_a_few_latents_at_a_time(walker, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Above MAX_LOCKSTEP_ENVS episodes, whole latents run a group at a time (bounded memory),
    each latent paired with every start state as in one batch."""
    from bfm_gym.evaluation import headroom

    bfm, make, z0 = walker
    zs = np.concatenate([z0[None], bfm.sample_z(4, seed=5)]).astype(np.float32)
    together = headroom.latent_returns(bfm, make, zs, [2, 6])
    live, peak = [0], [0]

    class Counted(gym.Wrapper):
        def close(self) -> None:
            live[0] -= 1
            super().close()

    def counting_make() -> gym.Env:
        live[0] += 1
        peak[0] = max(peak[0], live[0])
        return Counted(make())

    monkeypatch.setattr(headroom, "MAX_LOCKSTEP_ENVS", 4)  # 2 latents x 2 starts per group
    grouped = headroom.latent_returns(bfm, counting_make, zs, [2, 6])
    np.testing.assert_allclose(grouped, together, rtol=1e-4)  # batched torch rounds per batch
    assert peak[0] == 4 and live[0] == 0  # never more than a group's envs at once


def test_search_starts_at_zero_shot_and_validates_on_fresh_starts(walker) -> None:  # type: ignore[no-untyped-def]
    from bfm_gym.evaluation.headroom import latent_headroom, latent_returns

    bfm, make, z0 = walker
    res = latent_headroom(bfm, make, z0, task="walker-run", population=4, elites=2, iterations=2,
                          search_seeds=[0], selection_seeds=[20, 21], validation_seeds=[10, 11], seed=1)
    z0p = np.asarray(bfm.project(z0[None].astype(np.float32)))[0]
    assert res.zero_shot_search_score == pytest.approx(latent_returns(bfm, make, z0p[None], [0])[0, 0],
                                                       abs=1e-3)
    assert res.best_search_score >= res.zero_shot_search_score  # z0 was a candidate
    best = np.asarray(res.best_z, np.float32)
    assert np.linalg.norm(best) == pytest.approx(np.sqrt(bfm.z_dim), rel=1e-3)  # on the sphere
    # the pick is the finalist with the best selection score; finalist 0 is the zero-shot z
    sel = res.selection["returns"]
    assert 3 <= len(sel) <= 2 + 4 and res.selection["picked"] == int(np.argmax(sel))
    assert sel[0] == pytest.approx(latent_returns(bfm, make, z0p[None], [20, 21]).mean(), abs=1e-2)
    picked = latent_returns(bfm, make, best[None], [20, 21]).mean()
    assert picked == pytest.approx(max(sel), abs=1e-2)
    val = latent_returns(bfm, make, np.stack([z0p, best]), [10, 11]).mean(axis=1)
    assert (res.zero_shot_return, res.best_return) == pytest.approx(tuple(val), abs=1e-2)
    # best_z is stored rounded to 5 decimals; 30 walker steps amplify that to ~0.2 % of the return
    assert res.gain == pytest.approx((val[1] - val[0]) / abs(val[0]), abs=1e-2)
    lo, hi = res.difference_ci95
    assert lo <= res.best_return - res.zero_shot_return + 1e-6 and hi >= res.best_return - res.zero_shot_return - 1e-6
    assert res.episodes == 2 * 4 * 1 + len(sel) * 2 + 2 * 2
    scores = [h["best_so_far"] for h in res.history]
    assert len(scores) == 2 and scores == sorted(scores)


def test_search_refuses_validating_on_searched_starts(walker) -> None:  # type: ignore[no-untyped-def]
    from bfm_gym.evaluation.headroom import latent_headroom

    bfm, make, z0 = walker
    with pytest.raises(ValueError, match=r"validation_seeds \[1\] are also search_seeds"):
        latent_headroom(bfm, make, z0, search_seeds=[0, 1], validation_seeds=[1, 2])
    with pytest.raises(ValueError, match=r"selection_seeds \[0\] are also search_seeds"):
        latent_headroom(bfm, make, z0, search_seeds=[0, 1], selection_seeds=[0, 5])


def test_a_search_that_finds_nothing_better_reports_no_headroom(walker) -> None:  # type: ignore[no-untyped-def]
    """With every candidate equal to the zero-shot z (std floored at a negligible size), the
    selection keeps the zero-shot z (the first of equal scores) and the gain is exactly 0."""
    from bfm_gym.evaluation.headroom import latent_headroom

    bfm, make, z0 = walker
    res = latent_headroom(bfm, make, z0, population=3, elites=1, iterations=1, init_std=1e-12,
                          min_std=1e-12, search_seeds=[0], selection_seeds=[1], validation_seeds=[2])
    assert res.selection["picked"] == 0 and res.gain == 0.0 and res.best_z == res.zero_shot_z
    with pytest.raises(ValueError, match="elites < population"):
        latent_headroom(bfm, make, z0, population=4, elites=4)
