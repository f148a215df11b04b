"""The gradient check (:mod:`bfm_gym.evaluation.gradient_check`) on a tiny maze model: its
direction is the steepest ascent of F's value on the sphere (checked against finite
differences), its value is the one ReLA's latent step climbs, F's predicted gains are F's value
at the turned latents, the measured gains are paired, and bad input is refused by name."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from benchmark_script import load_benchmark
from tiny_maze import write_tiny_maze_model

from bfm_gym.evaluation.gradient_check import f_value, gradient_check, rotate
from bfm_gym.evaluation.headroom import latent_returns

TASK = "reach_top_left"
STEPS = 60


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from bfm_gym.envs.gym_env import make_task_env
    from bfm_gym.models import BFM
    from bfm_gym.models.inference import reward_z

    folder = write_tiny_maze_model(tmp_path_factory.mktemp("g") / "maze-tiny",
                                   [(-0.15, 0.15 - 0.005 * ep) for ep in range(3)], steps=200)  # fmt: skip
    bfm = BFM.load(folder)
    weights = reward_z(bfm, task=TASK, project=False)

    def make() -> gym.Env:
        return gym.wrappers.TimeLimit(make_task_env("point_mass_maze", TASK), STEPS)

    return folder, bfm, make, weights


def _states(bfm, make, z0: np.ndarray, seed: int = 0) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The states of one episode of the zero-shot policy from reset seed ``seed``: what the check
    averages F's value over when ``state_episodes=1`` and ``max_states`` exceeds them."""
    from bfm_gym.evaluation.rollout import rollout_returns

    states: list[np.ndarray] = []

    def policy(obs: np.ndarray) -> np.ndarray:
        states.append(obs.copy())
        return np.asarray(bfm.act(obs, z0.astype(np.float32)))

    rollout_returns(make, policy, 1, seed)
    return torch.as_tensor(np.concatenate(states))


def _value(bfm, obs, z, w, critic_z=None) -> float:  # type: ignore[no-untyped-def]
    fixed = None if critic_z is None else torch.as_tensor(critic_z, dtype=torch.float32)
    with torch.no_grad():
        return float(f_value(bfm, obs, torch.as_tensor(z), torch.as_tensor(w), 0.5, fixed).mean())


def test_direction_is_the_steepest_ascent_on_the_sphere(setup) -> None:  # type: ignore[no-untyped-def]
    _, bfm, make, w = setup
    r = gradient_check(bfm, make, w, degrees=[1.0], seeds=[0, 1], state_episodes=1, max_states=500)
    z0 = np.asarray(bfm.project(w), np.float64)
    d = np.asarray(r.direction)
    assert np.linalg.norm(d) == pytest.approx(1.0, abs=1e-5)
    assert abs(d @ z0) < 1e-4 * np.linalg.norm(z0)  # tangent to the sphere at z0
    obs = _states(bfm, make, z0)
    assert r.states == len(obs) == STEPS
    # finite differences along the direction and along a random tangent: the directional slope
    # along d is the largest (= the gradient's norm), another direction's is its projection
    eps = 0.05
    radius = float(np.linalg.norm(z0))
    scale = abs(r.f_value)

    def slope(direction: np.ndarray) -> float:
        up = _value(bfm, obs, rotate(z0, direction, eps), w)
        down = _value(bfm, obs, rotate(z0, direction, -eps), w)
        return (up - down) / (2 * math.radians(eps) * radius)

    along = slope(d)
    assert along > 0
    assert along * radius * math.pi / 180 / scale == pytest.approx(r.f_slope_per_degree, rel=0.05)
    rng = np.random.default_rng(0)
    other = rng.standard_normal(len(d))
    other -= (other @ z0) / (z0 @ z0) * z0
    other /= np.linalg.norm(other)
    assert slope(other) == pytest.approx(along * float(other @ d), rel=0.1, abs=0.02 * along)


