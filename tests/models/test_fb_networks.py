"""Networks and losses: batched ensemble vs loop, norms, action noise, loss formulas."""

from __future__ import annotations

import math

import pytest
import torch

from bfm_gym.models.fb import FBConfig, FBModel
from bfm_gym.models.fb.losses import ensemble_aggregate, fb_loss, ortho_loss
from bfm_gym.models.fb.networks import ARBackwardMap, ForwardMap, LoopedForwardMap, sample_action


def test_batched_ensemble_equals_looped_variant() -> None:
    torch.manual_seed(0)
    args = (
        5,
        3,
        8,
        32,
        2,
        3,
        3,
    )  # obs, action, z, hidden, hidden_layers, embedding_layers, ensemble
    batched, looped = ForwardMap(*args), LoopedForwardMap(*args)
    looped.load_from_batched(batched)
    obs, action, z = torch.randn(17, 5), torch.rand(17, 3) * 2 - 1, torch.randn(17, 8)
    out_b, out_l = batched(obs, action, z), looped(obs, action, z)
    assert out_b.shape == (3, 17, 8)
    torch.testing.assert_close(out_b, out_l, rtol=1e-5, atol=1e-5)
    # gradients agree too (first layer of head 1)
    out_b.square().sum().backward()
    out_l.square().sum().backward()
    torch.testing.assert_close(
        batched.embed_sa[0].weight.grad[1].T,
        looped.heads[1].embed_sa[0].weight.grad,
        rtol=1e-4,
        atol=1e-5,
    )


def test_ensemble_heads_differ_at_init() -> None:
    torch.manual_seed(0)
    f = ForwardMap(4, 2, 8, 32, 1, 2, 2)
    out = f(torch.randn(6, 4), torch.zeros(6, 2), torch.randn(6, 8))
    assert not torch.allclose(out[0], out[1])


def test_backward_outputs_lie_on_sphere() -> None:
    model = FBModel(FBConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6)
    b = model.backward(torch.randn(10, 24))
    torch.testing.assert_close(b.norm(dim=-1), torch.full((10,), math.sqrt(8.0)))


def test_ar_backward_blocks_on_their_spheres_and_causal() -> None:
    torch.manual_seed(0)
    b = ARBackwardMap(4, (3, 3, 2), 16, 2)
    obs, z = torch.randn(5, 4), torch.randn(5, 8)
    out = b(obs, z)
    norms = torch.stack([blk.norm(dim=-1) for blk in out.split((3, 3, 2), dim=-1)], -1)
    torch.testing.assert_close(
        norms, torch.tensor([math.sqrt(3), math.sqrt(3), math.sqrt(2)]).expand(5, 3)
    )
    # block k only sees z^{1:k-1}: changing the last block of z changes nothing; changing the first block
    # changes blocks 2 and 3 but not block 1
    z2 = z.clone()
    z2[:, 6:] += 1.0
    torch.testing.assert_close(b(obs, z2), out)
    z3 = z.clone()
    z3[:, :3] += 1.0
    out3 = b(obs, z3)
    torch.testing.assert_close(out3[:, :3], out[:, :3])
    assert not torch.allclose(out3[:, 3:], out[:, 3:])


def test_actions_are_bounded_and_noise_clipped() -> None:
    model = FBModel(FBConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6)
    obs = torch.randn(200, 24) * 5
    z = model.sample_z(200, generator=torch.Generator().manual_seed(0))
    mean = model.act(obs, z)
    noisy = model.act(obs, z, noise=True, generator=torch.Generator().manual_seed(1))
    assert mean.abs().max() <= 1 and noisy.abs().max() <= 1
    assert (noisy - mean).abs().max() <= 0.3 + 1e-6
    assert (noisy != mean).any()


def test_sample_action_clip_is_straight_through() -> None:
    mu = torch.tensor([[0.95, -0.2]], requires_grad=True)
    a = sample_action(mu, std=0.2, clip=0.3, noise=torch.tensor([[1.0, 0.0]]))
    assert a[0, 0] <= 1.0
    a.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))


def test_aggregate_with_half_pessimism_is_min_for_two_heads() -> None:
    x = torch.randn(2, 7)
    torch.testing.assert_close(ensemble_aggregate(x, 0.5), x.min(0).values)
    torch.testing.assert_close(ensemble_aggregate(x, 0.0), x.mean(0))


def test_fb_and_ortho_losses_match_metamotivo_formula() -> None:
    torch.manual_seed(0)
    e, n, d = 2, 6, 4
    m, target, discount = torch.randn(e, n, n), torch.randn(n, n), torch.full((n, 1), 0.9)
    off = 1 - torch.eye(n)
    diff = m - discount * target
    expected = (
        0.5 * (diff * off).pow(2).sum() / off.sum()
        - torch.diagonal(diff, dim1=1, dim2=2).mean() * e
    )
    loss, _, _ = fb_loss(m, target, discount)
    torch.testing.assert_close(loss, expected)
    b = torch.randn(n, d)
    cov = b @ b.T
    expected_o = 0.5 * (cov * off).pow(2).sum() / off.sum() - cov.diag().mean()
    torch.testing.assert_close(ortho_loss(b)[0], expected_o)
    # grouped form is the mean over groups
    bg = torch.randn(3, n, d)
    torch.testing.assert_close(
        ortho_loss(bg)[0], torch.stack([ortho_loss(x)[0] for x in bg]).mean()
    )


@pytest.mark.parametrize("mode", ["batched", "looped"])
def test_model_builds_both_ensemble_modes(mode: str) -> None:
    model = FBModel(FBConfig.preset("walker", "tiny", ensemble_mode=mode), obs_dim=24, action_dim=6)
    z = model.sample_z(3)
    assert model.forward(torch.zeros(3, 24), torch.zeros(3, 6), z).shape == (2, 3, 8)


def test_cpu_tanh_matches_torch_tanh_and_its_gradient() -> None:
    from bfm_gym.models.fb.networks import Tanh

    x = (torch.randn(1000) * 4).requires_grad_(True)
    y = Tanh()(x)
    torch.testing.assert_close(y, torch.tanh(x), rtol=0, atol=3e-7)
    (g,) = torch.autograd.grad(y.sum(), x)
    (g_ref,) = torch.autograd.grad(torch.tanh(x).sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-6)
