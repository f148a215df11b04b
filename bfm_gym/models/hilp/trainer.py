"""Offline HILP training: one update of phi, psi and pi per batch, checkpoints and exact resume.

One update (the official ``SFAgent.update`` with the ``hilp`` feature learner):

1. z: uniform on the sphere of radius sqrt(d); a ``mix_ratio`` fraction replaced by
   ``proj(Cov^+ phi~(s'_perm))`` (features of shuffled dataset next states, whitened by the
   batch's uncentred feature covariance).
2. psi: TD target ``phi~(s') + gamma (1 - terminated) psi'_j(s', a', z)`` with the target head
   j of lower ``psi'^T z``, ``a' ~ pi(s', z)`` with clipped noise; MSE on every head.
3. phi: the expectile value loss on goals from the trajectory's future (or random states).
   phi gets no gradient from psi or pi (the TD target uses detached features).
4. pi: TD3 loss ``-min_k psi_k(s, a, z)^T z`` with ``a ~ pi(s, z)`` (clipped noise).
5. Polyak: phi targets at ``phi_tau``, psi target at ``sf_tau``; the feature mean moves by
   ``mean_rate`` towards the batch mean of phi_1(s).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> obs = rng.normal(size=(256, 3)).astype("float32")
    >>> act = rng.uniform(-1, 1, size=(256, 2)).astype("float32")
    >>> replay = GoalReplay(obs, act, obs + 0.1 * np.pad(act, ((0, 0), (0, 1))), episode=np.arange(256) // 64)
    >>> trainer = HILPTrainer(HILPConfig.preset("point_mass_maze", "tiny"), 3, 2, device="cpu", threads=None)
    >>> [int(row["step"]) for row in trainer.train(replay, 4, log_every=2, progress=False)]
    [2, 4]
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from bfm_gym.models.fb.checkpoint import (
    CheckpointError,
    ModelMetadata,
    flatten_optimizer_state,
    library_version,
    read_json,
    read_safetensors,
    unflatten_optimizer_state,
    write_folder_atomic,
    write_safetensors,
)
from bfm_gym.models.fb.networks import sample_action
from bfm_gym.models.fb.runtime import resolve_device, set_torch_threads
from bfm_gym.models.fb.trainer import (
    _checkpoint_step,
    _progress_bar,
    _prune_checkpoints,
    _summary_writer,
    latest_checkpoint,
)

from .checkpoint import load_model, write_model_files
from .config import HILPConfig
from .handle import HILPHandle
from .losses import hilbert_value_loss, sf_loss, td3_actor_loss
from .model import HILPModel
from .replay import GoalBatch, GoalReplay

__all__ = ["HILPTrainer"]

logger = logging.getLogger(__name__)

TRAINER_FORMAT = "bfm_gym.hilp.trainer"
TRAINER_FORMAT_VERSION = 1

EvalFn = Callable[[HILPHandle], Mapping[str, float]]
_OPTIMIZERS = ("phi_optimizer", "sf_optimizer", "actor_optimizer")


class HILPTrainer:
    """Trains a :class:`HILPModel` on offline transitions with episode boundaries.

    Args:
        config: Architecture and training settings.
        obs_dim: Observation size.
        action_dim: Action size.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        seed: Seeds the init, the batch sampling and the update noise (independent streams; the
            global torch RNG is neither used nor changed).
        metadata: Domain, dataset, spaces... recorded in checkpoints.
        threads: torch threads on CPU (``"auto"``: the free cores; None: leave as is).

    Attributes:
        model: The online model. step: Updates done.
    """

    def __init__(self, config: HILPConfig, obs_dim: int, action_dim: int,
                 device: str | torch.device = "auto", seed: int = 0, *,
                 metadata: ModelMetadata | None = None,
                 threads: int | Literal["auto"] | None = "auto") -> None:
        self.config = config
        self.device = resolve_device(device)
        self.threads = set_torch_threads(threads) if self.device.type == "cpu" else torch.get_num_threads()
        self.seed = int(seed)
        init_seed, sample_seed, noise_seed = (int(s) for s in np.random.SeedSequence(self.seed).generate_state(3))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = HILPModel(config, obs_dim, action_dim)
        self.model = model.to(self.device).train(True)
        self.target_phi = (copy.deepcopy(model.phi1).requires_grad_(False),
                           copy.deepcopy(model.phi2).requires_grad_(False))
        self.target_successor = copy.deepcopy(model.successor).requires_grad_(False)
        self.phi_optimizer = torch.optim.Adam([*model.phi1.parameters(), *model.phi2.parameters()],
                                              lr=config.lr_phi, foreach=True)
        self.sf_optimizer = torch.optim.Adam(model.successor.parameters(), lr=config.lr_sf, foreach=True)
        self.actor_optimizer = torch.optim.Adam(model.actor.parameters(), lr=config.lr_actor, foreach=True)
        self._polyak = (
            (list(self.target_phi[0].parameters()) + list(self.target_phi[1].parameters()),
             list(model.phi1.parameters()) + list(model.phi2.parameters()), config.phi_tau),
            (list(self.target_successor.parameters()), list(model.successor.parameters()), config.sf_tau),
        )
        self.sample_generator = torch.Generator(device=self.device).manual_seed(sample_seed)
        self.noise_generator = torch.Generator(device=self.device).manual_seed(noise_seed)
        self.metadata = metadata or ModelMetadata()
        self.step = 0

    # --- one update ------------------------------------------------------------------------------
    def sample(self, replay: GoalReplay) -> GoalBatch:
        """A batch with goals, drawn with the trainer's sampling generator."""
        c = self.config
        return replay.sample_goals(c.batch_size, self.sample_generator, future=c.future,
                                   p_random_goal=c.p_random_goal)

    def _latents(self, next_obs: torch.Tensor) -> torch.Tensor:
        c, m, g = self.config, self.model, self.noise_generator
        n = next_obs.shape[0]
        z = m.sample_z(n, generator=g)
        if c.mix_ratio > 0:
            perm = torch.randperm(n, generator=g, device=self.device)
            with torch.no_grad():
                phi = m.phi(next_obs[perm])
                inv_cov = torch.linalg.pinv(phi.T @ phi / n)
                mixed = m.project(phi @ inv_cov)
            use = torch.rand(n, generator=g, device=self.device) < c.mix_ratio
            z = torch.where(use[:, None], mixed, z)
        return z

    def update(self, batch: GoalBatch) -> dict[str, torch.Tensor]:
        """One update of phi, psi and pi on ``batch``; returns detached scalar metrics."""
        c, m, g = self.config, self.model, self.noise_generator
        if batch.obs.shape[0] != c.batch_size:
            raise ValueError(f"update: batch has {batch.obs.shape[0]} transitions, "
                             f"config.batch_size is {c.batch_size}")
        obs, action, next_obs, goal = batch.obs, batch.action, batch.next_obs, batch.goal
        z = self._latents(next_obs)
        # successor features
        with torch.no_grad():
            eps = torch.randn(action.shape, generator=g, device=self.device)
            next_action = sample_action(m.actor(next_obs, z), c.actor_std, c.stddev_clip, eps)
            next_psi = self.target_successor(next_obs, next_action, z)  # (E, B, d)
            best = (next_psi * z).sum(-1).argmin(0)  # head of lower Q per row
            next_psi = next_psi.gather(0, best.view(1, -1, 1).expand(1, -1, c.z_dim))[0]
            target = m.phi(next_obs) + c.gamma * (1.0 - batch.terminated) * next_psi
        loss_sf = sf_loss(m.successor(obs, action, z), target, z, c.q_loss)
        # Hilbert representation
        loss_v, info = hilbert_value_loss((m.phi1, m.phi2), self.target_phi, obs, next_obs, goal,
                                          c.hilp_gamma, c.expectile)
        batch_mean = info["phi1_obs_mean"]  # phi_1(s) before this step's update
        self.sf_optimizer.zero_grad(set_to_none=True)
        self.phi_optimizer.zero_grad(set_to_none=True)
        (loss_sf + loss_v).backward()  # disjoint parameters: one backward for both
        self.sf_optimizer.step()
        self.phi_optimizer.step()
        # actor
        eps = torch.randn(action.shape, generator=g, device=self.device)
        a = sample_action(m.actor(obs, z), c.actor_std, c.stddev_clip, eps)
        qs = (m.successor(obs, a, z) * z).sum(-1)
        loss_actor, _q = td3_actor_loss(qs, c.actor_pessimism)
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss_actor.backward()
        self.actor_optimizer.step()
        with torch.no_grad():
            for targets, online, tau in self._polyak:
                torch._foreach_lerp_(targets, online, tau)
            m.phi_mean.lerp_(batch_mean, c.mean_rate)
        self.step += 1
        return {"sf_loss": loss_sf.detach(), "phi_loss": loss_v.detach(),
                "actor_loss": loss_actor.detach(), "v_mean": info["v_mean"],
                "adv_mean": info["adv_mean"]}

    # --- loop ------------------------------------------------------------------------------------
    def train(self, replay: GoalReplay, num_updates: int,
              out_dir: str | os.PathLike[str] | None = None, *, log_every: int = 100,
              checkpoint_every: int = 10_000, eval_fn: EvalFn | None = None,
              eval_every: int | None = None, progress: bool = True, resume: bool = True,
              keep_checkpoints: int = 2, keep_every: int = 0,
              finalize_samples: int = 50_000) -> list[dict[str, float]]:
        """Run updates until ``self.step == num_updates`` (same contract as
        :meth:`bfm_gym.models.fb.FBTrainer.train`: TensorBoard scalars, checkpoints
        ``out_dir/checkpoints/step_XXXXXXXXX``, the final model in ``out_dir/model``, and a resumed
        run bit-identical to an uninterrupted one on CPU). ``finalize_samples`` is accepted for
        the common signature; HILP has nothing to finalize.

        Returns:
            One row per log point: ``{"step", "updates_per_s", <metrics>, <eval/...>}``.
        """
        del finalize_samples
        if not isinstance(replay, GoalReplay):
            raise TypeError("HILPTrainer.train needs a GoalReplay (transitions with their episode "
                            f"index, for goal sampling); got {type(replay).__name__}")
        if num_updates < 0 or log_every < 1 or checkpoint_every < 0 or keep_checkpoints < 1 or keep_every < 0:
            raise ValueError("train: need num_updates >= 0, log_every >= 1, checkpoint_every >= 0, "
                             "keep_checkpoints >= 1, keep_every >= 0")
        if (replay.obs_dim, replay.action_dim) != (self.model.obs_dim, self.model.action_dim):
            raise ValueError(f"train: replay has obs_dim={replay.obs_dim}, action_dim={replay.action_dim} "
                             f"but the model expects {self.model.obs_dim}, {self.model.action_dim}")
        replay = replay.to(self.device)
        if self.metadata.dataset_hash is None:
            self.metadata = self.metadata.replace(dataset_hash=replay.fingerprint())
        eval_every = eval_every if eval_every is not None else checkpoint_every
        run = Path(out_dir) if out_dir is not None else None
        if run is not None and resume:
            latest = latest_checkpoint(run / "checkpoints")
            if latest is not None and _checkpoint_step(latest) > self.step:
                self.load_checkpoint(latest)
                logger.info("resumed from %s (step %d)", latest, self.step)
        writer = _summary_writer(run / "tb", self.step) if run is not None else None
        bar = _progress_bar(num_updates, self.step, progress)
        history: list[dict[str, float]] = []
        sums: dict[str, torch.Tensor] = {}
        count, t_last, paused = 0, time.perf_counter(), 0.0
        try:
            while self.step < num_updates:
                metrics = self.update(self.sample(replay))
                sums = metrics if not sums else {k: sums[k] + v for k, v in metrics.items()}
                count += 1
                bar.update(1)
                last = self.step == num_updates
                row: dict[str, float] | None = None
                if self.step % log_every == 0 or last:
                    names = list(sums)
                    values = (torch.stack([sums[k].float() for k in names]) / count).tolist()
                    now = time.perf_counter()
                    row = {"step": float(self.step),
                           "updates_per_s": count / max(now - t_last - paused, 1e-9)}
                    row.update(zip(names, values, strict=True))
                    sums, count, t_last, paused = {}, 0, now, 0.0
                    bar.set_postfix({"upd/s": f"{row['updates_per_s']:.1f}", "sf": f"{row['sf_loss']:.3g}",
                                     "phi": f"{row['phi_loss']:.3g}"}, refresh=False)
                    if writer is not None:
                        for k in names:
                            writer.add_scalar(f"train/{k}", row[k], self.step)
                        writer.add_scalar("perf/updates_per_s", row["updates_per_s"], self.step)
                if eval_fn is not None and ((eval_every and self.step % eval_every == 0) or last):
                    t_pause = time.perf_counter()
                    results = {f"eval/{k}": float(v) for k, v in eval_fn(self.snapshot()).items()}
                    if writer is not None:
                        for k, v in results.items():
                            writer.add_scalar(k, v, self.step)
                    row = row if row is not None else {"step": float(self.step)}
                    row.update(results)
                    paused += time.perf_counter() - t_pause
                if row is not None:
                    history.append(row)
                if run is not None and ((checkpoint_every and self.step % checkpoint_every == 0) or last):
                    t_pause = time.perf_counter()
                    self.save_checkpoint(run / "checkpoints" / f"step_{self.step:09d}")
                    _prune_checkpoints(run / "checkpoints", keep_checkpoints, keep_every)
                    paused += time.perf_counter() - t_pause
            if run is not None:
                self.save_model(run / "model")
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        return history

    # --- snapshots, models, checkpoints ----------------------------------------------------------
    def snapshot(self, replay: Any = None, finalize_samples: int = 50_000) -> HILPHandle:
        """A frozen copy of the current model (``replay`` is accepted for FB's signature)."""
        del replay, finalize_samples
        with torch.random.fork_rng(devices=[]):
            model = HILPModel(self.config, self.model.obs_dim, self.model.action_dim).to(self.device)
        model.load_state_dict(self.model.state_dict())
        return HILPHandle(model, self.metadata.replace(training_steps=self.step,
                                                       bfm_gym_version=library_version()))

    def save_model(self, path: str | os.PathLike[str], replay: Any = None,
                   finalize_samples: int = 50_000) -> Path:
        """Save the current model as a model folder."""
        return self.snapshot(replay, finalize_samples).save(path)

    def _trainer_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        for k, net in (("target_phi1", self.target_phi[0]), ("target_phi2", self.target_phi[1]),
                       ("target_successor", self.target_successor)):
            tensors.update({f"{k}.{name}": v for name, v in net.state_dict().items()})
        json_part: dict[str, Any] = {}
        for name in _OPTIMIZERS:
            t, j = flatten_optimizer_state(getattr(self, name), name)
            tensors.update(t)
            json_part[name] = j
        tensors["rng.sample"] = self.sample_generator.get_state()
        tensors["rng.noise"] = self.noise_generator.get_state()
        return tensors, json_part

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Atomically save everything an exact resume needs (no pickle); the folder also loads
        as a model (``bfm_gym.load``)."""
        tensors, optimizers = self._trainer_tensors()
        state = {"format": TRAINER_FORMAT, "format_version": TRAINER_FORMAT_VERSION,
                 "bfm_gym_version": library_version(), "step": self.step, "seed": self.seed,
                 "config": self.config.to_dict(), "optimizers": optimizers}
        path = Path(path)
        with write_folder_atomic(path) as tmp:
            write_model_files(tmp, self.model, self.metadata.replace(training_steps=self.step))
            write_safetensors(tmp / "trainer.safetensors", tensors)
            (tmp / "trainer.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        return path

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Restore weights, targets, optimisers, RNG states and step.

        Raises:
            CheckpointError: Unreadable checkpoint, or one trained with another config or dims.
        """
        path = Path(path)
        what = "cannot resume training"
        state = read_json(path / "trainer.json", what)
        if state.get("format") != TRAINER_FORMAT or state.get("format_version") != TRAINER_FORMAT_VERSION:
            raise CheckpointError(f"{path / 'trainer.json'}: not a {TRAINER_FORMAT} "
                                  f"v{TRAINER_FORMAT_VERSION} file; use a checkpoint written by this bfm_gym")
        saved, mine = dict(state.get("config") or {}), self.config.to_dict()
        diffs = [f"{k}: checkpoint {saved.get(k)!r} vs trainer {mine[k]!r}" for k in mine if saved.get(k) != mine[k]]
        if diffs:
            raise CheckpointError(f"{path} was trained with another config ({'; '.join(diffs[:5])}); "
                                  "use HILPTrainer.from_checkpoint(path), or a new out_dir for this config")
        model, metadata = load_model(path, device="cpu")
        if (model.obs_dim, model.action_dim) != (self.model.obs_dim, self.model.action_dim):
            raise CheckpointError(f"{path}: checkpoint has obs_dim={model.obs_dim}, action_dim="
                                  f"{model.action_dim}; the trainer has {self.model.obs_dim}, "
                                  f"{self.model.action_dim}; use a new out_dir")
        tensors = read_safetensors(path / "trainer.safetensors", what)
        try:
            with torch.no_grad():
                self.model.load_state_dict(model.state_dict())
                for k, net in (("target_phi1", self.target_phi[0]), ("target_phi2", self.target_phi[1]),
                               ("target_successor", self.target_successor)):
                    net.load_state_dict({name: tensors[f"{k}.{name}"] for name in net.state_dict()})
            for name in _OPTIMIZERS:
                getattr(self, name).load_state_dict(
                    unflatten_optimizer_state(tensors, state["optimizers"][name], name))
            self.sample_generator.set_state(tensors["rng.sample"])
            self.noise_generator.set_state(tensors["rng.noise"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"{path}: trainer state is incomplete or inconsistent ({err}); "
                                  "resume from an older checkpoint") from err
        self.model.requires_grad_(True).train(True)
        self.step = int(state["step"])
        self.metadata = metadata.replace(training_steps=self.step)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], device: str | torch.device = "auto", *,
                        threads: int | Literal["auto"] | None = "auto") -> HILPTrainer:
        """A trainer restored from :meth:`save_checkpoint` (config, dims and seed from the folder)."""
        path = Path(path)
        state = read_json(path / "trainer.json", "cannot resume training")
        model, metadata = load_model(path, device="cpu")
        trainer = cls(model.config, model.obs_dim, model.action_dim, device,
                      int(state.get("seed", 0)), metadata=metadata, threads=threads)
        trainer.load_checkpoint(path)
        return trainer
