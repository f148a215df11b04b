"""Stable-Baselines3 adapters: weight fine-tuning of the BFM actor, and SB3 in latent space.

Fine-tuning (``acts="env"``; the ReLA/LoLA papers' "actor fine-tuning" baseline):

* ``sb3-td3-finetune``, ``sb3-sac-finetune``: TD3 / SAC acting in the environment's own
  action space. The actor starts as the BFM actor ``pi(s, z_r)`` at the zero-shot latent
  ``z_r`` inferred from the model's reward-labelled inference samples
  (:func:`bfm_gym.evaluation.zero_shot.task_z`, in :func:`_zero_shot`). The critic
  (``critic``) is SB3's fresh MLP (``fresh``), a trainable copy of F with
  ``Q_k = F_k(s, a, z_r)^T E[r B]`` (``bfm``), or SB3's MLP regressed onto that Q on the
  inference states before training (``distill``); see :mod:`bfm_gym_sb3.policies`.
  ``warmup_steps`` first trains the critic alone with the actor frozen (:class:`ActorWarmup`).

Latent space (``acts="latent"``): ``sb3-sac-latent``, ``sb3-td3-latent``, ``sb3-ppo-latent``
choose a latent every ``z_hold`` steps. SB3 sees a bounded ``Box(-1, 1, (d,))`` action,
mapped to ``z = proj(a) = sqrt(d) a / ||a||`` (the latent wrapper's ``"sphere"`` map; the
zero action maps to the all-ones latent). With ``z_init="zero-shot"`` the policy's last
layer is scaled down and its bias set so that the first action points at ``z_r``, and
the exploration noise is scaled to the first action (``latent_noise``), so the latents
played while learning start around ``z_r`` too.

Every config has ``learning_rate`` (``--set learning_rate=3e-4``), SB3's Adam rate of all
its networks: the knob of a learning-rate grid.

Every adapter trains with SB3's own ``learn``: one :meth:`run_episode` call is one
``model.learn(total_timesteps=<episode length>, reset_num_timesteps=False)``; before it,
``set_env(..., force_reset=True)`` and ``set_random_seed(seed)`` make the episode start from
``reset(seed=seed)`` (this also reseeds the global ``random``/numpy/torch RNGs, as SB3 does).
``learn=False`` plays a deterministic episode with ``predict``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv

from bfm_gym.adapters.base import Adapter, AdapterConfig, AdapterNeeds
from bfm_gym_sb3.policies import BFMInit, BFMSACPolicy, BFMTD3Policy, distill_critic
from bfm_gym_sb3.state import load_training_state, training_state

__all__ = [
    "PPOLatentAdapter",
    "PPOLatentConfig",
    "SACFinetuneAdapter",
    "SACFinetuneConfig",
    "SACLatentAdapter",
    "SACLatentConfig",
    "TD3FinetuneAdapter",
    "TD3FinetuneConfig",
    "TD3LatentAdapter",
    "TD3LatentConfig",
]

# --------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class OffPolicyConfig(AdapterConfig):
    """Settings shared by the TD3 and SAC adapters (SB3's names and meanings)."""

    learning_rate: float = 3e-4
    """Adam learning rate of actor and critic."""
    buffer_size: int = 100_000
    """Replay buffer capacity (transitions); the filled part is saved in ``state.npz``."""
    learning_starts: int = 0
    """SB3 acts uniformly at random and does not train for this many steps; 0 keeps the
    initial policy acting from the first step."""
    batch_size: int = 256
    """Minibatch size of each gradient step."""
    tau: float = 0.005
    """Polyak coefficient of the target networks."""
    gamma: float | None = None
    """Discount; None: the BFM's own discount."""
    gradient_steps: int = 1
    """Gradient steps per env step."""
    critic_hidden: int = 256
    """Width of a fresh MLP critic."""
    critic_layers: int = 2
    """Hidden layers of a fresh MLP critic."""

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.buffer_size < 1 or self.batch_size < 1:
            raise ValueError(f"{type(self).__name__}: learning_rate > 0, buffer_size >= 1 and "
                             "batch_size >= 1 required.")
        if self.learning_starts < 0 or self.gradient_steps < 1 or not 0 < self.tau <= 1:
            raise ValueError(f"{type(self).__name__}: learning_starts >= 0, gradient_steps >= 1 "
                             "and 0 < tau <= 1 required.")
        if self.gamma is not None and not 0 <= self.gamma <= 1:
            raise ValueError(f"{type(self).__name__}.gamma must be in [0, 1]; got {self.gamma}.")
        if self.critic_hidden < 1 or self.critic_layers < 0:
            raise ValueError(f"{type(self).__name__}: critic_hidden >= 1, critic_layers >= 0.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class _TD3Options(AdapterConfig):
    action_noise_std: float = 0.2
    """Std of the Gaussian exploration noise added to the actor's action (the BFM's 0.2)."""
    policy_delay: int = 2
    """Critic updates per actor update."""
    target_policy_noise: float = 0.2
    """Std of the target policy smoothing noise."""
    target_noise_clip: float = 0.5
    """Clip of the target policy smoothing noise."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class _SACOptions(AdapterConfig):
    ent_coef: str | float = "auto_0.1"
    """Entropy coefficient: a number, ``"auto"`` or ``"auto_<initial>"`` (learned)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class FinetuneConfig(OffPolicyConfig):
    """Settings of the fine-tuning adapters."""

    critic: Literal["fresh", "bfm", "distill"] = "bfm"
    """``fresh``: SB3's MLP critic, randomly initialised; ``bfm``: one critic per F head,
    a trainable copy of F with ``Q_k = F_k(s, a, z_r)^T E[r B]``; ``distill``: SB3's MLP
    critic regressed onto that ``Q_k`` before fine-tuning starts (see
    :func:`~bfm_gym_sb3.policies.distill_critic`). Default ``bfm``: with it fine-tuning kept
    most of the zero-shot return on walker stand/walk once the actor trained (last
    evaluation 0.61-1.13 of zero-shot, at most 0.27 with the MLP critics;
    ``benchmarks/results/sb3_finetune_init_walker.json``); it costs about 3 times the
    time per step of the MLP critics."""
    warmup_steps: int = 1000
    """The first this many env steps train the critic only: the actor is frozen (no
    gradient reaches it), so it keeps playing the BFM policy while the critic fits the
    online rewards. Default: one 1000-step episode (measured with the ``bfm`` critic in
    ``benchmarks/results/sb3_finetune_init_walker.json``)."""
    distill_steps: int = 2000
    """With ``critic="distill"``: Adam steps of the regression (batch ``batch_size``)."""
    distill_lr: float = 3e-3
    """With ``critic="distill"``: Adam learning rate of the regression (walker stand, 2000
    steps: held-out relative RMSE 0.44 at 3e-3, 0.47 at 1e-3)."""
    max_samples: int = 50_000
    """Inference samples used for the zero-shot ``z_r`` (and as distillation states)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.critic not in ("fresh", "bfm", "distill"):
            raise ValueError(f"{type(self).__name__}.critic must be 'fresh', 'bfm' or 'distill'; "
                             f"got {self.critic!r}.")
        if self.warmup_steps < 0 or self.distill_steps < 0 or self.distill_lr <= 0:
            raise ValueError(f"{type(self).__name__}: warmup_steps >= 0, distill_steps >= 0 and "
                             "distill_lr > 0 required.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TD3FinetuneConfig(FinetuneConfig, _TD3Options):
    """``sb3-td3-finetune``."""

    anchor: float = 0.0
    """Weight of a behaviour-cloning pull of the actor toward the BFM policy ``pi(s, z_r)`` it
    started as (TD3+BC's term, scaled by the batch's mean ``|Q|``: 0.4 is TD3+BC's alpha of
    2.5; see :class:`~bfm_gym_sb3.policies.BFMCritic`). Needs ``critic="bfm"``. 0 (default):
    plain TD3. On sparse maze tasks the actor's first updates on replay data without a single
    reward moved its actions by ~0.9 of the [-1, 1] range within one episode
    (``benchmarks/td3_critic_probe.py``); the anchor is the standard remedy. Measured (seed
    0, four tasks each, ``benchmarks/results/compare_{maze,walker}_td3_anchor0.4``): 0.4
    holds the maze at the zero-shot level (IQM 1.00 against 0.50 at 0), but on walker it
    keeps TD3 from learning the run gait (168 against 542 at 0), hence the default 0."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.anchor >= 0 and math.isfinite(self.anchor)):
            raise ValueError(f"TD3FinetuneConfig.anchor must be a finite number >= 0; got {self.anchor!r}.")
        if self.anchor and self.critic != "bfm":
            raise ValueError(f"TD3FinetuneConfig.anchor={self.anchor} needs critic='bfm' (the anchor "
                             f"lives in the BFM critic's actor objective); got critic={self.critic!r}. "
                             "Set critic=bfm or anchor=0.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SACFinetuneConfig(FinetuneConfig, _SACOptions):
    """``sb3-sac-finetune``."""

    init_std: float = 0.2
    """Initial (state-independent) action std before squashing."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init_std <= 0:
            raise ValueError(f"SACFinetuneConfig.init_std must be > 0; got {self.init_std}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class _LatentOptions(AdapterConfig):
    z_init: Literal["zero-shot", "random"] = "zero-shot"
    """``zero-shot``: the first action points at ``z_r`` (needs dataset labels);
    ``random``: SB3's own initialisation."""
    init_scale: float = 0.01
    """With ``z_init="zero-shot"``: factor on the last layer's weights (small: the action
    barely depends on the state at first)."""
    latent_noise: float | None = 0.5
    """With ``z_init="zero-shot"``: exploration noise relative to the first mean action
    (norm of the noise / norm of the action, so the latents played at first have a cosine
    of about ``1 / sqrt(1 + latent_noise^2)`` with ``z_r``). It sets the per-dimension std
    ``latent_noise / sqrt(d)`` of TD3's action and target-smoothing noise (clip 2.5 std),
    of SAC's initial log-std head and of PPO's initial log std, replacing
    ``action_noise_std`` / ``target_policy_noise`` / ``target_noise_clip`` / ``log_std_init``.
    Those per-dimension stds would otherwise swamp the mean: the first action has norm 1,
    noise of std 0.2 per dimension has norm ``0.2 sqrt(d)`` (1.4 at d = 50). None: keep
    the algorithm's own noise settings."""
    hidden: int = 256
    """Width of the policy (and critic) MLPs."""
    layers: int = 2
    """Hidden layers of the policy (and critic) MLPs."""

    def _check_latent(self) -> None:
        if self.z_init not in ("zero-shot", "random"):
            raise ValueError(f"{type(self).__name__}.z_init must be 'zero-shot' or 'random'; got {self.z_init!r}.")
        if self.hidden < 1 or self.layers < 0 or self.init_scale < 0:
            raise ValueError(f"{type(self).__name__}: hidden >= 1, layers >= 0, init_scale >= 0.")
        if self.latent_noise is not None and self.latent_noise <= 0:
            raise ValueError(f"{type(self).__name__}.latent_noise must be > 0 or None; got {self.latent_noise}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TD3LatentConfig(OffPolicyConfig, _TD3Options, _LatentOptions):
    """``sb3-td3-latent``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_latent()


@dataclasses.dataclass(frozen=True, kw_only=True)
class SACLatentConfig(OffPolicyConfig, _SACOptions, _LatentOptions):
    """``sb3-sac-latent``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_latent()


@dataclasses.dataclass(frozen=True, kw_only=True)
class PPOLatentConfig(_LatentOptions):
    """``sb3-ppo-latent``."""

    learning_rate: float = 3e-4
    """Adam learning rate."""
    n_steps: int = 0
    """Wrapper steps per rollout; 0: one episode (one PPO update per episode). Otherwise it
    must equal the episode length in wrapper steps."""
    batch_size: int = 0
    """Minibatch size; 0: the largest divisor of ``n_steps`` up to 64."""
    n_epochs: int = 10
    """Passes over each rollout."""
    gamma: float = 0.99
    """Discount (per wrapper step)."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_range: float = 0.2
    """PPO clip range."""
    ent_coef: float = 0.0
    """Entropy bonus."""
    log_std_init: float = -1.0
    """Initial log std of the Gaussian policy (actions in [-1, 1]); replaced by
    ``log(latent_noise / sqrt(d))`` when ``latent_noise`` applies."""
    hidden: int = 64
    """Width of the policy and value MLPs."""

    def __post_init__(self) -> None:
        self._check_latent()
        if self.n_steps < 0 or self.batch_size < 0 or self.n_epochs < 1 or self.learning_rate <= 0:
            raise ValueError("PPOLatentConfig: n_steps >= 0, batch_size >= 0, n_epochs >= 1 and "
                             "learning_rate > 0 required.")


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def episode_steps(env: gym.Env) -> int:
    """Length of an episode of ``env`` in its own steps (time limits and latent holds).

    Walks the wrapper chain: the smallest ``TimeLimit``, bfm_gym's 1000-step episodes, and
    for a :class:`~bfm_gym.wrappers.LatentActionWrapper` ``ceil(inner / z_hold)``.
    """
    from gymnasium.wrappers import TimeLimit

    from bfm_gym.envs.dmc_env import EPISODE_STEPS
    from bfm_gym.wrappers import LatentActionWrapper

    outer: int | None = None  # limits above a latent wrapper (wrapper steps)
    inner: int | None = None  # limits below it (env steps)
    hold: int | str | None = None
    e: Any = env
    while True:
        if isinstance(e, LatentActionWrapper):
            hold = e.z_hold
        if isinstance(e, TimeLimit):
            n = int(e._max_episode_steps)  # gymnasium keeps the limit here (no public accessor)
            if hold is None:
                outer = n if outer is None else min(outer, n)
            else:
                inner = n if inner is None else min(inner, n)
        if not isinstance(e, gym.Wrapper):
            break
        e = e.env
    if hold is None:
        return min(outer or EPISODE_STEPS, EPISODE_STEPS)
    length = min(inner or EPISODE_STEPS, EPISODE_STEPS)
    steps = 1 if hold == "episode" else math.ceil(length / int(hold))
    return min(outer, steps) if outer is not None else steps


class SphereActions(gym.ActionWrapper):
    """Bounded latent actions for SB3: ``Box(-1, 1, (d,))`` -> ``z = proj(a)`` on a raw latent wrapper.

    Args:
        env: A :class:`~bfm_gym.wrappers.LatentActionWrapper` (``action_map="raw"``).
        bfm: Its model (``project`` handles auto-regressive blocks).
    """

    def __init__(self, env: gym.Env, bfm: Any) -> None:
        super().__init__(env)
        self.bfm = bfm
        self.action_space = gym.spaces.Box(-1.0, 1.0, (bfm.z_dim,), np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        return to_z(self.bfm, action)


def to_z(bfm: Any, action: np.ndarray) -> np.ndarray:
    """``proj(a)`` (rows), the all-ones latent for a zero action; float32."""
    a = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
    a = np.where(np.linalg.norm(a, axis=-1, keepdims=True) < 1e-12, np.float32(1.0), a)
    return np.asarray(bfm.project(a), dtype=np.float32)


class _SpacesEnv(gym.Env):
    """Carries the spaces an SB3 model is built with; never stepped (set_env replaces it)."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any:
        raise RuntimeError("placeholder env: run_episode sets the real environment")

    def step(self, action: Any) -> Any:
        raise RuntimeError("placeholder env: run_episode sets the real environment")


class ActorWarmup(BaseCallback):
    """Freezes the actor (``requires_grad=False``) while ``num_timesteps <= steps``.

    SB3 trains after each env step; with the actor's parameters out of the autograd graph
    its loss still back-propagates into the critic (whose gradients SB3 zeroes before each
    critic step) and Adam skips parameters without gradients, so TD3's and SAC's actor
    updates leave the actor unchanged while the critic learns. TD3's target actor is a
    Polyak average of an unchanged actor and stays equal to it up to rounding.
    """

    def __init__(self, steps: int) -> None:
        super().__init__(verbose=0)
        self.steps = int(steps)

    def _freeze(self, next_step: int) -> None:
        self.model.actor.requires_grad_(next_step > self.steps)

    def _on_training_start(self) -> None:
        self._freeze(self.model.num_timesteps + 1)

    def _on_step(self) -> bool:  # SB3 counted this step; train() for it comes next
        self._freeze(self.model.num_timesteps)
        return True


class _EpisodeCallback(BaseCallback):
    """Sums the episode's reward and low-level steps while ``learn`` runs."""

    def __init__(self) -> None:
        super().__init__(verbose=0)
        self.total, self.steps, self.done, self.z = 0.0, 0, False, None
        self.extra_steps = 0

    def _on_step(self) -> bool:
        if self.done:  # only if an episode ended before its time limit
            self.extra_steps += 1
            return True
        info = self.locals["infos"][0]
        self.total += float(self.locals["rewards"][0])
        transitions = info.get("transitions")
        self.steps += len(transitions) if transitions is not None else 1
        if info.get("z") is not None:
            self.z = np.asarray(info["z"], dtype=np.float32)
        self.done = bool(self.locals["dones"][0])
        return True


def _zero_shot(bfm: Any, task: dict[str, Any], samples: Any, max_samples: int,
               rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """``(z_r, c)``: the zero-shot latent and ``c = ||E[r B]|| / sqrt(d)`` (the reward
    weights' norm on ``max_samples`` of the labels), both from the one inference module."""
    from bfm_gym.models.inference import reward_z

    if samples is None:
        raise ValueError("This adapter starts from the zero-shot latent and needs the model's "
                         "inference samples (samples=...); run it through `adapt` with a model "
                         "folder made by `bfm-gym pretrain`.")
    which = {"task": task.get("task"), "goal": task.get("goal"), "owner": "sb3 zero-shot start"}
    z = np.asarray(reward_z(bfm, samples, **which), np.float32)
    raw = np.asarray(reward_z(bfm, samples, project=False, max_samples=max_samples, rng=rng, **which))
    return z, float(np.linalg.norm(raw) / math.sqrt(bfm.z_dim))


def _task_spaces(task: dict[str, Any], bfm: Any = None) -> tuple[gym.Space, gym.Space]:
    """The spaces of the task's env: a bfm_gym domain, or the Gymnasium env ``bfm`` records."""
    from bfm_gym.envs.gym_env import env_info_of, make_task_env

    env = make_task_env(task["domain"], task.get("task"), goal=task.get("goal"),
                        env_info=None if bfm is None else env_info_of(bfm))
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


# --------------------------------------------------------------------------------------
# Base adapter
# --------------------------------------------------------------------------------------


class SB3Adapter(Adapter):
    """Common machinery: an SB3 model, one ``learn`` call per episode, state as arrays."""

    latent: ClassVar[bool] = False

    def __init__(self, bfm: Any, task: dict[str, Any], config: Any = None, seed: int = 0,
                 samples: Any = None) -> None:
        super().__init__(bfm, task, config, seed)
        self.z_r: np.ndarray | None = None
        self.q_scale = 1.0
        self._samples = samples
        if self._wants_zero_shot():
            self.z_r, self.q_scale = _zero_shot(bfm, self.task, samples,
                                                getattr(self.config, "max_samples", 50_000), self.rng)
            self.z = self.z_r.copy()
        else:
            self.z = np.asarray(bfm.sample_z(1, seed=seed)[0], np.float32)
        obs_space, act_space = _task_spaces(self.task, bfm)
        if self.latent:
            act_space = gym.spaces.Box(-1.0, 1.0, (bfm.z_dim,), np.float32)
        self._spaces = (obs_space, act_space)
        self.model: Any = None
        self._pending: dict[str, np.ndarray] | None = None
        self._vec: tuple[Any, Any] | None = None  # (env given to run_episode, its VecEnv)
        self.model = self._build(None)

    # -- hooks for subclasses ------------------------------------------------------------
    def _wants_zero_shot(self) -> bool:
        return True

    def _build(self, n_steps: int | None) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _placeholder(self) -> gym.Env:
        return _SpacesEnv(*self._spaces)

    def _callbacks(self) -> list[BaseCallback]:
        """Extra SB3 callbacks of every ``learn`` call (e.g. the actor warm-up)."""
        return []

    # -- acting --------------------------------------------------------------------------
    def _require_model(self) -> Any:
        if self.model is None:
            raise RuntimeError(f"{self.name} builds its SB3 model on the first episode, when the "
                               "episode length is known (or set n_steps).")
        return self.model

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action: a latent (latent adapters) or an env action (fine-tuning)."""
        action, _ = self._require_model().predict(np.asarray(obs), deterministic=True)
        if self.latent:
            self.z = to_z(self.bfm, action)
            return self.z
        return np.asarray(action, np.float32)

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        action, state = self._require_model().predict(np.asarray(observation), state, episode_start,
                                                      deterministic)
        return (to_z(self.bfm, action) if self.latent else action), state

    # -- episodes ------------------------------------------------------------------------
    def _vec_env(self, env: gym.Env) -> Any:
        if self._vec is None or self._vec[0] is not env:
            inner = SphereActions(env, self.bfm) if self.latent else env
            self._vec = (env, DummyVecEnv([lambda: Monitor(inner)]))
        return self._vec[1]

    def run_episode(self, env: Any, seed: int, learn: bool = True) -> tuple[float, int]:
        if not learn:
            return self._evaluate(env, seed)
        length = episode_steps(env)
        self._built_for(env)
        if self._pending is not None:
            load_training_state(self.model, self._pending)
            self._pending = None
        vec = self._vec_env(env)
        self.model.set_env(vec, force_reset=True)
        self.model.set_random_seed(seed)  # also seeds the next reset of vec
        callback = _EpisodeCallback()
        # ALGO LOGIC: one episode of SB3's own training loop
        self.model.learn(total_timesteps=length, reset_num_timesteps=False,
                         callback=[callback, *self._callbacks()], progress_bar=False)
        if callback.extra_steps:
            warnings.warn(f"{self.name}: the episode ended {callback.extra_steps} steps before "
                          "its time limit; those steps began the next episode.", stacklevel=2)
        if self.latent and callback.z is not None:
            self.z = callback.z
        self.labels_used += callback.steps
        return callback.total, callback.steps

    def _built_for(self, env: Any) -> Any:
        """The SB3 model, built now for ``env``'s episode length if this is its first use (an
        evaluation before any training episode acts with the initial policy)."""
        if self.model is None:
            self.model = self._build(episode_steps(env))
        return self.model

    def _evaluate(self, env: Any, seed: int) -> tuple[float, int]:
        model = self._built_for(env)
        obs, _ = env.reset(seed=seed)
        total, steps, done = 0.0, 0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            if self.latent:
                action = to_z(self.bfm, action)
            obs, r, term, trunc, info = env.step(action)
            transitions = info.get("transitions")
            steps += len(transitions) if transitions is not None else 1
            total += float(r)
            done = bool(term or trunc)
        return total, steps

    # -- persistence ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Base adapter state plus SB3's (:mod:`bfm_gym_sb3.state`), keys ``sb3/...``."""
        state = super().state_dict()
        if self.model is not None:
            state.update({f"sb3/{k}": v for k, v in training_state(self.model).items()})
        elif self._pending is not None:
            state.update({f"sb3/{k}": v for k, v in self._pending.items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)
        sb3 = {k[4:]: v for k, v in state.items() if k.startswith("sb3/")}
        if not sb3:
            return
        if self.model is None:
            self._pending = sb3  # applied once the model exists (first episode)
        else:
            load_training_state(self.model, sb3)

    def _gamma(self) -> float:
        gamma = getattr(self.config, "gamma", None)
        return float(self.bfm.gamma if gamma is None else gamma)


# --------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------


class _FinetuneAdapter(SB3Adapter):
    needs = AdapterNeeds(labels="dataset+online", acts="env")

    def _init(self) -> BFMInit:
        c = self.config
        mean = std = None
        if c.critic == "distill":
            states = np.asarray(self._samples.next_obs, np.float32)
            mean, std = states.mean(0), np.maximum(states.std(0), 1e-3)
        return BFMInit(bfm=self.bfm, z=self.z_r, critic=c.critic, q_scale=self.q_scale,  # type: ignore[arg-type]
                       init_std=getattr(c, "init_std", 0.2), obs_mean=mean, obs_std=std,
                       anchor=getattr(c, "anchor", 0.0))

    def _off_policy_kwargs(self) -> dict[str, Any]:
        c = self.config
        return dict(learning_rate=c.learning_rate, buffer_size=c.buffer_size,
                    learning_starts=c.learning_starts, batch_size=c.batch_size, tau=c.tau,
                    gamma=self._gamma(), train_freq=(1, "step"), gradient_steps=c.gradient_steps,
                    seed=self.seed, device="cpu", verbose=0)

    def _policy_kwargs(self) -> dict[str, Any]:
        c = self.config
        qf = [c.critic_hidden] * c.critic_layers
        n_critics = {"bfm": self.bfm.ensemble, "distill": max(2, self.bfm.ensemble)}.get(c.critic, 2)
        return {"bfm_init": self._init(), "net_arch": {"pi": [], "qf": qf}, "n_critics": n_critics}

    def _callbacks(self) -> list[BaseCallback]:
        return [ActorWarmup(self.config.warmup_steps)] if self.config.warmup_steps else []

    def _finish(self, model: Any) -> Any:
        """Distils the critic (``critic="distill"``) on the inference samples' states."""
        self.distill_error: float | None = None
        """Held-out relative RMSE of the distilled critic (None without distillation)."""
        c = self.config
        if c.critic == "distill":
            states = np.asarray(self._samples.next_obs, np.float32)
            if len(states) > c.max_samples:
                states = states[np.sort(self.rng.choice(len(states), c.max_samples, replace=False))]
            self.distill_error = distill_critic(
                model.critic, self.bfm, self.z_r, self.q_scale, states, steps=c.distill_steps,  # type: ignore[arg-type]
                batch_size=c.batch_size, lr=c.distill_lr, seed=self.seed)
            model.critic_target.load_state_dict(model.critic.state_dict())
        return model


class TD3FinetuneAdapter(_FinetuneAdapter):
    """TD3 whose actor starts as the BFM actor at the zero-shot latent (weights fine-tuned)."""

    name = "sb3-td3-finetune"
    config_class = TD3FinetuneConfig

    def _build(self, n_steps: int | None) -> Any:
        from stable_baselines3 import TD3

        c = self.config
        d = self._spaces[1].shape[0]
        noise = NormalActionNoise(np.zeros(d), np.full(d, c.action_noise_std)) if c.action_noise_std > 0 else None
        return self._finish(TD3(
            BFMTD3Policy, self._placeholder(), action_noise=noise, policy_delay=c.policy_delay,
            target_policy_noise=c.target_policy_noise, target_noise_clip=c.target_noise_clip,
            policy_kwargs=self._policy_kwargs(), **self._off_policy_kwargs()))


class SACFinetuneAdapter(_FinetuneAdapter):
    """SAC whose mean action starts as the BFM actor at the zero-shot latent."""

    name = "sb3-sac-finetune"
    config_class = SACFinetuneConfig

    def _build(self, n_steps: int | None) -> Any:
        from stable_baselines3 import SAC

        return self._finish(SAC(BFMSACPolicy, self._placeholder(), ent_coef=self.config.ent_coef,
                                policy_kwargs=self._policy_kwargs(), **self._off_policy_kwargs()))


# --------------------------------------------------------------------------------------
# Latent space
# --------------------------------------------------------------------------------------


class _LatentAdapter(SB3Adapter):
    latent = True
    needs = AdapterNeeds(labels="online", acts="latent")

    @classmethod
    def needs_for(cls, config: Any) -> AdapterNeeds:
        if config.z_init == "zero-shot":
            return dataclasses.replace(cls.needs, labels="dataset+online")
        return cls.needs

    def _wants_zero_shot(self) -> bool:
        return self.config.z_init == "zero-shot"

    def _net_arch(self) -> list[int]:
        return [self.config.hidden] * self.config.layers

    def _noise_std(self) -> float | None:
        """Per-dimension exploration std from ``latent_noise`` (None: the algorithm's own)."""
        if self.z_r is None or self.config.latent_noise is None:
            return None
        return float(self.config.latent_noise) / math.sqrt(self.bfm.z_dim)

    def _aim(self, layer: torch.nn.Linear, squashed: bool) -> None:
        """Makes ``layer``'s output ~ the action ``z_r / sqrt(d)`` (pre-tanh when squashed)."""
        if self.z_r is None:
            return
        a0 = self.z_r / math.sqrt(self.bfm.z_dim)
        target = np.arctanh(np.clip(a0, -0.995, 0.995)) if squashed else a0
        with torch.no_grad():
            layer.weight.mul_(self.config.init_scale)
            layer.bias.copy_(torch.as_tensor(target, dtype=layer.bias.dtype))

    def _off_policy_kwargs(self) -> dict[str, Any]:
        c = self.config
        return dict(learning_rate=c.learning_rate, buffer_size=c.buffer_size,
                    learning_starts=c.learning_starts, batch_size=c.batch_size, tau=c.tau,
                    gamma=self._gamma(), train_freq=(1, "step"), gradient_steps=c.gradient_steps,
                    seed=self.seed, device="cpu", verbose=0)


class SACLatentAdapter(_LatentAdapter):
    """SAC choosing latents (bounded actions mapped to the sphere)."""

    name = "sb3-sac-latent"
    config_class = SACLatentConfig

    def _build(self, n_steps: int | None) -> Any:
        from stable_baselines3 import SAC

        net = self._net_arch()
        model = SAC("MlpPolicy", self._placeholder(), ent_coef=self.config.ent_coef,
                    policy_kwargs={"net_arch": {"pi": net, "qf": net}}, **self._off_policy_kwargs())
        self._aim(model.actor.mu, squashed=True)
        std = self._noise_std()
        if std is not None:  # pre-tanh std; tanh' is close to 1 at the small first mean
            with torch.no_grad():
                model.actor.log_std.weight.mul_(self.config.init_scale)
                model.actor.log_std.bias.fill_(math.log(std))
        return model


class TD3LatentAdapter(_LatentAdapter):
    """TD3 choosing latents (bounded actions mapped to the sphere)."""

    name = "sb3-td3-latent"
    config_class = TD3LatentConfig

    def _build(self, n_steps: int | None) -> Any:
        from stable_baselines3 import TD3

        c = self.config
        d = self.bfm.z_dim
        std = self._noise_std()
        explore, smooth, clip = ((c.action_noise_std, c.target_policy_noise, c.target_noise_clip)
                                 if std is None else (std, std, 2.5 * std))
        noise = NormalActionNoise(np.zeros(d), np.full(d, explore)) if explore > 0 else None
        net = self._net_arch()
        model = TD3("MlpPolicy", self._placeholder(), action_noise=noise, policy_delay=c.policy_delay,
                    target_policy_noise=smooth, target_noise_clip=clip,
                    policy_kwargs={"net_arch": {"pi": net, "qf": net}}, **self._off_policy_kwargs())
        linears = [m for m in model.actor.mu if isinstance(m, torch.nn.Linear)]
        self._aim(linears[-1], squashed=True)
        model.actor_target.load_state_dict(model.actor.state_dict())
        return model


class PPOLatentAdapter(_LatentAdapter):
    """PPO choosing latents; one rollout (and one update) per episode by default."""

    name = "sb3-ppo-latent"
    config_class = PPOLatentConfig

    def _gamma(self) -> float:
        return float(self.config.gamma)

    def _build(self, n_steps: int | None) -> Any:
        from stable_baselines3 import PPO

        c = self.config
        steps = c.n_steps or n_steps
        if steps is None:
            return None  # built on the first episode, when its length is known
        if n_steps is not None and steps != n_steps:
            raise ValueError(f"sb3-ppo-latent: n_steps={steps} but an episode has {n_steps} wrapper "
                             "steps; use --set n_steps=0 (one episode per rollout).")
        batch = c.batch_size or max(b for b in range(1, min(64, steps) + 1) if steps % b == 0)
        net = self._net_arch()
        model = PPO("MlpPolicy", self._placeholder(), learning_rate=c.learning_rate, n_steps=steps,
                    batch_size=batch, n_epochs=c.n_epochs, gamma=c.gamma, gae_lambda=c.gae_lambda,
                    clip_range=c.clip_range, ent_coef=c.ent_coef, seed=self.seed, device="cpu",
                    verbose=0, policy_kwargs={"net_arch": {"pi": net, "vf": net},
                                              "log_std_init": self._log_std_init()})
        self._aim(model.policy.action_net, squashed=False)
        return model

    def _log_std_init(self) -> float:
        std = self._noise_std()
        return float(self.config.log_std_init) if std is None else math.log(std)

    def run_episode(self, env: Any, seed: int, learn: bool = True) -> tuple[float, int]:
        if learn and self.model is not None and self.model.n_steps != episode_steps(env):
            raise ValueError(f"sb3-ppo-latent: n_steps={self.model.n_steps} but an episode has "
                             f"{episode_steps(env)} wrapper steps; use --set n_steps=0.")
        return super().run_episode(env, seed, learn)
