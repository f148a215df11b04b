"""Datasets by reference: a bfm_gym dataset folder, a Minari dataset folder, or a Minari name.

``bfm-gym pretrain --dataset REF`` accepts

* a folder written by ``bfm-gym collect`` (it holds ``bfm_gym.json``);
* a Minari dataset made by anyone: its folder (``.../halfcheetah/medium-v0``, which holds
  ``data/``), a datasets root holding exactly one dataset, or its name
  (``mujoco/halfcheetah/medium-v0``) when it is present locally under
  ``MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``). Nothing is downloaded: a name
  that is not present locally raises an error with the ``minari download`` command to run.

A Minari dataset made by someone else becomes :class:`~bfm_gym.data.dataset.Transitions`
with its recorded rewards (task ``native``, which labels zero-shot inference of the env's
own task), its terminations, actions rescaled from the dataset's action bounds to
``[-1, 1]``, Dict observations flattened in the order of the dataset's observation space,
and no simulator states (tasks that need them say so). Its env comes from the dataset's
recorded ``env_spec`` (id and kwargs).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bfm_gym.data.dataset import MANIFEST, DatasetError, Transitions

__all__ = ["DatasetSource", "check_env_matches", "load_source", "resolve_source"]


@dataclass(frozen=True)
class DatasetSource:
    """A resolved dataset reference.

    Attributes:
        kind: ``"bfm_gym"`` (a ``bfm-gym collect`` folder) or ``"minari"`` (anyone's).
        path: The bfm_gym folder, or the Minari dataset folder (the one holding ``data/``).
        manifest: ``domain``, ``dataset_id``, ``seed``, ``episodes``, ``sha256`` (and ``env``
            for Gymnasium envs): the bfm_gym manifest, or the same fields for a Minari dataset.
    """

    kind: str
    path: Path
    manifest: dict[str, Any]


def minari_root() -> Path:
    """Where Minari keeps local datasets (``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``)."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(root) if root else Path.home() / ".minari" / "datasets"


def _minari_folders(root: Path) -> list[Path]:
    """Minari datasets under a root (ids nest up to ``namespace/name/version``)."""
    found = [p for depth in range(1, 5)
             for p in root.glob("/".join(["*"] * depth) + "/data/metadata.json")]
    return sorted(p.parent.parent for p in found)


def resolve_source(ref: str | os.PathLike[str]) -> DatasetSource:
    """Resolves a dataset reference (see the module docstring).

    Raises:
        DatasetError: Nothing found (the message gives the ``minari download`` command for a
            name), several Minari datasets under one folder, or spaces a BFM cannot use.
    """
    from bfm_gym.data.dataset import read_manifest

    path = Path(ref)
    if path.is_dir() and (path / MANIFEST).is_file():
        return DatasetSource("bfm_gym", path, read_manifest(path))
    if path.is_dir():
        if (path / "data" / "metadata.json").is_file():
            return _minari_source(path)
        found = _minari_folders(path)
        if len(found) == 1:
            return _minari_source(found[0])
        if found:
            names = ", ".join(str(p.relative_to(path)) for p in found)
            raise DatasetError(f"{path} holds several Minari datasets ({names}); pass one of them.")
        raise DatasetError(
            f"{path} is not a bfm_gym dataset (no {MANIFEST}), nor a Minari dataset (no "
            "data/metadata.json). Make one with `bfm-gym collect --domain DOMAIN --out DIR` "
            "(or --env ID for a Gymnasium env)."
        )
    local = minari_root() / str(ref)
    if (local / "data" / "metadata.json").is_file():
        return _minari_source(local)
    if Path(ref).is_absolute() or str(ref).startswith((".", "~")):
        raise DatasetError(
            f"Dataset folder {ref} does not exist; create one with "
            f"`bfm-gym collect --domain DOMAIN --out {ref}` (or --env ID)."
        )
    raise DatasetError(
        f"No dataset {str(ref)!r}: it is not a folder, and no Minari dataset of that name is "
        f"present locally (looked in {minari_root()}; set MINARI_DATASETS_PATH to look "
        f"elsewhere). bfm_gym downloads nothing at run time; download it first with "
        f"`minari download {ref}`, or make a dataset with `bfm-gym collect --env ID --out DIR`."
    )


def _hash_folder(folder: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(folder)).encode())
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _open(folder: Path) -> Any:
    from minari import MinariDataset

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MinariDataset(folder / "data")
    except Exception as exc:  # minari/h5py raise many types on a damaged dataset
        raise DatasetError(f"Cannot open {folder} as a Minari dataset: {exc}.") from exc


