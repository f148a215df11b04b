"""Reward-free data collection: run an exploration agent, record a Minari dataset.

``collect()`` (and ``bfm-gym collect``) runs whole episodes with a collector agent
(:mod:`bfm_gym.data.agents`), recording observations, actions, the env's own rewards,
terminations and, where the simulator allows it, the simulator state at every step. The
env is a bfm_gym domain (1000-step dm_control episodes, reward-free) or any registered
Gymnasium id with a ``Box`` action space (:mod:`bfm_gym.envs.gym_env`: Dict observations
are flattened in a recorded order; episodes may terminate early, e.g. when Hopper falls;
MuJoCo envs record their state).

Robustness:
* Work goes to ``.<out>.partial/`` next to the output in chunks of episodes. Each
  chunk is saved atomically together with the agent's full state (weights,
  optimiser, replay buffer, RNGs), so an interrupted run restarted with the same
  arguments resumes after the last finished chunk: no episode is lost or
  duplicated, and the result equals an uninterrupted run.
* The final dataset is built in ``.<out>.building/`` and moved into place with a
  rename: a killed collection never leaves a dataset at ``out`` that loads but is
  truncated.
* Episode ``k`` resets the env with a seed derived from ``(seed, k)``, so the
  dataset is a deterministic function of the arguments.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from bfm_gym.data.dataset import (
    FORMAT_VERSION,
    MANIFEST,
    Transitions,
    dataset_id,
    sha256_file,
    write_minari,
)
from bfm_gym.envs.dmc_env import EPISODE_STEPS
from bfm_gym.utils.io import save_npz_atomic, write_json_atomic

__all__ = ["collect", "episode_seed"]

_EPISODE_KEYS = ("observations", "actions", "rewards", "states")


def episode_seed(seed: int, episode: int) -> int:
    """Env reset seed of episode ``episode`` in a collection seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def _run_episode(env: Any, agent: Any, seed: int, max_steps: int, to_env: Any,
                 with_state: bool) -> tuple[dict[str, Any], dict[str, float]]:
    """One episode of at most ``max_steps`` steps; actions are stored in [-1, 1]."""
    obs, _ = env.reset(seed=seed)
    agent.reset()
    observations, actions, rewards, states = [obs], [], [], []
    if with_state:
        states.append(env.get_state())
    metrics: dict[str, float] = {}
    terminated = truncated = False
    while not (terminated or truncated):
        action = np.asarray(agent.act(obs), dtype=np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(to_env(action))
        out = agent.observe(obs, action, next_obs, bool(terminated))
        if out:
            metrics = out
        actions.append(action)
        observations.append(next_obs)
        rewards.append(float(reward))
        if with_state:
            states.append(env.get_state())
        obs = next_obs
        truncated = bool(truncated) or (len(actions) >= max_steps and not terminated)
    n = len(actions)
    return {
        "observations": np.asarray(observations, dtype=np.float32),
        "actions": np.asarray(actions, dtype=np.float32).reshape(n, -1),
        "rewards": np.asarray(rewards, dtype=np.float64),
        "states": np.asarray(states, dtype=np.float64).reshape(n + 1, -1) if with_state
        else np.zeros((n + 1, 0)),
        "terminated": bool(terminated),
    }, metrics


def _make_collection_env(domain: str, env_kwargs: dict[str, Any] | None,
                         max_episode_steps: int | None) -> tuple[Any, int, Any]:
    """``(env, episode cap, to_env)`` for a bfm_gym domain or a Gymnasium id."""
    from bfm_gym.envs.gym_env import is_gym_domain, make_gym_env

    if not is_gym_domain(domain):
        if env_kwargs or max_episode_steps:
            raise ValueError(f"--env-kwargs and --max-episode-steps are for Gymnasium ids; "
                             f"{domain!r} is a bfm_gym domain with {EPISODE_STEPS}-step episodes.")
        from bfm_gym.envs.dmc_env import DMCEnv

        return DMCEnv(domain), EPISODE_STEPS, lambda a: a
    import gymnasium as gym

    if domain.startswith("dm_control/"):
        import shimmy  # noqa: F401 - registers the dm_control/* ids
    if domain not in gym.registry:
        import difflib

        from bfm_gym.envs import DOMAINS

        close = difflib.get_close_matches(domain, [*DOMAINS, *gym.registry], n=2)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"{domain!r} is neither a bfm_gym domain (Valid domains: {', '.join(sorted(DOMAINS))}) "
            f"nor a registered Gymnasium id.{hint} For a Gymnasium env, import the package that "
            "registers it (see gymnasium.pprint_registry())."
        )
    env = make_gym_env(domain, env_kwargs=env_kwargs, max_episode_steps=max_episode_steps)
    cap = int(max_episode_steps or env.info.max_episode_steps or EPISODE_STEPS)
    low = env.action_space.low.astype(np.float64)
    half = (env.action_space.high.astype(np.float64) - low) / 2
    if np.all(low == -1.0) and np.all(half == 1.0):
        return env, cap, lambda a: a
    return env, cap, lambda a: (low + (np.asarray(a, np.float64) + 1.0) * half).astype(np.float32)


