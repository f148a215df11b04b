"""Pre-training pipeline: dataset folder -> trained model folder, of any registered family.

``pretrain()`` (and ``bfm-gym pretrain``) loads a reward-free dataset and trains a model with
the trainer its family registers (:func:`bfm_gym.models.registry.trainer_for`): FB / FB-AWARE
by default (:class:`~bfm_gym.models.fb.trainer.FBTrainer`), ``family="hilp"`` a HILP model
(:class:`~bfm_gym.models.hilp.HILPTrainer`, whose goal sampling uses the dataset's episode
boundaries), or a plugin's family. It shows a progress bar, logs to TensorBoard, checkpoints
periodically with exact resume, evaluates zero-shot returns on the domain's tasks during
training, and writes a model folder::

    MODEL_DIR/config.json, model.safetensors     the model (bfm_gym.load(MODEL_DIR))
    MODEL_DIR/inference_samples.safetensors      dataset next-states for z inference
    MODEL_DIR/training/tb, training/checkpoints  TensorBoard logs, resume checkpoints
    MODEL_DIR/training/history.json              logged metrics per log point

Rerunning the same command after an interruption resumes from the newest
checkpoint; the result equals an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bfm_gym.utils.io import atomic_path, write_json_atomic

__all__ = ["average_checkpoint_weights", "export_checkpoint", "make_config", "pretrain"]


GYM_PRESET_DOMAIN = "walker"
"""Whose preset sizes a model of a Gymnasium env (no preset of its own) gets."""

def make_config(domain: str, config: str | os.PathLike[str] | Any = "cpu",
                overrides: dict[str, Any] | None = None, family: str = "fb") -> Any:
    """Builds an :class:`FBConfig` (or the ``family``'s config) from a preset, a JSON file or a
    config object.

    Args:
        domain: Domain the preset is for.
        config: ``"paper"``, ``"cpu"``, ``"tiny"``, a path to a JSON file of fields, or a config.
        overrides: Field values to change (e.g. ``{"ar_blocks": 2}``).
        family: A registered family with a trainer (``"fb"``, ``"hilp"``, a plugin's).

    Raises:
        ValueError: Unknown preset, unreadable file, unknown/invalid fields, or a family that
            cannot be trained.
    """
    import dataclasses

    from bfm_gym.models._config import PRESET_SIZES
    from bfm_gym.models.registry import trainer_for

    config_class = trainer_for(family).config_class

    if isinstance(config, config_class):
        base = config
    elif str(config) in PRESET_SIZES:
        from bfm_gym.envs.gym_env import is_gym_domain

        # Gymnasium envs have no preset of their own: walker's sizes (gamma 0.98)
        preset_domain = GYM_PRESET_DOMAIN if is_gym_domain(domain) else domain
        base = config_class.preset(preset_domain, str(config))  # type: ignore[arg-type]
    else:
        path = Path(config)
        if not path.is_file():
            raise ValueError(
                f"Config {config!r} is neither a preset (paper, cpu, tiny) nor a JSON file."
            )
        try:
            base = config_class.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"Config file {path} is not valid JSON: {exc}") from exc
    if overrides:
        merged = {**base.to_dict(), **overrides}
        base = config_class.from_dict(merged)
    return dataclasses.replace(base)


def _eval_fn(domain: str, samples: Any, episodes: int, seed: int) -> Any:
    """Zero-shot returns on every task of the domain (rewards relabelled once)."""
    from bfm_gym.envs import list_tasks
    from bfm_gym.envs.dmc_env import DMCEnv
    from bfm_gym.envs.relabel import Relabeler
    from bfm_gym.evaluation.rollout import rollout_returns

    tasks = [t for t in list_tasks(domain) if not t.startswith("test_")]
    rewards = Relabeler(domain).rewards_many(samples.next_state, tasks)

    def evaluate(bfm: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        for task in tasks:
            z = bfm.infer_z(samples.next_obs, rewards[task].astype(np.float32))
            returns = rollout_returns(lambda task=task: DMCEnv(domain, task),
                                      lambda obs, z=z: bfm.act(obs, z), episodes, seed)
            out[f"zero_shot/{task}"] = float(returns.mean())
        out["zero_shot/mean"] = float(np.mean([out[f"zero_shot/{t}"] for t in tasks]))
        return out

    return evaluate


def _check_same_spaces(manifests: list[dict[str, Any]]) -> None:
    """Datasets of one Gymnasium id mixed in one run must share their env (kwargs, spaces)."""
    envs = [m.get("env") for m in manifests]
    if any(e is not None for e in envs) and len({json.dumps(e, sort_keys=True) for e in envs}) > 1:
        raise ValueError(
            "The datasets were recorded on different envs (kwargs or spaces differ): "
            + "; ".join(f"{m['dataset_id']}: {json.dumps(m.get('env'), sort_keys=True)}" for m in manifests)
            + ". Mix only datasets of one env."
        )


def _gym_eval_fn(domain: str, env_info: dict[str, Any], samples: Any, episodes: int,
                 seed: int) -> Any:
    """Zero-shot returns on the tasks of a Gymnasium env that its samples can label (``native``
    and registered ones), or None when the env cannot be built here (a warning says why)."""
    import warnings

    from bfm_gym.envs import list_tasks
    from bfm_gym.envs.gym_env import make_task_env
    from bfm_gym.envs.gym_tasks import label_rewards
    from bfm_gym.evaluation.rollout import rollout_returns

    try:
        make_task_env(domain, env_info=env_info).close()
    except Exception as exc:  # e.g. the env's package is not installed here
        warnings.warn(f"No zero-shot evaluation during training: {domain} cannot be built "
                      f"({exc}).", UserWarning, stacklevel=3)
        return None
    rewards: dict[str, np.ndarray] = {}
    for task in [t for t in list_tasks(domain) if not t.startswith("test_")]:
        try:
            rewards.update(label_rewards(domain, [task], samples, env_info))
        except ValueError as exc:  # a task these samples cannot label (e.g. no states)
            warnings.warn(f"Task {task!r} is not evaluated during training: {exc}", UserWarning,
                          stacklevel=3)
    tasks = [t for t, r in rewards.items() if np.any(r)]

    def evaluate(bfm: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        for task in tasks:
            z = bfm.infer_z(samples.next_obs, rewards[task].astype(np.float32))
            returns = rollout_returns(lambda task=task: make_task_env(domain, task, env_info=env_info),
                                      lambda obs, z=z: bfm.act(obs, z), episodes, seed)
            out[f"zero_shot/{task}"] = float(returns.mean())
        if tasks:
            out["zero_shot/mean"] = float(np.mean([out[f"zero_shot/{t}"] for t in tasks]))
        return out

    return evaluate if tasks else None


def _load_datasets(datasets: list[Path]) -> Any:
    """The concatenated transitions of one or more datasets (of one domain, checked before):
    bfm_gym folders or Minari datasets (:mod:`bfm_gym.data.sources`)."""
    from bfm_gym.data.dataset import Transitions
    from bfm_gym.data.sources import load_source, resolve_source

    parts = [load_source(resolve_source(d)) for d in datasets]
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0] + [int(p.episode.max()) + 1 for p in parts[:-1]])
    return Transitions(
        obs=np.concatenate([p.obs for p in parts]),
        action=np.concatenate([p.action for p in parts]),
        next_obs=np.concatenate([p.next_obs for p in parts]),
        terminated=np.concatenate([p.terminated for p in parts]),
        next_state=np.concatenate([p.next_state for p in parts]),
        episode=np.concatenate([p.episode + o for p, o in zip(parts, offsets, strict=True)]),
        domain=parts[0].domain,
        reward=(np.concatenate([p.reward for p in parts])
                if all(p.reward is not None for p in parts) else None),
        env=parts[0].env,
    )


def _start_model(model: str | os.PathLike[str], family: str) -> tuple[Path, dict[str, Any]]:
    """``(folder, record)`` of the model a run continues: the folder of a path or shipped name,
    and what the run's spec records of it (the name as given, its weights' SHA-256, its steps).

    Raises:
        ValueError: Not a model, or a model of another family than ``family``.
    """
    import hashlib

    from bfm_gym.models.registry import families, load_folder
    from bfm_gym.pretrained import resolve

    folder = resolve(model)
    handle = load_folder(folder)
    fmt = families()[family].format
    if handle.family != fmt:
        names = [n for n, f in families().items() if f.format == handle.family]
        raise ValueError(f"{model} is a {handle.family} model and this run trains {fmt} ({family}); "
                         f"pass --family {names[0] if names else '<its family>'} to continue it.")
    digest = hashlib.sha256()
    weights = [p for p in folder.iterdir() if p.is_file()  # not its card, results or pictures
               and (p.name == "config.json" or p.suffix not in (".md", ".json", ".csv", ".png"))]
    for file in sorted(weights):
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    steps = int(handle.metadata.training_steps or 0)
    return folder, {"model": str(model), "sha256": digest.hexdigest(), "training_steps": steps}


def _comparable_spec(spec: Any, config_class: Any) -> Any:
    """A run's saved spec with its config as this version writes it (``saved_as_current``)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        return spec
    return {**spec, "config": config_class.saved_as_current(spec["config"])}


def _spec_diff(previous: Any, current: dict[str, Any]) -> str:
    """The first differences between two run specs, as ``key: before -> now``."""
    if not isinstance(previous, dict):
        return "no readable spec"
    diffs = [f"{k}: {previous.get(k)!r} -> {v!r}" for k, v in current.items()
             if k != "config" and previous.get(k) != v]
    before = previous.get("config") if isinstance(previous.get("config"), dict) else {}
    diffs += [f"{k}: {before.get(k)!r} -> {v!r}" for k, v in current["config"].items() if before.get(k) != v]
    return "; ".join(diffs[:4]) or "differs"


def _preset_drift(previous: Any, current: dict[str, Any], config: Any,
                  overrides: dict[str, Any] | None) -> dict[str, Any] | None:
    """The recorded config of a run begun under an earlier version of the same preset, or None.

    A rerun of the same command must resume even when a preset's defaults changed since the run
    began (e.g. a domain's ``cpu`` preset gained ``ema_tau``). That is the case when ``config``
    names a preset, the dataset, seed and every other part of the spec are the same, and every
    config field that differs is one the command does not set itself (``overrides``). A field
    the command sets, or any other difference, is a different run: None.
    """
    from bfm_gym.models._config import PRESET_SIZES

    if not (isinstance(config, str) and config in PRESET_SIZES):
        return None
    if not isinstance(previous, dict) or not isinstance(previous.get("config"), dict):
        return None
    if {k: v for k, v in previous.items() if k != "config"} != {
            k: v for k, v in current.items() if k != "config"}:
        return None
    before, now = previous["config"], current["config"]
    if set(before) != set(now):
        return None
    changed = {k for k in now if before[k] != now[k]}
    if not changed or changed & set(overrides or {}):
        return None
    return dict(before)


def pretrain(
    dataset: str | os.PathLike[str] | list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | Any = "cpu",
    overrides: dict[str, Any] | None = None,
    updates: int = 100_000,
    seed: int = 0,
    device: str = "auto",
    eval_every: int = 10_000,
    eval_episodes: int = 2,
    checkpoint_every: int = 5_000,
    keep_every: int = 0,
    log_every: int = 200,
    inference_samples: int = 10_000,
    threads: int | str | None = "auto",
    progress: bool = True,
    overwrite: bool = False,
    family: str = "fb",
    init_from: str | os.PathLike[str] | None = None,
) -> Path:
    """Trains a model of ``family`` (FB by default) on datasets and returns the model folder.

    Args:
        dataset: Folder written by ``bfm-gym collect``, a Minari dataset (folder, or name of
            one present locally; its recorded rewards label the env's own task ``native``),
            or a list of these of one domain whose transitions are mixed (e.g. RND and
            random data). Nothing is downloaded.
        out: Model folder to create (or to resume into).
        config: Preset (``paper``/``cpu``/``tiny``), JSON file or config object of the family.
        overrides: Config fields to change.
        updates: Total gradient updates.
        seed: Training seed.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``.
        eval_every: Updates between zero-shot evaluations (0 disables them).
        eval_episodes: Episodes per task and evaluation.
        checkpoint_every: Updates between resume checkpoints.
        keep_every: Keep the checkpoints at multiples of this step for ``export_checkpoint``
            (0: only the newest two are kept).
        log_every: Updates between logged metrics.
        inference_samples: Dataset next-states shipped with the model for z inference.
        threads: torch threads on CPU (``auto`` = free cores).
        progress: Show a progress bar.
        overwrite: Start afresh even if ``out`` holds a run.
        family: The registered family to train: ``"fb"`` (FB / FB-AWARE), ``"hilp"``, or a
            plugin's that registers a trainer (``config`` and ``overrides`` then take that
            family's fields).
        init_from: Continue pre-training this model (a folder or a shipped name, of ``family``
            and of ``config``'s architecture): its weights start the run, the optimisers start
            afresh, and ``updates`` counts on from its training steps. The run's spec records
            a hash of the model's files, so a rerun resumes and another model is refused.

    Raises:
        ValueError: Bad config or dataset; a run with another config is in ``out``; a
            family that is not registered or registers no trainer.
    """
    from bfm_gym._version import __version__
    from bfm_gym.data.sources import resolve_source
    from bfm_gym.evaluation.zero_shot import InferenceSet
    from bfm_gym.models import ModelMetadata
    from bfm_gym.models.registry import trainer_for

    trainer_class = trainer_for(family)
    folders = [Path(d) for d in (dataset if isinstance(dataset, (list, tuple)) else [dataset])]
    if not folders:
        raise ValueError("Give at least one dataset folder.")
    sources = [resolve_source(d) for d in folders]
    folders = [src.path for src in sources]
    manifests = [src.manifest for src in sources]
    domains = {m["domain"] for m in manifests}
    if len(domains) != 1:
        raise ValueError(f"Datasets of one domain can be mixed; got domains {sorted(domains)}.")
    domain = manifests[0]["domain"]
    env_info = manifests[0].get("env")
    _check_same_spaces(manifests)
    cfg = make_config(domain, config, overrides, family=family)
    out = Path(out)
    run = out / "training"
    run_json = run / "run.json"
    sha = manifests[0]["sha256"] if len(manifests) == 1 else [m["sha256"] for m in manifests]
    run_spec = {"dataset_sha256": sha, "config": cfg.to_dict(), "seed": seed}
    if family != "fb":  # FB runs keep the spec they had before families existed
        run_spec["family"] = family
    start = _start_model(init_from, family) if init_from is not None else None
    if start is not None:
        run_spec["init_from"] = start[1]
        if updates <= start[1]["training_steps"]:
            raise ValueError(f"--updates {updates} does not go past the {start[1]['training_steps']} "
                             f"updates {init_from} was trained for; give a larger total.")
    if out.exists() and overwrite:
        from bfm_gym.errors import check_own_folder

        check_own_folder(out, ["training/run.json", "config.json"], "training run or model folder",
                         consequence="--overwrite would delete it")
        shutil.rmtree(out)
    if run_json.is_file():
        previous = _comparable_spec(json.loads(run_json.read_text()).get("spec"), type(cfg))
        if previous != run_spec:
            drifted = _preset_drift(previous, run_spec, config, overrides)
            if drifted is None:
                raise ValueError(
                    f"{out} holds a run with another dataset, config or seed ({_spec_diff(previous, run_spec)}); "
                    "pass --overwrite to replace it, or choose another --out."
                )
            import warnings

            warnings.warn(
                f"{out} was begun under an earlier {config!r} preset ({_spec_diff(run_spec, previous)}, "
                "as recorded); it resumes with its recorded config. Pass --overwrite to start it "
                "again under today's preset.", UserWarning, stacklevel=2)
            cfg = type(cfg).from_dict(drifted)
            run_spec["config"] = cfg.to_dict()
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not a bfm_gym training run; choose another --out.")
    run.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_json, {"spec": run_spec, "dataset": [str(f.resolve()) for f in folders],
                                 "updates": updates, "bfm_gym_version": __version__}, sort_keys=True)

    transitions = _load_datasets(folders)
    if env_info is not None:  # data of a Gymnasium env must fit that env, before any training
        from bfm_gym.data.sources import check_env_matches

        check_env_matches(manifests[0], transitions)
    replay = trainer_class.replay_from(transitions)
    samples = InferenceSet.from_transitions(transitions, n=inference_samples, seed=seed)
    dataset_ids = " + ".join(
        f"{m['dataset_id']} (seed {m['seed']}, {m['episodes']} episodes)" for m in manifests)
    if env_info is None:
        from bfm_gym.envs import make_env

        env = make_env(domain)
        metadata = ModelMetadata(
            domain=domain,
            dataset_id=dataset_ids,
            obs_low=env.observation_space.low.tolist(),
            obs_high=env.observation_space.high.tolist(),
            action_low=env.action_space.low.tolist(),
            action_high=env.action_space.high.tolist(),
            extra={"dataset_sha256": sha, "train_seed": seed},
        )
        env.close()
    else:  # a Gymnasium env: the model records the env (id, kwargs, spaces) it was trained on
        obs_dim = transitions.obs.shape[1]
        metadata = ModelMetadata(
            domain=domain,
            dataset_id=dataset_ids,
            obs_low=[-math.inf] * obs_dim,
            obs_high=[math.inf] * obs_dim,
            action_low=env_info["action_low"],
            action_high=env_info["action_high"],
            extra={"dataset_sha256": sha, "train_seed": seed, "env": env_info},
        )
    trainer = trainer_class(cfg, transitions.obs.shape[1], transitions.action.shape[1], device=device,
                        seed=seed, metadata=metadata, threads=threads)
    if start is not None:
        trainer.start_from(start[0])
    del transitions
    if env_info is not None:
        eval_fn = _gym_eval_fn(domain, env_info, samples, eval_episodes, seed) if eval_every else None
    else:
        eval_fn = _eval_fn(domain, samples, eval_episodes, seed) if eval_every else None
    history = trainer.train(replay, updates, run, log_every=log_every,
                            checkpoint_every=checkpoint_every, keep_every=keep_every, eval_fn=eval_fn,
                            eval_every=eval_every or None, progress=progress)
    write_json_atomic(run / "history.json", history, sort_keys=True)
    for file in sorted((run / "model").iterdir()):  # the model folder the trainer wrote
        if file.is_file():
            with atomic_path(out / file.name) as tmp:
                shutil.copyfile(file, tmp)
    samples.save(out)
    return out