def _json_safe(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in (kwargs or {}).items():
        try:
            out[key] = json.loads(json.dumps(value))
        except (TypeError, ValueError):
            warnings.warn(f"env kwarg {key!r} is not JSON; it is not recorded.", UserWarning, stacklevel=3)
    return out


def _minari_source(folder: Path) -> DatasetSource:
    from bfm_gym.envs.gym_spec import EnvInfo, check_spaces

    ds = _open(folder)
    dataset_id = str(ds.spec.dataset_id)
    check_spaces(ds.observation_space, ds.action_space, what=f"Minari dataset {dataset_id!r}")
    spec = ds.spec.env_spec
    keys = None
    if hasattr(ds.observation_space, "spaces") and isinstance(ds.observation_space.spaces, dict):
        keys = list(ds.observation_space.spaces)
    act = ds.action_space
    info = EnvInfo(
        id=spec.id if spec is not None else "",
        kwargs=_json_safe(dict(spec.kwargs)) if spec is not None else {},
        obs_keys=keys,
        observation_space=str(ds.observation_space),
        action_space=str(act),
        action_low=np.asarray(act.low, np.float32).tolist(),
        action_high=np.asarray(act.high, np.float32).tolist(),
        max_episode_steps=spec.max_episode_steps if spec is not None else None,
        has_state=False,
    )
    manifest = {
        "domain": info.id or dataset_id,
        "dataset_id": dataset_id,
        "seed": None,
        "episodes": int(ds.total_episodes),
        "steps": int(ds.total_steps),
        "sha256": _hash_folder(folder / "data"),
        "env": info.to_dict(),
        "minari": True,
    }
    return DatasetSource("minari", folder, manifest)


def load_source(source: DatasetSource, *, max_episodes: int | None = None) -> Transitions:
    """The transitions of a resolved dataset.

    Raises:
        DatasetError: Unreadable data, or observations/actions that do not fit the spaces.
    """
    from bfm_gym.data.dataset import load_transitions

    if source.kind == "bfm_gym":
        return load_transitions(source.path, max_episodes=max_episodes)
    info = source.manifest["env"]
    keys = info.get("obs_keys")
    low = np.asarray(info["action_low"], np.float64)
    high = np.asarray(info["action_high"], np.float64)
    ds = _open(source.path)
    obs, act, nxt, term, rew, epi = [], [], [], [], [], []
    try:
        for k, ep in enumerate(ds.iterate_episodes()):
            if max_episodes is not None and k >= max_episodes:
                break
            raw = ep.observations
            o = (np.concatenate([np.asarray(raw[key], np.float32).reshape(len(raw[key]), -1)
                                 for key in keys], axis=1) if keys
                 else np.asarray(raw, np.float32).reshape(len(raw), -1))
            a = np.asarray(ep.actions, np.float64).reshape(len(o) - 1, -1)
            obs.append(o[:-1])
            nxt.append(o[1:])
            act.append((2.0 * (a - low) / (high - low) - 1.0).clip(-1.0, 1.0).astype(np.float32))
            term.append(np.asarray(ep.terminations, np.float32))
            rew.append(np.asarray(ep.rewards, np.float64))
            epi.append(np.full(len(o) - 1, k, dtype=np.int64))
    except (KeyError, OSError, ValueError) as exc:
        raise DatasetError(f"Minari dataset {source.path} is unreadable: {exc}.") from exc
    if not obs:
        raise DatasetError(f"Minari dataset {source.path} holds no episodes.")
    n = sum(len(x) for x in obs)
    return Transitions(
        obs=np.concatenate(obs), action=np.concatenate(act), next_obs=np.concatenate(nxt),
        terminated=np.concatenate(term), next_state=np.zeros((n, 0)),
        episode=np.concatenate(epi), domain=str(source.manifest["domain"]),
        reward=np.concatenate(rew), env=info,
    )


def check_env_matches(manifest: dict[str, Any], transitions: Transitions) -> None:
    """Checks that a Gymnasium dataset's data fit the env it records (before any training).

    Does nothing for dm_control domains, or when the env cannot be built here (its package is
    missing: training still works, evaluation and wrapping need the env).

    Raises:
        DatasetError: The observations or actions do not have the env's sizes or bounds (data of
            another version or configuration of the env); the message names both spaces.
    """
    from bfm_gym.envs.gym_env import make_task_env
    from bfm_gym.envs.gym_spec import EnvInfo

    raw = manifest.get("env")
    if not raw or not raw.get("id"):
        return
    info = EnvInfo.from_dict(raw)
    try:
        env = make_task_env(info.id, env_info=info)
    except Exception:
        return
    try:
        obs_dim, act_dim = int(transitions.obs.shape[1]), int(transitions.action.shape[1])
        bounds_ok = (info.action_low is None or (
            len(info.action_low) == env.action_space.shape[0]
            and np.allclose(info.action_low, env.action_space.low)
            and np.allclose(info.action_high, env.action_space.high)))
        if env.observation_space.shape != (obs_dim,) or env.action_space.shape != (act_dim,) or not bounds_ok:
            raise DatasetError(
                f"Dataset {manifest['dataset_id']!r} does not match its env {info.id!r}: the data "
                f"hold observations of size {obs_dim} and actions of size {act_dim} (dataset "
                f"spaces {info.observation_space}, {info.action_space}), but "
                f"gym.make({info.id!r}, **{info.kwargs}) gives {env.info.observation_space} and "
                f"{env.info.action_space}. The data were recorded on another version or "
                "configuration of the env: use data of this env, or make the dataset record the "
                "env (id and kwargs) it was collected on."
            )
    finally:
        env.close()