def _check_tasks(env: Any) -> None:
    """Evaluates every registered task of a Gymnasium env on one transition, so a broken task
    (non-finite or non-scalar reward) fails now and not in the coverage report at the end."""
    from bfm_gym.envs import list_tasks
    from bfm_gym.envs.gym_tasks import label_rewards

    tasks = [t for t in list_tasks(env.domain) if not t.startswith("test_")]
    obs, _ = env.reset(seed=0)
    action = np.zeros(env.action_space.shape, np.float32)
    low, high = env.action_space.low, env.action_space.high
    next_obs, reward, *_ = env.step(np.clip(action, low, high))
    state = env.get_state()[None] if env.supports_state_reset else np.zeros((1, 0))
    probe = Transitions(obs=obs[None], action=np.clip(action, -1, 1)[None], next_obs=next_obs[None],
                        terminated=np.zeros(1, np.float32), next_state=state,
                        episode=np.zeros(1, np.int64), domain=env.domain,
                        reward=np.array([reward]), env=env.info.to_dict())
    label_rewards(env.domain, tasks, probe, env.info)


def collect(
    domain: str,
    out: str | os.PathLike[str],
    *,
    agent: str = "rnd",
    steps: int | None = None,
    episodes: int | None = None,
    seed: int = 0,
    agent_config: dict[str, Any] | None = None,
    chunk_episodes: int = 10,
    overwrite: bool = False,
    progress: bool = True,
    coverage: bool = True,
    threads: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    max_episode_steps: int | None = None,
) -> Path:
    """Collects a dataset and returns its folder.

    Args:
        domain: A bfm_gym domain (``walker``, ``cheetah``, ``quadruped``, ``point_mass_maze``)
            or a registered Gymnasium id with a ``Box`` action space (``"Hopper-v5"``,
            ``"dm_control/walker-walk-v0"``).
        out: Output folder (a Minari datasets root plus ``bfm_gym.json``).
        agent: Collector agent name (``random``, ``ou``, ``rnd``).
        steps: Env steps to collect: whole episodes until at least this many steps.
        episodes: Alternatively, the number of episodes.
        seed: Seeds the agent and every episode's reset.
        agent_config: Overrides of the agent's config fields.
        chunk_episodes: Resume granularity: a chunk holds this many episodes' worth of
            steps (``chunk_episodes`` x the episode cap), or this many episodes.
        overwrite: Replace ``out`` if it exists (otherwise refuse).
        progress: Show a progress bar.
        coverage: Write the coverage report (JSON + PNG) into the dataset.
        threads: torch threads for learning agents (default: 1).
        env_kwargs: ``gym.make`` keyword arguments (Gymnasium ids only).
        max_episode_steps: Episode cap (Gymnasium ids; default: the id's own, else 1000).

    Raises:
        ValueError: Unknown domain/id/agent/config, spaces a BFM cannot use (discrete
            actions, images), a broken task, bad sizes, or ``out`` exists without
            ``overwrite``, or a partial run with other arguments is in the way.
    """
    from bfm_gym.data.agents import make_agent

    if (steps is None) == (episodes is None):
        raise ValueError("Give exactly one of steps= or episodes=.")
    if (steps if steps is not None else episodes) < 1:  # type: ignore[operator]
        raise ValueError(f"Collect at least one episode or step; got {steps or episodes}.")
    if chunk_episodes < 1:
        raise ValueError(f"chunk_episodes must be >= 1; got {chunk_episodes}.")
    out = Path(out)
    if out.exists():  # never offer to delete a folder that is not a dataset
        from bfm_gym.errors import check_own_folder

        check_own_folder(out, ["bfm_gym.json"], "dataset", consequence="--overwrite would delete it")
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"Output folder {out} exists; pass --overwrite (overwrite=True) to replace it."
        )
    env, cap, to_env = _make_collection_env(domain, env_kwargs, max_episode_steps)
    gym_env = hasattr(env, "info")
    with_state = bool(getattr(env, "supports_state_reset", False))
    if gym_env:
        try:
            _check_tasks(env)
        except Exception:
            env.close()
            raise
    partial = out.with_name(f".{out.name}.partial")
    run_config: dict[str, Any] = {
        "domain": domain,
        "agent": agent,
        "episodes": None if episodes is None else int(episodes),
        "steps": None if steps is None else int(steps),
        "seed": int(seed),
        "agent_config": dict(sorted((agent_config or {}).items())),
        "chunk_episodes": int(chunk_episodes),
    }
    if gym_env:
        run_config["env"] = env.info.to_dict()
        run_config["max_episode_steps"] = cap
    import torch

    torch.set_num_threads(int(threads or 1))

    obs_dim = env.observation_space.shape[0]
    act_dim = env.action_space.shape[0]
    try:
        collector = make_agent(agent, obs_dim, act_dim, seed, **(agent_config or {}))
    except Exception:
        env.close()
        raise

    if partial.exists():
        saved = _read_json(partial / "config.json")
        if saved != json.loads(json.dumps(run_config)):
            if overwrite:
                shutil.rmtree(partial)
            else:
                env.close()
                raise ValueError(
                    f"An interrupted collection with other arguments is at {partial} "
                    f"({saved}); rerun with the same arguments to resume it, or pass "
                    "--overwrite to discard it."
                )
    progress_state = {"chunks_done": 0, "episodes_done": 0, "steps_done": 0, "seconds": 0.0}
    if partial.exists():
        progress_state.update(_read_json(partial / "progress.json") or {})
        c = int(progress_state["chunks_done"])
        if c:
            with np.load(partial / f"agent_{c - 1:05d}.npz", allow_pickle=False) as state:
                collector.load_state_dict(state)
    else:
        partial.mkdir(parents=True)
        write_json_atomic(partial / "config.json", run_config, sort_keys=True)
        write_json_atomic(partial / "progress.json", progress_state, sort_keys=True)

    chunks_done = int(progress_state["chunks_done"])
    k = int(progress_state["episodes_done"])
    total_steps = int(progress_state["steps_done"])
    seconds_before = float(progress_state.get("seconds", 0.0))
    if steps is None:
        target_steps = int(episodes) * cap  # type: ignore[arg-type]
    else:  # fixed-length (DMC) episodes overshoot to a whole episode
        target_steps = steps if gym_env else math.ceil(steps / cap) * cap

    def done() -> bool:
        return total_steps >= steps if steps is not None else k >= int(episodes)  # type: ignore[arg-type]

    bar = _progress_bar(progress, target_steps, f"collect {domain}/{agent}", initial=total_steps)
    start = time.perf_counter()
    stepped = 0
    c = chunks_done
    while not done():
        chunk: list[dict[str, Any]] = []
        chunk_steps = 0
        while not done() and chunk_steps < chunk_episodes * cap:  # DMC: chunk_episodes episodes
            ep, metrics = _run_episode(env, collector, episode_seed(seed, k), cap, to_env, with_state)
            ep["seed"] = episode_seed(seed, k)
            chunk.append(ep)
            n = ep["actions"].shape[0]
            k += 1
            total_steps += n
            chunk_steps += n
            stepped += n
            bar.update(n)
            bar.set_postfix(steps_per_s=f"{stepped / (time.perf_counter() - start):.0f}",
                            **{key: f"{v:.3g}" for key, v in list(metrics.items())[:2]})
        save_npz_atomic(partial / f"chunk_{c:05d}.npz", _pack(chunk))
        save_npz_atomic(partial / f"agent_{c:05d}.npz", collector.state_dict())
        # progress.json is the commit point: a kill before it redoes chunk c from
        # the agent state saved after chunk c - 1.
        write_json_atomic(partial / "progress.json", {
            "chunks_done": c + 1, "episodes_done": k, "steps_done": total_steps,
            "seconds": seconds_before + time.perf_counter() - start}, sort_keys=True)
        if c > 0:
            (partial / f"agent_{c - 1:05d}.npz").unlink(missing_ok=True)
        c += 1
    bar.close()
    collect_seconds = seconds_before + time.perf_counter() - start
    info = env.info.to_dict() if gym_env else None
    env.close()

    episodes_data = _load_chunks(partial, c)
    _finalize(out, partial, episodes_data, run_config, collect_seconds, coverage, overwrite, info)
    return out


