"""``benchmarks/rela_direction.py``: the gradients it reports are ReLA's own (their sum is the
latent step's gradient), lie in the sphere's tangent plane, and its direction to a target latent
is the great circle's; a restored cell gives the adapter that was saved."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmark_script import load_benchmark
from gymnasium.wrappers import TimeLimit

from bfm_gym.adapters.rela import ReLAAdapter
from bfm_gym.envs import make_env
from bfm_gym.models import BFM
from bfm_gym.wrappers import LatentActionWrapper

TASK = {"domain": "point_mass_maze", "task": "reach_top_left", "goal": None}
FAST = {"update_every": 1, "warmup_steps": 10, "batch_size": 32, "lr_z": 1e-2}


@pytest.fixture(scope="module")
def trained(model_dir: Path) -> ReLAAdapter:
    bfm = BFM.load(model_dir)
    rela = ReLAAdapter(bfm, TASK, FAST, seed=0, samples=bfm.samples)
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 40),
                              bfm, z_hold=1, action_map="raw")  # fmt: skip
    rela.run_episode(env, seed=0)
    return rela


def test_gradients_are_relas_own_and_tangent(trained: ReLAAdapter) -> None:
    rd = load_benchmark("rela_direction")
    z = trained.learned_latent()
    obs = trained.buffer.sample(torch.arange(32))["obs"]
    t = rd.terms(trained, z, obs)
    unit = z / np.linalg.norm(z)
    for g in (t["g_f"], t["g_q"]):
        assert abs(float(g @ unit)) < 1e-5 * max(1.0, float(np.linalg.norm(g)))
    # the sum is the gradient of the objective ReLA's latent step climbs, on the same states
    leaf = torch.as_tensor(z).clone().requires_grad_(True)
    model = trained.bfm
    zz = model.project(leaf).expand(len(obs), -1)
    action = model.act(obs, zz, grad=True)
    from bfm_gym.adapters._common import aggregate_heads

    value = aggregate_heads((model.psi(obs, zz, action, grad=True) * trained.z_r).sum(-1),
                            trained.config.pessimism)  # fmt: skip
    objective = (value + trained._q_res(trained.critic, obs, action, zz)).mean()
    (g,) = torch.autograd.grad(objective, [leaf])
    g = g.numpy() - float(g.numpy() @ unit) * unit
    np.testing.assert_allclose(t["g_f"] + t["g_q"], g, rtol=1e-4, atol=1e-6)
    assert t["f_value"] + t["q_value"] == pytest.approx(float(objective.detach()), rel=1e-5)


def test_direction_is_the_great_circle_and_the_report_adds_up(trained: ReLAAdapter) -> None:
    rd = load_benchmark("rela_direction")
    d = trained.bfm.z_dim
    rng = np.random.default_rng(0)
    z = rng.standard_normal(d)
    target = rng.standard_normal(d)
    v = rd.toward(z, target)
    assert abs(np.linalg.norm(v) - 1) < 1e-9 and abs(v @ z) < 1e-9
    assert v @ target > 0  # it points to the target's side
    assert rd.angle(z, z) == pytest.approx(0.0, abs=1e-4) and rd.angle(z, -z) == pytest.approx(
        180.0
    )
    best = {
        "best_z": (-trained.z).tolist(),
        "zero_shot_return": 1.0,
        "best_return": 2.0,
        "gain": 1.0,
    }
    report = rd.cell_report(trained, best, batches=2, batch_size=16, seed=0)
    json.dumps(report)  # plain JSON
    assert report["angle_zero_shot_to_best_deg"] > 90
    for name in ("zero_shot", "learned"):
        g = report[f"gradient_at_{name}"]
        assert -1 <= g["cos_total_to_best"] <= 1 and g["f_term_norm"] >= 0
    assert math.isfinite(report["guide_values"]["best"]["f_term"])
    z0 = np.asarray(trained.bfm.project(trained.z_r.numpy()))
    same = {**best, "zero_shot_z": z0.tolist()}
    assert (
        rd.cell_report(trained, same, batches=1, batch_size=8, seed=0)[
            "angle_zero_shot_to_best_deg"
        ]
        > 90
    )
    other = {**best, "zero_shot_z": rd.toward(z0, -np.roll(z0, 1)).tolist()}  # orthogonal to z0
    with pytest.raises(SystemExit, match="not this model's"):
        rd.cell_report(trained, other, batches=1, batch_size=8, seed=0)


def test_restore_gives_the_saved_adapter(
    trained: ReLAAdapter, tmp_path: Path, model_dir: Path
) -> None:
    rd = load_benchmark("rela_direction")
    cell = tmp_path / "rela__maze__s0"
    cell.mkdir()
    (cell / "run.json").write_text(json.dumps({"task": TASK, "config": trained.config.to_dict(),
                                               "seed": 0}))  # fmt: skip
    np.savez(cell / "state.npz", **trained.state_dict())
    restored = rd.restore(cell, trained.bfm)
    np.testing.assert_array_equal(restored.learned_latent(), trained.learned_latent())
    for a, b in zip(restored.critic.parameters(), trained.critic.parameters(), strict=True):
        assert torch.equal(a, b)
    assert restored.buffer.size == trained.buffer.size


def test_probe_turns_on_the_sphere_and_scores_the_projected_reward(trained: ReLAAdapter) -> None:
    rd = load_benchmark("rela_direction")
    model = trained.bfm
    z0 = np.asarray(model.project(trained.z_r.numpy()), dtype=np.float32)
    v = rd.toward(z0, -np.roll(z0, 1))
    for deg in (5.0, 20.0):
        z = rd.rotate(z0, v, deg)
        assert np.linalg.norm(z) == pytest.approx(np.linalg.norm(z0), rel=1e-5)
        assert rd.angle(z0, z) == pytest.approx(deg, abs=1e-2)
    env = rd._ProjectedReward(make_env("point_mass_maze", "reach_top_left"), model,
                              trained.z_r.numpy())  # fmt: skip
    env.reset(seed=0)
    obs, r, *_ = env.step(np.zeros(2, np.float32))
    phi = np.asarray(model.phi(obs[None]))[0]
    assert r == pytest.approx(float(phi @ trained.z_r.numpy()), rel=1e-5)
    out = rd.probe(model, "reach_top_left", z0, {"v": v}, [10.0], [0, 1], trained.z_r.numpy())
    assert set(out) == {"start_seeds", "task_reward", "projected_reward"}
    assert out["task_reward"]["v"]["10deg"]["return"] >= 0  # maze rewards are in [0, 1]
