"""BFM handle: numpy/torch in and out, single rows, validation at the boundary."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bfm_gym.models.fb import BFM, FBConfig, FBModel


@pytest.fixture
def bfm() -> BFM:
    torch.manual_seed(0)
    return BFM(FBModel(FBConfig.preset("walker", "tiny"), obs_dim=5, action_dim=2))


def test_numpy_in_numpy_out_and_single_rows(bfm: BFM) -> None:
    obs = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    z = bfm.sample_z(1, seed=0)[0]
    a = bfm.act(obs, z)
    assert isinstance(a, np.ndarray) and a.shape == (4, 2) and a.dtype == np.float32
    np.testing.assert_allclose(bfm.act(obs[1], z), a[1], rtol=1e-6, atol=1e-6)
    assert bfm.backward(obs).shape == (4, 8) and bfm.backward(obs[0]).shape == (8,)
    assert bfm.forward(obs, a, z).shape == (2, 4, 8) and bfm.forward(obs[0], a[0], z).shape == (
        2,
        8,
    )
    assert bfm.q(obs, a, z).shape == (4,) and bfm.q(obs[0], a[0], z).shape == ()
    assert bfm.q(obs, a, z, reduce="none").shape == (2, 4)
    assert bfm.goal_z(obs).shape == (4, 8) and bfm.goal_z(obs[0]).shape == (8,)
    assert bfm.infer_z(obs, np.ones(4)).shape == (8,)
    assert bfm.psi(obs, z).shape == (2, 4, 8)
    np.testing.assert_allclose(np.linalg.norm(bfm.project(np.arange(8.0))), np.sqrt(8), rtol=1e-6)


def test_torch_in_torch_out(bfm: BFM) -> None:
    obs = torch.randn(3, 5)
    z = torch.as_tensor(bfm.sample_z(3, seed=1))
    a = bfm.act(obs, z)
    assert isinstance(a, torch.Tensor) and a.shape == (3, 2)
    np.testing.assert_allclose(a.numpy(), bfm.act(obs.numpy(), z.numpy()), rtol=1e-6)
    assert isinstance(bfm.infer_z(obs, torch.ones(3)), torch.Tensor)


def test_properties(bfm: BFM) -> None:
    assert (bfm.z_dim, bfm.obs_dim, bfm.action_dim, bfm.ensemble) == (8, 5, 2, 2)
    assert bfm.gamma == 0.98 and bfm.config.z_dim == 8
    np.testing.assert_array_equal(bfm.cov, np.eye(8, dtype=np.float32))
    assert not bfm.cov_finalized
    assert "obs_dim=5" in repr(bfm)
    assert all(not p.requires_grad for p in bfm.model.parameters())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda b: b.act(np.zeros((3, 4)), np.zeros(8)),
            r"obs must have shape \(batch, 5\) or \(5,\) \(observations, obs_dim=5\), got \(3, 4\)",
        ),
        (
            lambda b: b.act(np.zeros((3, 5, 1)), np.zeros(8)),
            r"obs must have shape \(batch, 5\).*got \(3, 5, 1\)",
        ),
        (
            lambda b: b.act(np.zeros((3, 5)), np.zeros(7)),
            r"z must have shape \(batch, 8\) or \(8,\) \(latents, z_dim=8\), got \(7,\)",
        ),
        (
            lambda b: b.act(np.zeros((3, 5)), np.zeros((2, 8))),
            r"z has 2 rows but the observations have 3",
        ),
        (lambda b: b.act(np.full((3, 5), np.nan), np.zeros(8)), r"obs holds NaN or inf values"),
        (
            lambda b: b.forward(np.zeros((3, 5)), np.zeros((2, 2)), np.zeros(8)),
            r"action has 2 rows but obs has 3",
        ),
        (
            lambda b: b.q(np.zeros((3, 5)), np.zeros((3, 3)), np.zeros(8)),
            r"action must have shape \(batch, 2\)",
        ),
        (
            lambda b: b.infer_z(np.zeros((3, 5)), np.array([1.0, np.nan, 0.0])),
            r"rewards hold 1 NaN/inf value\(s\); expected finite",
        ),
        (
            lambda b: b.infer_z(np.zeros((3, 5)), np.ones(4)),
            r"rewards must have shape \(3,\) or \(3, 1\) to match next_obs, got \(4,\)",
        ),
        (
            lambda b: b.infer_z(np.zeros((3, 5)), np.ones((3, 2))),
            r"rewards must have shape \(3,\) or \(3, 1\).*got \(3, 2\)",
        ),
        (
            lambda b: b.goal_z(np.zeros(6)),
            r"goal_obs must have shape \(batch, 5\) or \(5,\).*got \(6,\)",
        ),
    ],
)
def test_boundary_validation(bfm: BFM, call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(bfm)
