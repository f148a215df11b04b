"""``rela``: Residual Latent Adaptation (Sikchi et al., arXiv 2504.07896;
docs/algorithms.md#rela).

The pre-trained BFM (``phi``, ``psi = F``, ``pi``) stays frozen; only the task latent z and a
small residual critic are learned from online transitions. The zero-shot reward weights
``z_r = E[r(s') B(s')]`` (least squares of the reward on ``phi``, from the model's dataset
samples) are kept **fixed**, and the true value of ``pi_z`` splits exactly into::

    Q_r^{pi_z}(s, a) = psi(s, a, z)^T z_r  +  Q_res(s, a)
                       \\_ frozen BFM _/      \\_ value of the residual reward r - phi(s')^T z_r _/

``Q_res`` (an MLP, 2 x 64 by default, optionally also fed z) is trained off-policy by TD on a
replay buffer of online transitions, with the target ``(r - phi(s')^T z_r) + gamma *
Q_res_targ(s', pi(s', z))`` (policy-mean target action, Polyak target network, no terminal
on truncation). The latent climbs::

    J(z) = E_{s ~ D}[ agg_k psi_k(s, pi(s, z), z)^T z_r + Q_res(s, pi(s, z)) ]

by Adam through the frozen actor and F (``agg_k``: the pessimistic ensemble value, mean
minus 0.5 |difference| = min over two heads, docs/algorithms.md#pitfall-ensemble), then z is projected back
onto the sqrt(d) sphere. J is evaluated at ``proj(z)``, so its gradient is the tangent one.
The adapter acts with ``z = proj(z_r)`` (the zero-shot latent) during the warm-up steps, then
with the current z, one latent per env step. Replayed actions are the env's own; every bfm_gym
domain acts in [-1, 1], pi's range, so the critic sees both on one scale.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from bfm_gym.adapters._common import (EpisodeSelection, SelectsFromEpisodes, check_select,
                                      reward_weights, weighted_value)
from bfm_gym.adapters.base import Adapter, AdapterConfig, AdapterNeeds

__all__ = ["ReLAAdapter", "ReLAConfig", "ResidualCritic"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReLAConfig(AdapterConfig):
    hidden_dim: int = 64
    """Width of the residual critic's hidden layers (paper: "2 layers, 64 hidden"; a larger
    critic is reported to be less stable)."""
    hidden_layers: int = 2
    """Hidden layers of the residual critic."""
    q_uses_z: bool = False
    """Feed z to the residual critic too, ``Q_res(s, a, z)`` (the paper leaves this open;
    this project's default: off, ``Q_res(s, a)``)."""
    lr_z: float = 1e-5
    """Adam learning rate of the latent (UNVERIFIED in the paper). Measured on both shipped
    models (3 seeds x 50 episodes, ``update_every=8``): at 1e-4, a third-party
    re-implementation's value, z climbs into latents that F overrates (median over tasks
    -30 % on the maze, -69 % on walker); at 1e-5, -2 % and -7 % (docs/adapters.md)."""
    lr_q: float = 3e-4
    """Adam learning rate of the residual critic (this project's choice: the TD3 critic default)."""
    batch_size: int = 256
    """Transitions per gradient step (this project's choice; CPU-sized)."""
    warmup_steps: int = 1000
    """Online steps collected with the zero-shot latent before the first update (this
    project's choice: one DMC episode; more warm-up softens the initial drop)."""
    update_every: int = 8
    """Env steps between update rounds (this project's choice, measured). Every committed ReLA
    measurement, the one that chose ``lr_z`` included, ran at 8: 0.99 of zero-shot on walker in
    ``benchmarks/results/walker-compare``. At 1 with the same ``lr_z``, z takes 8x more steps
    per episode and FB's walker fell to 0.36 (``benchmarks/results/compare_families_walker``);
    8 is also 8x cheaper per env step."""
    gradient_steps: int = 1
    """Critic + latent gradient steps per round (update-to-data ratio =
    gradient_steps / update_every)."""
    critic_steps: int = 1
    """Critic TD steps per latent step (each on its own minibatch, with its Polyak step): more
    than 1 fits ``Q_res`` more closely before z follows its gradient (this project's option;
    1: the paper's one critic step per latent step)."""
    f_weight: float = 1.0
    """Weight of F's value ``psi^T z_r`` in the objective z climbs (1: the paper's ``J``; 0:
    z climbs the residual critic alone; the critic's target is unchanged). On the stop-40 walker
    F's value gradient at the zero-shot latent points away from the better latents
    (``benchmarks/rela_direction.py``; docs/adapters.md), so this option measures what the
    critic alone finds."""
    f_path: str = "full"
    """How z enters F's value ``psi(s, pi(s, z), z)^T z_r`` in the gradient z follows.
    ``"full"`` (the paper's ``J``): through the action and F's latent input. ``"action"``
    (this project's option): through the action alone, F's latent input held at the current z
    without a gradient, ``psi(s, pi(s, z), sg(z))`` (the deterministic policy gradient an
    actor-critic takes through its critic). The value is the same; only the gradient differs.
    On the shipped models a 5 degree turn along the full gradient loses a median 13.5 % of the
    task return, along the action path 4.6 % (``benchmarks/gradient_check.py``; docs/adapters.md,
    "Does F's value gradient lead to better policies?"). As ReLA's path (5 seeds, 20 episodes)
    it did not beat the default: median -0.9 % on walker (full: -0.5 %), -1.2 % on quadruped
    (full: +3.5 %); docs/adapters.md, "ReLA through the action alone"."""
    tau: float = 0.005
    """Polyak rate of the residual critic's target network (this project's choice: TD3's)."""
    pessimism: float = 0.5
    """Penalty on the F heads' disagreement in ``psi^T z_r`` (0.5 = min over two heads)."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions (oldest overwritten); storage grows as it fills."""
    select: str = "race"
    """Which latent the real episodes play and evaluation holds
    (:class:`~bfm_gym.adapters._common.EpisodeSelection`). ``"mu"`` (the paper): the current z,
    replaced after every update round. ``"best_episode"``: each real episode holds z from its
    start and evaluation holds the played latent with the highest return. ``"race"`` (the
    default, this project's departure from the paper): real episodes alternate between the
    zero-shot latent and the current z, and evaluation holds the current z while its last
    ``select_window`` episodes have a higher median and mean return than the zero-shot ones. Learning
    goes on off-policy from whatever plays, and the real episodes' returns cost no extra env
    step. Over the 16 tasks of the four shipped models (2 seeds, 20 episodes, same seeds and
    start states): ``mu`` median gain -1.5 %, mean -1.2 %, 9 tasks below zero-shot, worst -24 %
    (walker flip); ``race`` +0.4 %, +2.9 %, 1 task below, worst -12 % (maze top_right)
    (docs/adapters.md, "Choosing from the real episodes' returns")."""
    select_window: int = 3
    """Episodes of the current z whose median and mean ``select="race"`` compares."""
    select_base: int = 0
    """``select="race"`` only: zero-shot episodes after which the zero-shot latent stops
    playing, so that every later real episode plays the current z (0: it plays every other
    episode throughout). Evaluation still compares the last ``select_window`` episodes with all
    zero-shot ones."""

    def __post_init__(self) -> None:
        positive = {"hidden_dim": self.hidden_dim, "hidden_layers": self.hidden_layers,
                    "lr_z": self.lr_z, "lr_q": self.lr_q, "batch_size": self.batch_size,
                    "update_every": self.update_every, "gradient_steps": self.gradient_steps,
                    "critic_steps": self.critic_steps,
                    "buffer_size": self.buffer_size}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"ReLAConfig.{name} must be > 0; got {value!r}.")
        if self.warmup_steps < 0:
            raise ValueError(f"ReLAConfig.warmup_steps must be >= 0; got {self.warmup_steps}.")
        if not 0 < self.tau <= 1:
            raise ValueError(f"ReLAConfig.tau must be in (0, 1]; got {self.tau}.")
        if not 0.0 <= self.f_weight <= 1.0:
            raise ValueError(f"ReLAConfig.f_weight must be in [0, 1]; got {self.f_weight}.")
        if self.pessimism < 0:
            raise ValueError(f"ReLAConfig.pessimism must be >= 0; got {self.pessimism}.")
        if self.f_path not in ("full", "action"):
            raise ValueError(f"ReLAConfig.f_path must be 'full' or 'action'; got {self.f_path!r}.")
        check_select("ReLAConfig", self.select, self.select_window, self.select_base)


