"""SB3 policies whose networks start as the BFM's: ``pi(s, z_r)`` and ``Q = F(s, a, z_r)^T z``.

Built through SB3's extension points only: :class:`BFMActorTrunk` is a
``BaseFeaturesExtractor``; :class:`BFMTD3Policy` / :class:`BFMSACPolicy` subclass SB3's
policies and override the public ``make_actor`` / ``make_critic`` factories;
:class:`BFMCritic` is an SB3 ``BaseModel`` with the ``forward`` / ``q1_forward``
interface of ``ContinuousCritic``.

The BFM actor is ``mu(s, z) = tanh(W h(s, z) + b)`` with
``h = MLP_hidden([embed_s(s), embed_sz(s, z)])`` (:class:`bfm_gym.models.fb.networks.Actor`).
The actor trunk computes ``h(s, z_r)`` with a trainable copy of the BFM's layers and
``z_r`` fixed; SB3's own head gets a copy of ``(W, b)``:

* TD3: ``Actor.mu = [Linear, Tanh]`` with ``net_arch=[]``, so the actor is exactly the
  BFM's mean action.
* SAC: ``Actor.mu`` is the *pre-tanh* mean of SB3's squashed Gaussian, so copying the
  BFM's pre-tanh layer makes SB3's deterministic action ``tanh(mu)`` equal the BFM's mean
  action (no ``atanh`` of clipped values needed). ``log_std`` starts as weight 0,
  bias ``log(init_std)``: a state-independent std, the BFM's exploration noise (0.2).

The BFM critic has one SB3 critic per F head: ``Q_k(s, a) = c F_k(s, a, z_r)^T z_r``
(SB3 takes the min over critics for targets, like FB's pessimistic aggregation), with
``c = ||E[r B]|| / sqrt(d)`` so that ``Q_k = F_k^T E[r B]``, the FB estimate of the
discounted return in reward units (docs/algorithms.md#zero-shot-inference), rather than the projected latent's
arbitrary scale.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.sac.policies import Actor as SACActor
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import Actor as TD3Actor
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

__all__ = ["BFMActorTrunk", "BFMCritic", "BFMInit", "BFMSACPolicy", "BFMTD3Policy", "ObsStandardizer",
           "distill_critic",
           "distillation_pairs"]


@dataclasses.dataclass(frozen=True)
class BFMInit:
    """What the policies copy from the BFM (passed as ``policy_kwargs={"bfm_init": ...}``).

    Attributes:
        bfm: The frozen :class:`~bfm_gym.models.BFM`; its networks are deep-copied.
        z: ``(z_dim,)`` float32 task latent held fixed in the copies (the zero-shot ``z_r``).
        critic: ``"fresh"``: SB3's default MLP critic; ``"bfm"``: :class:`BFMCritic`;
            ``"distill"``: SB3's MLP critic, regressed afterwards (:func:`distill_critic`).
        q_scale: ``c`` in ``Q = c F^T z`` (``||E[r B]|| / sqrt(d)``; 1 for goal tasks).
        init_std: SAC's initial action std (state independent).
        obs_mean: ``(obs_dim,)`` with ``obs_std``: a ``"distill"`` critic standardises its
            observations with these (fixed; the inference states' moments). None: raw.
        obs_std: ``(obs_dim,)``, positive.
        anchor: TD3 with ``critic="bfm"``: weight of the pull of the actor toward the BFM
            policy ``pi(s, z_r)`` (see :class:`BFMCritic`); 0: none.
    """

    bfm: Any
    z: np.ndarray
    critic: str = "fresh"
    q_scale: float = 1.0
    init_std: float = 0.2
    obs_mean: np.ndarray | None = None
    obs_std: np.ndarray | None = None
    anchor: float = 0.0


class BFMActorTrunk(BaseFeaturesExtractor):
    """``h(s, z_r)``: the BFM actor up to (not including) its last linear layer; z fixed.

    Args:
        observation_space: Flat ``Box`` of size ``obs_dim``.
        bfm: The BFM whose actor is copied (trainable copy; the BFM stays frozen).
        z: ``(z_dim,)`` latent registered as a buffer.

    Shapes:
        ``(batch, obs_dim) -> (batch, features_dim)``.
    """

    def __init__(self, observation_space: spaces.Box, bfm: Any, z: np.ndarray) -> None:
        actor = copy.deepcopy(bfm.model.actor).requires_grad_(True).train(True)
        hidden = actor.mlp[-1].in_features
        super().__init__(observation_space, features_dim=hidden)
        self.embed_s = actor.embed_s
        self.embed_sz = actor.embed_sz
        self.hidden = nn.Sequential(*list(actor.mlp)[:-1])
        self.register_buffer("z", torch.as_tensor(np.asarray(z, np.float32)).reshape(1, -1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        z = self.z.expand(obs.shape[0], -1)
        x = torch.cat([self.embed_s(obs), self.embed_sz(torch.cat([obs, z], dim=-1))], dim=-1)
        return self.hidden(x)


class ObsStandardizer(BaseFeaturesExtractor):
    """``(s - mean) / std`` with fixed buffers: the input layer of a distilled critic.

    Walker's velocities reach a spread of 20 where its angles stay within 1; a plain MLP fits
    the BFM's Q on standardised inputs markedly better in the same number of steps.

    Shapes:
        ``(batch, obs_dim) -> (batch, obs_dim)``.
    """

    def __init__(self, observation_space: spaces.Box, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__(observation_space, features_dim=int(np.prod(observation_space.shape)))
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)).reshape(1, -1))
        self.register_buffer("std", torch.as_tensor(np.asarray(std, np.float32)).reshape(1, -1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs.flatten(1) - self.mean) / self.std


def _make_critic(policy: Any, make: Any) -> Any:
    init: BFMInit = policy.bfm_init
    if init.critic == "bfm":
        return BFMCritic(policy.observation_space, policy.action_space, init,
                         normalize_images=policy.normalize_images).to(policy.device)
    if init.critic == "distill" and init.obs_mean is not None:
        return make(ObsStandardizer(policy.observation_space, init.obs_mean, init.obs_std))
    return make(None)


def _last_linear(bfm: Any) -> nn.Linear:
    return bfm.model.actor.mlp[-1]


class BFMCritic(BaseModel):
    """``Q_k(s, a) = c F_k(s, a, z)^T z`` for each of the E heads of a trainable copy of F.

    Has ``ContinuousCritic``'s interface: ``forward`` returns a tuple of E ``(batch, 1)``
    tensors, ``q1_forward`` the first; SB3's TD3/SAC take the min over them for targets.

    **Anchor** (``init.anchor = w > 0``): ``q1_forward`` then returns the TD3 actor's
    objective, ``Q_1(s, a) - w mean|Q_1| mean_j (a_j - pi_j(s, z_r))^2`` with ``pi`` a frozen
    copy of the BFM actor and ``mean|Q_1|`` the batch's, held constant: TD3+BC's
    behaviour-cloning term (Fujimoto and Gu 2021; ``w = 1 / alpha``, their alpha 2.5 is
    ``w = 0.4``), pulling toward the policy fine-tuning started from instead of toward dataset
    actions. SB3 calls ``q1_forward`` only for TD3's actor loss; the critic's own TD loss and
    targets use ``forward``, which the anchor leaves alone.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, init: BFMInit,
                 normalize_images: bool = True) -> None:
        super().__init__(observation_space, action_space,
                         features_extractor=FlattenExtractor(observation_space),
                         normalize_images=normalize_images)
        self.forward_map = copy.deepcopy(init.bfm.model.forward_map).requires_grad_(True).train(True)
        self.register_buffer("z", torch.as_tensor(np.asarray(init.z, np.float32)).reshape(1, -1))
        self.q_scale = float(init.q_scale)
        self.n_critics = int(init.bfm.ensemble)
        self.anchor = float(init.anchor)
        # the frozen BFM actor of the anchor, in a tuple: not a submodule, so it is neither in
        # the state dict (rebuilt from the BFM), nor trained, nor averaged into the target
        self._anchor_actor: tuple[nn.Module, ...] = (
            (copy.deepcopy(init.bfm.model.actor).requires_grad_(False).eval(),) if self.anchor else ()
        )

    def _q(self, s: torch.Tensor, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(E, batch, 1)`` values of the features ``s`` with ``z`` expanded to the batch."""
        return self.q_scale * (self.forward_map(s, actions, z) * z).sum(-1, keepdim=True)

    def _features(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.extract_features(obs, self.features_extractor)
        return s, self.z.expand(s.shape[0], -1)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self._q(*self._features(obs), actions).unbind(0))

    def q1_forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        s, z = self._features(obs)  # once, for the critic and the anchor's reference actor
        q = self._q(s, z, actions)[0]
        if not self._anchor_actor:
            return q
        with torch.no_grad():
            ref = self._anchor_actor[0](s, z)
        pull = ((actions - ref) ** 2).mean(-1, keepdim=True)
        return q - self.anchor * q.abs().mean().detach() * pull


def _check_actions(action_space: spaces.Space) -> None:
    if not isinstance(action_space, spaces.Box):
        raise TypeError(f"The BFM actor needs a Box action space, got {action_space}.")


class BFMTD3Policy(TD3Policy):
    """TD3 policy whose actor is the BFM actor at ``z_r`` (and critic optionally F's).

    Extra keyword: ``bfm_init`` (:class:`BFMInit`); every other argument is TD3Policy's.
    """

    def __init__(self, *args: Any, bfm_init: BFMInit, **kwargs: Any) -> None:
        self.bfm_init = bfm_init  # a plain object: fine before nn.Module.__init__
        super().__init__(*args, **kwargs)

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> TD3Actor:
        _check_actions(self.action_space)
        init = self.bfm_init
        trunk = BFMActorTrunk(self.observation_space, init.bfm, init.z)  # type: ignore[arg-type]
        kwargs = {**self.actor_kwargs, "net_arch": [], "features_extractor": trunk,
                  "features_dim": trunk.features_dim}
        actor = TD3Actor(**kwargs)
        with torch.no_grad():
            head = actor.mu[0]
            head.weight.copy_(_last_linear(init.bfm).weight)
            head.bias.copy_(_last_linear(init.bfm).bias)
        return actor.to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> Any:
        return _make_critic(self, lambda fe: TD3Policy.make_critic(self, fe or features_extractor))


class BFMSACPolicy(SACPolicy):
    """SAC policy whose mean is the BFM actor at ``z_r`` (and critic optionally F's).

    Extra keyword: ``bfm_init`` (:class:`BFMInit`); every other argument is SACPolicy's.
    """

    def __init__(self, *args: Any, bfm_init: BFMInit, **kwargs: Any) -> None:
        self.bfm_init = bfm_init
        super().__init__(*args, **kwargs)

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> SACActor:
        _check_actions(self.action_space)
        init = self.bfm_init
        if self.actor_kwargs.get("use_sde"):
            raise ValueError("BFMSACPolicy does not support gSDE (use_sde=True).")
        trunk = BFMActorTrunk(self.observation_space, init.bfm, init.z)  # type: ignore[arg-type]
        kwargs = {**self.actor_kwargs, "net_arch": [], "features_extractor": trunk,
                  "features_dim": trunk.features_dim}
        actor = SACActor(**kwargs)
        with torch.no_grad():
            actor.mu.weight.copy_(_last_linear(init.bfm).weight)  # pre-tanh layer: SB3 squashes
            actor.mu.bias.copy_(_last_linear(init.bfm).bias)
            actor.log_std.weight.zero_()
            actor.log_std.bias.fill_(math.log(init.init_std))
        return actor.to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> Any:
        return _make_critic(self, lambda fe: SACPolicy.make_critic(self, fe or features_extractor))


DISTILL_NOISE = (0.0, 0.2, 0.5)
"""Gaussian action noise around ``pi(s, z_r)`` of the distillation pairs (0.2: TD3's and the
BFM's exploration noise); each state also gets one uniform random action."""


def distillation_pairs(bfm: Any, z: np.ndarray, q_scale: float, states: np.ndarray,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(obs, actions, targets)`` for regressing a critic onto ``c F_k(s, a, z)^T z``.

    Each state gets ``len(DISTILL_NOISE) + 1`` actions: the BFM's mean action at ``z``, that
    action plus Gaussian noise of each nonzero std in :data:`DISTILL_NOISE` (clipped to
    [-1, 1]), and one uniform action, so the critic is fitted where fine-tuning acts and
    around it.

    Returns:
        ``(n k, obs_dim)`` and ``(n k, action_dim)`` float32, and the targets ``(E, n k)``.
    """
    mean = np.asarray(bfm.act(states, z), np.float32)
    actions = [np.clip(mean + std * rng.standard_normal(mean.shape), -1.0, 1.0) for std in DISTILL_NOISE]
    actions.append(rng.uniform(-1.0, 1.0, mean.shape))
    act = np.concatenate(actions).astype(np.float32)
    obs = np.tile(states, (len(actions), 1)).astype(np.float32)
    targets = q_scale * np.asarray(bfm.q(obs, act, z, reduce="none"), np.float32)
    return obs, act, targets


def distill_critic(critic: nn.Module, bfm: Any, z: np.ndarray, q_scale: float, states: np.ndarray,
                   *, steps: int = 2000, batch_size: int = 256, lr: float = 1e-3, seed: int = 0,
                   holdout: float = 0.1) -> float:
    """Regresses SB3 critic ``i`` onto ``c F_i(s, a, z)^T z`` (head ``i mod E``), in place.

    The states are split into a training part and a held-out part (``holdout`` of them,
    at least one); pairs come from :func:`distillation_pairs`. Plain MSE with Adam.

    Args:
        critic: An SB3 ``ContinuousCritic`` (``forward(obs, actions)`` -> tuple of ``(n, 1)``).
        bfm: The frozen BFM giving the targets.
        z: ``(z_dim,)`` the projected task latent ``z_r``.
        q_scale: ``c`` (``||E[r B]|| / sqrt(d)``).
        states: ``(n, obs_dim)`` states (the inference samples' next observations).
        steps: Adam steps; 0 skips the regression (the error is then that of the fresh critic).
        batch_size: Pairs per step.
        lr: Adam learning rate.
        seed: Seeds the pairs, the split and the minibatches.
        holdout: Fraction of the states held out.

    Returns:
        Held-out relative RMSE ``sqrt(mean (Q_i - target_i)^2) / std(target)`` over all critics.
    """
    rng = np.random.default_rng(seed)
    states = np.asarray(states, np.float32)[rng.permutation(len(states))]
    n_hold = max(1, round(holdout * len(states)))
    if n_hold >= len(states):
        raise ValueError(f"distill_critic needs at least 2 states; got {len(states)}.")
    obs, act, tgt = (torch.as_tensor(x) for x in distillation_pairs(bfm, z, q_scale, states[n_hold:], rng))
    h_obs, h_act, h_tgt = (torch.as_tensor(x) for x in distillation_pairs(bfm, z, q_scale, states[:n_hold], rng))
    heads = tgt.shape[0]
    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    critic.train(True)
    for _ in range(steps):
        idx = torch.randint(len(obs), (batch_size,), generator=gen)
        qs = critic(obs[idx], act[idx])
        loss = sum(((q.squeeze(-1) - tgt[i % heads, idx]) ** 2).mean() for i, q in enumerate(qs))
        optimizer.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        optimizer.step()
    with torch.no_grad():
        qs = critic(h_obs, h_act)
        err = torch.stack([((q.squeeze(-1) - h_tgt[i % heads]) ** 2).mean() for i, q in enumerate(qs)])
    return float(err.mean().sqrt() / h_tgt.std().clamp_min(1e-8))
