"""The adapter protocol: an agent that searches the latent space of a frozen BFM.

An adapter acts on a :class:`~bfm_gym.wrappers.LatentActionWrapper` built with
``action_map="raw"``: its action *is* a latent z (projected onto the BFM's sphere by
the wrapper). The adaptation loop calls, per episode::

    adapter.on_episode_start(obs)
    while not done:
        z = adapter.act(obs)                       # (z_dim,) latent
        obs, reward, terminated, truncated, info = env.step(z)
        adapter.observe(info["transitions"])       # low-level (s, a, r, s') of the hold
    adapter.on_episode_end(episode_return)

``run_episode`` wraps that loop; adapters that drive the environment themselves (an SB3
``learn`` loop, say) override it. ``predict`` has Stable-Baselines3's signature so
``evaluate_policy`` works on any adapter. ``state_dict`` / ``load_state_dict`` (numpy arrays only) let an interrupted
run resume. ``needs`` declares what the adapter requires from the environment; the
adaptation runner checks it before the first step.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Literal

import numpy as np

from bfm_gym.config import Config

__all__ = ["Adapter", "AdapterConfig", "AdapterNeeds"]

@dataclasses.dataclass(frozen=True, kw_only=True)
class AdapterConfig(Config):
    """Base of adapter configs: frozen keyword-only dataclasses, a docstring per field;
    ``from_dict`` refuses unknown fields (see :class:`bfm_gym.config.Config`)."""


@dataclasses.dataclass(frozen=True)
class AdapterNeeds:
    """What an adapter requires; checked before the first step.

    Attributes:
        labels: ``"online"`` (rewards observed while acting), ``"dataset"`` (reward
            labels of dataset samples: the model's inference samples, passed to the
            constructor as ``samples=``), ``"dataset+online"`` (both: e.g. start from the
            zero-shot z, then learn from online rewards), or ``"none"``.
        state_resets: Needs resets to simulator states. The runner then records states in
            the transitions (``transitions.next_state``) and passes ``sim=``, a second plain
            environment of the same task whose ``reset(options={"state": s})`` restores
            ``s``; every step taken in it must be added to :attr:`Adapter.sim_steps`.
        z_hold: The hold it wants (``1`` per step, ``"episode"``), or None for any.
        acts: ``"latent"``: actions are latents on the latent wrapper (every built-in);
            ``"env"``: actions are the environment's own (weight fine-tuning baselines),
            and ``run_episode`` receives the plain environment.
    """

    labels: Literal["online", "dataset", "dataset+online", "none"] = "online"
    state_resets: bool = False
    z_hold: int | Literal["episode"] | None = None
    acts: Literal["latent", "env"] = "latent"

    def __post_init__(self) -> None:
        if self.labels not in ("online", "dataset", "dataset+online", "none"):
            raise ValueError(f"AdapterNeeds.labels must be online, dataset, dataset+online or none; got {self.labels!r}.")
        if self.acts not in ("latent", "env"):
            raise ValueError(f"AdapterNeeds.acts must be 'latent' or 'env'; got {self.acts!r}.")


class Adapter(abc.ABC):
    """Base class of adaptation methods.

    Args:
        bfm: The frozen model (:class:`~bfm_gym.models.BFM`).
        task: What to adapt to: the task's env spec or a dict with at least
            ``{"domain": ..., "task": ...}`` (adapters that use dataset labels need it).
        config: Config dataclass instance or a dict of its fields.
        seed: Seeds every RNG the adapter owns.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[AdapterConfig]] = AdapterConfig
    needs: ClassVar[AdapterNeeds] = AdapterNeeds()

    def __init__(self, bfm: Any, task: dict[str, Any], config: AdapterConfig | dict | None = None,
                 seed: int = 0) -> None:
        self.bfm = bfm
        self.task = dict(task)
        if isinstance(config, AdapterConfig):
            if not isinstance(config, self.config_class):
                raise TypeError(
                    f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}."
                )
            self.config = config
        else:
            self.config = self.config_class.from_dict(config)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.z: np.ndarray = np.zeros(bfm.z_dim, dtype=np.float32)
        self.labels_used = 0
        """Online reward labels this adapter has consumed (counted by its ``observe``)."""
        self.sim_steps = 0
        """Env steps taken outside the recorded episodes (e.g. lookahead rollouts in ``sim``);
        the runner adds them to the budget, so comparisons stay at equal env steps."""

    @classmethod
    def needs_for(cls, config: AdapterConfig) -> AdapterNeeds:
        """What this adapter needs with ``config`` (default: the class's ``needs``).

        Override when an option changes the needs, e.g. a warm start from dataset labels.
        """
        return cls.needs

    # -- acting -------------------------------------------------------------------------

    @abc.abstractmethod
    def act(self, obs: np.ndarray) -> np.ndarray:
        """The latent to act with from ``obs``: ``(z_dim,)`` float32 on the sphere."""

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """SB3's ``predict``: batched observations -> batched latents (``(n, z_dim)``)."""
        obs = np.asarray(observation)
        if obs.ndim == 1:
            return self.act(obs), state
        return np.stack([self.act(o) for o in obs]), state

    def observe(self, transitions: Any) -> dict[str, float]:
        """Learns from the low-level transitions of one wrapper step; returns metrics."""
        return {}

    def eval_z(self) -> np.ndarray:
        """The latent an evaluation episode holds fixed: the adapter's current estimate of
        the task's z, ``(z_dim,)`` (default: ``self.z``). An adapter whose ``z`` is an
        exploration choice (a UCB pick, a posterior draw) overrides this with its point
        estimate, so that evaluation scores what it learned rather than how it explores."""
        return self.z.copy()

    def on_episode_start(self, obs: np.ndarray) -> None:  # noqa: B027 - optional hook
        """Called after each reset."""

    def on_episode_end(self, episode_return: float) -> dict[str, float]:
        """Called when an episode ends; returns metrics."""
        return {}

    def run_episode(self, env: Any, seed: int, learn: bool = True) -> tuple[float, int]:
        """Plays one episode on ``env`` and returns ``(return, env steps)``.

        ``learn=True``: the adaptation loop of the module docstring. ``learn=False``: an
        evaluation episode with :meth:`eval_z` held fixed; nothing is learned. ``env``
        is the latent wrapper (``needs.acts == "latent"``) or the plain env (``"env"``).
        Evaluation episodes are played by :func:`bfm_gym.evaluation.rollout.play_episode`.
        Steps counted here are those of ``env`` only; lookahead steps go to ``sim_steps``.
        """
        if not learn:
            from bfm_gym.evaluation.rollout import play_episode

            fixed = np.asarray(self.eval_z(), dtype=np.float32)
            return play_episode(env, seed, lambda obs: fixed)
        obs, _ = env.reset(seed=seed)
        self.on_episode_start(obs)
        total, steps, done = 0.0, 0, False
        while not done:
            obs, r, term, trunc, info = env.step(self.act(obs))
            transitions = info.get("transitions")
            steps += len(transitions) if transitions is not None else 1
            if transitions is not None:
                self.observe(transitions)
            total += float(r)
            done = bool(term or trunc)
        self.on_episode_end(total)
        return total, steps

    # -- persistence --------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to resume (numpy arrays only)."""
        import json

        return {"z": self.z.copy(),
                "rng": np.array(json.dumps(self.rng.bit_generator.state)),
                "labels_used": np.array(self.labels_used, dtype=np.int64),
                "sim_steps": np.array(self.sim_steps, dtype=np.int64)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        import json

        self.z = np.array(state["z"], dtype=np.float32)
        self.rng.bit_generator.state = json.loads(str(state["rng"]))
        self.labels_used = int(state["labels_used"])
        self.sim_steps = int(state.get("sim_steps", 0))