class ResidualCritic(nn.Module):
    """``Q_res(s, a[, z])``: ``[Linear(h) -> ReLU] x layers -> Linear(1)``.

    Hidden weights are orthogonal (gain sqrt 2, as the FB networks) and the output layer is
    zero, so ``Q_res`` starts at 0 and the first latent steps follow the BFM's own value.

    Args:
        in_dim: ``obs_dim + action_dim (+ z_dim)``.
        hidden_dim: Width h.
        hidden_layers: Number of hidden layers.
        generator: Seeds the initialisation.
    """

    def __init__(self, in_dim: int, hidden_dim: int, hidden_layers: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(hidden_layers):
            linear = nn.Linear(in_dim if i == 0 else hidden_dim, hidden_dim)
            nn.init.orthogonal_(linear.weight, gain=math.sqrt(2.0), generator=generator)
            nn.init.zeros_(linear.bias)
            layers += [linear, nn.ReLU()]
        out = nn.Linear(hidden_dim, 1)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(*layers, out)

    def forward(self, obs: torch.Tensor, action: torch.Tensor,
                z: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, obs_dim), (batch, action_dim)[, (batch, z_dim)] -> (batch,)``."""
        x = torch.cat([obs, action] if z is None else [obs, action, z], dim=-1)
        return self.net(x).squeeze(-1)


class _Replay:
    """Ring buffer of online transitions on the model's device; storage doubles as it fills."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], capacity: int, device: torch.device) -> None:
        self.capacity, self.device = capacity, device
        self.data = {k: torch.empty((0, *s), device=device) for k, s in shapes.items()}
        self.size = 0
        self.ptr = 0

    def _reserve(self, rows: int) -> None:
        alloc = next(iter(self.data.values())).shape[0]
        if rows <= alloc:
            return
        new = min(self.capacity, max(rows, 2 * alloc, 1024))
        for k, v in self.data.items():
            grown = torch.empty((new, *v.shape[1:]), device=self.device)
            grown[: self.size] = v[: self.size]
            self.data[k] = grown

    def add(self, rows: dict[str, torch.Tensor]) -> None:
        n = next(iter(rows.values())).shape[0]
        if n > self.capacity:
            rows = {k: v[-self.capacity:] for k, v in rows.items()}
            n = self.capacity
        self._reserve(min(self.capacity, self.size + n))
        idx = (self.ptr + torch.arange(n, device=self.device)) % self.capacity
        for k, v in rows.items():
            self.data[k][idx] = v
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.capacity, self.size + n)

    def sample(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.data.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {f"buffer/{k}": v[: self.size].cpu().numpy() for k, v in self.data.items()}
        out["buffer/size"] = np.array(self.size, dtype=np.int64)
        out["buffer/ptr"] = np.array(self.ptr, dtype=np.int64)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.size, self.ptr = int(state["buffer/size"]), int(state["buffer/ptr"])
        for k in self.data:
            arr = torch.as_tensor(np.asarray(state[f"buffer/{k}"]), device=self.device)
            self.data[k] = arr.to(torch.float32).clone()


def _optimizer_state(opt: torch.optim.Optimizer, prefix: str) -> dict[str, np.ndarray]:
    out = {}
    for i, per_param in opt.state_dict()["state"].items():
        for k, v in per_param.items():
            out[f"{prefix}/{i}/{k}"] = v.detach().cpu().numpy() if torch.is_tensor(v) else np.array(v)
    return out


def _load_optimizer_state(opt: torch.optim.Optimizer, state: dict[str, np.ndarray], prefix: str) -> None:
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, arr in state.items():
        if key.startswith(prefix + "/"):
            _, i, k = key.split("/")
            per_param.setdefault(int(i), {})[k] = torch.as_tensor(np.array(arr))
    sd = opt.state_dict()
    sd["state"] = per_param
    opt.load_state_dict(sd)


class ReLAAdapter(SelectsFromEpisodes, Adapter):
    """ReLA: latent gradient ascent on the frozen BFM's value plus a learned residual critic.

    Args:
        bfm: The frozen model.
        task: ``{"domain", "task", "goal"}`` (the zero-shot inference relabels ``samples``).
        config: :class:`ReLAConfig` or a dict of its fields.
        seed: Seeds the critic initialisation and the minibatch generator.
        samples: The model's inference samples (reward labels of dataset states).

    Raises:
        ValueError: No samples, or no sample with a nonzero task reward.
    """

    name = "rela"
    config_class = ReLAConfig
    needs = AdapterNeeds(labels="dataset+online", z_hold=1)

    def __init__(self, bfm: Any, task: dict[str, Any], config: Any = None, seed: int = 0,
                 samples: Any = None) -> None:
        super().__init__(bfm, task, config, seed)
        c = self.config
        device = bfm.device
        self.z_r = torch.as_tensor(reward_weights(bfm, samples, self.task, "ReLA"), device=device)
        """Fixed reward weights ``(z_dim,)`` (unprojected least squares; see the module docstring)."""
        self.z = np.asarray(bfm.project(self.z_r.cpu().numpy()), dtype=np.float32)
        self._z = nn.Parameter(torch.as_tensor(self.z, device=device).clone())
        init = torch.Generator().manual_seed(self.seed)
        in_dim = bfm.obs_dim + bfm.action_dim + (bfm.z_dim if c.q_uses_z else 0)
        self.critic = ResidualCritic(in_dim, c.hidden_dim, c.hidden_layers, generator=init).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.z_optimizer = torch.optim.Adam([self._z], lr=c.lr_z)
        self.q_optimizer = torch.optim.Adam(self.critic.parameters(), lr=c.lr_q)
        self.generator = torch.Generator(device=device).manual_seed(self.seed)
        self.buffer = _Replay({"obs": (bfm.obs_dim,), "action": (bfm.action_dim,), "residual": (),
                               "next_obs": (bfm.obs_dim,), "terminal": ()}, c.buffer_size, device)
        self.steps = 0
        """Online transitions observed."""
        self.updates = 0
        """Gradient steps taken (critic and latent)."""
        self._model = bfm  # only the BFM protocol: phi, act, psi, project (any family)
        self.selection = EpisodeSelection(c.select, self.z, c.select_window, c.select_base)
        """Played latents and their real returns (``select`` other than ``"mu"``)."""

    # -- acting ---------------------------------------------------------------------------

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.z

    def learned_latent(self) -> np.ndarray:
        return self._z.detach().cpu().numpy()

    def observe(self, transitions: Any) -> dict[str, float]:
        """Stores the hold's transitions with their residual reward; runs due update rounds."""
        c, device = self.config, self.z_r.device
        n = len(transitions)

        def rows(x: Any) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)

        next_obs = rows(transitions.next_obs)
        # residual reward r - phi(s')^T z_r (reward on the next state, docs/algorithms.md#pitfall-next-state)
        residual = rows(transitions.reward) - self._model.phi(next_obs) @ self.z_r
        self.buffer.add({"obs": rows(transitions.obs), "action": rows(transitions.action),
                         "residual": residual, "next_obs": next_obs,
                         "terminal": rows(transitions.terminated)})  # truncation is not terminal
        self.labels_used += n
        rounds = sum(1 for t in range(self.steps + 1, self.steps + n + 1)
                     if t >= max(c.warmup_steps, 1) and t % c.update_every == 0)
        self.steps += n
        for _ in range(rounds * c.gradient_steps):
            self._update()
        if rounds and c.select == "mu":
            self.z = self._z.detach().cpu().numpy().copy()
        return {}

    # -- learning -------------------------------------------------------------------------

    def _q_res(self, net: nn.Module, obs: torch.Tensor, action: torch.Tensor,
               z: torch.Tensor) -> torch.Tensor:
        return net(obs, action, z if self.config.q_uses_z else None)

    def _update(self) -> None:
        """``critic_steps`` TD steps of the residual critic (each followed by a Polyak step but
        the last), one ascent step of z on the last minibatch, one Polyak step."""
        for _ in range(self.config.critic_steps - 1):
            self._critic_step(self._sample())
            self._polyak()
        batch = self._sample()
        self._critic_step(batch)
        self._latent_step(batch)
        self._polyak()
        self.updates += 1

    def _sample(self) -> dict[str, torch.Tensor]:
        idx = torch.randint(self.buffer.size, (self.config.batch_size,), generator=self.generator,
                            device=self.z_r.device)
        return self.buffer.sample(idx)

    def _polyak(self) -> None:
        with torch.no_grad():
            for p, p_targ in zip(self.critic.parameters(), self.critic_target.parameters(), strict=True):
                p_targ.lerp_(p, self.config.tau)

    def _critic_step(self, batch: dict[str, torch.Tensor]) -> None:
        """One TD step of ``Q_res`` on ``batch``."""
        c, model = self.config, self._model
        obs, next_obs = batch["obs"], batch["next_obs"]

        # residual critic: y = (r - phi(s')^T z_r) + gamma * Q_res_targ(s', pi(s', z))
        z_rows = self._z.detach().expand(c.batch_size, -1)
        with torch.no_grad():
            next_action = model.act(next_obs, z_rows)  # torch in, torch out on the same device
            target = batch["residual"] + self.bfm.gamma * (1.0 - batch["terminal"]) * self._q_res(
                self.critic_target, next_obs, next_action, z_rows)
        q_loss = (self._q_res(self.critic, obs, batch["action"], z_rows) - target).pow(2).mean()
        self.q_optimizer.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_optimizer.step()

    def objective_terms(self, obs: torch.Tensor, z: torch.Tensor, *, with_f: bool = True,
                        pessimism: float | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:  # fmt: skip
        """Per state of ``obs``, the two terms of the objective z climbs, at ``proj(z)`` and
        differentiable in ``z``: F's value ``agg_k psi_k(s, pi(s, z), z)^T z_r`` (None unless
        ``with_f``; heads aggregated with ``pessimism``, by default the config's; with
        ``f_path="action"`` F's latent input carries no gradient) and ``Q_res(s, pi(s, z))``.
        The latent step and ``benchmarks/rela_direction.py`` use it."""
        model = self._model
        zz = model.project(z).expand(len(obs), -1)
        action = model.act(obs, zz, grad=True)
        q_res = self._q_res(self.critic, obs, action, zz)
        if not with_f:
            return None, q_res
        agg = self.config.pessimism if pessimism is None else pessimism
        f_latent = zz.detach() if self.config.f_path == "action" else zz
        value = weighted_value(model, obs, f_latent, action, self.z_r, agg)
        return value, q_res

    def _latent_step(self, batch: dict[str, torch.Tensor]) -> None:
        """One ascent step of z on ``batch``'s states, projected back onto the sphere."""
        c, model = self.config, self._model
        obs = batch["obs"]
        # latent: ascend J(z) = E_s[f_weight agg_k psi_k(s, pi(s,z), z)^T z_r + Q_res(s, pi(s,z))]
        value, per_state = self.objective_terms(obs, self._z, with_f=c.f_weight > 0)
        if value is not None:
            per_state = per_state + (value if c.f_weight == 1 else c.f_weight * value)
        objective = per_state.mean()
        (grad,) = torch.autograd.grad(-objective, [self._z])  # only z: the critic is fit by TD
        self._z.grad = grad
        self.z_optimizer.step()
        with torch.no_grad():
            self._z.copy_(model.project(self._z))

    # -- persistence ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        state = super().state_dict()
        state["z_param"] = self._z.detach().cpu().numpy().copy()
        for prefix, net in (("critic", self.critic), ("critic_target", self.critic_target)):
            state.update({f"{prefix}/{k}": v.detach().cpu().numpy().copy()
                          for k, v in net.state_dict().items()})
        state.update(_optimizer_state(self.z_optimizer, "z_optimizer"))
        state.update(_optimizer_state(self.q_optimizer, "q_optimizer"))
        state.update(self.buffer.state_dict())
        state["torch_generator"] = self.generator.get_state().numpy().copy()
        state["steps"] = np.array(self.steps, dtype=np.int64)
        state["updates"] = np.array(self.updates, dtype=np.int64)
        state.update(self.selection.state_dict())
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)
        device = self.z_r.device
        with torch.no_grad():
            self._z.copy_(torch.as_tensor(np.asarray(state["z_param"]), device=device))
        for prefix, net in (("critic", self.critic), ("critic_target", self.critic_target)):
            net.load_state_dict({k: torch.as_tensor(np.asarray(state[f"{prefix}/{k}"]))
                                 for k in net.state_dict()})
        _load_optimizer_state(self.z_optimizer, state, "z_optimizer")
        _load_optimizer_state(self.q_optimizer, state, "q_optimizer")
        self.buffer.load_state_dict(state)
        self.generator.set_state(torch.as_tensor(np.asarray(state["torch_generator"]), dtype=torch.uint8))
        self.steps = int(state["steps"])
        self.updates = int(state["updates"])
        self.selection.load_state_dict(state)