def export_checkpoint(
    model_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    step: int | None = None,
    inference_samples: int = 10_000,
    average: int = 1,
    weights: Literal["auto", "online", "ema"] = "auto",
) -> Path:
    """Writes a model folder from a training checkpoint of a ``pretrain`` run.

    The folder is what ``pretrain`` would have written had it stopped at that step: the
    weights, ``cov`` finalized on the same seeded draw of dataset states, and inference
    samples drawn with the run's seed. Use it to evaluate or adapt an intermediate model
    while the run goes on.

    With ``average=K`` the weights are the uniform average of the K newest kept checkpoints
    up to ``step`` (checkpoint averaging, "SWA"; :func:`average_checkpoint_weights`), and
    ``cov`` is finalized for the averaged B. The steps averaged are recorded in the model's
    metadata (``extra["averaged_steps"]``).

    A run trained with ``ema_tau > 0`` keeps a moving average of its weights in every
    checkpoint; ``weights="auto"`` exports it (as ``pretrain``'s final model does),
    ``"online"`` the last update's weights.

    Args:
        model_dir: The ``--out`` folder of a ``pretrain`` run (holds ``training/``).
        out: New model folder.
        step: Checkpoint step (default: the newest; the trainer keeps the last two, and
            those at multiples of ``pretrain(keep_every=...)``).
        inference_samples: Dataset next-states shipped for z inference.
        average: Checkpoints averaged (1: the checkpoint's own weights).
        weights: ``"auto"``, ``"online"`` or ``"ema"`` (see above); averaging checkpoints
            averages their online weights.

    Raises:
        FileNotFoundError: No run, no checkpoint at ``step``, or fewer than ``average`` kept
            checkpoints up to it (the message lists them).
        FileExistsError: ``out`` exists and is not empty.
        ValueError: ``average < 1``, ``weights="ema"`` for a run without a moving average or
            together with ``average > 1``.
    """
    from bfm_gym.evaluation.zero_shot import InferenceSet
    from bfm_gym.models._trainer import list_checkpoints
    from bfm_gym.models.registry import trainer_for

    run = Path(model_dir) / "training"
    run_json = run / "run.json"
    if not run_json.is_file():
        raise FileNotFoundError(f"{model_dir} holds no pretrain run (no training/run.json).")
    info = json.loads(run_json.read_text())
    steps = [int(p.name[5:]) for p in list_checkpoints(run / "checkpoints")]
    if not steps:
        raise FileNotFoundError(f"{run / 'checkpoints'} holds no checkpoint yet.")
    step = steps[-1] if step is None else int(step)
    if step not in steps:
        raise FileNotFoundError(f"No checkpoint at step {step} in {run / 'checkpoints'}; "
                                f"available: {', '.join(map(str, steps))}.")
    if average < 1:
        raise ValueError(f"average={average}: give the number of checkpoints to average (>= 1).")
    if average > 1 and weights == "ema":
        raise ValueError("average > 1 averages the checkpoints' online weights; "
                         "weights='ema' reads one checkpoint's moving average: choose one.")
    window = [s for s in steps if s <= step][-average:]
    if len(window) < average:
        raise FileNotFoundError(
            f"average={average} needs {average} kept checkpoints up to step {step}; "
            f"{run / 'checkpoints'} holds {', '.join(map(str, steps))}. Keep more "
            "(pretrain --keep-every) or average fewer.")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose another folder.")
    trainer_class = trainer_for(info["spec"].get("family", "fb"))
    trainer = trainer_class.from_checkpoint(run / "checkpoints" / f"step_{step:09d}", device="cpu",
                                            threads=None)
    if average > 1:
        folders = [run / "checkpoints" / f"step_{s:09d}" for s in window]
        # the newest checkpoint is already loaded: average its weights, do not read it twice
        averaged = average_checkpoint_weights(trainer_class, folders,
                                              loaded={folders[-1]: trainer.model.state_dict()})
        trainer.model.load_state_dict(averaged)
        trainer.metadata = trainer.metadata.replace(
            extra={**trainer.metadata.extra, "averaged_steps": window})
    transitions = _load_datasets([Path(d) for d in info["dataset"]])
    replay = trainer_class.replay_from(transitions)
    samples = InferenceSet.from_transitions(transitions, n=inference_samples,
                                            seed=int(info["spec"]["seed"]))
    trainer.save_model(out, replay, weights="online" if average > 1 else weights)
    samples.save(out)
    return out


def average_checkpoint_weights(trainer_class: Any, folders: list[Path],
                               loaded: dict[Path, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The uniform average of the models saved in ``folders`` (checkpoints of one run;
    :func:`~bfm_gym.models.averaging.average_state_dicts`).

    ``loaded`` maps folders whose model state the caller already holds to that state, which
    is used instead of reading the folder again (the order of the average is ``folders``'s).

    Raises:
        CheckpointError: A folder that is not a model of the family, or models whose tensors
            differ in names or shapes (another run's or another config's checkpoint).
    """
    from bfm_gym.models.averaging import average_state_dicts
    from bfm_gym.models.checkpoint import CheckpointError

    loaded = loaded or {}
    states = [loaded[f] if f in loaded
              else trainer_class._handle_class._folder.load(f, device="cpu")[0].state_dict()
              for f in folders]
    try:
        return average_state_dicts(states)
    except ValueError as err:
        raise CheckpointError(f"{', '.join(map(str, folders))}: {err}") from err
