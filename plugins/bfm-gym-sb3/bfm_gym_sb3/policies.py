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

__all__ = ["BFMActorTrunk", "BFMCritic", "BFMInit", "BFMSACPolicy", "BFMTD3Policy"]


@dataclasses.dataclass(frozen=True)
class BFMInit:
    """What the policies copy from the BFM (passed as ``policy_kwargs={"bfm_init": ...}``).

    Attributes:
        bfm: The frozen :class:`~bfm_gym.models.BFM`; its networks are deep-copied.
        z: ``(z_dim,)`` float32 task latent held fixed in the copies (the zero-shot ``z_r``).
        critic: ``"fresh"``: SB3's default MLP critic; ``"bfm"``: :class:`BFMCritic`.
        q_scale: ``c`` in ``Q = c F^T z`` (``||E[r B]|| / sqrt(d)``; 1 for goal tasks).
        init_std: SAC's initial action std (state independent).
    """

    bfm: Any
    z: np.ndarray
    critic: str = "fresh"
    q_scale: float = 1.0
    init_std: float = 0.2


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


def _last_linear(bfm: Any) -> nn.Linear:
    return bfm.model.actor.mlp[-1]


class BFMCritic(BaseModel):
    """``Q_k(s, a) = c F_k(s, a, z)^T z`` for each of the E heads of a trainable copy of F.

    Has ``ContinuousCritic``'s interface: ``forward`` returns a tuple of E ``(batch, 1)``
    tensors, ``q1_forward`` the first; SB3's TD3/SAC take the min over them for targets.
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

    def _q(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        s = self.extract_features(obs, self.features_extractor)
        z = self.z.expand(s.shape[0], -1)
        return self.q_scale * (self.forward_map(s, actions, z) * z).sum(-1, keepdim=True)  # (E, batch, 1)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self._q(obs, actions).unbind(0))

    def q1_forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self._q(obs, actions)[0]


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
        if self.bfm_init.critic == "bfm":
            return BFMCritic(self.observation_space, self.action_space, self.bfm_init,  # type: ignore[arg-type]
                             normalize_images=self.normalize_images).to(self.device)
        return super().make_critic(features_extractor)


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
        if self.bfm_init.critic == "bfm":
            return BFMCritic(self.observation_space, self.action_space, self.bfm_init,  # type: ignore[arg-type]
                             normalize_images=self.normalize_images).to(self.device)
        return super().make_critic(features_extractor)
