"""Reward-free data collection: run an exploration agent, record a Minari dataset.

``collect()`` (and ``bfm-gym collect``) runs whole 1000-step episodes of a domain's
reward-free env with a collector agent (:mod:`bfm_gym.data.agents`), recording
observations, actions and the simulator state at every step.

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
from bfm_gym.utils.io import save_npz_atomic, write_json_atomic
from bfm_gym.envs.dmc_env import EPISODE_STEPS

__all__ = ["collect", "episode_seed"]


def episode_seed(seed: int, episode: int) -> int:
    """Env reset seed of episode ``episode`` in a collection seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def _run_episode(env: Any, agent: Any, seed: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    obs, _ = env.reset(seed=seed)
    agent.reset()
    observations = np.empty((EPISODE_STEPS + 1, obs.shape[0]), dtype=np.float32)
    actions = np.empty((EPISODE_STEPS, agent.action_dim), dtype=np.float32)
    states = np.empty((EPISODE_STEPS + 1, env.state_size), dtype=np.float64)
    observations[0] = obs
    states[0] = env.get_state()
    metrics: dict[str, float] = {}
    for t in range(EPISODE_STEPS):
        action = agent.act(obs)
        next_obs, _, terminated, truncated, _ = env.step(action)
        out = agent.observe(obs, action, next_obs, bool(terminated))
        if out:
            metrics = out
        actions[t] = action
        observations[t + 1] = next_obs
        states[t + 1] = env.get_state()
        obs = next_obs
        if terminated or truncated:
            if t != EPISODE_STEPS - 1:  # pragma: no cover - DMC never terminates early
                raise RuntimeError("bfm_gym collection expects fixed-length episodes.")
    return {"observations": observations, "actions": actions, "states": states}, metrics


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
) -> Path:
    """Collects a reward-free dataset and returns its folder.

    Args:
        domain: Domain name (``walker``, ``cheetah``, ``quadruped``, ``point_mass_maze``).
        out: Output folder (a Minari datasets root plus ``bfm_gym.json``).
        agent: Collector agent name (``random``, ``ou``, ``rnd``).
        steps: Env steps to collect, rounded up to whole 1000-step episodes.
        episodes: Alternatively, the number of episodes.
        seed: Seeds the agent and every episode's reset.
        agent_config: Overrides of the agent's config fields.
        chunk_episodes: Episodes per checkpointed chunk.
        overwrite: Replace ``out`` if it exists (otherwise refuse).
        progress: Show a progress bar.
        coverage: Write the coverage report (JSON + PNG) into the dataset.
        threads: torch threads for learning agents (default: 1).

    Raises:
        ValueError: Unknown domain/agent/config, bad sizes, or ``out`` exists without
            ``overwrite``, or a partial run with other arguments is in the way.
    """
    from bfm_gym.data.agents import make_agent
    from bfm_gym.envs import get_domain
    from bfm_gym.envs.dmc_env import DMCEnv

    get_domain(domain)
    if (steps is None) == (episodes is None):
        raise ValueError("Give exactly one of steps= or episodes=.")
    n_episodes = math.ceil(steps / EPISODE_STEPS) if steps is not None else int(episodes)  # type: ignore[arg-type]
    if n_episodes < 1:
        raise ValueError(f"Collect at least one episode ({EPISODE_STEPS} steps); got {steps or episodes}.")
    if chunk_episodes < 1:
        raise ValueError(f"chunk_episodes must be >= 1; got {chunk_episodes}.")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"Output folder {out} exists; pass --overwrite (overwrite=True) to replace it."
        )
    partial = out.with_name(f".{out.name}.partial")
    run_config = {
        "domain": domain,
        "agent": agent,
        "episodes": n_episodes,
        "seed": int(seed),
        "agent_config": dict(sorted((agent_config or {}).items())),
        "chunk_episodes": int(chunk_episodes),
    }
    import torch

    torch.set_num_threads(int(threads or 1))

    env = DMCEnv(domain)
    obs_dim = env.observation_space.shape[0]
    act_dim = env.action_space.shape[0]
    collector = make_agent(agent, obs_dim, act_dim, seed, **(agent_config or {}))

    chunks_done = 0
    if partial.exists():
        saved = _read_json(partial / "config.json")
        if saved != run_config:
            if overwrite:
                shutil.rmtree(partial)
            else:
                raise ValueError(
                    f"An interrupted collection with other arguments is at {partial} "
                    f"({saved}); rerun with the same arguments to resume it, or pass "
                    "--overwrite to discard it."
                )
    seconds_before = 0.0
    if partial.exists():
        prog = _read_json(partial / "progress.json") or {"chunks_done": 0}
        chunks_done = int(prog["chunks_done"])
        seconds_before = float(prog.get("seconds", 0.0))
        if chunks_done:
            with np.load(partial / f"agent_{chunks_done - 1:05d}.npz", allow_pickle=False) as state:
                collector.load_state_dict(state)
    else:
        partial.mkdir(parents=True)
        write_json_atomic(partial / "config.json", run_config, sort_keys=True)
        write_json_atomic(partial / "progress.json", {"chunks_done": 0}, sort_keys=True)

    n_chunks = math.ceil(n_episodes / chunk_episodes)
    bar = _progress_bar(progress, n_episodes * EPISODE_STEPS, f"collect {domain}/{agent}",
                        initial=min(chunks_done * chunk_episodes, n_episodes) * EPISODE_STEPS)
    start = time.perf_counter()
    stepped = 0
    for c in range(chunks_done, n_chunks):
        eps = range(c * chunk_episodes, min((c + 1) * chunk_episodes, n_episodes))
        chunk: dict[str, list[np.ndarray]] = {"observations": [], "actions": [], "states": [], "seeds": []}
        for k in eps:
            ep, metrics = _run_episode(env, collector, episode_seed(seed, k))
            for key in ("observations", "actions", "states"):
                chunk[key].append(ep[key])
            chunk["seeds"].append(np.int64(episode_seed(seed, k)))
            stepped += EPISODE_STEPS
            bar.update(EPISODE_STEPS)
            bar.set_postfix(steps_per_s=f"{stepped / (time.perf_counter() - start):.0f}",
                            **{k: f"{v:.3g}" for k, v in list(metrics.items())[:2]})
        save_npz_atomic(partial / f"chunk_{c:05d}.npz", {k: np.stack(v) for k, v in chunk.items()})
        save_npz_atomic(partial / f"agent_{c:05d}.npz", collector.state_dict())
        # progress.json is the commit point: a kill before it redoes chunk c from
        # the agent state saved after chunk c - 1.
        write_json_atomic(partial / "progress.json", {
            "chunks_done": c + 1, "seconds": seconds_before + time.perf_counter() - start},
            sort_keys=True)
        if c > 0:
            (partial / f"agent_{c - 1:05d}.npz").unlink(missing_ok=True)
    bar.close()
    collect_seconds = seconds_before + time.perf_counter() - start
    env.close()

    episodes_data = _load_chunks(partial, n_chunks)
    _finalize(out, partial, episodes_data, run_config, collect_seconds, coverage, overwrite)
    return out


