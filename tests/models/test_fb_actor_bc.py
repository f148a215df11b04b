"""The TD3 actor's behaviour-cloning term (``FBConfig.actor_bc``): its loss is TD3+BC's form,
it pulls the actor's mean action to the dataset's actions, and it is off by default."""

from __future__ import annotations

import pytest
import torch

from bfm_gym.models.fb import FBConfig, FBTrainer, OfflineReplay
from bfm_gym.models.fb.losses import td3_actor_loss
from bfm_gym.models.ops import sample_action


def _trainer(config: FBConfig) -> FBTrainer:
    return FBTrainer(config, obs_dim=2, action_dim=2, device="cpu", seed=0, threads=None)


def test_the_loss_is_normalised_q_plus_weighted_action_error(
    tiny_config: FBConfig, point_replay: OfflineReplay
) -> None:
    config = tiny_config.replace(actor_bc=0.4, amp="off")
    trainer = _trainer(config)
    batch = trainer.sample(point_replay)
    agent, model = trainer.agent, trainer.model
    g = torch.Generator().manual_seed(3)
    z = model.project(torch.randn(config.batch_size, config.z_dim, generator=g))
    noise = torch.randn(config.batch_size, 2, generator=g)
    loss, metrics = agent._actor_losses_eager(batch.obs, batch.action, z, None, noise)
    with torch.no_grad():
        mu = model.actor(batch.obs, z)
        pi = sample_action(mu, config.actor_std, config.stddev_clip, noise)
        qs = (model.forward_map(batch.obs, pi, z) * z).sum(-1)
        _, q = td3_actor_loss(qs, config.actor_pessimism)
        mse = (mu - batch.action).square().mean()
        expected = -q.mean() / q.abs().mean() + 0.4 * mse
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(metrics["actor_bc_mse"], mse, rtol=1e-5, atol=1e-6)
    # off (the default): the plain TD3 loss -Q (same seed, same initial weights), no BC metric
    plain, plain_metrics = _trainer(tiny_config.replace(amp="off")).agent._actor_losses_eager(
        batch.obs, batch.action, z, None, noise
    )
    torch.testing.assert_close(plain.detach(), -q.mean(), rtol=1e-5, atol=1e-6)
    assert "actor_bc_mse" not in plain_metrics and FBConfig().actor_bc == 0.0


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_a_large_weight_clones_the_dataset_actions(
    tiny_config: FBConfig, point_replay: OfflineReplay, amp: str
) -> None:
    """With BC dominating, the actor's mean action moves toward the data's actions, here a
    fixed function of the observation, so the action error falls far below its start, while
    FB still trains."""
    obs = point_replay.obs
    replay = OfflineReplay(obs, 0.8 * torch.sin(3 * obs), point_replay.next_obs)
    trainer = _trainer(tiny_config.replace(actor_bc=50.0, amp=amp))
    history = trainer.train(replay, 300, log_every=50, progress=False)
    errors = [row["actor_bc_mse"] for row in history]
    assert errors[-1] < 0.5 * errors[0], errors
    assert history[-1]["fb_loss"] < history[0]["fb_loss"]


def test_bad_values_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="actor_bc must be >= 0"):
        FBConfig(actor_bc=-0.1)
    with pytest.raises(ValueError, match="set actor_bc=0"):
        FBConfig(actor_bc=0.4, actor_loss="awr")
