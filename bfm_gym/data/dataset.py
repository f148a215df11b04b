"""Reward-free datasets on disk: Minari format plus a bfm_gym manifest.

Layout of a dataset folder ``DIR`` (written by :func:`bfm_gym.data.collect`)::

    DIR/bfm_gym.json                      manifest: domain, agent, seed, sizes, hash
    DIR/<domain>-<agent>-v0/data/...      a Minari dataset (hdf5)
    DIR/coverage.json, DIR/coverage.png   coverage report

``DIR`` is a Minari datasets root, so Minari opens it directly::

    MINARI_DATASETS_PATH=DIR python -c "import minari; minari.load_dataset('walker-rnd-v0')"

Each episode holds observations ``(T+1, obs_dim)`` float32, actions ``(T, act_dim)``
float32, zero rewards (reward-free), terminations/truncations, and
``infos["state"]`` ``(T+1, state_size)`` float64: the simulator state at each
observation (:mod:`bfm_gym.envs.state`), from which any task reward of the
transition ``t`` is recomputed on ``state[t + 1]``.

Data of a Gymnasium env (``bfm-gym collect --env ID``; the manifest's ``domain`` is the id
and ``env`` its :class:`~bfm_gym.envs.gym_env.EnvInfo`) differ in three ways: the rewards
are the env's own (task ``native``), episodes may end in a termination (the last step's
``terminations`` flag) before the cap, and ``infos["state"]`` is there only for MuJoCo envs
(``state_size`` 0 otherwise). Actions are stored in ``[-1, 1]`` (rescaled from the env's
bounds, which ``env`` records), observations flat (Dict ones in ``env["obs_keys"]`` order).
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

MANIFEST = "bfm_gym.json"
FORMAT_VERSION = 1


class DatasetError(ValueError):
    """A dataset folder is missing, foreign, corrupt or does not fit the domain."""


@dataclass
class Transitions:
    """All transitions of a dataset, as flat arrays (one row per env step).

    Attributes:
        obs: ``(n, obs_dim)`` float32, s.
        action: ``(n, act_dim)`` float32, a.
        next_obs: ``(n, obs_dim)`` float32, s'.
        terminated: ``(n,)`` float32, 1 where s' is terminal (never for DMC; Gymnasium
            envs such as Hopper terminate when they fall). Pre-training does not bootstrap
            through these.
        next_state: ``(n, state_size)`` float64 simulator state of s' (for relabelling);
            ``state_size`` is 0 when the env's state cannot be read (non-MuJoCo envs,
            datasets made by others).
        episode: ``(n,)`` int64 episode index of each transition.
        domain: Domain name, or the Gymnasium id of a Gymnasium env.
        reward: ``(n,)`` float64 rewards the env gave (task ``native``); None for
            reward-free dm_control data.
        env: The :class:`~bfm_gym.envs.gym_env.EnvInfo` of a Gymnasium env, as a dict;
            None for dm_control domains.
    """

    obs: np.ndarray
    action: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    next_state: np.ndarray
    episode: np.ndarray
    domain: str
    reward: np.ndarray | None = None
    env: dict[str, Any] | None = None

    def __len__(self) -> int:
        return int(self.obs.shape[0])


def dataset_id(domain: str, agent: str) -> str:
    """Minari dataset id used inside a bfm_gym dataset folder (characters Minari ids do not
    allow, such as the ``/`` of ``dm_control/walker-walk-v0``, become ``_``)."""
    import re

    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', domain)}-{agent}-v0"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Returns the hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, payload: Any) -> None:
    """Deprecated alias: use ``bfm_gym.utils.io.write_json_atomic(path, payload, sort_keys=True)``."""
    from bfm_gym.utils.io import write_json_atomic as _write

    warnings.warn("bfm_gym.data.dataset.write_json_atomic is deprecated; use "
                  "bfm_gym.utils.io.write_json_atomic", DeprecationWarning, stacklevel=2)
    _write(path, payload, sort_keys=True)


def write_minari(root: Path, episodes: list[dict[str, np.ndarray]], *, domain: str, agent: str,
                 description: str, env_info: dict[str, Any] | None = None) -> Path:
    """Writes episodes as a Minari dataset under ``root`` and returns the hdf5 path.

    Args:
        root: Minari datasets root (``MINARI_DATASETS_PATH`` during the write).
        episodes: Dicts with ``observations``, ``actions``, ``states``, ``seed`` and, for
            Gymnasium envs, ``rewards`` and ``terminated``.
        domain: Domain name (spaces come from its reward-free env id) or Gymnasium id.
        agent: Collector agent name.
        description: Free text stored in Minari's metadata.
        env_info: The EnvInfo dict of a Gymnasium env (its spec, with kwargs, is recorded).
    """
    import gymnasium as gym
    from minari import create_dataset_from_buffers
    from minari.data_collector import EpisodeBuffer

    from bfm_gym.envs.registration import env_id

    buffers = []
    for i, ep in enumerate(episodes):
        t = ep["actions"].shape[0]
        terminated = bool(ep.get("terminated", False))
        states = ep["states"]
        buffers.append(
            EpisodeBuffer(
                id=i,
                seed=int(ep["seed"]),
                observations=ep["observations"],
                actions=ep["actions"],
                rewards=np.asarray(ep.get("rewards", np.zeros(t)), dtype=np.float64),
                terminations=(np.arange(1, t + 1) == t) & terminated,
                truncations=(np.arange(1, t + 1) == t) & (not terminated),
                infos={"state": states} if states.shape[-1] else {},
            )
        )
    if env_info is None:
        spec = gym.spec(env_id(domain))
    else:
        import dataclasses

        base = gym.spec(env_info["id"])
        spec = dataclasses.replace(base, kwargs={**base.kwargs, **env_info.get("kwargs", {})},
                                   max_episode_steps=env_info.get("max_episode_steps")
                                   or base.max_episode_steps)
    obs_dim = episodes[0]["observations"].shape[1]
    act_dim = episodes[0]["actions"].shape[1]
    root = Path(root).resolve()  # Minari mis-joins relative roots
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            create_dataset_from_buffers(
                dataset_id(domain, agent),
                buffers,
                env=spec,
                observation_space=gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
                action_space=gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32),
                algorithm_name=f"bfm_gym collect --agent {agent}",
                author="bfm_gym",
                description=description,
                data_format="hdf5",
            )
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
    return root / dataset_id(domain, agent) / "data" / "main_data.hdf5"


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads and checks ``DIR/bfm_gym.json``.

    Raises:
        DatasetError: Missing folder or manifest, unreadable JSON, unknown version.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(
            f"Dataset folder {root} does not exist; create one with "
            f"`bfm-gym collect --domain DOMAIN --out {root}`."
        )
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise DatasetError(
            f"{root} is not a bfm_gym dataset: it has no {MANIFEST}. Datasets are made by "
            "`bfm-gym collect`; a plain Minari dataset (no simulator states: its recorded "
            "rewards are its only labels) is read by `bfm-gym pretrain --dataset` "
            "(bfm_gym.data.sources.load_source)."
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{manifest_path} is not valid JSON ({exc}); the dataset is corrupt.") from exc
    for key in ("format_version", "domain", "agent", "dataset_id", "episodes", "sha256"):
        if key not in manifest:
            raise DatasetError(f"{manifest_path} lacks the field {key!r}; the dataset is corrupt.")
    if manifest["format_version"] != FORMAT_VERSION:
        raise DatasetError(
            f"{root} has dataset format {manifest['format_version']}; this bfm_gym reads "
            f"format {FORMAT_VERSION}. Re-collect it with this version."
        )
    return manifest


def open_minari(path: str | os.PathLike[str], *, verify_hash: bool = False) -> Any:
    """Opens the Minari dataset inside a bfm_gym dataset folder.

    Args:
        path: Dataset folder.
        verify_hash: Recompute the sha256 of the hdf5 file and compare it to the manifest.

    Raises:
        DatasetError: The folder is not a readable bfm_gym dataset.
    """
    from minari import MinariDataset

    manifest = read_manifest(path)
    data_dir = Path(path) / manifest["dataset_id"] / "data"
    hdf5 = data_dir / "main_data.hdf5"
    if not hdf5.is_file():
        raise DatasetError(f"{hdf5} is missing; the dataset is incomplete. Re-collect it.")
    if verify_hash and sha256_file(hdf5) != manifest["sha256"]:
        raise DatasetError(
            f"{hdf5} does not match the sha256 in {MANIFEST}: the file was modified or "
            "truncated. Re-collect the dataset."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MinariDataset(data_dir)
    except Exception as exc:  # h5py/minari raise many types on a damaged file
        raise DatasetError(f"Cannot open {hdf5} as a Minari dataset: {exc}. Re-collect it.") from exc


def load_transitions(path: str | os.PathLike[str], *, max_episodes: int | None = None,
                     verify_hash: bool = True) -> Transitions:
    """Loads a dataset folder as flat transition arrays.

    Args:
        path: Dataset folder written by ``bfm-gym collect``.
        max_episodes: Load only the first episodes (all by default).
        verify_hash: Check the file against the manifest's sha256 first.

    Raises:
        DatasetError: Missing, foreign or corrupt dataset, or states that do not fit
            the manifest's domain.
    """
    manifest = read_manifest(path)
    ds = open_minari(path, verify_hash=verify_hash)
    gym_env = manifest.get("env")
    obs, act, nxt, nstate, epi, term, rew = [], [], [], [], [], [], []
    try:
        for k, ep in enumerate(ds.iterate_episodes()):
            if max_episodes is not None and k >= max_episodes:
                break
            o = np.asarray(ep.observations, dtype=np.float32)
            t = len(o) - 1
            if gym_env is None or manifest.get("state_size", 0):
                s = np.asarray(ep.infos["state"], dtype=np.float64)
            else:
                s = np.zeros((t + 1, 0))
            obs.append(o[:-1])
            nxt.append(o[1:])
            act.append(np.asarray(ep.actions, dtype=np.float32))
            nstate.append(s[1:])
            epi.append(np.full(t, k, dtype=np.int64))
            term.append(np.asarray(ep.terminations, dtype=np.float32))
            rew.append(np.asarray(ep.rewards, dtype=np.float64))
    except (KeyError, OSError) as exc:
        raise DatasetError(f"Dataset {path} is unreadable or lacks simulator states: {exc}.") from exc
    if not obs:
        raise DatasetError(f"Dataset {path} holds no episodes.")
    next_state = np.concatenate(nstate)
    if next_state.shape[1] != manifest.get("state_size", next_state.shape[1]):
        raise DatasetError(
            f"States in {path} have size {next_state.shape[1]} but the manifest says "
            f"{manifest['state_size']}; the dataset is corrupt."
        )
    return Transitions(
        obs=np.concatenate(obs),
        action=np.concatenate(act),
        next_obs=np.concatenate(nxt),
        terminated=np.concatenate(term),
        next_state=next_state,
        episode=np.concatenate(epi),
        domain=str(manifest["domain"]),
        reward=np.concatenate(rew) if gym_env is not None else None,
        env=gym_env,
    )
