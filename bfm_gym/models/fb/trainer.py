"""Offline FB training loop: seeded sampling, logging, evaluation, checkpoints and exact resume.

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

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .agent import FBAgent, draw_noise
from .checkpoint import (
    CheckpointError,
    ModelMetadata,
    flatten_optimizer_state,
    library_version,
    load_model,
    read_json,
    read_safetensors,
    unflatten_optimizer_state,
    write_folder_atomic,
    write_model_files,
    write_safetensors,
)
from .config import FBConfig
from .handle import BFM
from .model import FBModel
from .replay import OfflineReplay, TransitionBatch
from .runtime import resolve_device, set_torch_threads

__all__ = ["FBTrainer"]

logger = logging.getLogger(__name__)

TRAINER_FORMAT = "bfm_gym.fb.trainer"
TRAINER_FORMAT_VERSION = 1
_RESUME_IGNORED = ("compile",)  # speed switches that may differ between a run and its resume

EvalFn = Callable[[BFM], Mapping[str, float]]


class FBTrainer:
    """Trains an :class:`FBModel` on offline transitions.

    Args:
        config: Architecture and training settings.
        obs_dim: Observation size.
        action_dim: Action size (actions in [-1, 1]).
        device: ``"auto"`` (cuda if available, else cpu), ``"cpu"``, ``"cuda"``, ...
        seed: Seeds the weight init, the batch sampling and the update noise (three independent
            streams; the global torch RNG is neither used nor changed).
        metadata: Domain, dataset id, spaces bounds... recorded in checkpoints.
        threads: torch intra-op threads on CPU: ``"auto"`` = the free cores
            (:func:`~bfm_gym.models.fb.runtime.free_cpu_cores`), an int, or None to leave as is.

    Attributes:
        model: The online :class:`FBModel` (training mode).
        agent: The :class:`FBAgent` holding targets and optimisers.
        step: Number of updates done.
    """

    def __init__(
        self,
        config: FBConfig,
        obs_dim: int,
        action_dim: int,
        device: str | torch.device = "auto",
        seed: int = 0,
        *,
        metadata: ModelMetadata | None = None,
        threads: int | Literal["auto"] | None = "auto",
    ) -> None:
        self.config = config
        self.device = resolve_device(device)
        self.threads = (
            set_torch_threads(threads) if self.device.type == "cpu" else torch.get_num_threads()
        )
        self.seed = int(seed)
        init_seed, sample_seed, noise_seed, finalize_seed = (
            int(s) for s in np.random.SeedSequence(self.seed).generate_state(4)
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = FBModel(config, obs_dim, action_dim)
        model.to(self.device)
        self.agent = FBAgent(model, self.device)
        self.sample_generator = torch.Generator(device=self.device).manual_seed(sample_seed)
        self.noise_generator = torch.Generator(device=self.device).manual_seed(noise_seed)
        self._finalize_seed = finalize_seed
        self.metadata = metadata or ModelMetadata()
        self.step = 0

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
        if batch.obs.shape[0] != self.config.batch_size:
            raise ValueError(
                f"update: batch has {batch.obs.shape[0]} transitions, config.batch_size is {self.config.batch_size}"
            )
        noise = draw_noise(self.config, self.model.action_dim, self.noise_generator, self.device)
        metrics = self.agent.update(batch, noise)
        self.step += 1
        return metrics

    # --- loop ------------------------------------------------------------------------------------
    def train(
        self,
        replay: OfflineReplay,
        num_updates: int,
        out_dir: str | os.PathLike[str] | None = None,
        *,
        log_every: int = 100,
        checkpoint_every: int = 10_000,
        eval_fn: EvalFn | None = None,
        eval_every: int | None = None,
        progress: bool = True,
        resume: bool = True,
        keep_checkpoints: int = 2,
        keep_every: int = 0,
        finalize_samples: int = 50_000,
    ) -> list[dict[str, float]]:
        """Run updates until ``self.step == num_updates``.

        With ``out_dir``: TensorBoard scalars in ``out_dir/tb`` (``train/*``, ``eval/*``,
        ``perf/updates_per_s``), training checkpoints ``out_dir/checkpoints/step_XXXXXXXXX``
        every ``checkpoint_every`` updates (the last ``keep_checkpoints`` are kept, plus every
        multiple of ``keep_every``), and the final
        model (cov finalized) in ``out_dir/model``. With ``resume`` (default), the newest
        checkpoint in ``out_dir`` is loaded first, and the run continues bit-identically to an
        uninterrupted one (on CPU; on CUDA two runs are bit-identical only with
        ``torch.use_deterministic_algorithms(True)`` and ``CUBLAS_WORKSPACE_CONFIG=:4096:8``,
        the same condition as for two uninterrupted runs).

        Args:
            replay: Training transitions (moved to the trainer's device if needed).
            num_updates: Total number of updates (including those already done).
            out_dir: Run folder, or None for no files.
            log_every: Metrics are averaged and synchronised every ``log_every`` updates.
            checkpoint_every: Updates between checkpoints (0 = only at the end).
            eval_fn: Called as ``eval_fn(bfm)`` with a frozen :class:`BFM` snapshot (cov
                finalized); returns ``{name: float}`` logged as ``eval/name``.
            eval_every: Updates between evaluations (default: ``checkpoint_every``); also run at
                the end.
            progress: Show a tqdm bar (updates/s and losses).
            resume: Continue from the newest checkpoint in ``out_dir``.
            keep_checkpoints: Newest checkpoints kept on disk.
            keep_every: Also keep, for good, the checkpoints at multiples of this step
                (0: none); FB's zero-shot returns swing between checkpoints, so a run that
                will be exported later (``bfm-gym export --step``) should keep some.
            finalize_samples: Dataset next-states used to compute ``cov`` for snapshots.

        Returns:
            One row per log point: ``{"step": ..., "updates_per_s": ..., <metrics>, <eval/...>}``.
        """
        if (num_updates < 0 or log_every < 1 or checkpoint_every < 0 or keep_checkpoints < 1
                or keep_every < 0):
            raise ValueError(
                f"train: need num_updates >= 0, log_every >= 1, checkpoint_every >= 0, keep_checkpoints >= 1, "
                f"keep_every >= 0; got {num_updates}, {log_every}, {checkpoint_every}, {keep_checkpoints}, "
                f"{keep_every}"
            )
        if (replay.obs_dim, replay.action_dim) != (self.model.obs_dim, self.model.action_dim):
            raise ValueError(
                f"train: replay has obs_dim={replay.obs_dim}, action_dim={replay.action_dim} but the model expects "
                f"obs_dim={self.model.obs_dim}, action_dim={self.model.action_dim}"
            )
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
        count, t_last, paused = 0, time.perf_counter(), 0.0  # paused: eval/checkpoint time
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
                    values = (
                        torch.stack([sums[k].float() for k in names]) / count
                    ).tolist()  # one sync
                    now = time.perf_counter()
                    row = {
                        "step": float(self.step),
                        "updates_per_s": count / max(now - t_last - paused, 1e-9),
                    }
                    row.update(zip(names, values, strict=True))
                    sums, count, t_last, paused = {}, 0, now, 0.0
                    bar.set_postfix(
                        {"upd/s": f"{row['updates_per_s']:.1f}", "fb": f"{row['fb_loss']:.3g}",
                         "ortho": f"{row['ortho_loss']:.3g}", "actor": f"{row['actor_loss']:.3g}"},
                        refresh=False,
                    )  # fmt: skip
                    if writer is not None:
                        for k in names:
                            writer.add_scalar(f"train/{k}", row[k], self.step)
                        writer.add_scalar("perf/updates_per_s", row["updates_per_s"], self.step)
                if eval_fn is not None and ((eval_every and self.step % eval_every == 0) or last):
                    t_pause = time.perf_counter()
                    results = {
                        f"eval/{k}": float(v)
                        for k, v in eval_fn(self.snapshot(replay, finalize_samples)).items()
                    }
                    if writer is not None:
                        for k, v in results.items():
                            writer.add_scalar(k, v, self.step)
                    logger.info("step %d: %s", self.step, results)
                    if row is None:
                        row = {"step": float(self.step)}
                    row.update(results)
                    paused += time.perf_counter() - t_pause  # not counted in updates/s
                if row is not None:
                    history.append(row)
                if run is not None and (
                    (checkpoint_every and self.step % checkpoint_every == 0) or last
                ):
                    t_pause = time.perf_counter()
                    self.save_checkpoint(run / "checkpoints" / f"step_{self.step:09d}")
                    _prune_checkpoints(run / "checkpoints", keep_checkpoints, keep_every)
                    paused += time.perf_counter() - t_pause
            if run is not None:
                self.save_model(run / "model", replay, finalize_samples)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        return history

    # --- snapshots and models --------------------------------------------------------------------
    def snapshot(self, replay: OfflineReplay | None = None, finalize_samples: int = 50_000) -> BFM:
        """A frozen copy of the current model as a :class:`BFM` handle.

        When ``replay`` is given, ``cov = E[B B^T]`` is computed on up to ``finalize_samples`` of
        its next states (a fixed, seeded draw that leaves the training RNG streams untouched).
        """
        with torch.random.fork_rng(
            devices=[]
        ):  # the throw-away init must not touch the caller's RNG
            model = FBModel(self.config, self.model.obs_dim, self.model.action_dim).to(self.device)
        model.load_state_dict(self.model.state_dict())
        model.train(False).requires_grad_(False)
        if replay is not None:
            replay = replay.to(self.device)
            g = torch.Generator(device=self.device).manual_seed(self._finalize_seed)
            if len(replay) > finalize_samples:
                idx = torch.randperm(len(replay), generator=g, device=self.device)[
                    :finalize_samples
                ]
                states = replay.next_obs[idx]
            else:
                states = replay.next_obs
            model.finalize(states, generator=g)
        return BFM(
            model,
            self.metadata.replace(training_steps=self.step, bfm_gym_version=library_version()),
        )

    def save_model(
        self,
        path: str | os.PathLike[str],
        replay: OfflineReplay | None = None,
        finalize_samples: int = 50_000,
    ) -> Path:
        """Save the current model (cov finalized on ``replay`` when given) as a model folder."""
        return self.snapshot(replay, finalize_samples).save(path)

    # --- training checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Atomically save everything needed for an exact resume (no pickle).

        The folder is also a loadable model folder (``BFM.load`` works on it, cov not finalized).
        """
        tensors = dict(self.agent.target_state_dict())
        fb_t, fb_j = flatten_optimizer_state(self.agent.fb_optimizer, "fb_optimizer")
        actor_t, actor_j = flatten_optimizer_state(self.agent.actor_optimizer, "actor_optimizer")
        tensors.update(fb_t)
        tensors.update(actor_t)
        tensors["rng.sample"] = self.sample_generator.get_state()
        tensors["rng.noise"] = self.noise_generator.get_state()
        state = {
            "format": TRAINER_FORMAT,
            "format_version": TRAINER_FORMAT_VERSION,
            "bfm_gym_version": library_version(),
            "step": self.step,
            "seed": self.seed,
            "config": self.config.to_dict(),
            "optimizers": {"fb_optimizer": fb_j, "actor_optimizer": actor_j},
        }
        path = Path(path)
        with write_folder_atomic(path) as tmp:
            write_model_files(tmp, self.model, self.metadata.replace(training_steps=self.step))
            write_safetensors(tmp / "trainer.safetensors", tensors)
            (tmp / "trainer.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        return path

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Restore weights, targets, optimisers, RNG states and step from :meth:`save_checkpoint`.

        Raises:
            CheckpointError: Unreadable checkpoint, or one trained with another config or dims.
        """
        path = Path(path)
        what = "cannot resume training"
        state = read_json(path / "trainer.json", what)
        if (
            state.get("format") != TRAINER_FORMAT
            or state.get("format_version") != TRAINER_FORMAT_VERSION
        ):
            raise CheckpointError(
                f"{path / 'trainer.json'}: not a {TRAINER_FORMAT} v{TRAINER_FORMAT_VERSION} file "
                f"(format={state.get('format')!r}, version={state.get('format_version')!r}); use a checkpoint written by this bfm_gym"
            )
        saved = dict(state.get("config") or {})
        mine = self.config.to_dict()
        diffs = [
            f"{k}: checkpoint {saved.get(k)!r} vs trainer {mine[k]!r}"
            for k in mine
            if k not in _RESUME_IGNORED and saved.get(k) != mine[k]
        ]
        if diffs:
            raise CheckpointError(
                f"{path} was trained with another config ({'; '.join(diffs[:5])}); "
                "use FBTrainer.from_checkpoint(path) to continue it, or a new out_dir for this config"
            )
        model, metadata = load_model(path, device="cpu")
        if (model.obs_dim, model.action_dim) != (self.model.obs_dim, self.model.action_dim):
            raise CheckpointError(
                f"{path}: checkpoint has obs_dim={model.obs_dim}, action_dim={model.action_dim}, trainer has "
                f"obs_dim={self.model.obs_dim}, action_dim={self.model.action_dim}; use a new out_dir"
            )
        tensors = read_safetensors(path / "trainer.safetensors", what)
        try:
            with torch.no_grad():
                self.model.load_state_dict(model.state_dict())
            self.agent.load_target_state_dict(tensors)
            for name, opt in (
                ("fb_optimizer", self.agent.fb_optimizer),
                ("actor_optimizer", self.agent.actor_optimizer),
            ):
                sd = unflatten_optimizer_state(tensors, state["optimizers"][name], name)
                opt.load_state_dict(sd)
            self.sample_generator.set_state(tensors["rng.sample"])
            self.noise_generator.set_state(tensors["rng.noise"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(
                f"{path}: trainer state is incomplete or inconsistent ({err}); resume from an older checkpoint"
            ) from err
        self.step = int(state["step"])
        self.metadata = metadata.replace(training_steps=self.step)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "auto",
        *,
        threads: int | Literal["auto"] | None = "auto",
    ) -> FBTrainer:
        """A trainer restored from :meth:`save_checkpoint` (config, dims and seed from the folder)."""
        path = Path(path)
        state = read_json(path / "trainer.json", "cannot resume training")
        model, metadata = load_model(path, device="cpu")
        trainer = cls(
            model.config,
            model.obs_dim,
            model.action_dim,
            device,
            int(state.get("seed", 0)),
            metadata=metadata,
            threads=threads,
        )
        trainer.load_checkpoint(path)
        return trainer


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def _checkpoint_step(path: Path) -> int:
    return int(path.name.split("_")[-1])


def list_checkpoints(folder: Path) -> list[Path]:
    """The ``step_*`` checkpoint folders in ``folder``, oldest first (empty if none)."""
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit()
    ]
    return sorted(found, key=_checkpoint_step)


def latest_checkpoint(folder: Path) -> Path | None:
    """The ``step_*`` checkpoint with the highest step in ``folder`` (None if there is none)."""
    found = list_checkpoints(folder)
    return found[-1] if found else None


def _prune_checkpoints(folder: Path, keep: int, keep_every: int = 0) -> None:
    for old in list_checkpoints(folder)[:-keep]:
        if keep_every and _checkpoint_step(old) % keep_every == 0:
            continue
        shutil.rmtree(old, ignore_errors=True)


def _summary_writer(folder: Path, step: int) -> Any:
    from torch.utils.tensorboard import SummaryWriter  # lazy: importing tensorboard takes ~1 s

    return SummaryWriter(str(folder), purge_step=step if step > 0 else None)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm  # lazy, as SB3 does

    return tqdm(total=total, initial=initial, unit="upd", dynamic_ncols=True, mininterval=1.0)
