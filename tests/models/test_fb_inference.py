"""Inference operations: reward and goal inference, phi, AR fixed point, gradients w.r.t. z."""

from __future__ import annotations

import math

import numpy as np
import torch

from bfm_gym.models.fb import BFM, FBConfig, FBModel


def _model(**changes: object) -> FBModel:
    torch.manual_seed(0)
    return FBModel(FBConfig.preset("walker", "tiny", **changes), obs_dim=5, action_dim=2).train(
        False
    )


def test_infer_z_recovers_weights_of_a_reward_linear_in_phi() -> None:
    """r = phi(s')^T w with phi = Cov^{-1} B gives E[r B] = Cov Cov^{-1} w = w (docs/algorithms.md#successor-features)."""
    model = _model()
    states = torch.randn(3000, 5)
    model.finalize(states)
    w = model.sample_z(1, generator=torch.Generator().manual_seed(3))[0]
    rewards = model.phi(states) @ w
    raw = model.infer_z(states, rewards, project=False)
    torch.testing.assert_close(raw, w, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        model.infer_z(states, rewards), w, rtol=1e-4, atol=1e-4
    )  # w is already on the sphere
    # chunked evaluation gives the same answer
    torch.testing.assert_close(
        model.infer_z(states, rewards, chunk_size=7),
        model.infer_z(states, rewards),
        rtol=1e-5,
        atol=1e-5,
    )


def test_cov_is_uncentred_second_moment() -> None:
    model = _model()
    states = torch.randn(500, 5)
    cov = model.finalize(states)
    b = model.backward(states).double()
    torch.testing.assert_close(cov.double(), b.T @ b / 500, rtol=1e-5, atol=1e-6)
    assert int(model.cov_samples) == 500


def test_goal_z_is_projected_backward() -> None:
    model = _model()
    g = torch.randn(4, 5)
    torch.testing.assert_close(model.goal_z(g), model.project(model.backward(g)))
    torch.testing.assert_close(model.goal_z(g).norm(dim=-1), torch.full((4,), math.sqrt(8.0)))


def test_ar_reward_inference_solves_the_fixed_point_block_by_block() -> None:
    """z_r = proj_k(E[r B^k(s, z_r^{1:k-1})]) for every block k (docs/algorithms.md#fb-aware-ar)."""
    model = _model(ar_blocks=3)
    states = torch.randn(800, 5)
    rewards = states[:, 0] - 0.5 * states[:, 1] ** 2
    z = model.infer_z(states, rewards)
    b = model.backward(states, z.expand(800, -1))  # teacher-forced with the inferred z
    fixed_point = model.project((rewards[:, None] * b).mean(0))
    torch.testing.assert_close(z, fixed_point, rtol=1e-5, atol=1e-5)
    # goal inference is the same chain with a single state
    g = states[:3]
    zg = model.goal_z(g)
    torch.testing.assert_close(zg, model.project(model.backward(g, zg)), rtol=1e-5, atol=1e-5)


def test_inference_is_no_grad_by_default_and_differentiable_on_request() -> None:
    model = _model().requires_grad_(False)
    obs = torch.randn(6, 5)
    z = model.sample_z(6).requires_grad_(True)
    assert not model.act(obs, z).requires_grad
    q = model.q(obs, model.act(obs, z, grad=True), z, grad=True)
    q.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_bfm_handle_gradient_through_z() -> None:
    bfm = BFM(_model())
    obs = torch.randn(4, 5)
    z = torch.as_tensor(bfm.sample_z(1, seed=0)[0]).requires_grad_(True)
    value = bfm.q(obs, bfm.act(obs, z, grad=True), z, grad=True).mean()
    value.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_sample_z_is_seeded_and_on_the_sphere() -> None:
    bfm = BFM(_model())
    a, b = bfm.sample_z(5, seed=1), bfm.sample_z(5, seed=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), math.sqrt(8), rtol=1e-5)
