"""Offline FB training: one FB update per batch (:class:`~bfm_gym.models.fb.agent.FBAgent`);
the loop, logging, evaluation, checkpoints and exact resume are
:class:`~bfm_gym.models._trainer.FamilyTrainer`'s.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> obs = rng.normal(size=(256, 3)).astype("float32")
    >>> act = rng.uniform(-1, 1, size=(256, 2)).astype("float32")
    >>> replay = OfflineReplay(obs, act, obs + 0.1 * np.pad(act, ((0, 0), (0, 1))))
    >>> trainer = FBTrainer(FBConfig.preset("point_mass_maze", "tiny"), obs_dim=3, action_dim=2, device="cpu", seed=0, threads=None)
    >>> history = trainer.train(replay, num_updates=4, log_every=2, progress=False)
    >>> [int(row["step"]) for row in history]
    [2, 4]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .._trainer import FamilyTrainer, latest_checkpoint, list_checkpoints
from .agent import FBAgent, draw_noise
from .config import FBConfig
from .handle import BFM
from .model import FBModel
from .replay import OfflineReplay, TransitionBatch

__all__ = ["FBTrainer", "latest_checkpoint", "list_checkpoints"]

class FBTrainer(FamilyTrainer):
    """Trains an :class:`FBModel` on offline transitions (arguments: :class:`FamilyTrainer`;
    ``seed`` also seeds the draw of the states ``cov`` is finalized on).

    Attributes:
        model: The online :class:`FBModel` (training mode).
        agent: The :class:`FBAgent` holding targets and optimisers.
        step: Number of updates done.
    """

    TRAINER_FORMAT = "bfm_gym.fb.trainer"
    _seed_streams = 4  # init, sample, noise, finalize
    _resume_ignored = ("compile",)  # speed switches that may differ between a run and its resume
    _bar_metrics = (("fb", "fb_loss"), ("ortho", "ortho_loss"), ("actor", "actor_loss"))
    _handle_class = BFM
    config_class = FBConfig
    config: FBConfig

    @classmethod
    def replay_from(cls, transitions: Any) -> OfflineReplay:
        """Uniform transitions (obs, action, next_obs, terminated) of a dataset."""
        t = transitions
        return OfflineReplay(t.obs, t.action, t.next_obs, t.terminated)

    def _setup(self, model: FBModel, seeds: list[int]) -> None:
        self.agent = FBAgent(model, self.device)
        self._finalize_seed = seeds[0]

    @property
    def model(self) -> FBModel:
        """The online model being trained."""
        return self.agent.model

    # --- one update ------------------------------------------------------------------------------
    def sample(self, replay: OfflineReplay) -> TransitionBatch:
        """A training batch drawn with the trainer's sampling generator."""
        return replay.sample(self.config.batch_size, self.sample_generator)

    def update(self, batch: TransitionBatch) -> dict[str, torch.Tensor]:
        """One gradient update on ``batch`` (``config.batch_size`` transitions on ``self.device``).

        Returns:
            Detached scalar tensors (no ``.item()``: no host synchronisation per step).
        """
        self._check_batch(batch.obs.shape[0])
        noise = draw_noise(self.config, self.model.action_dim, self.noise_generator, self.device)
        metrics = self.agent.update(batch, noise)
        self.step += 1
        return metrics

    # --- what a checkpoint and a snapshot hold besides the model -------------------------------
    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"fb_optimizer": self.agent.fb_optimizer, "actor_optimizer": self.agent.actor_optimizer}

    def _target_tensors(self) -> dict[str, torch.Tensor]:
        return self.agent.target_state_dict()

    def _load_target_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.agent.load_target_state_dict(dict(tensors))

    def _finalize(self, model: Any, replay: OfflineReplay | None, finalize_samples: int) -> None:
        """``cov = E[B B^T]`` on up to ``finalize_samples`` next states of ``replay`` (a fixed,
        seeded draw that leaves the training RNG streams untouched)."""
        if replay is None:
            return
        replay = replay.to(self.device)
        g = torch.Generator(device=self.device).manual_seed(self._finalize_seed)
        if len(replay) > finalize_samples:
            idx = torch.randperm(len(replay), generator=g, device=self.device)[:finalize_samples]
            states = replay.next_obs[idx]
        else:
            states = replay.next_obs
        model.finalize(states, generator=g)