def test_action_path_holds_f_at_the_zero_shot_latent(setup) -> None:  # type: ignore[no-untyped-def]
    _, bfm, make, w = setup
    r = gradient_check(bfm, make, w, degrees=[1.0], seeds=[0, 1], state_episodes=1,
                       max_states=500, random_directions=0, path="action")  # fmt: skip
    full = gradient_check(bfm, make, w, degrees=[1.0], seeds=[0, 1], state_episodes=1,
                          max_states=500, random_directions=0)  # fmt: skip
    assert r.path == "action" and full.path == "full"
    z0 = np.asarray(bfm.project(w), np.float64)
    obs = _states(bfm, make, z0)
    assert r.f_value == pytest.approx(full.f_value, rel=1e-5)  # same value at z0 itself
    d = np.asarray(r.direction)
    assert float(d @ np.asarray(full.direction)) < 0.999  # another gradient
    eps, radius = 0.05, float(np.linalg.norm(z0))

    def slope(direction: np.ndarray) -> float:
        up = _value(bfm, obs, rotate(z0, direction, eps), w, critic_z=z0)
        down = _value(bfm, obs, rotate(z0, direction, -eps), w, critic_z=z0)
        return (up - down) / (2 * math.radians(eps) * radius)

    assert slope(d) * radius * math.pi / 180 / abs(r.f_value) == pytest.approx(
        r.f_slope_per_degree, rel=0.05)
    # F's prediction for the turn is the fixed critic's value of the turned policy's actions
    turned = rotate(z0, d, 1.0)
    expected = (_value(bfm, obs, turned, w, critic_z=z0) - r.f_value) / abs(r.f_value)
    assert r.f_predicted_gain[0] == pytest.approx(expected, abs=2e-4)
    with pytest.raises(ValueError, match="path must be 'full' or 'action'"):
        gradient_check(bfm, make, w, seeds=[0, 1], path="both")  # type: ignore[arg-type]


def test_value_is_relas_f_term(setup) -> None:  # type: ignore[no-untyped-def]
    _, bfm, _, w = setup
    from bfm_gym.adapters.rela import ReLAAdapter

    rela = ReLAAdapter(bfm, {"domain": "point_mass_maze", "task": TASK, "goal": None}, {}, seed=0,
                       samples=bfm.samples)  # fmt: skip
    np.testing.assert_allclose(rela.z_r.numpy(), w, rtol=1e-6)
    obs = torch.rand(16, bfm.obs_dim) * 0.6 - 0.3
    z = torch.as_tensor(bfm.project(w)).clone().requires_grad_(True)
    mine = f_value(bfm, obs, z, torch.as_tensor(w), rela.config.pessimism)
    theirs, _ = rela.objective_terms(obs, z)
    assert torch.equal(mine, theirs)


def test_predictions_and_paired_gains(setup) -> None:  # type: ignore[no-untyped-def]
    _, bfm, make, w = setup
    seeds = [3, 4, 5]
    r = gradient_check(bfm, make, w, task="t", degrees=[20.0, 5.0], seeds=seeds, state_episodes=1,
                       max_states=500, random_directions=2, seed=1)  # fmt: skip
    assert r.task == "t" and r.states == STEPS and r.seeds == seeds
    z0 = np.asarray(bfm.project(w), np.float32)
    obs = _states(bfm, make, z0, seed=1)
    assert r.f_value == pytest.approx(_value(bfm, obs, z0, w), rel=1e-4)
    zs = np.stack([z0] + [rotate(z0, np.asarray(r.direction), d) for d in r.degrees])
    returns = latent_returns(bfm, make, zs, seeds)
    assert r.zero_shot_return == pytest.approx(returns[0].mean(), abs=0.01)
    for k in range(2):
        assert r.returns[k] == pytest.approx(returns[k + 1].mean(), abs=0.01)
        gain = (returns[k + 1] - returns[0]).mean() / max(abs(returns[0].mean()), 1e-9)
        assert r.gain[k] == pytest.approx(gain, abs=1e-4)
        lo, hi = r.gain_ci95[k]
        assert lo <= r.gain[k] + 1e-4 and r.gain[k] - 1e-4 <= hi
        # F's prediction is F's own value at the turned latent, on the same states
        predicted = (_value(bfm, obs, zs[k + 1], w) - r.f_value) / abs(r.f_value)
        assert r.f_predicted_gain[k] == pytest.approx(predicted, abs=2e-4)
    assert r.f_predicted_gain[1] > 0  # a small enough turn along the gradient climbs F's value
    # the control: two random tangent directions, each turned as far as changes the actions as
    # much as F's 5 degree turn does
    assert len(r.random_gain) == len(r.random_f_predicted_gain) == len(r.random_degrees) == 2

    def change(z: np.ndarray) -> float:
        with torch.no_grad():
            diff = bfm.act(obs, torch.as_tensor(z)) - bfm.act(obs, torch.as_tensor(z0))
        return float(diff.pow(2).sum(-1).mean().sqrt())

    assert r.action_change == pytest.approx(change(zs[2]), rel=1e-3)
    rng = np.random.default_rng(1)
    u = z0.astype(np.float64) / np.linalg.norm(z0)
    randoms = []
    for k in range(2):
        v = rng.standard_normal(len(u))
        v -= (v @ u) * u
        randoms.append(rotate(z0, v / np.linalg.norm(v), r.random_degrees[k]))
        assert 0 < r.random_degrees[k] <= 60
        if r.random_degrees[k] < 60:
            assert change(randoms[k]) == pytest.approx(r.action_change, rel=1e-3)
    control = latent_returns(bfm, make, np.stack(randoms), seeds)
    scale = max(abs(returns[0].mean()), 1e-9)
    for k in range(2):
        assert r.random_gain[k] == pytest.approx((control[k] - returns[0]).mean() / scale, abs=1e-4)
        assert r.random_f_predicted_gain[k] == pytest.approx(
            (_value(bfm, obs, randoms[k], w) - r.f_value) / abs(r.f_value), abs=2e-4)
    over = (returns[2] - control.mean(axis=0)).mean() / scale
    assert r.gain_over_random == pytest.approx(over, abs=1e-4)
    lo, hi = r.gain_over_random_ci95
    assert r.versus_random == ("better" if lo > 0 else "worse" if hi < 0 else "unclear")
    none = gradient_check(bfm, make, w, degrees=[5.0], seeds=seeds, state_episodes=1, random_directions=0)
    assert none.random_gain == [] and none.gain_over_random is None and none.versus_random is None
    lo, hi = r.gain_ci95[1]  # the verdict reads the smallest turn (5 degrees, listed second)
    assert r.verdict == ("uphill" if lo > 0 else "downhill" if hi < 0 else "unclear")