def _progress_bar(enabled: bool, total: int, desc: str, initial: int = 0) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled,
                smoothing=0.1)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _load_chunks(partial: Path, n_chunks: int) -> list[dict[str, np.ndarray]]:
    episodes: list[dict[str, np.ndarray]] = []
    for c in range(n_chunks):
        with np.load(partial / f"chunk_{c:05d}.npz", allow_pickle=False) as z:
            for i in range(z["seeds"].shape[0]):
                episodes.append(
                    {
                        "observations": z["observations"][i],
                        "actions": z["actions"][i],
                        "states": z["states"][i],
                        "seed": z["seeds"][i],
                    }
                )
    return episodes


def _finalize(out: Path, partial: Path, episodes: list[dict[str, np.ndarray]], run_config: dict,
              collect_seconds: float, coverage: bool, overwrite: bool) -> None:
    from bfm_gym import __version__

    domain, agent = run_config["domain"], run_config["agent"]
    building = out.with_name(f".{out.name}.building")
    if building.exists():
        shutil.rmtree(building)
    building.mkdir(parents=True)
    hdf5 = write_minari(
        building, episodes, domain=domain, agent=agent,
        description=f"bfm_gym reward-free {domain} data, agent={agent}, seed={run_config['seed']}",
    )
    transitions = episodes_to_transitions(episodes, domain)
    manifest = {
        "format_version": FORMAT_VERSION,
        "bfm_gym_version": __version__,
        "domain": domain,
        "agent": agent,
        "agent_config": run_config["agent_config"],
        "seed": run_config["seed"],
        "episodes": len(episodes),
        "steps": len(transitions),
        "obs_dim": int(transitions.obs.shape[1]),
        "action_dim": int(transitions.action.shape[1]),
        "state_size": int(transitions.next_state.shape[1]),
        "dataset_id": dataset_id(domain, agent),
        "sha256": sha256_file(hdf5),
        # Wall time of the episodes (summed over resumed runs; excludes the Minari write).
        "collect_seconds": round(collect_seconds, 2),
        "collect_steps_per_second": round(len(transitions) / max(collect_seconds, 1e-9), 1),
        "command": (
            f"bfm-gym collect --domain {domain} --agent {agent} --episodes {len(episodes)} "
            f"--seed {run_config['seed']}"
        ),
    }
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


def episodes_to_transitions(episodes: list[dict[str, np.ndarray]], domain: str) -> Transitions:
    """Flattens recorded episodes into :class:`Transitions` (no disk round trip)."""
    obs = np.concatenate([e["observations"][:-1] for e in episodes])
    return Transitions(
        obs=obs,
        action=np.concatenate([e["actions"] for e in episodes]),
        next_obs=np.concatenate([e["observations"][1:] for e in episodes]),
        terminated=np.zeros(obs.shape[0], dtype=np.float32),
        next_state=np.concatenate([e["states"][1:] for e in episodes]),
        episode=np.concatenate(
            [np.full(e["actions"].shape[0], k, dtype=np.int64) for k, e in enumerate(episodes)]
        ),
        domain=domain,
    )
