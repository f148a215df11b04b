"""The FB update's fast path reads M = F^T B through its factors (``losses.LowRank``) instead of
forming the N x N matrix; these tests pin how close it stays to the dense form.

Tolerances: in float64 the two agree to ~1e-13 (the factored sums only regroup terms); in fp32
to ~1e-5 relative on losses and gradients (float rounding of sums over N^2 terms against sums
over d^2 Gram entries). With bf16 autocast the dense path rounds every entry of M to bf16 before
the loss and the factored path does not, so there the two differ by bf16 rounding (~1e-3 on the
losses, ~1e-2 of the largest gradient entry).
"""

from __future__ import annotations

import pytest
import torch

from bfm_gym.models.fb import FBConfig, FBTrainer
from bfm_gym.models.fb.agent import draw_noise
from bfm_gym.models.fb.losses import LowRank, fb_loss, ortho_loss
from bfm_gym.models.fb.replay import TransitionBatch


def _factors(dtype: torch.dtype, e: int = 2, n: int = 40, d: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(e, n, d, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    t = torch.randn(n, d, generator=g, dtype=dtype)
    bt = torch.randn(n, d, generator=g, dtype=dtype)
    discount = 0.98 * (torch.rand(n, 1, generator=g, dtype=dtype) > 0.2).to(dtype)
    return f, b, t, bt, discount


@pytest.mark.parametrize(("dtype", "rtol"), [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_factored_fb_loss_matches_dense(dtype: torch.dtype, rtol: float) -> None:
    f, b, t, bt, discount = _factors(dtype)
    dense = fb_loss(f @ b.T, t @ bt.T, discount)
    dense_grads = torch.autograd.grad(dense[0], (f, b))
    fact = fb_loss(LowRank(f, b), LowRank(t, bt), discount)
    fact_grads = torch.autograd.grad(fact[0], (f, b))
    for x, y in zip(fact, dense, strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=rtol)
    for x, y in zip(fact_grads, dense_grads, strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=rtol * float(y.abs().max()))


@pytest.mark.parametrize(("dtype", "rtol"), [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("groups", [None, 3])
def test_factored_ortho_loss_matches_dense(
    dtype: torch.dtype, rtol: float, groups: int | None
) -> None:
    g = torch.Generator().manual_seed(1)
    shape = (40, 6) if groups is None else (groups, 40, 6)
    b = torch.randn(*shape, generator=g, dtype=dtype, requires_grad=True)
    dense = ortho_loss(b)
    (dense_grad,) = torch.autograd.grad(dense[0], b)
    fact = ortho_loss(b, low_rank=True)
    (fact_grad,) = torch.autograd.grad(fact[0], b)
    for x, y in zip(fact, dense, strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=rtol)
    torch.testing.assert_close(
        fact_grad, dense_grad, rtol=rtol, atol=rtol * float(dense_grad.abs().max())
    )


def test_fb_loss_refuses_mixed_forms() -> None:
    f, b, t, bt, discount = _factors(torch.float32)
    with pytest.raises(TypeError, match="both dense or both"):
        fb_loss(LowRank(f, b), t @ bt.T, discount)


def _agent_and_inputs(amp: str, **changes: object):
    config = FBConfig.preset("walker", "tiny", amp=amp, **changes)
    trainer = FBTrainer(config, obs_dim=24, action_dim=6, device="cpu", seed=0, threads=None)
    n = config.batch_size
    g = torch.Generator().manual_seed(3)
    batch = TransitionBatch(
        torch.randn(n, 24, generator=g), torch.rand(n, 6, generator=g) * 2 - 1,
        torch.randn(n, 24, generator=g), (torch.rand(n, 1, generator=g) < 0.1).float(),
    )  # fmt: skip
    noise = draw_noise(config, 6, torch.Generator().manual_seed(4), torch.device("cpu"))
    discount = config.gamma * (1 - batch.terminated)
    return trainer.agent, (batch.obs, batch.action, batch.next_obs, discount), noise


def _grads(agent, loss):
    model = agent.model
    params = [p for m in (model.forward_map, model.backward_map) for p in m.parameters()]
    return torch.autograd.grad(loss, params)


@pytest.mark.parametrize(
    ("amp", "rtol", "grad_rtol", "z_atol"), [("off", 2e-5, 2e-5, 1e-5), ("bf16", 3e-3, 5e-2, 5e-2)]
)
def test_factored_update_matches_the_dense_one(
    amp: str, rtol: float, grad_rtol: float, z_atol: float
) -> None:
    """Training latents, losses, metrics and F/B gradients of one update, factored vs dense
    (measured: fp32 2e-6 on the metrics, 6e-7 of the largest gradient entry; bf16 5e-4 and
    1.2e-2, the goal latents within bf16 rounding of B)."""
    agent, args, noise = _agent_and_inputs(amp)
    assert agent.factored_loss and agent._fb_losses == agent._fb_losses_factored
    z_dense = agent.mixed_z(args[2], noise)
    loss_d, _, metrics_d = agent._fb_losses_eager(*args, z_dense, noise.next_action)
    loss_f, _, metrics_f, z = agent._fb_losses_factored(*args, noise)
    torch.testing.assert_close(z, z_dense, rtol=0, atol=z_atol)
    if amp == "bf16":  # the rest compares the losses on the same latents
        loss_f, _, metrics_f, _ = _with_latents(agent, z_dense, args, noise)
    torch.testing.assert_close(loss_f, loss_d, rtol=rtol, atol=rtol)
    assert set(metrics_f) == set(metrics_d)
    for key, value in metrics_d.items():
        torch.testing.assert_close(metrics_f[key], value, rtol=rtol, atol=rtol, msg=key)
    for gf, gd in zip(_grads(agent, loss_f), _grads(agent, loss_d), strict=True):
        scale = float(gd.abs().max())
        assert float((gf - gd).abs().max()) <= grad_rtol * max(scale, 1e-6)


def _with_latents(agent, z, args, noise):
    """The factored losses with the training latents forced to ``z`` (all goal latents, taken
    from ``z``): makes the bf16 comparison independent of the goal latents' rounding."""
    n = z.shape[0]
    forced = noise._replace(z=z, goal_mask=torch.ones(n, 1))  # every row: proj(z) == z
    return agent._fb_losses_factored(*args, forced)


@pytest.mark.parametrize("changes", [{"fb_pessimism": 0.5}, {"ar_blocks": 2}])
def test_losses_that_are_not_low_rank_keep_the_dense_path(changes: dict) -> None:
    agent, _, _ = _agent_and_inputs("off", **changes)
    assert not agent.factored_loss and agent._fb_losses == agent._fb_losses_eager