@pytest.mark.parametrize("kwargs, match", [
    ({"weights": np.zeros(3)}, "weights must be a finite nonzero"),
    ({"degrees": [0.0]}, r"degrees must be non-empty, each in \(0, 90\)"),
    ({"degrees": []}, "degrees must be non-empty"),
    ({"seeds": [1]}, "at least 2 seeds"),
    ({"state_episodes": 0}, "state_episodes >= 1"),
    ({"random_directions": -1}, "random_directions >= 0"),
])  # fmt: skip
def test_bad_input_is_named(setup, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    _, bfm, make, w = setup
    args = {"weights": w, "degrees": [5.0], "seeds": [0, 1], "state_episodes": 1} | kwargs
    weights = args.pop("weights")
    if weights.shape != w.shape:
        weights = np.zeros(2)  # wrong shape
    with pytest.raises(ValueError, match=match):
        gradient_check(bfm, make, weights, **args)


def test_benchmark_script_resumes_and_correlates(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, _, _, _ = setup
    gc = load_benchmark("gradient_check")
    assert gc.rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert gc.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    from scipy.stats import spearmanr

    x, y = [0.1, -0.3, 0.2, 0.2, 0.5], [1.0, 0.0, 3.0, -1.0, 2.0]
    assert gc.rank_correlation(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-3)
    # a comparison's families.json with one adapter's gain on the task
    compare = tmp_path / "cmp"
    compare.mkdir()
    key = f"point_mass_maze-{TASK}"
    gains = {"gains": {"rela": {"point_mass_maze": {"per_task": {key: 0.05}}}}}
    (compare / "families.json").write_text(json.dumps(gains))
    out = tmp_path / "gc.json"
    argv = ["--models", str(folder), "--tasks", TASK, "--seeds", "2", "--degrees", "5",
            "--state-episodes", "1", "--max-states", "30", "--compare", str(compare), "--out", str(out)]  # fmt: skip
    report = gc.main(argv)
    row = report["tasks"][key]
    assert row["verdict"] in ("uphill", "downhill", "unclear") and row["settings"]["seeds"] == 2
    assert report["adapter_gains"] == {"rela": {key: 0.05}}
    assert report["summary"]["adapters"]["rela"]["tasks"] == 1
    assert out.with_suffix(".png").is_file()
    # rerunning the same command keeps the finished task (same settings) instead of replaying it
    again = gc.main(argv)
    assert again["tasks"][key]["seconds"] == row["seconds"]


def test_toward_is_the_tangent_that_rotate_turns_along() -> None:
    """Turning z along ``toward(z, target)`` by the angle between them reaches target's
    direction; a target on z's own line has no direction."""
    from bfm_gym.evaluation.gradient_check import rotate, toward

    rng = np.random.default_rng(3)
    z, target = rng.standard_normal(8), rng.standard_normal(8)
    d = toward(z, target)
    assert d is not None and abs(d @ z) < 1e-9 and abs(np.linalg.norm(d) - 1) < 1e-9
    deg = np.degrees(np.arccos(z @ target / (np.linalg.norm(z) * np.linalg.norm(target))))
    turned = rotate(z, d, float(deg))
    np.testing.assert_allclose(turned / np.linalg.norm(turned),
                               target / np.linalg.norm(target), atol=1e-5)  # fmt: skip
    assert toward(z, -2.5 * z) is None