def _pack(chunk: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """One chunk's episodes as flat arrays (episodes differ in length)."""
    return {
        **{key: np.concatenate([ep[key] for ep in chunk]) for key in _EPISODE_KEYS},
        "lengths": np.array([ep["actions"].shape[0] for ep in chunk], dtype=np.int64),
        "terminated": np.array([ep["terminated"] for ep in chunk], dtype=bool),
        "seeds": np.array([ep["seed"] for ep in chunk], dtype=np.int64),
    }


def _progress_bar(enabled: bool, total: int, desc: str, initial: int = 0) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled,
                smoothing=0.1)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _load_chunks(partial: Path, n_chunks: int) -> list[dict[str, Any]]:
    episodes: list[dict[str, Any]] = []
    for c in range(n_chunks):
        with np.load(partial / f"chunk_{c:05d}.npz", allow_pickle=False) as z:
            arrays = {key: z[key] for key in z.files}
        t0 = o0 = 0
        for i, n in enumerate(arrays["lengths"].tolist()):
            episodes.append({
                "observations": arrays["observations"][o0:o0 + n + 1],
                "states": arrays["states"][o0:o0 + n + 1],
                "actions": arrays["actions"][t0:t0 + n],
                "rewards": arrays["rewards"][t0:t0 + n],
                "terminated": bool(arrays["terminated"][i]),
                "seed": arrays["seeds"][i],
            })
            t0 += n
            o0 += n + 1
    return episodes


