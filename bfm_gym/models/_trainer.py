"""The offline training loop every model family shares: seeded streams, logging, evaluation,
checkpoints and exact resume. A family's trainer subclasses :class:`FamilyTrainer` and gives
its model, handle and folder functions, its networks' set-up (:meth:`FamilyTrainer._setup`),
one gradient update (:meth:`FamilyTrainer.update`), its target networks and optimisers (what a
checkpoint holds besides the model), and, if it has one, the finalisation of a snapshot.

A training checkpoint is a model folder plus ``trainer.safetensors`` (target weights under
``<target name>.<key>``, optimiser moments under ``<optimiser name>.state.<i>.<key>``, the
``rng.sample`` and ``rng.noise`` generator states) and ``trainer.json`` (format, step, seed,
config, optimiser hyper-parameters); it loads as a model too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from . import checkpoint as files
from .averaging import WeightEMA
from .checkpoint import CheckpointError, ModelMetadata, library_version
from .runtime import resolve_device, set_torch_threads, usable_cores
from .threads import ThreadGovernor

__all__ = ["FamilyTrainer", "latest_checkpoint", "list_checkpoints"]

logger = logging.getLogger(__name__)


class FamilyTrainer:
    """Trains a family model on offline transitions (subclassed per family).

    Args:
        config: Architecture and training settings.
        obs_dim: Observation size.
        action_dim: Action size (actions in [-1, 1]).
        device: ``"auto"`` (cuda if available, else cpu), ``"cpu"``, ``"cuda"``, ...
        seed: Seeds the weight init, the batch sampling and the update noise (independent
            streams; the global torch RNG is neither used nor changed).
        metadata: Domain, dataset id, spaces bounds... recorded in checkpoints.
        threads: torch intra-op threads on CPU: ``"auto"`` = the free cores
            (:func:`~bfm_gym.models.runtime.free_cpu_cores`) at the start, re-decided during
            :meth:`train` from measured update rates as the load changes
            (:class:`~bfm_gym.models.threads.ThreadGovernor`); an int (fixed: bit-identical
            runs and resumes), or None to leave as is.

    Attributes:
        model: The online model (training mode).
        step: Number of updates done.
    """

    TRAINER_FORMAT: ClassVar[str]
    """``trainer.json["format"]``."""
    config_class: ClassVar[type]
    """The family's config dataclass (presets, JSON round trip)."""
    TRAINER_FORMAT_VERSION: ClassVar[int] = 1
    _seed_streams: ClassVar[int] = 3
    """Seeds drawn from ``seed``: init, sampling, noise, then any the family's set-up takes."""
    _resume_ignored: ClassVar[tuple[str, ...]] = ()
    """Config fields that may differ between a run and its resume (speed switches)."""
    _bar_metrics: ClassVar[tuple[tuple[str, str], ...]] = ()
    """``(progress-bar label, metric name)`` pairs."""
    _handle_class: ClassVar[Any]
    """The family's :class:`~bfm_gym.models._handle.FamilyHandle` (its ``_folder`` says how
    models are built, written and read)."""
    model: Any

    def __init__(
        self,
        config: Any,
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
        if self.device.type == "cpu":
            set_torch_threads(threads)
        self._governor = (  # "auto": re-decided while training as the machine's load changes
            ThreadGovernor(usable_cores(), threads=torch.get_num_threads())
            if threads == "auto" and self.device.type == "cpu" else None
        )
        self.seed = int(seed)
        init_seed, sample_seed, noise_seed, *more_seeds = (
            int(s) for s in np.random.SeedSequence(self.seed).generate_state(self._seed_streams)
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = self._handle_class._folder.model_class(config, obs_dim, action_dim)
        self._setup(model.to(self.device), more_seeds)
        self._setup_seeds = more_seeds
        self.sample_generator = torch.Generator(device=self.device).manual_seed(sample_seed)
        self.noise_generator = torch.Generator(device=self.device).manual_seed(noise_seed)
        self.metadata = metadata or ModelMetadata()
        self.step = 0
        self._ema: WeightEMA | None = None  # set up by train() / load_checkpoint when ema_tau > 0

    @property
    def ema_tau(self) -> float:
        """The config's ``ema_tau`` (0 when the family's config has no such field: no EMA)."""
        return float(getattr(self.config, "ema_tau", 0.0) or 0.0)

    @property
    def ema(self) -> WeightEMA | None:
        """The weights' moving average, when ``ema_tau > 0`` and training has begun."""
        return self._ema

    def _ensure_ema(self) -> WeightEMA | None:
        if self._ema is None and self.ema_tau > 0:
            self._ema = WeightEMA(self.model, self.ema_tau)
        return self._ema

    @property
    def threads(self) -> int:
        """torch's intra-op thread count now (``threads="auto"`` may change it while training)."""
        return torch.get_num_threads()

    # --- what a family gives ------------------------------------------------------------------------
    @classmethod
    def replay_from(cls, transitions: Any) -> Any:
        """The replay :meth:`train` samples from, built from a dataset's transitions."""
        raise NotImplementedError

    def _setup(self, model: Any, seeds: list[int]) -> None:
        """Keep the online ``model`` (on the device) and build targets and optimisers."""
        raise NotImplementedError

    def sample(self, replay: Any) -> Any:
        """A training batch drawn with :attr:`sample_generator`."""
        raise NotImplementedError

    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        """One gradient update; returns detached scalar tensors (no host synchronisation)."""
        raise NotImplementedError

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by checkpoint name."""
        raise NotImplementedError

    def _target_tensors(self) -> dict[str, torch.Tensor]:
        """The target networks' weights, keyed ``<target name>.<key>``."""
        raise NotImplementedError

    def _load_target_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Inverse of :meth:`_target_tensors` (``tensors`` may hold other keys too)."""
        raise NotImplementedError

    def _check_replay(self, replay: Any) -> None:
        """Reject a replay of the wrong kind (default: any replay with matching dims)."""

    def _finalize(self, model: Any, replay: Any, finalize_samples: int) -> None:
        """Finish a frozen snapshot on dataset states (default: nothing to do)."""

    def _after_resume(self) -> None:
        """Anything to restore on the online model after :meth:`load_checkpoint`."""

    def _check_batch(self, n: int) -> None:
        if n != self.config.batch_size:
            raise ValueError(
                f"update: batch has {n} transitions, config.batch_size is {self.config.batch_size}"
            )

    def start_from(self, path: str | os.PathLike[str]) -> int:
        """Continue pre-training the model saved in ``path`` (a model folder of this family).

        Its weights become the online networks and their targets, the optimisers start afresh
        (a model folder holds no optimiser state, so this is a continuation, not the exact
        resume a checkpoint gives), and :attr:`step` counts on from the model's training steps.
        Call it before :meth:`train`; a newer checkpoint in ``train``'s ``out_dir`` still takes
        precedence, so rerunning a continued run resumes it.

        Returns:
            The step training continues from.

        Raises:
            CheckpointError: ``path`` is not a model folder of this family, or its networks do
                not fit this trainer's config and dims.
        """
        if self.step:
            raise ValueError(f"start_from: call it before training ({self.step} updates done)")
        model, metadata = self._handle_class._folder.load(path, device="cpu")
        dims = (self.model.obs_dim, self.model.action_dim)
        if (model.obs_dim, model.action_dim) != dims:
            raise CheckpointError(
                f"{path}: the model has obs_dim={model.obs_dim}, action_dim={model.action_dim}; this "
                f"run's data has obs_dim={dims[0]}, action_dim={dims[1]}; continue it on data of its env"
            )
        with torch.random.fork_rng(devices=[]):
            fresh = self._handle_class._folder.model_class(self.config, *dims)
        try:
            fresh.load_state_dict(model.state_dict())
        except RuntimeError as err:
            first = str(err).strip().splitlines()[-1].strip()
            raise CheckpointError(
                f"{path}: its networks do not fit this config ({first}); continue it with the "
                "architecture it was trained with (its config.json)"
            ) from err
        self._setup(fresh.to(self.device), self._setup_seeds)
        self._ema = None  # a moving average starts from the continued weights
        self.step = int(metadata.training_steps or 0)
        return self.step

    # --- loop ------------------------------------------------------------------------------------
    def train(
        self,
        replay: Any,
        num_updates: int,
        out_dir: str | os.PathLike[str] | None = None,
        *,
        log_every: int = 100,
        checkpoint_every: int = 10_000,
        eval_fn: Callable[[Any], Mapping[str, float]] | None = None,
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
        multiple of ``keep_every``), and the final model (finalized, for FB its cov) in
        ``out_dir/model``. With ``resume`` (default), the newest checkpoint in ``out_dir`` is
        loaded first, and the run continues bit-identically to an uninterrupted one (on CPU; on
        CUDA two runs are bit-identical only with ``torch.use_deterministic_algorithms(True)``
        and ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, the same condition as for two uninterrupted
        runs).

        Args:
            replay: Training transitions (moved to the trainer's device if needed).
            num_updates: Total number of updates (including those already done).
            out_dir: Run folder, or None for no files.
            log_every: Metrics are averaged and synchronised every ``log_every`` updates.
            checkpoint_every: Updates between checkpoints (0 = only at the end).
            eval_fn: Called as ``eval_fn(bfm)`` with a frozen handle snapshot (finalized);
                returns ``{name: float}`` logged as ``eval/name``.
            eval_every: Updates between evaluations (default: ``checkpoint_every``); also run at
                the end.
            progress: Show a tqdm bar (updates/s and losses).
            resume: Continue from the newest checkpoint in ``out_dir``.
            keep_checkpoints: Newest checkpoints kept on disk.
            keep_every: Also keep, for good, the checkpoints at multiples of this step
                (0: none); zero-shot returns swing between checkpoints, so a run that
                will be exported later (``bfm-gym export --step``) should keep some.
            finalize_samples: Dataset next-states a snapshot is finalized on (FB's cov).

        Returns:
            One row per log point: ``{"step": ..., "updates_per_s": ..., <metrics>, <eval/...>}``.
        """
        self._check_replay(replay)
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
        ema = self._ensure_ema()
        writer = _summary_writer(run / "tb", self.step) if run is not None else None
        bar = _progress_bar(num_updates, self.step, progress)
        history: list[dict[str, float]] = []
        sums: dict[str, torch.Tensor] = {}
        count, t_last, paused = 0, time.perf_counter(), 0.0  # paused: eval/checkpoint time
        try:
            while self.step < num_updates:
                t_update = time.perf_counter()
                metrics = self.update(self.sample(replay))
                if ema is not None:
                    ema.update()
                if self._governor is not None:
                    self._governor.record(time.perf_counter() - t_update)
                sums = metrics if not sums else {k: sums[k] + v for k, v in metrics.items()}
                count += 1
                bar.update(1)
                last = self.step == num_updates
                row: dict[str, float] | None = None
                if self.step % log_every == 0 or last:
                    names = list(sums)
                    values = (torch.stack([sums[k].float() for k in names]) / count).tolist()  # one sync
                    now = time.perf_counter()
                    row = {
                        "step": float(self.step),
                        "updates_per_s": count / max(now - t_last - paused, 1e-9),
                    }
                    row.update(zip(names, values, strict=True))
                    sums, count, t_last, paused = {}, 0, now, 0.0
                    postfix = {"upd/s": f"{row['updates_per_s']:.1f}"}
                    postfix.update({k: f"{row[m]:.3g}" for k, m in self._bar_metrics})
                    bar.set_postfix(postfix, refresh=False)
                    if writer is not None:
                        for k in names:
                            writer.add_scalar(f"train/{k}", row[k], self.step)
                        writer.add_scalar("perf/updates_per_s", row["updates_per_s"], self.step)
                        writer.add_scalar("perf/torch_threads", torch.get_num_threads(), self.step)
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
    def snapshot(self, replay: Any = None, finalize_samples: int = 50_000, *,
                 weights: Literal["auto", "online", "ema"] = "auto") -> Any:
        """A frozen copy of the current model as the family's handle.

        When ``replay`` is given and the family finalizes its models (FB: ``cov = E[B B^T]``),
        that is done on up to ``finalize_samples`` of its next states (a fixed, seeded draw that
        leaves the training RNG streams untouched).

        Args:
            weights: ``"online"`` (the last update's), ``"ema"`` (the moving average; needs
                ``ema_tau > 0``), or ``"auto"``: the average when one is kept, else online. The
                averaged model's metadata records ``extra["weight_ema"]`` (tau, updates).

        Raises:
            ValueError: ``weights="ema"`` without a moving average, or an unknown ``weights``.
        """
        if weights not in ("auto", "online", "ema"):
            raise ValueError(f"snapshot: weights must be 'auto', 'online' or 'ema', got {weights!r}")
        ema = self._ema if weights != "online" else None
        if weights == "ema" and ema is None:
            raise ValueError(
                "snapshot(weights='ema'): this run keeps no moving average of its weights; train "
                "with ema_tau > 0 (e.g. --set ema_tau=1e-4), or use weights='online'")
        with torch.random.fork_rng(devices=[]):  # the throw-away init must not touch the caller's RNG
            model = self._handle_class._folder.model_class(self.config, self.model.obs_dim, self.model.action_dim)
        model.to(self.device)
        model.load_state_dict(self.model.state_dict() if ema is None else ema.state_dict_of(self.model))
        model.train(False).requires_grad_(False)
        self._finalize(model, replay, finalize_samples)
        metadata = self.metadata.replace(training_steps=self.step, bfm_gym_version=library_version())
        if ema is not None:
            metadata = metadata.replace(extra={**metadata.extra,
                                               "weight_ema": {"tau": ema.tau, "updates": ema.count}})
        return self._handle_class(model, metadata)

    def save_model(
        self, path: str | os.PathLike[str], replay: Any = None, finalize_samples: int = 50_000, *,
        weights: Literal["auto", "online", "ema"] = "auto",
    ) -> Path:
        """Save the current model (finalized on ``replay`` when given) as a model folder
        (``weights``: as in :meth:`snapshot`)."""
        return self.snapshot(replay, finalize_samples, weights=weights).save(path)

    # --- training checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Atomically save everything needed for an exact resume (no pickle).

        The folder is also a loadable model folder (``bfm_gym.load`` works on it).
        """
        tensors = dict(self._target_tensors())
        optimizers: dict[str, Any] = {}
        for name, opt in self._optimizers().items():
            opt_tensors, optimizers[name] = files.flatten_optimizer_state(opt, name)
            tensors.update(opt_tensors)
        tensors["rng.sample"] = self.sample_generator.get_state()
        tensors["rng.noise"] = self.noise_generator.get_state()
        if self._ema is not None:
            tensors.update(self._ema.tensors())
        state = {
            "format": self.TRAINER_FORMAT,
            "format_version": self.TRAINER_FORMAT_VERSION,
            "bfm_gym_version": library_version(),
            "step": self.step,
            "seed": self.seed,
            "config": self.config.to_dict(),
            "optimizers": optimizers,
        }
        if self._ema is not None:
            state["ema_updates"] = self._ema.count
        path = Path(path)
        with files.write_folder_atomic(path) as tmp:
            self._handle_class._folder.write_files(
                tmp, self.model, self.metadata.replace(training_steps=self.step)
            )
            files.write_safetensors(tmp / "trainer.safetensors", tensors)
            (tmp / "trainer.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        return path

    def load_checkpoint(self, path: str | os.PathLike[str], *, loaded: tuple[Any, Any] | None = None) -> None:
        """Restore weights, targets, optimisers, RNG states and step from :meth:`save_checkpoint`.

        Args:
            path: The checkpoint folder.
            loaded: ``(model, metadata)`` of this folder when the caller has already read them
                (:meth:`from_checkpoint`), so the model file is not read twice.

        Raises:
            CheckpointError: Unreadable checkpoint, or one trained with another config or dims.
        """
        path = Path(path)
        what = "cannot resume training"
        fmt, version = self.TRAINER_FORMAT, self.TRAINER_FORMAT_VERSION
        state = files.read_json(path / "trainer.json", what)
        if state.get("format") != fmt or state.get("format_version") != version:
            raise CheckpointError(
                f"{path / 'trainer.json'}: not a {fmt} v{version} file "
                f"(format={state.get('format')!r}, version={state.get('format_version')!r}); use a checkpoint written by this bfm_gym"
            )
        saved = dict(type(self.config).saved_as_current(dict(state.get("config") or {})))
        mine = self.config.to_dict()
        diffs = [
            f"{k}: checkpoint {saved.get(k)!r} vs trainer {mine[k]!r}"
            for k in mine
            if k not in self._resume_ignored and saved.get(k) != mine[k]
        ]
        if diffs:
            raise CheckpointError(
                f"{path} was trained with another config ({'; '.join(diffs[:5])}); "
                f"use {type(self).__name__}.from_checkpoint(path) to continue it, or a new out_dir for this config"
            )
        model, metadata = loaded or self._handle_class._folder.load(path, device="cpu")
        if (model.obs_dim, model.action_dim) != (self.model.obs_dim, self.model.action_dim):
            raise CheckpointError(
                f"{path}: checkpoint has obs_dim={model.obs_dim}, action_dim={model.action_dim}, trainer has "
                f"obs_dim={self.model.obs_dim}, action_dim={self.model.action_dim}; use a new out_dir"
            )
        tensors = files.read_safetensors(path / "trainer.safetensors", what)
        try:
            with torch.no_grad():
                self.model.load_state_dict(model.state_dict())
                self._load_target_tensors(tensors)
            for name, opt in self._optimizers().items():
                opt.load_state_dict(files.unflatten_optimizer_state(tensors, state["optimizers"][name], name))
            self.sample_generator.set_state(tensors["rng.sample"])
            self.noise_generator.set_state(tensors["rng.noise"])
            ema = self._ensure_ema()
            if ema is not None:
                ema.load_tensors(tensors, int(state["ema_updates"]))
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(
                f"{path}: trainer state is incomplete or inconsistent ({err}); resume from an older checkpoint"
            ) from err
        self._after_resume()
        self.step = int(state["step"])
        self.metadata = metadata.replace(training_steps=self.step)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "auto",
        *,
        threads: int | Literal["auto"] | None = "auto",
    ) -> Any:
        """A trainer restored from :meth:`save_checkpoint` (config, dims and seed from the folder)."""
        path = Path(path)
        state = files.read_json(path / "trainer.json", "cannot resume training")
        model, metadata = cls._handle_class._folder.load(path, device="cpu")
        trainer = cls(
            model.config,
            model.obs_dim,
            model.action_dim,
            device,
            int(state.get("seed", 0)),
            metadata=metadata,
            threads=threads,
        )
        trainer.load_checkpoint(path, loaded=(model, metadata))
        return trainer


def module_tensors(modules: Mapping[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """``{f"{name}.{key}": tensor}`` over the modules' state dicts (target networks in checkpoints)."""
    return {f"{k}.{name}": v for k, net in modules.items() for name, v in net.state_dict().items()}


def load_module_tensors(
    modules: Mapping[str, torch.nn.Module], tensors: Mapping[str, torch.Tensor]
) -> None:
    """Inverse of :func:`module_tensors` (a missing key raises ``KeyError``)."""
    for k, net in modules.items():
        net.load_state_dict({name: tensors[f"{k}.{name}"] for name in net.state_dict()})


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
