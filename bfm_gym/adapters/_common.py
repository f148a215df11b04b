"""Pieces shared by the latent-search adapters ReLA and LoLA (docs/algorithms.md#rela, #lola).

Both keep the reward weights ``z_r`` of the zero-shot inference fixed and value a
latent z by ``psi(s, pi(s, z), z)^T z_r`` aggregated pessimistically over the F heads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["SELECT_MODES", "EpisodeSelection", "SelectsFromEpisodes", "aggregate_heads", "check_select",
           "reward_weights", "weighted_value"]

SELECT_MODES = ("mu", "best_episode", "race")
"""Values of the ``select`` option of ReLA and LoLA (see :class:`EpisodeSelection`)."""


def check_select(owner: str, select: str, window: int, base: int = 0) -> None:
    """Validates a config's ``select``, ``select_window`` and ``select_base`` fields.

    Raises:
        ValueError: Naming ``owner.select``, ``owner.select_window`` or ``owner.select_base``.
    """
    if select not in SELECT_MODES:
        raise ValueError(f"{owner}.select must be one of {SELECT_MODES}; got {select!r}.")
    if window < 1:
        raise ValueError(f"{owner}.select_window must be >= 1; got {window}.")
    if base < 0:
        raise ValueError(
            f"{owner}.select_base must be >= 0 (0: the zero-shot latent plays every other real "
            f"episode throughout); got {base}."
        )


def reward_weights(bfm: Any, samples: Any, task: dict[str, Any], owner: str) -> np.ndarray:
    """The fixed reward weights ``z_r`` from dataset labels, ``(z_dim,)`` float32.

    This is the least-squares fit of the reward on the model's ``phi`` (for FB ``E[r(s')
    B(s')]``, the least-squares weights on ``phi = Cov(B)^{-1} B``; for HILP the regression
    itself), *not* projected: ``phi(s)^T z_r`` then estimates ``r(s)`` on the reward's own
    scale, so it can be summed with observed rewards. ``proj(z_r)`` is the zero-shot latent
    (the same z as :func:`bfm_gym.evaluation.zero_shot.task_z`). A goal task relabels the
    samples with the goal's reach reward, as ``task_z`` does.

    Args:
        bfm: The frozen model.
        samples: An :class:`~bfm_gym.evaluation.zero_shot.InferenceSet`, or None.
        task: ``{"task": name or None, "goal": (x, y) or None}``.
        owner: Adapter name for error messages.

    Raises:
        ValueError: No samples, samples of another domain, or no sample with a nonzero reward.
    """
    from bfm_gym.models.inference import reward_z

    if samples is None:
        raise ValueError(
            f"{owner} starts from the zero-shot latent and needs dataset samples (samples=...); "
            "run it through `adapt` with a model folder that ships inference samples."
        )
    return reward_z(bfm, samples, task.get("task"), goal=task.get("goal"), project=False,
                    owner=owner)


def aggregate_heads(values: torch.Tensor, pessimism: float) -> torch.Tensor:
    """Pessimistic ensemble value ``mean_k X_k - pessimism * unc`` over the first axis.

    ``unc = sum_{k != l} |X_k - X_l| / (E^2 - E)`` (docs/algorithms.md#pitfall-ensemble); with two
    heads and ``pessimism = 0.5`` this is ``min(X_1, X_2)``.

    Args:
        values: ``(E, ...)`` per-head values.
        pessimism: Weight of the disagreement penalty (0: plain mean).

    Returns:
        ``values.shape[1:]``.
    """
    e = values.shape[0]
    mean = values.mean(0)
    if e == 1 or pessimism == 0:
        return mean
    unc = (values.unsqueeze(0) - values.unsqueeze(1)).abs().sum((0, 1)) / (e * e - e)
    return mean - pessimism * unc


def weighted_value(bfm: Any, obs: torch.Tensor, z: torch.Tensor, action: torch.Tensor,
                   weights: torch.Tensor, pessimism: float) -> torch.Tensor:  # fmt: skip
    """F's value of the reward with weights ``weights`` for ``pi_z`` taking ``action``:
    ``agg_k psi_k(s, a, z)^T weights`` per state, differentiable (heads aggregated by
    :func:`aggregate_heads`). ReLA's latent step climbs it; ``gradient_check`` tests its slope.

    Args:
        bfm: The frozen model.
        obs: ``(batch, obs_dim)``.
        z: ``(batch, z_dim)`` latents on the sphere.
        action: ``(batch, action_dim)``.
        weights: ``(z_dim,)`` reward weights (``phi^T weights ~ r``).
        pessimism: Head aggregation (0: mean).

    Returns:
        ``(batch,)``.
    """
    return aggregate_heads((bfm.psi(obs, z, action, grad=True) * weights).sum(-1), pessimism)


class EpisodeSelection:
    """What the real episodes hold and what evaluation holds: the ``select`` option of ReLA
    and LoLA (``"best_episode"`` and ``"race"`` are this project's additions, not the papers').

    - ``"mu"`` (the papers): the adapter's current latent, replaced after every update, plays
      and is evaluated; this class then does nothing.
    - ``"best_episode"``: each real episode holds the adapter's latent as it was when the
      episode began; evaluation holds the played latent whose real episode returned the most.
    - ``"race"``: real episodes alternate between the zero-shot latent (episodes 0, 2, 4, ...)
      and the adapter's current latent (1, 3, ...), each held for the whole episode (with
      ``base`` > 0 the zero-shot latent stops playing after ``base`` episodes, and every later
      episode plays the current latent); evaluation
      holds the current latent while its last ``window`` episodes beat all zero-shot episodes
      on both the median and the mean return, else the zero-shot latent. One episode where the
      body falls over (a cheetah on its back returns 13 where it otherwise returns 180) swings
      a mean either way: a median alone ignores a fall of the current latent (188, 80, 198
      has median 188 against the zero-shot's 185, and that latent fell on the evaluation
      starts), a mean alone rewards a fall of the zero-shot latent. Both must agree.

    Learning goes on as usual in every mode (ReLA learns off-policy from whatever plays, LoLA
    from its lookaheads). Both added modes read the real episodes' own returns, already inside
    the budget: no extra env step is taken. Single episodes start from different states, so one
    lucky start can win ``best_episode``; ``race`` compares several episodes for that reason.

    Args:
        mode: One of :data:`SELECT_MODES`.
        zero_shot: The zero-shot latent ``(z_dim,)``.
        window: Episodes of the current latent whose median and mean ``race`` compares.
        base: ``race`` only: zero-shot episodes after which the zero-shot latent stops playing
            (0: it plays every other episode throughout).
    """

    def __init__(self, mode: str, zero_shot: np.ndarray, window: int = 3, base: int = 0) -> None:
        check_select("EpisodeSelection", mode, window, base)
        self.mode = mode
        self.zero_shot = np.array(zero_shot, dtype=np.float32)
        self.window = int(window)
        self.base = int(base)
        self.played: list[np.ndarray] = []
        """Latents held by finished real episodes."""
        self.returns: list[float] = []
        """Their real episode returns, in the same order."""
        self.was_zero_shot: list[bool] = []
        """Whether each played episode was the zero-shot latent's turn (``race``)."""

    def _zero_shot_turn(self) -> bool:
        """Whether the next real episode is the zero-shot latent's (``race``)."""
        if self.mode != "race":
            return False
        n = len(self.played)
        return n % 2 == 0 and (self.base == 0 or sum(self.was_zero_shot) < self.base)

    def episode_latent(self, current: np.ndarray) -> np.ndarray | None:
        """The latent the next real episode holds (None for ``mu``: the adapter decides)."""
        if self.mode == "mu":
            return None
        if self._zero_shot_turn():
            return self.zero_shot.copy()
        return np.array(current, dtype=np.float32)

    def add(self, z: np.ndarray, episode_return: float) -> None:
        """Records that a finished real episode held ``z`` and returned ``episode_return``."""
        if self.mode == "mu":
            return
        self.was_zero_shot.append(self._zero_shot_turn())
        self.played.append(np.array(z, dtype=np.float32))
        self.returns.append(float(episode_return))

    def eval_latent(self, current: np.ndarray) -> np.ndarray:
        """The latent evaluation holds, given the adapter's ``current`` one."""
        if self.mode == "mu":
            return np.array(current, dtype=np.float32)
        if self.mode == "best_episode":
            if not self.played:
                return np.array(current, dtype=np.float32)
            return self.played[int(np.argmax(self.returns))].copy()
        base = [r for r, zs in zip(self.returns, self.was_zero_shot, strict=True) if zs]
        challenger = [r for r, zs in zip(self.returns, self.was_zero_shot, strict=True) if not zs]
        recent = challenger[-self.window:]
        if (base and recent and np.median(recent) > np.median(base)
                and np.mean(recent) > np.mean(base)):
            return np.array(current, dtype=np.float32)
        return self.zero_shot.copy()

    def state_dict(self) -> dict[str, np.ndarray]:
        d = self.zero_shot.shape[0]
        return {"select/played": np.array(self.played, dtype=np.float32).reshape(-1, d),
                "select/returns": np.array(self.returns, dtype=np.float64),
                "select/was_zero_shot": np.array(self.was_zero_shot, dtype=bool)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        d = self.zero_shot.shape[0]
        self.played = [np.array(z, dtype=np.float32) for z in state.get("select/played", np.zeros((0, d)))]
        self.returns = [float(x) for x in state.get("select/returns", np.zeros(0))]
        if "select/was_zero_shot" in state:
            self.was_zero_shot = [bool(x) for x in state["select/was_zero_shot"]]
        else:  # saved before the flags were stored: race's zero-shot turns were the even ones
            self.was_zero_shot = [self.mode == "race" and i % 2 == 0 for i in range(len(self.played))]


class SelectsFromEpisodes:
    """Mixin giving an adapter the ``select`` option through the episode hooks.

    The adapter sets ``self.selection`` (an :class:`EpisodeSelection`) and implements
    :meth:`learned_latent`; the mixin then decides what each real episode holds (``self.z``)
    and what evaluation holds. Put it before :class:`~bfm_gym.adapters.base.Adapter` in the
    bases; an adapter that overrides ``on_episode_start`` calls ``super()``.
    """

    selection: EpisodeSelection
    z: np.ndarray

    def learned_latent(self) -> np.ndarray:
        """The adapter's current learned latent ``(z_dim,)`` on the sphere."""
        raise NotImplementedError

    def on_episode_start(self, obs: np.ndarray) -> None:
        held = self.selection.episode_latent(self.learned_latent())
        if held is not None:
            self.z = held

    def on_episode_end(self, episode_return: float) -> dict[str, float]:
        self.selection.add(self.z, episode_return)
        return {}

    def eval_z(self) -> np.ndarray:
        """The latent evaluation holds (:class:`EpisodeSelection`): ``mu``, the current
        latent; ``best_episode``, the played latent with the highest real return; ``race``, the
        learned latent or the zero-shot latent, whichever is ahead."""
        current = self.learned_latent() if self.selection.mode == "race" else self.z
        return self.selection.eval_latent(current)