def _finalize(out: Path, partial: Path, episodes: list[dict[str, Any]], run_config: dict,
              collect_seconds: float, coverage: bool, overwrite: bool,
              env_info: dict[str, Any] | None) -> None:
    from bfm_gym._version import __version__

    domain, agent = run_config["domain"], run_config["agent"]
    building = out.with_name(f".{out.name}.building")
    if building.exists():
        shutil.rmtree(building)
    building.mkdir(parents=True)
    hdf5 = write_minari(
        building, episodes, domain=domain, agent=agent, env_info=env_info,
        description=f"bfm_gym {'reward-free ' if env_info is None else ''}{domain} data, "
                    f"agent={agent}, seed={run_config['seed']}",
    )
    transitions = episodes_to_transitions(episodes, domain, env_info)
    source = f"--domain {domain}" if env_info is None else f"--env {domain}"
    if env_info is not None and env_info.get("kwargs"):
        source += f" --env-kwargs '{json.dumps(env_info['kwargs'], sort_keys=True)}'"
    if env_info is not None:
        source += f" --max-episode-steps {run_config['max_episode_steps']}"
    size = (f"--steps {run_config['steps']}" if run_config.get("steps") is not None
            else f"--episodes {len(episodes)}")
    manifest = {
        "format_version": FORMAT_VERSION,
        "bfm_gym_version": __version__,
        "domain": domain,
        "agent": agent,
        "agent_config": run_config["agent_config"],
        "seed": run_config["seed"],
        "episodes": len(episodes),
        "steps": len(transitions),
        "terminations": int(sum(ep["terminated"] for ep in episodes)),
        "obs_dim": int(transitions.obs.shape[1]),
        "action_dim": int(transitions.action.shape[1]),
        "state_size": int(transitions.next_state.shape[1]),
        "dataset_id": dataset_id(domain, agent),
        "sha256": sha256_file(hdf5),
        # Wall time of the episodes (summed over resumed runs; excludes the Minari write).
        "collect_seconds": round(collect_seconds, 2),
        "collect_steps_per_second": round(len(transitions) / max(collect_seconds, 1e-9), 1),
        "command": f"bfm-gym collect {source} --agent {agent} {size} --seed {run_config['seed']}",
    }
    if env_info is not None:
        manifest["env"] = env_info
    if coverage:
        from bfm_gym.data.coverage import coverage_report

        manifest["coverage"] = coverage_report(transitions, building)
    write_json_atomic(building / MANIFEST, manifest, sort_keys=True)
    if out.exists():
        if not overwrite:  # pragma: no cover - checked at start; guards a race
            raise FileExistsError(f"Output folder {out} appeared during collection.")
        trash = out.with_name(f".{out.name}.old")
        os.replace(out, trash)
        os.replace(building, out)
        shutil.rmtree(trash)
    else:
        os.replace(building, out)
    shutil.rmtree(partial)


def episodes_to_transitions(episodes: list[dict[str, Any]], domain: str,
                            env_info: dict[str, Any] | None = None) -> Transitions:
    """Flattens recorded episodes into :class:`Transitions` (no disk round trip)."""
    obs = np.concatenate([e["observations"][:-1] for e in episodes])
    terminated = []
    for e in episodes:
        t = np.zeros(e["actions"].shape[0], dtype=np.float32)
        t[-1] = float(e.get("terminated", False))
        terminated.append(t)
    return Transitions(
        obs=obs,
        action=np.concatenate([e["actions"] for e in episodes]),
        next_obs=np.concatenate([e["observations"][1:] for e in episodes]),
        terminated=np.concatenate(terminated),
        next_state=np.concatenate([e["states"][1:] for e in episodes]),
        episode=np.concatenate(
            [np.full(e["actions"].shape[0], k, dtype=np.int64) for k, e in enumerate(episodes)]
        ),
        domain=domain,
        reward=np.concatenate([e["rewards"] for e in episodes]) if env_info is not None else None,
        env=env_info,
    )
